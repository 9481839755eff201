#!/usr/bin/env python3
"""Provisions N workspaces (default 1000) through a running wsd, then stops them.

Used by scripts/bench-provision.sh; prints the time each phase took."""
import http.client
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import os

url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1000
data = sys.argv[4] if len(sys.argv) > 4 else None
host = urlparse(url)


def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: HTTP {response.status} {data[:200]!r}")
    return json.loads(data) if data else None


def connection():
    return http.client.HTTPConnection(host.hostname, host.port, timeout=60)


conn = connection()
org = call(conn, "POST", "/v1/orgs", {"name": f"bench-{time.time()}"})["id"]
call(conn, "PUT", f"/v1/orgs/{org}/secrets/MINIMAX_API_KEY", {"value": "bench-key"})
ids = [call(conn, "POST", f"/v1/orgs/{org}/workspaces", {"name": f"w{i}", "runtime": "claude-code", "model": "MiniMax-M2.7"})["id"]
       for i in range(count)]


def run_all(action):
    def work(chunk):
        c = connection()
        for workspace in chunk:
            call(c, "POST", f"/v1/orgs/{org}/workspaces/{workspace}/{action}")
    chunks = [ids[i::8] for i in range(8)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, chunks))
    return time.monotonic() - started


def sandbox_memory():
    """Processes and proportional memory (PSS, KiB: shared pages split among their users) of
    every workspace process: the sandboxes binding a home under DATA, and what runs in them."""
    procs, rss = 0, 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/smaps_rollup") as f:
                status = f.read()
        except OSError:
            continue
        pss = next((int(l.split()[1]) for l in status.splitlines() if l.startswith("Pss:")), 0)
        if data and any(a.startswith(data.encode()) for a in argv) or argv[:2] == [b"sleep", b"3600"]:
            procs += 1
            rss += pss
        elif argv[0].endswith(b"conmon"):
            # A container engine's monitor, one per container.
            monitors[0] += 1
            monitors[1] += pss
    return procs, rss


provision = run_all("provision")
print(f"provisioned {count} workspaces in {provision:.2f} s ({count / provision:.0f}/s)")
monitors = [0, 0]
procs, rss = sandbox_memory()
print(f"idle workspaces: {procs} processes, {rss / 1024:.0f} MiB in all (PSS; {rss / count:.0f} KiB per workspace)")
if monitors[0]:
    print(f"container monitors (conmon): {monitors[0]}, {monitors[1] / 1024:.0f} MiB in all (PSS; {monitors[1] / count:.0f} KiB per workspace)")
stop = run_all("stop")
print(f"stopped {count} workspaces in {stop:.2f} s ({count / stop:.0f}/s)")
