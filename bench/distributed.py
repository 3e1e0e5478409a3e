#!/usr/bin/env python3
"""`just bench-distributed`: agents spread over workers on NATS JetStream (issue 14). Writes
bench/RESULTS-distributed.md.

400 agents of 200 ms each (the mock backend's `[delay=200]`) on 1, 2 and 4 `wfhost worker`s
(concurrency 8 each; the run's --concurrency is 8 x workers), against a real `nats-server -js`
on loopback with a temporary store. Throughput by worker count against linear scaling, and the
per-agent overhead of the nats executor against the local one (the same 400 agents at
concurrency 8 in-process). Each configuration runs REPEAT times; the median run time counts.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

WFHOST = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
REPEAT = int(os.environ.get("REPEAT", "3"))
N, DELAY, PER_WORKER = 400, 200, 8
TMP = tempfile.mkdtemp()
ENV = dict(os.environ, WFHOST_CACHE_DIR=f"{TMP}/cache", WFHOST_RUNS_DIR=f"{TMP}/runs")
ENV.pop("CI", None)

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


with open(f"{TMP}/fan.js", "w") as f:
    f.write(
        'export const meta = { name: "fan", description: "benchmark" };\n'
        f"return (await parallel(Array.from({{ length: {N} }}, (_, i) => () => agent(`job ${{i}} [delay={DELAY}]`)))).length;\n"
    )


def run(extra):
    out = subprocess.run(
        [WFHOST, "run", "fan.js", "--yes", "--json", "--backend", "mock", *extra],
        cwd=TMP, env=ENV, capture_output=True, text=True, check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["result"] == N, report
    return report["timings"]["run_ms"]


port = free_port()
url = f"nats://127.0.0.1:{port}"
server = subprocess.Popen([NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", f"{TMP}/store"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
        break
    except OSError:
        time.sleep(0.05)

# Warm the compile cache so that no configuration pays for it.
run(["--concurrency", "8"])
local = statistics.median(run(["--concurrency", str(PER_WORKER)]) for _ in range(REPEAT))

rows, by_workers = [], {}
try:
    for workers in (1, 2, 4):
        procs = [
            subprocess.Popen([WFHOST, "worker", "--nats", url, "--backend", "mock", "--concurrency", str(PER_WORKER),
                              "--name", f"w{i}", "--lease", "10s"],
                             cwd=TMP, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(workers)
        ]
        time.sleep(1.0)
        times = [run(["--concurrency", str(PER_WORKER * workers), "--executor", url]) for _ in range(REPEAT)]
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        by_workers[workers] = statistics.median(times)
        rows.append((workers, min(times), statistics.median(times), max(times)))
finally:
    server.terminate()
    server.wait()

ideal = N * DELAY / PER_WORKER  # ms for one worker
tput1 = N / (by_workers[1] / 1000)
lines = [
    "# Distributed executor (issue 14)",
    "",
    f"2 cores, {os.uname().sysname} {os.uname().release} {os.uname().machine}; `just bench-distributed` "
    f"(bench/distributed.py): {N} agents of {DELAY} ms (mock backend) on `wfhost worker`s of concurrency {PER_WORKER}, "
    f"a real `nats-server -js` on loopback; {REPEAT} runs each, run time min/median/max.",
    "",
    "| workers | run time (ms) | agents/s | ÷ linear (1 worker × N) | target |",
    "|---|---|---|---|---|",
]
for workers, lo, med, hi in rows:
    tput = N / (med / 1000)
    ratio = tput / (workers * tput1)
    lines.append(f"| {workers} | {lo:.0f} / {med:.0f} / {hi:.0f} | {tput:.1f} | {ratio:.2f} | ≥ 0.9 {'ok' if ratio >= 0.9 else 'MISSED'} |")
over = (by_workers[1] - local) / N
lines += [
    "",
    f"Local executor, the same {N} agents at concurrency {PER_WORKER}: {local:.0f} ms (ideal {ideal:.0f} ms).",
    f"Per-agent overhead of the nats executor (1 worker against local, same concurrency): "
    f"{over:.2f} ms of wall time per agent, {over * PER_WORKER:.1f} ms per call in each of the {PER_WORKER} slots "
    f"(publish, a worker's pull, lease, result put, the run host's watch).",
    "",
    "The machine has 2 cores shared by the server, the run host and every worker: with 4 workers, 5 processes",
    "share them, so the scaling figures are a floor for workers on machines of their own.",
]
text = "\n".join(lines) + "\n"
with open(os.path.join(HERE, "RESULTS-distributed.md"), "w") as f:
    f.write(text)
print(text)
shutil.rmtree(TMP, ignore_errors=True)
