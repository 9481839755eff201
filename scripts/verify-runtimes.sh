#!/usr/bin/env bash
# Runs `wsd runtime verify` on the four real CLIs (installed by scripts/install-clis.sh):
# every case of a pair the registry claims verified must do exactly what its plan says, or
# this fails. OpenClaw takes about twelve seconds a case; its providers are all reached the
# same way (a provider wsd defines in its config file), so CI runs one of each surface —
# Anthropic (minimax), OpenAI (openai-api) — the platform, and minimax with credential
# delivery `proxy`. Its full matrix:
# `wsd runtime verify openclaw`.
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
echo "== wsd runtime verify openclaw --only minimax,openai-api,platform,\"minimax via proxy\""
"$WSD" runtime verify openclaw --only "minimax,openai-api,platform,minimax via proxy" --timeout 60 || status=1
exit $status
