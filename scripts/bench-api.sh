#!/usr/bin/env bash
# Load benchmark of the API: GET …/plan of one workspace (40 org secrets, 10 workspace
# secrets) with 64 connections, on the embedded SQLite database, against a release build.
#
#   scripts/bench-api.sh [SECONDS]      (default 10; needs wrk: apt-get install wrk)
#
# Prints wrk's report (requests/s and latency percentiles) and wsd's CPU time.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-10}
command -v wrk >/dev/null || { echo "bench-api: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release --locked -p wsd --quiet
WSD=$PWD/target/release/wsd
DATA=$(mktemp -d /tmp/wsd-bench-api.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADMIN=wsd_bench-admin-token-$(date +%s)
WSD_DATA_DIR=$DATA WSD_ADMIN_TOKEN=$ADMIN "$WSD" serve --listen 127.0.0.1:$PORT --log-format json > "$DATA/stdout" 2> "$DATA/log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do grep -q "wsd listening" "$DATA/stdout" 2>/dev/null && break; sleep 0.1; done

export WSD_URL=http://127.0.0.1:$PORT WSD_TOKEN=$ADMIN
ORG=$("$WSD" org create bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for KEY in CLAUDE_CODE_OAUTH_TOKEN MINIMAX_API_KEY ANTHROPIC_API_KEY OPENAI_API_KEY KIMI_API_KEY; do
    printf 'bench-value-%s' "$KEY" | "$WSD" secret set --org "$ORG" "$KEY" >/dev/null
done
for i in $(seq 0 34); do printf 'v%s' "$i" | "$WSD" secret set --org "$ORG" "ORG_SETTING_$i" >/dev/null; done
WS=$("$WSD" ws create --org "$ORG" --name bench --runtime claude-code --model MiniMax-M2.7 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for i in $(seq 0 9); do printf 'w%s' "$i" | "$WSD" secret set --org "$ORG" --workspace "$WS" "WORKSPACE_SETTING_$i" >/dev/null; done

URL="$WSD_URL/v1/orgs/$ORG/workspaces/$WS/plan"
curl -sf -H "Authorization: Bearer $ADMIN" "$URL" > /dev/null
cpu() { awk '{print $14 + $15}' /proc/$PID/stat; }
BEFORE=$(cpu)
if [ -n "${WSD_BENCH_PERF:-}" ]; then  # optional: sample wsd with perf during the run
    perf record -e cpu-clock -F 499 -g -p "$PID" -o "$WSD_BENCH_PERF" -- sleep "$SECONDS_TO_RUN" >/dev/null 2>&1 &
fi
wrk -t2 -c64 -d"${SECONDS_TO_RUN}s" --latency -H "Authorization: Bearer $ADMIN" "$URL"
AFTER=$(cpu)
TICKS=$(getconf CLK_TCK)
echo "wsd CPU time during the run: $(python3 -c "print(round(($AFTER - $BEFORE) / $TICKS, 2))") s"
