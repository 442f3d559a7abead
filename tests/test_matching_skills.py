"""Skill-aware retrieval (matching.skill_bits, matching.index): the k nearest workers
holding a job's skills, against brute force, with unknown skills kept (fail safe)."""

from __future__ import annotations

import numpy as np
import pytest

from matching.errors import MatchingError
from matching.index import CandidateIndex
from matching.live_index import LiveWorkers
from matching.skill_bits import ALL, BITS, SkillBits, SkillMasks, qualified

LAT, LNG = (22.52, 22.55), (114.00, 114.04)


def city(seed: int, n: int, shares: tuple[float, ...]) -> CandidateIndex:
    """n workers with shuffled ids over Futian; skill bit i held with probability shares[i]."""
    rng = np.random.default_rng(seed)
    masks = np.zeros(n, dtype=np.uint64)
    for bit, share in enumerate(shares):
        masks |= np.where(rng.random(n) < share, np.uint64(1 << bit), np.uint64(0))
    ids = rng.permutation(n) * 3 + 100
    return CandidateIndex(ids, rng.uniform(*LAT, n), rng.uniform(*LNG, n), masks)


def brute_force(
    index: CandidateIndex, lat: float, lng: float, k: int, radius_m: float, required: int
) -> list[int]:
    """Positions of the k nearest qualified workers within the radius, ties by worker id."""
    assert index.skills is not None
    xy = index.project(index.lat, index.lng)
    (q,) = index.project(np.array([lat]), np.array([lng]))
    metres = np.hypot(xy[:, 0] - q[0], xy[:, 1] - q[1])
    ok = qualified(index.skills, required) & (metres <= radius_m)
    order = np.lexsort((index.worker_ids, metres))
    return [int(p) for p in order if ok[p]][:k]


@pytest.mark.parametrize("seed", range(6))
def test_nearest_many_with_skills_matches_brute_force(seed: int) -> None:
    """Per job, the k nearest workers holding all its skills within the radius: common,
    uncommon (deeper queries) and rare (a tree of their own) skills, and none required."""
    index = city(seed, 3000, (0.8, 0.3, 0.04, 0.002))
    rng = np.random.default_rng(100 + seed)
    m = 60
    lats, lngs = rng.uniform(*LAT, m), rng.uniform(*LNG, m)
    required = rng.choice([0, 1, 2, 3, 4, 8, 16], m).astype(np.uint64)  # 16: nobody
    for k, radius_m in ((24, 5000.0), (5, 600.0), (40, 1500.0)):
        positions, distances = index.nearest_many(lats, lngs, k, radius_m, required)
        assert positions.shape == distances.shape == (m, k)
        for row in range(m):
            expected = brute_force(index, lats[row], lngs[row], k, radius_m, int(required[row]))
            found = positions[row] >= 0
            assert positions[row][found].tolist() == expected
            assert np.isinf(distances[row][~found]).all()
            assert (np.diff(distances[row][found]) >= 0).all()


def test_the_30th_nearest_qualified_worker_is_found_when_the_24_nearest_lack_the_skill() -> None:
    """The 29 nearest lack the skill, the 30th has it: it is the job's candidate."""
    n = 40
    lat = 22.53 + np.arange(1, n + 1, dtype=np.float64) * 0.0003  # ~33 m apart, northwards
    skills = np.full(n, np.uint64(0b01))
    skills[29] = np.uint64(0b11)
    index = CandidateIndex(np.arange(1, n + 1), lat, np.full(n, 114.02), skills)
    positions, _ = index.nearest_many(
        np.array([22.53]), np.array([114.02]), 24, 5000.0, np.array([0b10], dtype=np.uint64)
    )
    assert index.worker_ids[positions[0][positions[0] >= 0]].tolist() == [30]
    one, metres = index.nearest(22.53, 114.02, 24, 5000.0, required=0b10)
    assert index.worker_ids[one].tolist() == [30]
    assert 900 < metres[0] < 1100
    blind, _ = index.nearest(22.53, 114.02, 24, 5000.0)
    assert 29 not in blind.tolist()  # without skills, retrieval stopped at the 24th


@pytest.mark.parametrize("seed", range(3))
def test_when_every_worker_has_every_skill_the_lists_are_the_old_ones(seed: int) -> None:
    """Every worker qualifying (or skills unknown: ALL), the rows equal skill-blind ones."""
    plain = city(seed, 2000, ())
    rng = np.random.default_rng(seed)
    lats, lngs = rng.uniform(*LAT, 50), rng.uniform(*LNG, 50)
    required = rng.choice([0, 1, 5], 50).astype(np.uint64)
    old = plain.nearest_many(lats, lngs, 24, 800.0)
    for masks in (np.full(2000, np.uint64(0b111)), np.full(2000, ALL)):
        index = CandidateIndex(plain.worker_ids, plain.lat, plain.lng, masks)
        new = index.nearest_many(lats, lngs, 24, 800.0, required)
        assert np.array_equal(new[0], old[0])
        assert np.array_equal(new[1], old[1])


