"""How a long-running server process uses CPython's cyclic garbage collector.

A server holding 10,000 sockets has ~2 million container objects that live as long as
their connections. CPython's full (generation-2) collection walks all of them: 0.6–2 s
with every request and frame waiting (benchmarks/README.md). The policy here keeps the
collected generations small instead:

- at start-up it collects everything once and freezes what is left; then every
  ``freeze_every_s`` it collects the young generations (cheap) and freezes the
  survivors (``gc.freeze()``: moved to the permanent generation, which the collector
  does not walk);
- between freezes, generation-0 collections wait for ``young_threshold`` net
  allocations instead of CPython's 700. Each socket keeps some 25 fresh container
  objects from one frame to its next (the suspended receive, the last fix, track and
  verdict); with 10,000 sockets the default threshold walked them in several young
  collections before the freeze, and the freeze's collection walks them once;
- every ``sweep_every_s`` it unfreezes, collects everything once (one full pause) and
  freezes again, reclaiming cycles among objects that died after being frozen — a
  closed connection whose objects reference each other. Frozen objects with no cycles
  are freed by reference counting as usual; only cyclic garbage waits for the sweep.

The pauses of every collection, by generation, and what each sweep reclaimed are kept
in :class:`GcStats` (on ``/metrics``), so the cost and the leak rate are measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("doorstep.gc")


@dataclass(frozen=True, slots=True)
class GcParams:
    """The collector policy (section ``[gc]``)."""

    freeze: bool = True
    freeze_every_s: float = 0.1
    sweep_every_s: float = 3600.0
    young_threshold: int = 20000  # allocations between young collections (0: CPython's 700)

    def __post_init__(self) -> None:
        if self.young_threshold < 0:
            raise ValueError("young_threshold must be >= 0 (0: keep CPython's)")
        if not self.freeze_every_s > 0:
            raise ValueError("freeze_every_s must be > 0")
        if self.sweep_every_s < 0:
            raise ValueError("sweep_every_s must be >= 0 (0: never)")


@dataclass
class GcStats:
    """Collections seen in this process, by generation, and what the policy did."""

    pauses: list[int] = field(default_factory=lambda: [0, 0, 0])
    pause_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    max_pause_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    freezes: int = 0
    sweeps: int = 0
    swept_objects: int = 0
    last_sweep_objects: int = 0
    last_sweep_s: float = 0.0
    frozen_after_sweep: int = 0  # counting frozen objects walks them all: only at sweeps


class GcPolicy:
    """Runs the freeze/sweep loop and times every collection (one per process)."""

    def __init__(self, params: GcParams) -> None:
        self.params = params
        self.stats = GcStats()
        self._started_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._thresholds: tuple[int, int, int] | None = None

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started_at = time.perf_counter()
            return
        gen = int(info.get("generation", 2))
        took = time.perf_counter() - self._started_at
        s = self.stats
        s.pauses[gen] += 1
        s.pause_s[gen] += took
        s.max_pause_s[gen] = max(s.max_pause_s[gen], took)

    def start(self) -> None:
        """Time collections from now on; with ``freeze``, freeze now and keep freezing."""
        gc.callbacks.append(self._callback)
        if self.params.young_threshold:
            self._thresholds = gc.get_threshold()
            gc.set_threshold(self.params.young_threshold, *self._thresholds[1:])
        if self.params.freeze:
            gc.collect()  # start-up's garbage, before its survivors are frozen for good
            self.freeze()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="gc-policy")

    async def stop(self) -> None:
        """Stop the loop and give everything back to the collector."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            gc.unfreeze()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def freeze(self) -> None:
        """Collect the young generations, then freeze the survivors.

        Only generations 0 and 1 are collected first (most garbage dies young; a full
        collection here would walk everything promoted since the last freeze, every
        time). What dies later in a cycle waits for the sweep; ``gc_churn.py`` measures
        how much that is.
        """
        gc.collect(1)
        gc.freeze()
        self.stats.freezes += 1

    def sweep(self) -> int:
        """One full collection over everything, frozen included; returns objects reclaimed."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        s = self.stats
        s.sweeps += 1
        s.swept_objects += found
        s.last_sweep_objects = found
        s.last_sweep_s = time.perf_counter() - started
        s.frozen_after_sweep = gc.get_freeze_count()
        log.info("gc sweep: %d objects reclaimed in %.3f s", found, s.last_sweep_s)
        return found

    async def _loop(self) -> None:
        p = self.params
        next_sweep = time.monotonic() + p.sweep_every_s
        while True:
            await asyncio.sleep(p.freeze_every_s)
            if p.sweep_every_s and time.monotonic() >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + p.sweep_every_s
            else:
                self.freeze()
