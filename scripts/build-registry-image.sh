#!/usr/bin/env bash
# Build the registry pallet-dev pins (CNCF distribution, REGISTRY_VERSION in
# .ci/versions.env) from its Go module into a local image, for machines that
# cannot pull the published one (CI: no image registry is reachable). The image
# has the published image's layout: /bin/registry (static), the config at
# /etc/distribution/config.yml, data in the volume /var/lib/registry, port 5000,
# ENTRYPOINT ["registry"] with CMD ["serve", "/etc/distribution/config.yml"], and
# OTEL_TRACES_EXPORTER=none; `docker run --rm IMAGE --version` prints the release.
# It is tagged with a local name (LOCAL_REGISTRY_IMAGE), never the public one.
# Usage: build-registry-image.sh [--if-missing] [TAG]   (needs Go and Docker)
set -euo pipefail

root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=.ci/versions.env
source "$root_dir/.ci/versions.env"
module=github.com/distribution/distribution/v3
case "${1:-}" in
  -h | --help)
    echo "Usage: build-registry-image.sh [--if-missing] [TAG]"
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
if_missing=0
if [[ "${1:-}" == "--if-missing" ]]; then
  if_missing=1
  shift
fi
tag=${1:-$LOCAL_REGISTRY_IMAGE}
built_from="$module@$REGISTRY_VERSION"

if [[ $if_missing -eq 1 ]] &&
  [[ "$(docker image inspect --format '{{index .Config.Labels "dev.pallet.built-from"}}' "$tag" 2>/dev/null)" == "$built_from" ]]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "error: building $built_from needs Go (https://go.dev/dl/); or pull ${REGISTRY_IMAGE} where a registry is reachable" >&2
  exit 3
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc/distribution" "$rootfs/etc/ssl/certs" "$rootfs/var/lib/registry" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"

# the upstream release build's flags: static, trimmed paths, the version without its "v"
ldflags="-s -w -X $module/version.version=${REGISTRY_VERSION#v} -X $module/version.mainpkg=$module"
(cd "$work" && CGO_ENABLED=0 GOBIN="$rootfs/bin" GOFLAGS=-mod=mod \
  go install -trimpath -ldflags "$ldflags" "$module/cmd/registry@$REGISTRY_VERSION")

# the published image's default configuration, with deletes on (pallet-dev's own config replaces it)
cat >"$rootfs/etc/distribution/config.yml" <<'YAML'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
printf 'root:x:0:0:root:/root:/bin/registry\nregistry:x:1000:1000::/var/lib/registry:/bin/registry\n' \
  >"$rootfs/etc/passwd"
# CA certificates, as the published image's ca-certificates package (pull-through caches use TLS upstreams)
for bundle in /etc/ssl/certs/ca-certificates.crt /etc/ssl/cert.pem; do
  if [[ -f "$bundle" ]]; then
    cp -L "$bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    break
  fi
done

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV OTEL_TRACES_EXPORTER=none' \
  --change 'ENTRYPOINT ["registry"]' \
  --change 'CMD ["serve", "/etc/distribution/config.yml"]' \
  --change 'EXPOSE 5000' \
  --change 'VOLUME ["/var/lib/registry"]' \
  --change "LABEL org.opencontainers.image.version=${REGISTRY_VERSION#v}" \
  --change "LABEL dev.pallet.built-from=$built_from" \
  - "$tag" >/dev/null
echo "built $tag from $built_from: $(docker run --rm "$tag" --version)"
