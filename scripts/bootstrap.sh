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
find_pallet_dev bootstrap.sh

exec "$pallet_dev" up --prefer-docker "$@"
