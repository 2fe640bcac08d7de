# shellcheck shell=bash
# Helpers shared by .ci/run and scripts/dev-setup.sh: prerequisites of the test
# machine (Docker engine, the registry image, pinned kind/helm). Sourced, not run.

PALLET_ROOT=${PALLET_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# shellcheck source=.ci/versions.env
source "$PALLET_ROOT/.ci/versions.env"
PALLET_TOOLS_DIR=${PALLET_TOOLS_DIR:-/opt/pallet-tools}

log() { printf '==> %s\n' "$*" >&2; }

is_root() { [[ $(id -u) -eq 0 ]]; }

have_apt() { command -v apt-get >/dev/null 2>&1; }

apt_install() {
  # apt_install PACKAGE...: install the missing Debian packages (root only)
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if ! is_root || ! have_apt; then
    log "missing packages: ${missing[*]} (install them with your package manager)"
    return 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

docker_ready() { docker info >/dev/null 2>&1; }

ensure_dockerd() {
  # start dockerd when no daemon answers (root, Debian's docker.io); wait for it
  if docker_ready; then
    return 0
  fi
  if ! is_root || ! command -v dockerd >/dev/null 2>&1; then
    log "no Docker daemon answers; start Docker and re-run"
    return 1
  fi
  log "starting dockerd"
  mkdir -p /var/log
  dockerd >/var/log/pallet-dockerd.log 2>&1 &
  local _
  for _ in $(seq 1 120); do
    docker_ready && return 0
    sleep 0.5
  done
  log "dockerd did not come up; see /var/log/pallet-dockerd.log"
  tail -n 20 /var/log/pallet-dockerd.log >&2 || true
  return 1
}

ensure_registry_images() {
  # The pinned registry release built here from its Go module, under its local name
  # (LOCAL_REGISTRY_IMAGE): the tests run it. Then the published image when it can be
  # pulled; if not, pallet-dev is pointed at the local build (never tagged as public).
  # Sets LOCAL_REGISTRY_READY=1 when the local build is there.
  LOCAL_REGISTRY_READY=0
  if bash "$PALLET_ROOT/scripts/build-registry-image.sh" --if-missing "$LOCAL_REGISTRY_IMAGE"; then
    LOCAL_REGISTRY_READY=1
  else
    log "no $LOCAL_REGISTRY_IMAGE (built from distribution $REGISTRY_VERSION); tests that need it will skip"
  fi
  if docker image inspect "$REGISTRY_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  local pull=(docker pull "$REGISTRY_IMAGE")
  command -v timeout >/dev/null 2>&1 && pull=(timeout 60 "${pull[@]}") # macOS has no timeout(1)
  if "${pull[@]}" >/dev/null 2>&1; then
    return 0
  fi
  if [[ $LOCAL_REGISTRY_READY -eq 1 ]]; then
    log "cannot pull $REGISTRY_IMAGE now: use the local build of the same release with"
    log "  export PALLET_DEV_REGISTRY_IMAGE=$LOCAL_REGISTRY_IMAGE"
  else
    log "cannot pull $REGISTRY_IMAGE now; pallet-dev up will pull it"
  fi
}

go_install_pinned() {
  # go_install_pinned NAME MODULE@VERSION [LDFLAGS]: build a pinned CLI into $PALLET_TOOLS_DIR/NAME/
  local name=$1 spec=$2 ldflags=${3:-}
  local dir="$PALLET_TOOLS_DIR/$name"
  local binary stamp="$spec $ldflags"
  binary=$(basename "${spec%@*}")
  if [[ -x "$dir/$binary" && "$(cat "$dir/.version" 2>/dev/null)" == "$stamp" ]]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "go is needed to build $spec"
    return 1
  fi
  log "go install $spec"
  mkdir -p "$dir"
  (cd /tmp && GOBIN="$dir" GOFLAGS=-mod=mod go install -ldflags "$ldflags" "$spec")
  echo "$stamp" >"$dir/.version"
}

ensure_conformance_suite() {
  # the OCI distribution-spec conformance suite: $PALLET_TOOLS_DIR/oci-conformance/conformance
  go_install_pinned oci-conformance \
    "github.com/opencontainers/distribution-spec/conformance@$OCI_CONFORMANCE_VERSION"
}

ensure_cli_tools() {
  go_install_pinned kind "sigs.k8s.io/kind@$KIND_VERSION"
  # the ldflags Helm's own release build sets: its full version, and (Helm 3) the
  # Kubernetes version it assumes without a cluster (else v1.20, below our kubeVersion)
  go_install_pinned helm4 "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION" \
    "-X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION"
  local k8s="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  k8s+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM3_K8S_MINOR"
  k8s+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  k8s+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM3_K8S_MINOR"
  go_install_pinned helm3 "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION $k8s"
  export PATH="$PALLET_TOOLS_DIR/kind:$PALLET_TOOLS_DIR/helm4:$PATH"
  export PALLET_DEV_HELM4="$PALLET_TOOLS_DIR/helm4/helm"
  export PALLET_DEV_HELM3="$PALLET_TOOLS_DIR/helm3/helm"
}
