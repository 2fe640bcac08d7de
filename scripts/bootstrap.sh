#!/usr/bin/env bash
# The Docker-only path, kept under its old name: runs `pallet-dev up --prefer-docker`.
# Holds no logic of its own; pallet-dev does the work and sets the exit code.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bash scripts/bootstrap.sh [pallet-dev up options]

Start the local OCI registry as a plain Docker container (no Kubernetes):
container pallet-dev-registry on localhost:5000, pushed images kept in the
Docker volume pallet-dev-registry-data. Safe to re-run.

Runs: pallet-dev up --prefer-docker [options]
Options are passed on, e.g. --port 5001, --recreate, --dry-run, --json
(see `pallet-dev up --help`). Tear down with scripts/kill.sh.

Exit codes are pallet-dev's: 0 ok, 1 failed, 2 bad usage, 3 prerequisite
missing (also: pallet-dev itself is not installed), 4 locked, 130 interrupted.
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

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# pallet-dev on PATH, else the one scripts/dev-setup.sh installed into the repo's .venv
if ! pallet_dev=$(command -v pallet-dev); then
  pallet_dev="$root/.venv/bin/pallet-dev"
  if [[ ! -x $pallet_dev ]]; then
    echo "bootstrap.sh: error: pallet-dev is not installed (not on PATH, not in $root/.venv/bin)." >&2
    echo "  fix: run \`bash scripts/dev-setup.sh\` in $root (or \`pip install -e $root\`)." >&2
    exit 3
  fi
fi

exec "$pallet_dev" up --prefer-docker "$@"
