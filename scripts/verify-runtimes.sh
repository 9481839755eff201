#!/usr/bin/env bash
# Runs `wsd runtime verify` on the four real CLIs (installed by scripts/install-clis.sh).
# A runtime whose pairs the registry claims verified must hold: every case of those pairs
# does exactly what its plan says, or this fails. A runtime with no claimed pair (the
# planner refuses it by default) is run and reported, and fails nothing.
#
#   scripts/verify-runtimes.sh [WSD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
WSD=${1:-target/debug/wsd}
eval "$(scripts/install-clis.sh)"
status=0
for runtime in claude-code codex; do
    echo "== wsd runtime verify $runtime"
    "$WSD" runtime verify "$runtime" --timeout 60 || status=1
done
for runtime in hermes openclaw; do
    echo "== wsd runtime verify $runtime (no pair claimed verified: reported only)"
    "$WSD" runtime verify "$runtime" --timeout 30 || true
done
exit $status
