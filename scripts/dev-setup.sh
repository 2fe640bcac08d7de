#!/usr/bin/env bash
# Prepare this machine for pallet-dev development and bring the environment up:
#   - a virtualenv in .venv with pallet-dev and its test dependencies
#   - a running Docker daemon (on Debian as root: installs docker.io and starts dockerd)
#   - the pinned registry image, present locally (pulled; offline, the same release is
#     built from its Go module as pallet-dev-local/registry:<version> and used instead)
#   - `pallet-dev up`
# Safe to re-run. Usage: bash scripts/dev-setup.sh [--no-up] [pallet-dev up options]
set -euo pipefail

case "${1:-}" in
  -h | --help)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
bring_up=1
if [[ "${1:-}" == "--no-up" ]]; then
  bring_up=0
  shift
fi

PALLET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PALLET_ROOT
# shellcheck source=.ci/lib.sh
source "$PALLET_ROOT/.ci/lib.sh"
cd "$PALLET_ROOT"

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  log "pallet-dev needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)"
  exit 3
fi
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$python" -m venv .venv
fi
log "installing pallet-dev and its test dependencies into .venv"
# compat: a plain path entry for src/ (the default editable finder costs ~10 ms per start)
.venv/bin/python -m pip install -q --disable-pip-version-check \
  --config-settings editable_mode=compat -e '.[test,lint]'

if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  if ! command -v docker >/dev/null 2>&1; then
    apt_install docker.io || {
      log "install Docker (https://docs.docker.com/get-docker/) and re-run"
      exit 3
    }
  fi
fi
ensure_dockerd || exit 3
ensure_registry_images

if [[ $bring_up -eq 1 ]]; then
  if [[ -z "${PALLET_DEV_REGISTRY_IMAGE:-}" ]] && ! docker image inspect "$REGISTRY_IMAGE" >/dev/null 2>&1 &&
    [[ $LOCAL_REGISTRY_READY -eq 1 ]]; then
    log "this run uses $LOCAL_REGISTRY_IMAGE (PALLET_DEV_REGISTRY_IMAGE)"
    export PALLET_DEV_REGISTRY_IMAGE=$LOCAL_REGISTRY_IMAGE
  fi
  .venv/bin/pallet-dev up "$@"
fi
