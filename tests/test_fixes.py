"""tracking.fixes: every reject reason, resume after reconnect, clamping, live flag, jump recovery."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from doorstep.params import ParamsError, from_mapping
from geo.coords import EARTH_RADIUS_M
from tracking.fixes import (
    MAX_SEQ,
    REASONS,
    Bounds,
    Fix,
    FixParams,
    Reason,
    Track,
    Verdict,
    check,
    check_batch,
)

P = FixParams()
NOW = 1_700_000_000_000
BASE = (22.5431, 114.0579)  # Futian, Shenzhen
_M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180


def north(metres: float, origin: tuple[float, float] = BASE) -> tuple[float, float]:
    """The point ``metres`` due north of ``origin`` (haversine distance is exactly that)."""
    return origin[0] + metres / _M_PER_DEG_LAT, origin[1]


def fix(
    seq: int,
    ts_ms: int,
    at: tuple[float, float] = BASE,
    accuracy_m: float = 10.0,
    speed_mps: float | None = None,
    heading_deg: float | None = None,
) -> Fix:
    """A fix at point ``at``."""
    return Fix(seq, ts_ms, at[0], at[1], accuracy_m, speed_mps, heading_deg)


# The track most cases start from: fix 1 accepted at BASE, 10 s before NOW.
ANCHORED = Track(last_seq=1, lat=BASE[0], lng=BASE[1], ts_ms=NOW - 10_000)
# Shenzhen's box widened by the default margin, as the socket passes it.
SHENZHEN: Bounds = (22.4 - 0.5, 113.7 - 0.5, 22.9 + 0.5, 114.7 + 0.5)
# How far a seq may run ahead of ANCHORED's for a fix at NOW (10 s after it).
JUMP_ALLOWED = P.max_seq_jump + 10 * int(P.max_seq_per_s)


@dataclass(frozen=True)
class Case:
    """A fix judged against a track; ``reason`` None means accepted."""

    fix: Fix
    reason: Reason | None
    track: Track = field(default=ANCHORED)
    bounds: Bounds | None = None


CASES = {
    "ordinary move": Case(fix(2, NOW, north(100)), None),
    "first fix on an empty track": Case(fix(1, NOW, north(5000)), None, Track()),
    "seq equal to last_seq": Case(fix(1, NOW, north(100)), "duplicate"),
    "seq below last_seq": Case(fix(0, NOW, north(100)), "duplicate"),
    "duplicate wins over out_of_range": Case(fix(1, NOW, (95.0, 0.0)), "duplicate"),
    "lat at the geo index's limit": Case(fix(1, NOW, (85.05112878, 180.0)), None, Track()),
    "lat -limit, lng -180 on an empty track": Case(
        fix(1, NOW, (-85.05112878, -180.0)), None, Track()
    ),
    "lat beyond the geo index's limit": Case(fix(2, NOW, (85.0511288, 0.0)), "out_of_range"),
    "lat 90": Case(fix(2, NOW, (90.0, 0.0)), "out_of_range"),
    "lng below -180": Case(fix(2, NOW, (0.0, -180.000001)), "out_of_range"),
    "lat NaN": Case(fix(2, NOW, (math.nan, BASE[1])), "out_of_range"),
    "lng infinite": Case(fix(2, NOW, (BASE[0], math.inf)), "out_of_range"),
    "accuracy negative": Case(fix(2, NOW, accuracy_m=-0.1), "out_of_range"),
    "accuracy NaN": Case(fix(2, NOW, accuracy_m=math.nan), "out_of_range"),
    "accuracy infinite": Case(fix(2, NOW, accuracy_m=math.inf), "out_of_range"),
    "speed negative": Case(fix(2, NOW, speed_mps=-0.5), "out_of_range"),
    "speed NaN": Case(fix(2, NOW, speed_mps=math.nan), "out_of_range"),
    "heading 360": Case(fix(2, NOW, heading_deg=360.0), "out_of_range"),
    "heading negative": Case(fix(2, NOW, heading_deg=-1.0), "out_of_range"),
    "heading NaN": Case(fix(2, NOW, heading_deg=math.nan), "out_of_range"),
    "speed 0 and heading 0 accepted": Case(fix(2, NOW, speed_mps=0.0, heading_deg=0.0), None),
    "ts exactly now + max_future": Case(fix(2, NOW + 30_000, north(100)), None),
    "ts now + max_future + 1 ms": Case(fix(2, NOW + 30_001, north(100)), "future"),
    "ts exactly now - max_age": Case(fix(1, NOW - P.max_age_ms), None, Track()),
    "ts now - max_age - 1 ms": Case(fix(1, NOW - P.max_age_ms - 1), "too_old", Track()),
    "future wins over low_accuracy": Case(fix(2, NOW + 60_000, accuracy_m=500.0), "future"),
    "accuracy exactly max": Case(fix(2, NOW, north(100), accuracy_m=100.0), None),
    "accuracy just over max": Case(fix(2, NOW, north(100), accuracy_m=100.01), "low_accuracy"),
    "low_accuracy wins over impossible_speed": Case(
        fix(2, NOW, north(5000), accuracy_m=150.0), "low_accuracy"
    ),
    "ts 1 ms before the last accepted": Case(fix(2, NOW - 10_001, north(10)), "out_of_order"),
    "equal ts, 50 m away (judged over 1 s)": Case(fix(2, NOW - 10_000, north(50)), None),
    "equal ts, 60 m away (judged over 1 s)": Case(
        fix(2, NOW - 10_000, north(60)), "impossible_speed"
    ),
    "549 m in 10 s, just under 55 m/s": Case(fix(2, NOW, north(549)), None),
    "551 m in 10 s, just over 55 m/s": Case(fix(2, NOW, north(551)), "impossible_speed"),
    "seq exactly 2^42 on an empty track": Case(fix(MAX_SEQ, NOW), None, Track()),
    "seq 2^42 + 1": Case(fix(MAX_SEQ + 1, NOW), "seq_too_large", Track()),
    "seq 2^53 (the wire's limit)": Case(fix(2**53, NOW, north(5000)), "seq_too_large"),
    "seq ahead by exactly the allowed jump": Case(fix(1 + JUMP_ALLOWED, NOW, north(100)), None),
    "seq ahead by one more": Case(fix(2 + JUMP_ALLOWED, NOW, north(100)), "seq_jump"),
    "a far seq on a resumed track (seq and time, no position)": Case(
        fix(2 + JUMP_ALLOWED, NOW), "seq_jump", Track(last_seq=1, ts_ms=NOW - 10_000)
    ),
    "a fix in the city": Case(fix(2, NOW, north(100)), None, bounds=SHENZHEN),
    "a fix within the margin": Case(fix(1, NOW, (23.35, 115.15)), None, Track(), SHENZHEN),
    "85.05 N 179.99 E against Shenzhen": Case(
        fix(1, NOW, (85.05, 179.99)), "outside_city", Track(), SHENZHEN
    ),
    "just past the margin": Case(fix(2, NOW, (21.89, 114.0)), "outside_city", bounds=SHENZHEN),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_check_table(case: Case) -> None:
    """Each fix gets the expected verdict; a reject moves neither last_seq nor the position."""
    track, verdict = check(case.track, case.fix, now_ms=NOW, params=P, bounds=case.bounds)
    assert (verdict.seq, verdict.accepted, verdict.reason) == (
        case.fix.seq,
        case.reason is None,
        case.reason,
    )
    if case.reason == "duplicate":
        assert track is case.track
    elif case.reason is not None:
        assert verdict.fix is case.fix
        assert not verdict.live
        assert track.last_seq == case.track.last_seq
        assert (track.lat, track.lng, track.ts_ms) == (
            case.track.lat,
            case.track.lng,
            case.track.ts_ms,
        )
    else:
        assert track.last_seq == case.fix.seq
        assert track.ts_ms == case.fix.ts_ms


def test_table_covers_every_reason() -> None:
    """The table above exercises every reason in REASONS."""
    assert {case.reason for case in CASES.values()} - {None} == set(REASONS)


def test_resent_batch_after_reconnect_accepts_nothing_twice() -> None:
    """A batch resent after a reconnect: seqs already seen are duplicates, new ones go through."""
    first = [fix(seq, NOW - 60_000 + seq * 5_000, north(seq * 40.0)) for seq in range(1, 6)]
    track, verdicts = check_batch(Track(), first, now_ms=NOW, params=P)
    assert all(v.accepted for v in verdicts)
    resent = first[2:] + [fix(seq, NOW - 60_000 + seq * 5_000, north(seq * 40.0)) for seq in (6, 7)]
    track, verdicts = check_batch(track, resent, now_ms=NOW, params=P)
    assert [v.reason for v in verdicts] == ["duplicate"] * 3 + [None, None]
    assert track.last_seq == 7


def test_a_rejected_fix_does_not_move_the_sequence() -> None:
    """A rejected fix leaves last_seq: its seq is judged again when resent, not a duplicate."""
    track, verdict = check(ANCHORED, fix(2, NOW, accuracy_m=500.0), now_ms=NOW, params=P)
    assert verdict.reason == "low_accuracy"
    assert track is ANCHORED
    _, again = check(track, fix(2, NOW, accuracy_m=5.0), now_ms=NOW, params=P)
    assert again.accepted


def test_a_rejected_huge_seq_does_not_disable_the_worker() -> None:
    """A jump with a seq far ahead (impossible_speed, seq_jump, 2^53) leaves later fixes accepted."""
    frames = [
        fix(50_000, NOW, north(5000)),  # impossible_speed
        fix(2 + JUMP_ALLOWED, NOW, north(100)),  # seq_jump
        fix(2**53, NOW, north(100)),  # seq_too_large
        fix(2, NOW, north(150)),
    ]
    track, verdicts = check_batch(ANCHORED, frames, now_ms=NOW, params=P)
    assert [v.reason for v in verdicts] == ["impossible_speed", "seq_jump", "seq_too_large", None]
    assert track.last_seq == 2


def test_the_seq_may_run_ahead_with_the_time_recorded() -> None:
    """A seq counted in milliseconds of device time keeps within the jump rule, after any gap."""
    track = Track(last_seq=NOW - 20 * 3600 * 1000, lat=BASE[0], lng=BASE[1])
    track = track._replace(ts_ms=track.last_seq)
    _, verdict = check(track, fix(NOW, NOW, north(1000)), now_ms=NOW, params=P)
    assert verdict.accepted
    _, verdict = check(track, fix(NOW + P.max_seq_jump + 1, NOW, north(1000)), now_ms=NOW, params=P)
    assert verdict.reason == "seq_jump"


def test_clock_going_back_rejects_only_the_earlier_fixes() -> None:
    """Fixes stamped before the last accepted one are out_of_order; later ones are accepted."""
    fixes = [
        fix(2, NOW - 5_000, north(50)),
        fix(3, NOW - 8_000, north(80)),
        fix(4, NOW - 6_000, north(90)),
        fix(5, NOW, north(150)),
    ]
    track, verdicts = check_batch(ANCHORED, fixes, now_ms=NOW, params=P)
    assert [v.reason for v in verdicts] == [None, "out_of_order", "out_of_order", None]
    assert (track.lat, track.lng, track.ts_ms) == (*north(150), NOW)


def test_stationary_jitter_collapses_to_one_point() -> None:
    """A parked phone's star of jitter is clamped: stored positions stay put, ts moves on."""
    jitter = [(3.0, 0.0), (-4.0, 2.0), (0.0, -6.0), (5.0, 5.0), (-2.0, -3.0)]
    fixes = [
        fix(2 + i, NOW - 5_000 + i * 1_000, north(dn, (BASE[0], BASE[1] + de / 1e5)))
        for i, (dn, de) in enumerate(jitter)
    ]
    track, verdicts = check_batch(ANCHORED, fixes, now_ms=NOW, params=P)
    assert all(v.accepted and v.clamped for v in verdicts)
    assert {(v.fix.lat, v.fix.lng) for v in verdicts} == {BASE}
    assert [v.fix.ts_ms for v in verdicts] == [f.ts_ms for f in fixes]
    assert [v.fix.seq for v in verdicts] == [f.seq for f in fixes]
    assert (track.lat, track.lng, track.ts_ms, track.last_seq) == (*BASE, NOW - 1_000, 6)


