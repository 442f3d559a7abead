"""The planning process (dispatch.plan_worker.new_pool) dies with the server that started
it: a server killed mid-solve leaves no solver holding a core."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import dies_with_parent

ROOT = Path(__file__).resolve().parent.parent

# A stand-in server: starts the planning process, gives it a long task, says both pids.
SERVER = """
import os, sys, time
from dispatch import plan_worker
pool = plan_worker.new_pool()
pool.submit(os.getpid).result()  # the worker is up
worker = [p.pid for p in pool._processes.values()][0]
pool.submit(time.sleep, 120)  # a solve that runs on
print(os.getpid(), worker, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_planning_process_dies_with_a_killed_server() -> None:
    """SIGKILL of the process holding the planning pool, mid-task: its worker is gone within seconds (before, it ran its task out)."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=dies_with_parent(),
    )
    worker: int | None = None
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        worker = int(line.split()[1])
        assert _alive(worker)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 15
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), f"planning process {worker} outlived its server"
    finally:
        server.kill()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)
