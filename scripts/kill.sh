#!/usr/bin/env bash
# Tear the environment down, kept under its old name: runs `pallet-dev down`.
# Holds no logic of its own beyond mapping the old flags onto pallet-dev's.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/kill.sh [--kind] [--clean-logs] [pallet-dev down options]

Remove the local registry environment. Pushed images are kept unless
--clean-logs is given.

  --kind         only the kind environment (the cluster made by
                 scripts/bootstrap-k8s.sh): pallet-dev down --backend kind.
                 Without it, whatever backend the config names (by default
                 both the Docker container and the kind cluster) is removed.
  --clean-logs   also delete the registry data and pallet-dev's logs
                 (pallet-dev down --clean).
  -h, --help     show this help.

Runs: pallet-dev down [--clean] [--backend kind] [options]; other options are passed on
(e.g. --json). Exit codes are pallet-dev's; 3 when pallet-dev itself is
not installed.
USAGE
}

down_args=()
kind_only=0
for arg in "$@"; do
  case $arg in
    -h | --help)
      usage
      exit 0
      ;;
    --kind) kind_only=1 ;;
    --clean-logs) down_args+=(--clean) ;;
    *) down_args+=("$arg") ;;
  esac
done

# shellcheck source=scripts/lib/pallet-dev.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pallet-dev.sh"
find_pallet_dev kill.sh

if [[ $kind_only -eq 1 ]]; then
  down_args+=(--backend kind)
fi
# ${a[@]+...}: an empty array under `set -u` on bash 3.2 (macOS)
exec "$pallet_dev" down ${down_args[@]+"${down_args[@]}"}
