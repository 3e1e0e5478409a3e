#!/usr/bin/env python3
"""`just bench-live`: what watching and steering a run costs (issue 12). Writes
bench/RESULTS-live.md.

1. Dashboard cost at 1000 agents: `wfhost watch` runs in a real terminal (tmux, 160x48) on a
   detached run of 1000 mock agents, concurrency 16. Its CPU (utime + stime from /proc) is
   read over a window while the run is paused (idle: nothing changes) and while it runs with
   ~16 agents finishing per second (each agent takes 1 s).
2. Control latency: on a second run, `pause` / `continue` are sent N times on the control
   socket; the latency is from sending the command to seeing its `control` event on a
   subscribed connection (the effect as every view sees it). p50 / p99.
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
WINDOW = float(os.environ.get("WINDOW", "10"))
COMMANDS = int(os.environ.get("COMMANDS", "400"))
TMP = tempfile.mkdtemp()
ENV = dict(os.environ, WFHOST_CACHE_DIR=f"{TMP}/cache", WFHOST_RUNS_DIR=f"{TMP}/runs", TERM="xterm-256color")
ENV.pop("CI", None)
TICK = os.sysconf("SC_CLK_TCK")


def script(name, n, delay_ms):
    path = f"{TMP}/{name}.js"
    with open(path, "w") as f:
        f.write(
            f'export const meta = {{ name: "{name}", description: "benchmark", phases: [{{ title: "Fan out" }}] }};\n'
            f'phase("Fan out");\n'
            f"return (await parallel(Array.from({{ length: {n} }}, (_, i) => () => agent(`agent ${{i}} [delay={delay_ms}]`)))).length;\n"
        )
    return path


def detach(path, *extra):
    out = subprocess.run(
        [WFHOST, "run", path, "--backend", "mock", "--yes", "--detach", *extra],
        env=ENV, capture_output=True, text=True, cwd=TMP,
    )
    if out.returncode != 0:
        sys.exit(f"detach failed: {out.stderr}")
    return out.stdout.strip()


def steer(*args):
    subprocess.run([WFHOST, *args], env=ENV, capture_output=True, cwd=TMP, check=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def watch_pid(run_id):
    for _ in range(200):
        out = subprocess.run(["pgrep", "-f", f"wfhost watch {run_id}"], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        pids = [p for p in pids if os.path.realpath(f"/proc/{p}/exe") == os.path.realpath(WFHOST)]
        if pids:
            return pids[0]
        time.sleep(0.05)
    sys.exit("the dashboard did not start")


def dashboard_cost():
    run_id = detach(script("watched", 1000, 1000), "--concurrency", "16")
    steer("pause", run_id)
    session = f"wfhost-bench-{os.getpid()}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "48",
         f"cd {TMP} && env WFHOST_RUNS_DIR={TMP}/runs {WFHOST} watch {run_id}"],
        env=ENV, check=True,
    )
    try:
        pid = watch_pid(run_id)
        time.sleep(2)  # the history is drawn
        idle_start = cpu_seconds(pid)
        time.sleep(WINDOW)
        idle = (cpu_seconds(pid) - idle_start) / WINDOW
        steer("continue", run_id)
        time.sleep(2)  # ramp up to 16 finishing per second
        busy_start = cpu_seconds(pid)
        time.sleep(WINDOW)
        busy = (cpu_seconds(pid) - busy_start) / WINDOW
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        header = next((l for l in screen.splitlines() if "agents (" in l), "")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])
        subprocess.run([WFHOST, "stop", run_id], env=ENV, capture_output=True, cwd=TMP)
    return idle, busy, header.strip()


def control_latency():
    run_id = detach(script("steered", 8, 600_000), "--concurrency", "8")
    sock = f"{TMP}/runs/{run_id}/control.sock"
    sub = socket.socket(socket.AF_UNIX)
    sub.connect(sock)
    sub.sendall(b'{"v":1,"cmd":"subscribe"}\n')
    stream = sub.makefile("r")
    stream.readline()  # the subscription's reply
    cmd = socket.socket(socket.AF_UNIX)
    cmd.connect(sock)
    replies = cmd.makefile("r")
    latencies = []
    for i in range(COMMANDS):
        action = "pause" if i % 2 == 0 else "continue"
        start = time.perf_counter()
        cmd.sendall(json.dumps({"v": 1, "cmd": action, "client": "bench"}).encode() + b"\n")
        while True:
            e = json.loads(stream.readline())
            if e.get("type") == "control" and e.get("action") == action:
                break
        latencies.append((time.perf_counter() - start) * 1000)
        replies.readline()
    subprocess.run([WFHOST, "stop", run_id], env=ENV, capture_output=True, cwd=TMP)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return p(0.5), p(0.99), max(latencies)


def main():
    if not shutil.which("tmux"):
        sys.exit("bench-live needs tmux (apt-get install tmux)")
    idle, busy, header = dashboard_cost()
    p50, p99, worst = control_latency()
    cpu = os.cpu_count()
    lines = [
        "# Live runs: what watching and steering cost",
        "",
        f"`just bench-live` on this machine ({cpu} cores), {time.strftime('%Y-%m-%d')}. Source: bench/live.py.",
        "",
        "## Dashboard (`wfhost watch`) at 1000 agents",
        "",
        "| state | dashboard CPU (share of one core) |",
        "|---|---|",
        f"| idle (run paused, 1000 agents listed) | {idle * 100:.1f} % |",
        f"| ~16 agents finishing per second | {busy * 100:.1f} % |",
        "",
        f"Window: {WINDOW:.0f} s each. Screen at the end: `{header}`",
        "",
        "## Control latency (command sent → its event seen by a subscriber)",
        "",
        f"| commands | p50 | p99 | max |",
        "|---|---|---|---|",
        f"| {COMMANDS} pause/continue | {p50:.2f} ms | {p99:.2f} ms | {worst:.2f} ms |",
        "",
    ]
    text = "\n".join(lines)
    with open(os.path.join(HERE, "RESULTS-live.md"), "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