@pytest.mark.parametrize(
    ("distance_m", "accuracy_m", "speed_mps", "clamped"),
    [
        (5.0, 10.0, None, True),  # no speed reported: judged by distance alone
        (5.0, 10.0, 0.69, True),  # just under stationary_speed_mps
        (5.0, 10.0, 0.7, False),  # moving slowly, but moving: keep the position
        (5.0, 10.0, 8.0, False),  # driving away at speed, even if still close
        (11.9, 10.0, None, True),  # inside jitter_m
        (12.01, 10.0, None, False),  # just past jitter_m: a real move
        (20.0, 50.0, None, True),  # inside half the accuracy circle (25 m)
        (26.0, 50.0, None, False),  # outside it
    ],
)
def test_clamp_rule(
    distance_m: float, accuracy_m: float, speed_mps: float | None, clamped: bool
) -> None:
    """Clamped iff within max(jitter_m, accuracy/2) and not reported moving."""
    new = fix(2, NOW, north(distance_m), accuracy_m=accuracy_m, speed_mps=speed_mps)
    track, verdict = check(ANCHORED, new, now_ms=NOW, params=P)
    assert verdict.accepted
    assert verdict.clamped is clamped
    expected = BASE if clamped else north(distance_m)
    assert (verdict.fix.lat, verdict.fix.lng) == expected
    assert (track.lat, track.lng) == expected
    assert (verdict.fix.ts_ms, verdict.fix.accuracy_m, verdict.fix.speed_mps) == (
        NOW,
        accuracy_m,
        speed_mps,
    )


