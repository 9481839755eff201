#!/usr/bin/env bash
# Runs `wsd runtime verify` on the four real CLIs (installed by scripts/install-clis.sh).
# Claude Code, Codex and Hermes must hold: every case of a pair the registry claims
# verified does exactly what its plan says, or this fails. OpenClaw, with no pair claimed
# (the planner refuses it by default), is run and reported, and fails nothing.
#
#   scripts/verify-runtimes.sh [WSD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
WSD=${1:-target/debug/wsd}
eval "$(scripts/install-clis.sh)"
status=0
for runtime in claude-code codex hermes; do
    echo "== wsd runtime verify $runtime"
    "$WSD" runtime verify "$runtime" --timeout 60 || status=1
done
# No OpenClaw pair is claimed verified (the planner refuses them): one provider's cases
# show where its profile stands.
echo "== wsd runtime verify openclaw --only minimax (no pair claimed verified: reported only)"
"$WSD" runtime verify openclaw --only minimax --timeout 30 || true
exit $status
