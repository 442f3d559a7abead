"""The garbage-collector policy of a server process (doorstep/gcpolicy.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest

from api.app import Tuning
from doorstep.gcpolicy import GcParams, GcPolicy
from doorstep.params import ParamsError


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


async def test_freeze_keeps_frozen_cycles_until_a_sweep_reclaims_them() -> None:
    """A cycle frozen while alive outlives ordinary collections and is reclaimed by a sweep."""
    policy = GcPolicy(GcParams(freeze_every_s=60, sweep_every_s=0))
    policy.start()
    try:
        ref = _cycle()  # alive: one strong reference below
        keep = ref()
        policy.freeze()
        del keep  # now garbage, but frozen
        gc.collect()
        assert ref() is not None, "a frozen cycle is not collected by gc.collect()"
        found = policy.sweep()
        assert ref() is None
        assert found >= 2
        assert policy.stats.sweeps == 1
        assert policy.stats.swept_objects == found
        assert gc.get_freeze_count() > 0, "the sweep freezes the survivors again"
    finally:
        await policy.stop()
    assert gc.get_freeze_count() == 0


async def test_acyclic_frozen_objects_are_freed_by_reference_counting() -> None:
    """Freezing does not keep objects without cycles: they go when their last reference goes."""
    policy = GcPolicy(GcParams(freeze_every_s=60, sweep_every_s=0))
    policy.start()
    try:
        node = _Node()
        ref = weakref.ref(node)
        policy.freeze()
        del node
        assert ref() is None
    finally:
        await policy.stop()


async def test_every_collection_is_timed_by_generation() -> None:
    """Collections seen after start are counted and timed per generation."""
    policy = GcPolicy(GcParams(freeze=False))
    policy.start()
    try:
        gc.collect(0)
        gc.collect(2)
        s = policy.stats
        assert s.pauses[0] >= 1
        assert s.pauses[2] >= 1
        assert s.max_pause_s[2] > 0
        assert s.pause_s[2] >= s.max_pause_s[2]
    finally:
        await policy.stop()
    before = policy.stats.pauses[2]
    gc.collect()
    assert policy.stats.pauses[2] == before, "stopped: the callback is gone"


async def test_the_loop_freezes_periodically_and_sweeps_on_schedule() -> None:
    """With short intervals the loop freezes again and again and runs its sweep."""
    policy = GcPolicy(GcParams(freeze_every_s=0.02, sweep_every_s=0.1))
    policy.start()
    try:
        await asyncio.sleep(0.4)
        assert policy.stats.freezes >= 3
        assert policy.stats.sweeps >= 1
    finally:
        await policy.stop()
    assert gc.get_freeze_count() == 0


async def test_young_threshold_is_set_while_running_and_restored_after() -> None:
    """The generation-0 threshold is the policy's while it runs and CPython's again after."""
    before = gc.get_threshold()
    policy = GcPolicy(GcParams(freeze=False, young_threshold=12345))
    policy.start()
    try:
        assert gc.get_threshold() == (12345, *before[1:])
    finally:
        await policy.stop()
    assert gc.get_threshold() == before


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ("freeze_every_s = 0", "gc"),
        ("sweep_every_s = -1", "gc"),
        ("young_threshold = -1", "gc"),
        ("freeze = 1", "gc.freeze"),
        ("every = 2", "gc.every"),
    ],
)
def test_bad_gc_params_are_refused_at_start_up(tmp_path: Path, table: str, field: str) -> None:
    """A bad [gc] table fails start-up with the field named."""
    path = tmp_path / "params.toml"
    path.write_text(f"[gc]\n{table}\n")
    with pytest.raises(ParamsError) as e:
        Tuning.load(path)
    assert e.value.field == field
