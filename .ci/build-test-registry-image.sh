#!/usr/bin/env bash
# Build a local stand-in for the pinned registry image from Debian's
# docker-registry package (CNCF distribution 2.8.x): no image registry is
# reachable on CI machines, so nothing can be pulled. The image mirrors the
# official one's layout: config at /etc/distribution/config.yml, data in
# /var/lib/registry, port 5000. Usage: build-test-registry-image.sh TAG [TAG...]
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 TAG [TAG...]" >&2
  exit 2
fi
binary=/usr/bin/docker-registry
if [[ ! -x "$binary" ]]; then
  echo "error: $binary not found; install it with: apt-get install -y docker-registry" >&2
  exit 3
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc/distribution" "$root/var/lib/registry" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$binary" "$root/bin/registry"
# the binary's shared libraries (libc and the loader), at the paths it expects
while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done < <(ldd "$binary" | grep -o '/[^ ]*' | sort -u)
cat > "$root/etc/distribution/config.yml" <<'YAML'
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
YAML
printf 'root:x:0:0:root:/root:/bin/registry\nregistry:x:1000:1000::/var/lib/registry:/bin/registry\n' \
  > "$root/etc/passwd"

version=$(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null || echo unknown)
first=$1
tar -C "$root" -c . | docker import \
  --change 'ENTRYPOINT ["/bin/registry", "serve"]' \
  --change 'CMD ["/etc/distribution/config.yml"]' \
  --change 'EXPOSE 5000' \
  --change 'VOLUME ["/var/lib/registry"]' \
  --change "LABEL dev.pallet.stand-in=debian-docker-registry-$version" \
  - "$first" >/dev/null
shift
for tag in "$@"; do
  docker tag "$first" "$tag"
done
echo "built $first${*:+ (also tagged $*)} from Debian docker-registry $version"
