#!/usr/bin/env bash
# Provisioning benchmark: 1,000 workspaces of a long-running trivial command (`sleep`) on
# the process backend, each in its own sandbox (as root: each as its own uid), provisioned
# through the API, then stopped; reports wsd's peak memory and what one idle sandbox costs.
# Release build, embedded SQLite. Needs bubblewrap.
#
#   scripts/bench-provision.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-1000}
cargo build --release --locked -p wsd --quiet
WSD=$PWD/target/release/wsd
DATA=$(mktemp -d /tmp/wsd-bench-provision.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADMIN=wsd_bench-admin-token-$(date +%s)
cat > "$DATA/config.toml" <<TOML
[policy]
max_running_workspaces_per_org = 0
[backends.process.commands]
claude-code = ["sleep", "3600"]
TOML
WSD_DATA_DIR=$DATA WSD_ADMIN_TOKEN=$ADMIN WSD_CONFIG=$DATA/config.toml "$WSD" serve --listen 127.0.0.1:$PORT --log-format json > "$DATA/stdout" 2> "$DATA/log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; pkill -f "^sleep 3600$" 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do grep -q "wsd listening" "$DATA/stdout" 2>/dev/null && break; sleep 0.1; done
python3 scripts/bench-provision.py "http://127.0.0.1:$PORT" "$ADMIN" "$COUNT" "$DATA"
echo "wsd peak memory (VmHWM): $(awk '/VmHWM/ {print $2, $3}' /proc/$PID/status)"
