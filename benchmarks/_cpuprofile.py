"""Run a module under cProfile timed by the process's CPU clock, not the wall clock: on a
shared, loaded machine wall time would count the turns of other processes.

    python -m benchmarks._cpuprofile OUT.prof -m doorstep serve --port 8000

The stats are written when the module returns or exits (a server: when it stops).
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    """Profile ``-m module args…``; stats to the first argument."""
    out, flag, module, *rest = sys.argv[1:]
    if flag != "-m":
        raise SystemExit("usage: python -m benchmarks._cpuprofile OUT.prof -m module [args…]")
    sys.argv = [module, *rest]
    profile = cProfile.Profile(time.process_time)
    try:
        profile.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
