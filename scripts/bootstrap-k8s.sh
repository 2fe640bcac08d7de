#!/usr/bin/env bash
# The kind + Helm path, kept under its old name: runs `pallet-dev up --backend kind`.
# Holds no logic of its own; pallet-dev does the work and sets the exit code.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bash scripts/bootstrap-k8s.sh [pallet-dev up options]

Create the kind cluster and deploy the registry into it with the Helm chart
charts/pallet-registry; the registry answers on localhost:5000. Needs docker,
kind, helm and kubectl (check them with scripts/install-kind.sh). Unlike plain
`pallet-dev up`, this never falls back to Docker: a missing tool is an error.
Safe to re-run.

Runs: pallet-dev up --backend kind [options]
Options are passed on, e.g. --port 5001, --set KEY=VALUE, -f values.yaml,
--recreate, --dry-run (see `pallet-dev up --help`). Tear down with
scripts/kill.sh --kind.

Exit codes are pallet-dev's: 0 ok, 1 failed, 2 bad usage, 3 prerequisite
missing (also: pallet-dev itself is not installed), 4 locked, 70 a bug in
pallet-dev (please report it), 130 interrupted.
USAGE
}

for arg in "$@"; do
  case $arg in
    -h | --help)
      usage
      exit 0
      ;;
  esac
done

# shellcheck source=scripts/lib/pallet-dev.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pallet-dev.sh"
find_pallet_dev bootstrap-k8s.sh

exec "$pallet_dev" up --backend kind "$@"
