#!/usr/bin/env bash
# Provisioning benchmark on the container backend: COUNT workspaces (default 100), each one
# container on a throwaway Podman service (its own socket and storage, as the tests start
# it), provisioned through the API and then stopped (SIGTERM, which the command answers);
# reports the times, wsd's and the engine's peak memory, and what idle containers cost.
# Release build, embedded SQLite. Needs podman, runc and busybox-static.
#
#   scripts/bench-containers.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100}
cargo build --release --locked -p wsd --quiet
WSD=$PWD/target/release/wsd
DATA=$(mktemp -d /tmp/wsd-bench-containers.XXXXXX)
ENGINE=$DATA/engine
mkdir -p "$ENGINE/rootfs/bin" "$ENGINE/rootfs/tmp"
cat > "$ENGINE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
tmp_dir = "$ENGINE/tmp"
CONF
podman() { CONTAINERS_CONF=$ENGINE/containers.conf command podman --root "$ENGINE/root" --runroot "$ENGINE/run" "$@"; }
CONTAINERS_CONF=$ENGINE/containers.conf command podman --root "$ENGINE/root" --runroot "$ENGINE/run" \
    system service --time=0 "unix://$ENGINE/podman.sock" > "$ENGINE/service.log" 2>&1 &
ENGINE_PID=$!
cp /bin/busybox "$ENGINE/rootfs/bin/" && for c in sh sleep; do ln -s busybox "$ENGINE/rootfs/bin/$c"; done
chmod 1777 "$ENGINE/rootfs/tmp"
tar -C "$ENGINE/rootfs" -cf "$ENGINE/rootfs.tar" . && podman import -q "$ENGINE/rootfs.tar" localhost/wsd-bench:1 > /dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADMIN=wsd_bench-admin-token-$(date +%s)-containers
cat > "$DATA/config.toml" <<TOML
[policy]
max_running_workspaces_per_org = 0
[backends]
default = "docker"
[backends.docker]
socket = "unix://$ENGINE/podman.sock"
network = "none"
[backends.docker.images]
claude-code = "localhost/wsd-bench:1"
[backends.docker.commands]
claude-code = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
TOML
WSD_DATA_DIR=$DATA WSD_ADMIN_TOKEN=$ADMIN WSD_CONFIG=$DATA/config.toml "$WSD" serve --listen 127.0.0.1:$PORT --log-format json > "$DATA/stdout" 2> "$DATA/log" &
PID=$!
cleanup() {
    kill $PID 2>/dev/null; wait $PID 2>/dev/null || true
    podman rm -af -t 0 > /dev/null 2>&1 || true
    kill $ENGINE_PID 2>/dev/null; wait $ENGINE_PID 2>/dev/null || true
    podman system reset -f > /dev/null 2>&1 || true
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$ENGINE/podman.sock" ] && break; sleep 0.1; done
for _ in $(seq 100); do grep -q "wsd listening" "$DATA/stdout" 2>/dev/null && break; sleep 0.1; done
python3 scripts/bench-provision.py "http://127.0.0.1:$PORT" "$ADMIN" "$COUNT" "$DATA"
echo "wsd peak memory (VmHWM): $(awk '/VmHWM/ {print $2, $3}' /proc/$PID/status)"
echo "engine (podman system service) peak memory (VmHWM): $(awk '/VmHWM/ {print $2, $3}' /proc/$ENGINE_PID/status)"
echo "containers left after stop: $(podman ps -q | wc -l)"