@pytest.mark.parametrize(
    ("age_ms", "live"), [(0, True), (P.live_age_ms, True), (P.live_age_ms + 1, False)]
)
def test_live_flag_by_age(age_ms: int, live: bool) -> None:
    """An accepted backlog fix older than live_age_ms is kept for the trail but is not live."""
    track, verdict = check(Track(), fix(1, NOW - age_ms), now_ms=NOW, params=P)
    assert verdict.accepted
    assert verdict.live is live
    assert track.ts_ms == NOW - age_ms


def test_backlog_fixes_still_advance_the_track() -> None:
    """A backlog uploaded after an hour offline is accepted, not live, and then live resumes."""
    start = NOW - 3_600_000
    backlog = [fix(seq, start + seq * 10_000, north(seq * 100.0)) for seq in range(1, 4)]
    fresh = fix(4, NOW, north(400))
    _, verdicts = check_batch(Track(), [*backlog, fresh], now_ms=NOW, params=P)
    assert [(v.accepted, v.live) for v in verdicts] == [(True, False)] * 3 + [(True, True)]


def test_one_wild_jump_is_rejected_and_the_track_continues() -> None:
    """A single GPS jump is rejected; the next fix near the real path is accepted normally."""
    fixes = [
        fix(2, NOW - 8_000, north(20)),
        fix(3, NOW - 6_000, north(3_000)),
        fix(4, NOW - 4_000, north(40)),
        fix(5, NOW - 2_000, north(60)),
    ]
    track, verdicts = check_batch(ANCHORED, fixes, now_ms=NOW, params=P)
    assert [v.reason for v in verdicts] == [None, "impossible_speed", None, None]
    assert (track.lat, track.lng, track.jump_count) == (*north(60), 0)


