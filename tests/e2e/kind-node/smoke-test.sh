#!/usr/bin/env bash
# One command for the whole offline kind path on a test machine:
#   1. install the pallet-runc runtime wrapper into dockerd (idempotent),
#   2. build the kind node image (cached stages are fast on re-runs),
#   3. run the smoke test (kind create cluster, node Ready, CoreDNS running,
#      a pod from an image loaded with `kind load docker-image`, delete).
#
#   sudo tests/e2e/kind-node/smoke-test.sh [--no-build]
#
# Extra arguments after --no-build are passed to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${here}/../../.." && pwd)"
build=1
if [[ "${1:-}" == "--no-build" ]]; then
  build=0
  shift
fi

"${here}/install-runtime-wrapper.sh"

start=$(date +%s)
if [[ "$build" == 1 ]]; then
  "${here}/build-node-image.sh"
fi
built=$(date +%s)

python="${PYTHON:-python3}"
if [[ -x "${repo_root}/.venv/bin/python" ]]; then
  python="${repo_root}/.venv/bin/python"
fi
cd "$repo_root"
PALLET_DEV_REQUIRE_REAL=1 "$python" -m pytest tests/e2e/kind-node -m kind_e2e --no-cov -s -q -p no:cacheprovider "$@"
done_at=$(date +%s)
echo "smoke-test: build $((built - start))s, smoke test $((done_at - built))s" >&2
