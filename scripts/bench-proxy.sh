#!/usr/bin/env bash
# Load benchmark of the metering proxy: a fast fake provider called directly, then through
# wsd, at 1 and 64 connections, with plain and streamed Anthropic Messages answers (streams
# in one write, and `split`: one write per event, as real providers send them) and with
# large (64 KiB) requests, against release builds on the embedded SQLite database. The usage token is the one a real
# provisioned platform workspace received.
#
#   scripts/bench-proxy.sh [SECONDS]      (default 10 per run; needs wrk: apt-get install wrk)
#
# For each run it prints requests/s and p50/p99 latency, and CPU time per request (from
# /proc, over the run): wsd's for runs through it, the fake provider's for direct runs —
# their ratio does not move with the machine's speed — and a summary at the end. With
# WSD_BENCH_PERF=FILE, perf samples wsd during the plain 64-connection run through it
# (WSD_BENCH_PERF_CONNS=1: the one-connection run).
# WSD_BENCH_LIMITS=on puts the workspace under budgets (an org token budget and a workspace
# USD budget, both far above what a run spends) and rate limits, so every request is
# admitted through a reservation; WSD_BENCH_MODES="plain stream" runs only those answers;
# WSD_BENCH_DATABASE_URL=postgres://… runs wsd on that (empty) database instead of SQLite.
# WSD_BENCH_ROUTING=byok makes the workspace a BYOK one on the org's own MiniMax key with
# credential delivery `proxy` (the key stays in wsd; the proxy opens and sends it).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-10}
command -v wrk >/dev/null || { echo "bench-proxy: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

# Two builds: one build of both would compile wsd with the features wsd-server's
# dev-dependencies turn on (the example needs them), a slower binary than the one users run.
cargo build --release --locked -p wsd --bin wsd --quiet
cargo build --release --locked -p wsd-server --example fake_provider --quiet
# WSD_BENCH_BIN: another build of wsd to measure with the same load (an A/B comparison).
WSD=${WSD_BENCH_BIN:-$PWD/target/release/wsd}
FAKE=$PWD/target/release/examples/fake_provider
DATA=$(mktemp -d /tmp/wsd-bench-proxy.XXXXXX)
chmod 711 "$DATA"  # workspaces run as uids of their own and must reach their homes inside
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
FAKE_PORT=$(free_port)
ADMIN=wsd_bench-admin-token-$(date +%s)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT

"$FAKE" 127.0.0.1:$FAKE_PORT > "$DATA/fake.out" &
FAKE_PID=$!
PIDS+=($FAKE_PID)
cat > "$DATA/wsd.toml" <<TOML
[platform]
proxy_base_url = "http://127.0.0.1:$PORT/llm"

[registry.overrides.minimax]
base_url_anthropic = "http://127.0.0.1:$FAKE_PORT/anthropic"

# The workspace leaves its usage token where this script can read it, then idles.
[backends.process.commands]
claude-code = ["sh", "-c", "printf %s \"\$WSD_LLM_USAGE_TOKEN\" > \"\$HOME/usage-token.tmp\" && mv \"\$HOME/usage-token.tmp\" \"\$HOME/usage-token\" && exec sleep 3600"]
TOML
if [ -n "${WSD_BENCH_DATABASE_URL:-}" ]; then
    export WSD_DATABASE_URL=$WSD_BENCH_DATABASE_URL
    WSD_MASTER_KEY=$("$WSD" keys generate)
    export WSD_MASTER_KEY
fi
WSD_DATA_DIR=$DATA/wsd WSD_ADMIN_TOKEN=$ADMIN WSD_CONFIG=$DATA/wsd.toml "$WSD" serve --listen 127.0.0.1:$PORT --log-format json > "$DATA/stdout" 2> "$DATA/log" &
WSD_PID=$!
PIDS+=($WSD_PID)
for _ in $(seq 100); do grep -q "wsd listening" "$DATA/stdout" 2>/dev/null && grep -q listening "$DATA/fake.out" 2>/dev/null && break; sleep 0.1; done

export WSD_URL=http://127.0.0.1:$PORT WSD_TOKEN=$ADMIN
printf 'bench-platform-minimax-key' | "$WSD" secret set --platform MINIMAX_API_KEY >/dev/null
ORG=$("$WSD" org create bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
PROXY_MODEL=minimax/MiniMax-M2.7
if [ "${WSD_BENCH_ROUTING:-platform}" = byok ]; then
    printf 'bench-org-minimax-key' | "$WSD" secret set --org "$ORG" MINIMAX_API_KEY >/dev/null
    "$WSD" org delivery "$ORG" proxy >/dev/null
    PROXY_MODEL=MiniMax-M2.7
    echo "bench-proxy: a BYOK workspace, its org's key delivered through the proxy"
fi
WS=$("$WSD" ws create --org "$ORG" --name bench --runtime claude-code --model "$PROXY_MODEL" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$WSD" ws provision --org "$ORG" "$WS" >/dev/null
TOKEN_FILE=""
for _ in $(seq 100); do
    TOKEN_FILE=$(find "$DATA/wsd/workspaces" -name usage-token 2>/dev/null | head -1)
    [ -n "$TOKEN_FILE" ] && break
    sleep 0.1
done
[ -n "$TOKEN_FILE" ] || { echo "bench-proxy: the workspace never wrote its usage token" >&2; exit 1; }
USAGE_TOKEN=$(cat "$TOKEN_FILE")
if [ "${WSD_BENCH_LIMITS:-off}" = on ]; then
    "$WSD" budget set --org "$ORG" --period month --tokens 1000000000000 >/dev/null
    "$WSD" budget set --org "$ORG" --workspace "$WS" --period day --usd 1000000 >/dev/null
    "$WSD" rate-limit set --org "$ORG" --requests-per-minute 1000000000 --tokens-per-minute 1000000000000 >/dev/null
    echo "bench-proxy: budgets and rate limits on"
fi

# One wrk script per (target, answer). `large` requests carry a 64 KiB conversation, as an
# agent's requests do after a few turns.
CONVERSATION=$(python3 -c 'import json; print(json.dumps([{"role": "user" if i % 2 == 0 else "assistant", "content": "Refactor the parser module; keep the tests green. " * 16} for i in range(80)])[:65536].rsplit("},", 1)[0] + "}]")')
SHORT='[{"role":"user","content":"Say hello."}]'
script() {  # NAME MODEL STREAM HEADER [MESSAGES] [EXTRA FIELDS]
    cat > "$DATA/$1.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"$2","max_tokens":64,"stream":$3${6:-},"messages":${5:-$SHORT}}'
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "$4"
LUA
}
script direct-plain MiniMax-M2.7 false bench-platform-minimax-key
script direct-stream MiniMax-M2.7 true bench-platform-minimax-key
script proxy-plain "$PROXY_MODEL" false "$USAGE_TOKEN"
script proxy-stream "$PROXY_MODEL" true "$USAGE_TOKEN"
script direct-split MiniMax-M2.7 true bench-platform-minimax-key "$SHORT" ',"split":true'
script proxy-split "$PROXY_MODEL" true "$USAGE_TOKEN" "$SHORT" ',"split":true'
script direct-large MiniMax-M2.7 false bench-platform-minimax-key "$CONVERSATION"
script proxy-large "$PROXY_MODEL" false "$USAGE_TOKEN" "$CONVERSATION"
DIRECT_URL=http://127.0.0.1:$FAKE_PORT/anthropic/v1/messages
PROXY_URL=http://127.0.0.1:$PORT/llm/anthropic/v1/messages

# A first proxied call must succeed, or nothing below means anything.
STATUS=$(curl -s -o "$DATA/first" -w '%{http_code}' -H "x-api-key: $USAGE_TOKEN" -H 'content-type: application/json' \
    -d "{\"model\":\"$PROXY_MODEL\",\"max_tokens\":8,\"messages\":[]}" "$PROXY_URL")
[ "$STATUS" = 200 ] || { echo "bench-proxy: the proxy answered $STATUS: $(cat "$DATA/first")" >&2; exit 1; }
for name in direct-plain proxy-plain direct-split proxy-split direct-large proxy-large; do  # each script's body is valid JSON
    python3 -c 'import json,re,sys; json.loads(re.search(r"wrk.body = \x27(.*)\x27", open(sys.argv[1]).read()).group(1))' "$DATA/$name.lua" \
        || { echo "bench-proxy: $name.lua sends invalid JSON" >&2; exit 1; }
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)
SUMMARY=$DATA/summary
run() {  # NAME URL CONNECTIONS
    local threads=$(( $3 < 2 ? 1 : 2 ))
    local before after out pid=$WSD_PID
    # A direct run measures the provider's CPU: one HTTP exchange per request on the same
    # machine, the yardstick for wsd's two (it moves with the machine's speed as wsd's does).
    [[ $1 == direct-* ]] && pid=$FAKE_PID
    before=$(cpu "$pid")
    if [ -n "${WSD_BENCH_PERF:-}" ] && [ "$1" = proxy-plain ] && [ "$3" = "${WSD_BENCH_PERF_CONNS:-64}" ]; then  # optional: sample wsd with perf
        perf record -e cpu-clock -F 499 -g -p "$WSD_PID" -o "$WSD_BENCH_PERF" -- sleep "$SECONDS_TO_RUN" >/dev/null 2>&1 &
    fi
    out=$(wrk -t$threads -c$3 -d"${SECONDS_TO_RUN}s" --latency -s "$DATA/$1.lua" "$2")
    after=$(cpu "$pid")
    echo "== $1, $3 connection(s)"
    echo "$out" | grep -E "requests in|Requests/sec|Non-2xx| 50%| 99%|Socket errors" | sed 's/^/   /'
    python3 - "$1" "$3" "$before" "$after" "$TICKS" "$out" >> "$SUMMARY" <<'PY'
import re, sys
name, conns, before, after, ticks, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    v = float(m.group(1)); return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]
requests = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
cpu_us = (after - before) / ticks * 1e6 / max(requests, 1)
print(f"{name} {conns} {rps:.0f} {ms('50%'):.3f} {ms('99%'):.3f} {cpu_us:.1f} {'non2xx' if 'Non-2xx' in out or 'Socket errors' in out else 'ok'} {requests}")
PY
}
MODES=${WSD_BENCH_MODES:-plain stream split large}
for mode in $MODES; do
    for conns in 1 64; do
        run direct-$mode "$DIRECT_URL" $conns
        run proxy-$mode "$PROXY_URL" $conns
    done
done

echo
python3 - "$SUMMARY" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, conns, rps, p50, p99, cpu, ok, _ = line.split()
    rows[(name, int(conns))] = (float(rps), float(p50), float(p99), float(cpu), ok)
print(f"{'answer':<8}{'conns':>6}{'direct rps':>12}{'proxied rps':>13}{'kept':>7}{'direct p50':>12}{'proxied p50':>13}{'added p50':>11}{'proxied p99':>13}{'wsd CPU/req':>13}{'provider CPU/req':>18}{'ratio':>7}")
for mode in ("plain", "stream", "split", "large"):
    for conns in (1, 64):
        if (f"direct-{mode}", conns) not in rows:
            continue
        d, p = rows[(f"direct-{mode}", conns)], rows[(f"proxy-{mode}", conns)]
        flag = "" if d[4] == p[4] == "ok" else "  (errors!)"
        print(f"{mode:<8}{conns:>6}{d[0]:>12.0f}{p[0]:>13.0f}{p[0] / d[0]:>7.0%}{d[1]:>10.3f}ms{p[1]:>11.3f}ms{p[1] - d[1]:>9.3f}ms{p[2]:>11.3f}ms{p[3]:>11.1f}µs{d[3]:>16.1f}µs{p[3] / max(d[3], 0.1):>7.2f}{flag}")
PY
sleep 0.5  # the ledger's last batch
ROWS=$(curl -sf -H "Authorization: Bearer $ADMIN" "$WSD_URL/v1/orgs/$ORG/usage" | python3 -c 'import json,sys; print(sum(r["requests"] for r in json.load(sys.stdin)["usage"]))')
if [ "${WSD_BENCH_LIMITS:-off}" = on ]; then
    "$WSD" budget show --org "$ORG"
fi
python3 - "$SUMMARY" "$ROWS" <<'PY'
import sys
completed = sum(int(line.split()[7]) for line in open(sys.argv[1]) if line.startswith("proxy-")) + 1
print(f"ledger rows: {sys.argv[2]} for {completed} proxied requests wrk saw complete (requests still in flight when a run ends are metered too)")
PY
