"""Run a module under cProfile timed by the process's CPU clock, not the wall clock: on a
shared, loaded machine wall time would count the turns of other processes.

    python -m benchmarks._cpuprofile OUT.prof -m doorstep serve --port 8000
    python -m benchmarks._cpuprofile --window OUT.prof -m doorstep serve --port 8000

The stats are written when the module returns or exits (a server: when it stops). With
``--window`` the profiler starts off: ``SIGUSR1`` turns it on, ``SIGUSR2`` off again, so
a benchmark can profile only its measured window (``benchmarks.money --profile-burst``).
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from types import FrameType


def main() -> None:
    """Profile ``-m module args…``; stats to the first argument."""
    args = sys.argv[1:]
    window = bool(args) and args[0] == "--window"
    if window:
        args = args[1:]
    out, flag, module, *rest = args
    if flag != "-m":
        raise SystemExit(
            "usage: python -m benchmarks._cpuprofile [--window] OUT.prof -m module [args…]"
        )
    sys.argv = [module, *rest]
    profile = cProfile.Profile(time.process_time)

    def on(_sig: int, _frame: FrameType | None) -> None:
        profile.enable()

    def off(_sig: int, _frame: FrameType | None) -> None:
        profile.disable()

    try:
        if window:
            signal.signal(signal.SIGUSR1, on)
            signal.signal(signal.SIGUSR2, off)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            profile.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
