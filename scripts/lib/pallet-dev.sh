# shellcheck shell=bash
# Sourced by the drop-in scripts: find the pallet-dev CLI they wrap.

# find_pallet_dev SCRIPT: set $pallet_dev to pallet-dev on PATH, else the one
# scripts/dev-setup.sh installed into the repository's .venv; exit 3 when neither.
find_pallet_dev() {
  local script=$1 root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if pallet_dev=$(command -v pallet-dev); then
    return 0
  fi
  pallet_dev="$root/.venv/bin/pallet-dev"
  if [[ ! -x $pallet_dev ]]; then
    echo "$script: error: pallet-dev is not installed (not on PATH, not in $root/.venv/bin)." >&2
    echo "  fix: run \`bash scripts/dev-setup.sh\` in $root (or \`pip install -e $root\`)." >&2
    exit 3
  fi
}
