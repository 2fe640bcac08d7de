#!/usr/bin/env bash
# Check the tools of the kind + Helm path (docker, kind, helm, kubectl, pallet-dev):
# present and recent enough. For each one missing or too old, print the exact
# install command for this OS. It never downloads or installs anything itself.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bash scripts/install-kind.sh

Check that the kind + Helm path has what it needs, and print the exact install
command for anything missing or too old on this OS. Nothing is downloaded or
installed: copy the commands you want to run.

  docker      client present, the daemon answering, version 20.10 or newer
  kind        v0.20.0 or newer (CI pins KIND_VERSION from .ci/versions.env)
  helm        3.x or 4.x
  kubectl     present
  pallet-dev  installed (on PATH or in the repo's .venv)

Exit codes: 0 everything is ready (next: bash scripts/bootstrap-k8s.sh),
3 something is missing, too old, or the Docker daemon does not answer.
For a deeper check once pallet-dev is installed: pallet-dev doctor --backend kind
USAGE
}

case ${1:-} in
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *)
    echo "install-kind.sh: error: unexpected argument '$1' (see --help)." >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# the same minimums as src/pallet_dev/versions.py (what `pallet-dev doctor` checks)
MIN_KIND=0.20.0
MIN_DOCKER_SERVER=20.10.0
kind_pin=$(sed -n 's/^KIND_VERSION=//p' "$root/.ci/versions.env" 2>/dev/null | head -n 1 || true)
kind_pin=${kind_pin:-latest}
os=$(uname -s)
case $(uname -m) in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac
problems=0

ok() { printf ' ✓ %s\n' "$*"; }
bad() {
  printf ' ✗ %s\n' "$*"
  problems=$((problems + 1))
}
fix() { printf '     %s\n' "$@"; }

# version_at_least HAVE MIN: dotted numeric versions without the leading "v"
version_at_least() {
  local have min i h m
  IFS=. read -r -a have <<<"$1"
  IFS=. read -r -a min <<<"$2"
  for i in 0 1 2; do
    h=${have[i]:-0}
    m=${min[i]:-0}
    if ((10#$h > 10#$m)); then return 0; fi
    if ((10#$h < 10#$m)); then return 1; fi
  done
  return 0
}

# the first X.Y.Z in $1, or nothing
semver() {
  if [[ $1 =~ ([0-9]+\.[0-9]+\.[0-9]+) ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
  fi
}

install_docker() {
  case $os in
    Darwin) fix "install: brew install --cask docker   (Docker Desktop; then start it)" ;;
    Linux)
      if command -v apt-get >/dev/null 2>&1; then
        fix "install: sudo apt-get install -y docker.io && sudo systemctl start docker"
      fi
      fix "or see:  https://docs.docker.com/engine/install/"
      ;;
    *) fix "see: https://docs.docker.com/get-docker/" ;;
  esac
}

install_kind() {
  case $os in
    Darwin) fix "install: brew install kind" ;;
    Linux)
      fix "install: go install sigs.k8s.io/kind@$kind_pin   (puts kind in \$(go env GOPATH)/bin)"
      if [[ $kind_pin != latest ]]; then
        fix "or:      curl -Lo ./kind https://kind.sigs.k8s.io/dl/$kind_pin/kind-linux-$arch && chmod +x ./kind && sudo mv ./kind /usr/local/bin/kind"
      fi
      ;;
    *) fix "see: https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
  esac
}

install_helm() {
  case $os in
    Darwin) fix "install: brew install helm" ;;
    Linux)
      fix "install: curl -fsSL -o get_helm.sh https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-4 && bash get_helm.sh"
      fix "or:      sudo snap install helm --classic"
      ;;
    *) fix "see: https://helm.sh/docs/intro/install/" ;;
  esac
}

install_kubectl() {
  case $os in
    Darwin) fix "install: brew install kubectl" ;;
    Linux)
      # printed, not run: the $(...) belongs to the command the user copies
      # shellcheck disable=SC2016
      fix 'install: curl -LO "https://dl.k8s.io/release/$(curl -Ls https://dl.k8s.io/release/stable.txt)/bin/linux/'"$arch"'/kubectl" && sudo install -m 0755 kubectl /usr/local/bin/kubectl'
      fix "or:      sudo snap install kubectl --classic"
      ;;
    *) fix "see: https://kubernetes.io/docs/tasks/tools/" ;;
  esac
}

echo "Checking the kind + Helm path's tools (nothing is downloaded or installed):"

if ! command -v docker >/dev/null 2>&1; then
  bad "docker: not found"
  install_docker
elif ! server=$(docker version --format '{{.Server.Version}}' 2>/dev/null); then
  # asked again only to tell "permission denied" from "not running" by the CLI's message
  docker_error=$(docker version --format '{{.Server.Version}}' 2>&1 || true)
  if [[ $docker_error == *"ermission denied"* ]]; then
    bad "docker: permission denied on the Docker socket"
    fix "fix: sudo usermod -aG docker \"\$USER\", then log in again"
  else
    bad "docker: the daemon does not answer"
    fix "fix: start Docker Desktop, or: sudo systemctl start docker"
  fi
elif [[ -n $(semver "$server.0") ]] && ! version_at_least "$(semver "$server.0")" "$MIN_DOCKER_SERVER"; then
  bad "docker: the daemon is version $server; ${MIN_DOCKER_SERVER%.0} or newer is needed"
  install_docker
else
  ok "docker (daemon $server answers)"
fi

if ! command -v kind >/dev/null 2>&1; then
  bad "kind: not found"
  install_kind
else
  kind_version=$(semver "$(kind version -q 2>/dev/null || kind version 2>/dev/null || true)")
  if [[ -z $kind_version ]]; then
    bad "kind: cannot read its version (\`kind version\`)"
    install_kind
  elif ! version_at_least "$kind_version" "$MIN_KIND"; then
    bad "kind v$kind_version is too old: v$MIN_KIND or newer is needed"
    install_kind
  else
    ok "kind v$kind_version"
  fi
fi

if ! command -v helm >/dev/null 2>&1; then
  bad "helm: not found"
  install_helm
else
  helm_version=$(helm version --template '{{.Version}}' 2>/dev/null || true)
  case $helm_version in
    v3.* | v4.*) ok "helm $helm_version" ;;
    *)
      bad "helm ${helm_version:-(version unknown)}: 3.x or 4.x is needed"
      install_helm
      ;;
  esac
fi

if ! command -v kubectl >/dev/null 2>&1; then
  bad "kubectl: not found"
  install_kubectl
else
  kubectl_json=$(kubectl version --client -o json 2>/dev/null || true)
  if [[ $kubectl_json =~ \"gitVersion\":\ *\"([^\"]+)\" ]]; then
    ok "kubectl ${BASH_REMATCH[1]}"
  else
    ok "kubectl (version unknown)"
  fi
fi

if command -v pallet-dev >/dev/null 2>&1 || [[ -x $root/.venv/bin/pallet-dev ]]; then
  ok "pallet-dev"
else
  bad "pallet-dev: not installed (not on PATH, not in $root/.venv/bin)"
  fix "install: bash scripts/dev-setup.sh   (in $root; or: pip install -e $root)"
fi

if ((problems > 0)); then
  echo "$problems missing or not ready. Run the commands above, then re-run: bash scripts/install-kind.sh"
  exit 3
fi
echo "Ready for the kind + Helm path. Next: bash scripts/bootstrap-k8s.sh"