def test_relocation_after_the_subway_is_accepted_on_the_third_consistent_fix() -> None:
    """Three mutually consistent fixes 5 km away: two rejected, the third accepted, track reset."""
    far = north(5_000)
    fixes = [
        fix(2, NOW + 50_000, far),
        fix(3, NOW + 55_000, north(20, far)),
        fix(4, NOW + 60_000, north(40, far)),
        fix(5, NOW + 65_000, north(60, far)),
    ]
    track, verdicts = check_batch(ANCHORED, fixes, now_ms=NOW + 65_000, params=P)
    assert [v.reason for v in verdicts] == ["impossible_speed", "impossible_speed", None, None]
    assert not verdicts[2].clamped
    assert (verdicts[2].fix.lat, verdicts[2].fix.lng) == north(40, far)
    assert (track.lat, track.lng, track.ts_ms, track.jump_count) == (
        *north(60, far),
        NOW + 65_000,
        0,
    )


def test_inconsistent_jumps_never_recover() -> None:
    """Jumps scattered in different places never form a run, so none is accepted."""
    spots = [north(5_000), north(-5_000), north(9_000), north(-9_000), north(5_000)]
    fixes = [fix(2 + i, NOW + i * 2_000, at) for i, at in enumerate(spots)]
    track, verdicts = check_batch(ANCHORED, fixes, now_ms=NOW + 10_000, params=P)
    assert [v.reason for v in verdicts] == ["impossible_speed"] * 5
    assert (track.lat, track.lng, track.ts_ms) == (ANCHORED.lat, ANCHORED.lng, ANCHORED.ts_ms)