def test_fewer_workers_than_k_and_an_empty_index() -> None:
    """Fewer qualified workers than k pad with -1/inf; an empty index finds nothing."""
    index = CandidateIndex(
        np.array([1, 2, 3]),
        np.array([22.53, 22.531, 22.532]),
        np.array([114.02] * 3),
        np.array([1, 3, 2], dtype=np.uint64),
    )
    positions, distances = index.nearest_many(
        np.array([22.53]), np.array([114.02]), 5, 5000.0, np.array([2], dtype=np.uint64)
    )
    assert positions[0].tolist() == [1, 2, -1, -1, -1]
    assert np.isinf(distances[0][2:]).all()
    empty = CandidateIndex(
        np.empty(0, dtype=np.int64), np.empty(0), np.empty(0), np.empty(0, np.uint64)
    )
    got, _ = empty.nearest_many(np.array([22.53]), np.array([114.0]), 3, 100.0, np.array([1]))
    assert got.tolist() == [[-1, -1, -1]]


def test_a_worker_whose_skills_are_unknown_is_kept() -> None:
    """ALL (skills not read yet) qualifies for any required mask."""
    masks = SkillMasks()
    masks.update([10, 20], [["cleaning"], ["plumbing"]])
    held = masks.masks_for(np.array([10, 20, 30]))
    assert held[2] == ALL
    need = masks.required(["plumbing"])
    assert qualified(held, need).tolist() == [False, True, True]


def test_skill_masks_update_counts_changes_and_keeps_bits() -> None:
    """A changed or new worker counts; an unchanged one does not; a skill keeps its bit."""
    masks = SkillMasks()
    assert masks.update([3, 1], [["a"], ["b", "a"]]) == 2
    version = masks.version
    assert masks.update([1, 3], [["a", "b"], ["a"]]) == 0
    assert masks.version == version
    assert masks.update([3, 2, 3], [["b"], [], ["c"]]) == 2  # 3's last row wins
    assert masks.ids.tolist() == [1, 2, 3]
    assert masks.masks_for(np.array([3])).tolist() == [masks.required(["c"])]
    assert masks.required(["a"]) == 1
    assert masks.required(["b"]) == 2


def test_update_by_skill_set_groups_equals_update_per_worker() -> None:
    """Groups of (skills, worker ids) give the masks rows per worker give; the later wins."""
    by_rows, by_groups = SkillMasks(), SkillMasks()
    by_rows.update([5, 1, 9, 1], [["a"], ["b"], ["a", "b"], ["a"]])
    assert (
        by_groups.update_groups([(["a"], [5]), (["b"], [1]), (["a", "b"], [9]), (["a"], [1])]) == 3
    )
    assert by_groups.ids.tolist() == by_rows.ids.tolist() == [1, 5, 9]
    assert by_groups.masks.tolist() == by_rows.masks.tolist()
    assert by_groups.update_groups([]) == 0


def test_skills_past_the_64th_get_no_bit_and_filter_nothing() -> None:
    """A 65th skill code is left out of every mask: retrieval keeps workers without it."""
    bits = SkillBits()
    assert bits.mask(f"s{i}" for i in range(BITS)) == 2**64 - 1
    assert bits.mask(["s65"]) == 0
    assert len(bits) == BITS


def test_live_workers_index_carries_the_masks_of_the_rows_kept() -> None:
    """live.index(skills=...) takes a mask per row and keeps those of the rows indexed."""
    live = LiveWorkers()
    live.reset(np.array([7, 2, 5]), np.array([22.5, 22.6, 22.7]), np.array([114.0] * 3))
    masks = SkillMasks()
    masks.update([2, 5, 7], [["x"], ["y"], ["x", "y"]])
    index = live.index(exclude=np.array([5]), skills=masks.masks_for(live.ids))
    assert index.worker_ids.tolist() == [2, 7]
    assert index.skills is not None
    assert index.skills.tolist() == [1, 3]
    assert index.subset(np.array([1])).skills.tolist() == [3]  # type: ignore[union-attr]
    with pytest.raises(MatchingError, match="one mask per row"):
        live.index(skills=np.zeros(2, dtype=np.uint64))