def test_other_rejections_do_not_break_a_jump_run() -> None:
    """A low-accuracy fix inside a run of consistent jumps neither counts nor resets it."""
    far = north(5_000)
    fixes = [
        fix(2, NOW + 2_000, far),
        fix(3, NOW + 4_000, north(10, far), accuracy_m=300.0),
        fix(4, NOW + 6_000, north(20, far)),
        fix(5, NOW + 8_000, north(30, far)),
    ]
    _, verdicts = check_batch(ANCHORED, fixes, now_ms=NOW + 8_000, params=P)
    assert [v.reason for v in verdicts] == [
        "impossible_speed",
        "low_accuracy",
        "impossible_speed",
        None,
    ]


@pytest.mark.parametrize(
    ("gap_ms", "reason"),
    [(P.speed_check_max_gap_ms, "impossible_speed"), (P.speed_check_max_gap_ms + 1, None)],
)
def test_speed_check_skipped_after_a_long_gap(gap_ms: int, reason: Reason | None) -> None:
    """40 km in 10 min is impossible; after a gap longer than speed_check_max_gap_ms it is not judged."""
    track = Track(last_seq=1, lat=BASE[0], lng=BASE[1], ts_ms=NOW - gap_ms)
    _, verdict = check(track, fix(2, NOW, north(40_000)), now_ms=NOW, params=P)
    assert verdict.reason == reason


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_accuracy_m", -1.0),
        ("max_accuracy_m", math.nan),
        ("max_future_ms", -1),
        ("max_age_ms", 0),
        ("live_age_ms", 25 * 3600 * 1000),
        ("max_speed_mps", 0.0),
        ("speed_check_max_gap_ms", 0),
        ("jitter_m", -0.1),
        ("stationary_speed_mps", math.inf),
        ("recover_after", 1),
        ("max_seq_jump", 0),
        ("max_seq_per_s", 0.0),
        ("city_margin_deg", -0.1),
    ],
)
def test_params_validation_names_the_field(name: str, value: Any) -> None:
    """A value out of range raises ValueError naming the field."""
    with pytest.raises(ValueError, match=name):
        FixParams(**{name: value})


def test_params_from_mapping() -> None:
    """A [fixes] table loads with ints for floats; defaults fill the rest."""
    params = from_mapping(FixParams, {"max_accuracy_m": 50, "recover_after": 4}, section="fixes")
    assert params == FixParams(max_accuracy_m=50.0, recover_after=4)


def test_params_from_mapping_unknown_key() -> None:
    """An unknown key is a ParamsError naming fixes.<key>."""
    with pytest.raises(ParamsError) as info:
        from_mapping(FixParams, {"max_acuracy_m": 50.0}, section="fixes")
    assert info.value.field == "fixes.max_acuracy_m"


def test_params_from_mapping_out_of_range() -> None:
    """A value out of range in the table is a ParamsError whose message names the key."""
    with pytest.raises(ParamsError, match=re.escape("max_accuracy_m must be > 0, got -5.0")):
        from_mapping(FixParams, {"max_accuracy_m": -5.0}, section="fixes")


def test_check_batch_equals_folding_check() -> None:
    """check_batch gives the same track and verdicts as calling check on each fix in turn."""
    far = north(5_000)
    fixes = [
        fix(1, NOW - 200_000, north(0)),
        fix(2, NOW - 190_000, north(3)),
        fix(2, NOW - 190_000, north(3)),
        fix(3, NOW - 195_000, north(30)),
        fix(4, NOW - 180_000, north(300)),
        fix(5, NOW - 179_000, far),
        fix(6, NOW - 178_000, north(10, far)),
        fix(7, NOW - 177_000, north(20, far), accuracy_m=120.0),
        fix(8, NOW - 176_000, north(30, far), speed_mps=2.0),
        fix(9, NOW + 31_000, far),
        fix(10, NOW, north(45, far), heading_deg=400.0),
        fix(11, NOW, north(50, far), speed_mps=0.2),
    ]
    track: Track = Track()
    folded: list[Verdict] = []
    for f in fixes:
        track, verdict = check(track, f, now_ms=NOW, params=P)
        folded.append(verdict)
    assert check_batch(Track(), fixes, now_ms=NOW, params=P) == (track, folded)
    assert {v.reason for v in folded} == {
        None,
        "duplicate",
        "out_of_order",
        "impossible_speed",
        "low_accuracy",
        "future",
        "out_of_range",
    }
