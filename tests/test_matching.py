"""matching: params, feasibility, scoring terms and the candidate index (pure, no stores)."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from doorstep.params import ParamsError, from_mapping, load_toml
from geo.coords import haversine_m
from matching.errors import MatchingError
from matching.feasibility import local_date, reason_kind, why_not, why_not_eta
from matching.index import CandidateIndex, decode_geohash
from matching.model import TERMS, Candidate, Job, Peers
from matching.params import MatchParams, params_digest
from matching.scoring import (
    affinity_term,
    bayes_rating,
    fairness_term,
    peers_of,
    priority_term,
    rating_term,
    schedule_term,
    score,
    team_term,
)

REPO = Path(__file__).resolve().parent.parent
PARAMS = MatchParams()
NOW = 1_750_000_000  # 2025-06-15 23:06:40 in UTC+8
HOUR = 3600
JOB = Job(
    order_id=1,
    lat=22.53,
    lng=114.02,
    created_s=NOW,
    earliest_start_s=NOW,
    latest_start_s=NOW + HOUR,
    duration_s=2 * HOUR,
    customer_id=900,
    required_skills=frozenset({"cleaning"}),
)
CAND = Candidate(
    worker_id=7,
    lat=22.531,
    lng=114.021,
    fix_age_s=10.0,
    skills=frozenset({"cleaning", "laundry"}),
    rating_sum=46.0,
    rating_count=10,
    available=((NOW - HOUR, NOW + 10 * HOUR),),
)
PEERS = Peers(jobs_today=2.0, earnings_today_minor=30_000.0)


def job(**changes: Any) -> Job:
    """The base job with some fields changed."""
    return replace(JOB, **changes)


def cand(**changes: Any) -> Candidate:
    """The base candidate with some fields changed."""
    return msgspec.structs.replace(CAND, **changes)


# --- params ---------------------------------------------------------------------------


def test_params_file_holds_the_defaults() -> None:
    """params/doorstep.toml's [matching] table equals the defaults in code."""
    table = load_toml(REPO / "params" / "doorstep.toml")["matching"]
    assert from_mapping(MatchParams, table, section="matching") == PARAMS
    assert set(table) == set(MatchParams.__dataclass_fields__)


def test_params_from_mapping_overrides() -> None:
    """A table overrides some keys, ints are accepted for floats, the rest keep defaults."""
    params = from_mapping(
        MatchParams, {"policy": "greedy", "weight_eta": 2, "k": 8}, section="matching"
    )
    assert (params.policy, params.weight_eta, params.k) == ("greedy", 2.0, 8)
    assert params.radius_m == PARAMS.radius_m
    assert params_digest(params) != params_digest(PARAMS)


@pytest.mark.parametrize(
    ("table", "field", "words"),
    [
        ({"weight_speed": 1.0}, "matching.weight_speed", "unknown key"),
        ({"k": 2.5}, "matching.k", "must be int"),
        ({"policy": "random"}, "matching", "policy must be one of"),
        ({"weight_team": -1.0}, "matching", "weight_team must be"),
        ({"fresh_fix_s": 0}, "matching", "fresh_fix_s must be"),
        ({"rating_prior_mean": 6.0}, "matching", "rating_prior_mean must be"),
    ],
)
def test_params_errors_name_the_key(table: dict[str, Any], field: str, words: str) -> None:
    """A wrong params table is an error naming the key and the rule."""
    with pytest.raises(ParamsError) as info:
        from_mapping(MatchParams, table, section="matching")
    assert info.value.field == field
    assert words in str(info.value)


# --- model validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: job(lat=91.0), "job.lat"),
        (lambda: job(latest_start_s=NOW - 1), "job.latest_start_s"),
        (lambda: job(duration_s=0), "job.duration_s"),
        (
            lambda: job(pinned_worker_id=7, excluded_worker_ids=frozenset({7})),
            "job.pinned_worker_id",
        ),
        (lambda: cand(lng=math.nan), "candidate.lng"),
        (lambda: cand(fix_age_s=-1.0), "candidate.fix_age_s"),
        (lambda: cand(rating_sum=60.0, rating_count=10), "candidate.rating_sum"),
        (lambda: cand(available=((NOW, NOW),)), "candidate.available[0]"),
    ],
)
def test_invalid_inputs_name_the_field(make: Any, field: str) -> None:
    """Constructors reject bad values with an error naming the field."""
    with pytest.raises(MatchingError) as info:
        make()
    assert info.value.field == field


def test_candidate_intervals_are_sorted_and_merged() -> None:
    """Overlapping and touching free intervals are joined on construction."""
    c = cand(available=((50, 60), (10, 20), (20, 30), (25, 40)))
    assert c.available == ((10, 40), (50, 60))


def test_relevant_to_keeps_only_what_the_job_needs() -> None:
    """A stored candidate keeps the job's skills and certificates and this customer only."""
    c = cand(
        certificates={"nanny": date(2030, 1, 1), "electrician": date(2030, 1, 1)},
        served_customer_ids=frozenset({900, 901, 902}),
    )
    trimmed = c.relevant_to(job(required_certificates=frozenset({"nanny"})))
    assert trimmed.skills == frozenset({"cleaning"})
    assert dict(trimmed.certificates) == {"nanny": date(2030, 1, 1)}
    assert trimmed.served_customer_ids == frozenset({900})


def test_the_batch_records_are_not_tracked_by_the_cycle_collector() -> None:
    """Candidates, breakdowns and considered records (a tick's ~23k objects) are gc=False
    Structs: the cycle collector does not track them, and they still compare and encode
    as before."""
    import gc

    from matching.model import Breakdown, Considered

    c = cand(certificates={"nanny": date(2030, 1, 1)})
    b = Breakdown((1.0,) * len(TERMS), (2.0,) * len(TERMS), 14.0)
    r = Considered(c, True, None, 60.0, b)
    assert not any(gc.is_tracked(x) for x in (c, b, r))
    assert msgspec.json.decode(msgspec.json.encode(r), type=Considered) == r


# --- feasibility -----------------------------------------------------------------------

LAST_DAY = local_date(JOB.latest_start_s + JOB.duration_s - 1, PARAMS.utc_offset_s)


@pytest.mark.parametrize(
    ("the_job", "the_cand", "expected"),
    [
        (JOB, CAND, None),
        (job(excluded_worker_ids=frozenset({7})), CAND, "excluded from this order"),
        (job(pinned_worker_id=8), CAND, "pinned to another worker: 8"),
        (job(pinned_worker_id=7), CAND, None),
        (JOB, cand(state="busy"), "not available: busy"),
        (JOB, cand(state="offline"), "not available: offline"),
        (JOB, cand(fix_age_s=61.0), "stale location fix: 61 s old, limit 60 s"),
        (JOB, cand(fix_age_s=60.0), None),
        (JOB, cand(fix_age_s=math.inf), "stale location fix: none known"),
        (
            job(required_skills=frozenset({"plumbing", "nanny", "cleaning"})),
            CAND,
            "missing skill: 'nanny', 'plumbing'",
        ),
        (
            job(required_certificates=frozenset({"electrician"})),
            CAND,
            "no verified certificate: 'electrician'",
        ),
        (
            job(required_certificates=frozenset({"electrician"})),
            cand(certificates={"electrician": date(2025, 6, 15)}),
            "certificate expired: 'electrician' valid to 2025-06-15, job may run on 2025-06-16",
        ),
        (
            job(required_certificates=frozenset({"electrician"})),
            cand(certificates={"electrician": LAST_DAY}),
            None,
        ),
        (
            JOB,
            cand(available=((NOW - HOUR, NOW + HOUR),)),
            "outside schedule: 2025-06-15 23:06–01:06",
        ),
        (JOB, cand(available=()), "outside schedule: 2025-06-15 23:06–01:06"),
        (JOB, cand(available=((NOW, NOW + HOUR), (NOW + HOUR, NOW + 2 * HOUR))), None),
    ],
)
def test_why_not(the_job: Job, the_cand: Candidate, expected: str | None) -> None:
    """Each state rule gives its reason, naming the skill, certificate or times at fault."""
    assert why_not(the_job, the_cand, NOW, PARAMS) == expected


@pytest.mark.parametrize(
    ("the_job", "the_cand", "eta", "expected"),
    [
        (JOB, CAND, 600.0, None),
        (JOB, CAND, 2700.0, None),
        (JOB, CAND, 2701.0, "too far: ETA 45.0 min, limit 45.0 min"),
        (JOB, CAND, math.nan, "no road ETA"),
        (JOB, CAND, math.inf, "no road ETA"),
        (
            job(latest_start_s=NOW + 300),
            CAND,
            600.0,
            "too late: could start 2025-06-15 23:16, latest 2025-06-15 23:11",
        ),
        (
            JOB,
            cand(available=((NOW, NOW + 2 * HOUR + 300),)),
            600.0,
            "outside schedule: 2025-06-15 23:16–01:16",
        ),
        (JOB, cand(available=((NOW, NOW + 2 * HOUR + 600),)), 600.0, None),
        (job(earliest_start_s=NOW + HOUR, latest_start_s=NOW + 2 * HOUR), CAND, 600.0, None),
    ],
)
def test_why_not_eta(the_job: Job, the_cand: Candidate, eta: float, expected: str | None) -> None:
    """With the road ETA known: too far, too late, or the schedule misses the real start."""
    assert why_not_eta(the_job, the_cand, eta, NOW, PARAMS) == expected


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("missing skill: 'nanny'", "missing skill"),
        ("excluded from this order", "excluded from this order"),
    ],
)
def test_reason_kind(reason: str, kind: str) -> None:
    """The kind of a reason is the text before its first colon."""
    assert reason_kind(reason) == kind


# --- scoring ---------------------------------------------------------------------------


def total(c: Candidate, j: Job = JOB, eta: float = 600.0, peers: Peers = PEERS) -> float:
    """The candidate's total cost for the job."""
    return score(j, c, eta, NOW, peers, PARAMS).total


def test_new_worker_gets_the_prior() -> None:
    """With no ratings the Bayesian rating is the prior mean: the term is exactly 0."""
    assert bayes_rating(0.0, 0, 4.6, 10.0) == 4.6
    assert rating_term(cand(rating_sum=0.0, rating_count=0), PARAMS) == 0.0


def test_few_perfect_ratings_do_not_beat_many_good_ones() -> None:
    """Five ratings of 5.0 do not rank above 500 ratings of 4.9 with the default prior."""
    newcomer = cand(rating_sum=25.0, rating_count=5)
    veteran = cand(rating_sum=4.9 * 500, rating_count=500)
    assert rating_term(newcomer, PARAMS) > rating_term(veteran, PARAMS)
    assert total(newcomer) > total(veteran)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (
            {"jobs_today": 0, "earnings_today_minor": 30_000},
            {"jobs_today": 5, "earnings_today_minor": 30_000},
        ),
        (
            {"jobs_today": 2, "earnings_today_minor": 10_000},
            {"jobs_today": 2, "earnings_today_minor": 90_000},
        ),
        (
            {"jobs_today": 2, "earnings_today_minor": 29_000},
            {"jobs_today": 2, "earnings_today_minor": 31_000},
        ),
    ],
)
def test_fairness_favours_workers_behind_their_peers(
    low: dict[str, int], high: dict[str, int]
) -> None:
    """Fewer jobs or earnings today than the median: a bonus; more: a penalty."""
    behind, ahead = cand(**low), cand(**high)
    fairness = TERMS.index("fairness")
    assert score(JOB, behind, 600.0, NOW, PEERS, PARAMS).raw[fairness] < 0
    assert score(JOB, ahead, 600.0, NOW, PEERS, PARAMS).raw[fairness] > 0
    assert total(behind) < total(ahead)


def test_fairness_at_the_median_is_neutral() -> None:
    """A worker exactly at the peers' medians gets no fairness term."""
    c = cand(jobs_today=2, earnings_today_minor=30_000)
    assert score(JOB, c, 600.0, NOW, PEERS, PARAMS).raw[TERMS.index("fairness")] == 0.0


def test_peers_are_medians() -> None:
    """peers_of takes the medians of jobs and earnings today."""
    cands = [cand(worker_id=i, jobs_today=i, earnings_today_minor=100 * i) for i in (1, 2, 9)]
    assert peers_of(cands) == Peers(jobs_today=2.0, earnings_today_minor=200.0)
    assert peers_of([]) == Peers()


@pytest.mark.parametrize(
    ("the_job", "with_bonus", "without"),
    [
        (job(preferred_team_id=3), cand(team_id=3), cand(team_id=4)),
        (job(preferred_team_id=3), cand(team_id=3), cand(team_id=None)),
        (
            JOB,
            cand(served_customer_ids=frozenset({900})),
            cand(served_customer_ids=frozenset({901})),
        ),
    ],
)
def test_team_and_affinity_are_bonuses(
    the_job: Job, with_bonus: Candidate, without: Candidate
) -> None:
    """The merchant's preferred team and a repeat customer lower the cost."""
    assert total(with_bonus, the_job) < total(without, the_job)


def test_no_team_preference_gives_no_bonus() -> None:
    """Without a preferred team, team membership does not matter."""
    assert total(cand(team_id=3)) == total(cand(team_id=None))


@pytest.mark.parametrize(
    ("end_after_job_s", "fragment"),
    [(0, 0.0), (30 * 60, 0.5), (59 * 60, 59 / 60), (60 * 60, 0.0), (5 * HOUR, 0.0)],
)
def test_schedule_fit_penalises_fragments(end_after_job_s: int, fragment: float) -> None:
    """Free time left after the job counts only when shorter than a useful gap."""
    eta = 600.0
    end = NOW + int(eta) + JOB.duration_s + end_after_job_s
    c = cand(available=((NOW - HOUR, end),))
    raw = score(JOB, c, eta, NOW, PEERS, PARAMS).raw[TERMS.index("schedule")]
    assert raw == pytest.approx(fragment)


def test_schedule_fit_counts_idle_time_before_a_booked_job() -> None:
    """Before a booked job, idle time after travel that is too short is a fragment."""
    booked = job(earliest_start_s=NOW + 2 * HOUR, latest_start_s=NOW + 3 * HOUR)
    start_free = NOW + 2 * HOUR - 600 - 1800  # 30 min idle after a 10 min trip
    c = cand(available=((start_free, NOW + 10 * HOUR),))
    raw = score(booked, c, 600.0, NOW, PEERS, PARAMS).raw[TERMS.index("schedule")]
    assert raw == pytest.approx(0.5)


@pytest.mark.parametrize(
    "c",
    [
        CAND,
        cand(jobs_today=7, earnings_today_minor=5_000, team_id=3),
        cand(rating_sum=0.0, rating_count=0, served_customer_ids=frozenset({900})),
        cand(available=((NOW - HOUR, NOW + 3 * HOUR - 600),)),
        cand(priority=True),
    ],
)
def test_score_agrees_with_the_term_functions(c: Candidate) -> None:
    """score's raw values are exactly what the separate term functions give."""
    j = job(preferred_team_id=3)
    expected = (
        600.0 / 60,
        rating_term(c, PARAMS),
        fairness_term(c, PEERS),
        schedule_term(j, c, 600.0, NOW, PARAMS),
        affinity_term(j, c),
        team_term(j, c),
        priority_term(c),
        0.0,  # rotation: set per job by matching.assess.rotate, never by one pair
    )
    assert score(j, c, 600.0, NOW, PEERS, PARAMS).raw == expected


def test_eta_term_is_minutes() -> None:
    """Farther costs more: the ETA term is minutes, weighted 1 point per minute by default."""
    near, far = (score(JOB, CAND, eta, NOW, PEERS, PARAMS) for eta in (300.0, 900.0))
    assert far.raw[0] == 15.0
    assert far.total - near.total == pytest.approx(10.0)


def test_breakdown_sums_weighted_terms() -> None:
    """total is the sum of weight × raw over the terms (rotation, weighted by its slack, is 0
    for one pair alone)."""
    b = score(job(preferred_team_id=3), cand(team_id=3), 420.0, NOW, PEERS, PARAMS)
    weights = [getattr(PARAMS, f"weight_{t}", 0.0) for t in TERMS]
    assert b.weighted == pytest.approx([w * r for w, r in zip(weights, b.raw, strict=True)])
    assert b.total == pytest.approx(sum(b.weighted))
    assert set(b.as_dict()) == set(TERMS)


# --- candidate index -------------------------------------------------------------------


def random_index(seed: int, n: int) -> CandidateIndex:
    """n workers with shuffled ids scattered over Futian."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n) * 3 + 100
    return CandidateIndex(ids, rng.uniform(22.52, 22.55, n), rng.uniform(114.00, 114.04, n))


@pytest.mark.parametrize("seed", range(5))
def test_nearest_matches_brute_force(seed: int) -> None:
    """nearest returns the k nearest within the radius, nearest first, like brute force."""
    index = random_index(seed, 300)
    rng = random.Random(seed)
    lat, lng = rng.uniform(22.52, 22.55), rng.uniform(114.00, 114.04)
    k, radius_m = rng.choice([1, 5, 20]), rng.choice([200.0, 800.0, 5000.0])
    exact = [haversine_m(lat, lng, a, b) for a, b in zip(index.lat, index.lng, strict=True)]
    expected = [i for i in sorted(range(300), key=exact.__getitem__) if exact[i] <= radius_m][:k]
    positions, distances = index.nearest(lat, lng, k, radius_m)
    assert positions.tolist() == expected
    assert distances == pytest.approx([exact[i] for i in expected], rel=5e-3)


def test_nearest_many_agrees_with_nearest() -> None:
    """The batched query pads with -1/inf and otherwise equals one query per point."""
    index = random_index(7, 500)
    lats, lngs = np.array([22.521, 22.54, 10.0]), np.array([114.001, 114.03, 10.0])
    positions, distances = index.nearest_many(lats, lngs, 8, 300.0)
    assert positions.shape == distances.shape == (3, 8)
    for row in range(3):
        one, d = index.nearest(float(lats[row]), float(lngs[row]), 8, 300.0)
        found = positions[row] >= 0
        assert positions[row][found].tolist() == one.tolist()
        assert distances[row][found].tolist() == d.tolist()
        assert np.isinf(distances[row][~found]).all()
    assert (positions[2] == -1).all()


def test_nearest_ties_go_to_the_lower_worker_id() -> None:
    """Workers at the same spot come back by worker id."""
    index = CandidateIndex(
        np.array([30, 10, 20, 5]),
        np.array([22.53, 22.53, 22.53, 22.54]),
        np.array([114.02, 114.02, 114.02, 114.02]),
    )
    positions, _ = index.nearest(22.5301, 114.02, 3, 1000.0)
    assert index.worker_ids[positions].tolist() == [10, 20, 30]


def test_nearest_many_ties_go_to_the_lower_worker_id_and_padding_comes_last() -> None:
    """In a batched query, workers at the same spot come back by worker id, and rows
    without ties or short of k (padded with -1/inf) are as one query per point gives."""
    index = CandidateIndex(
        np.array([30, 10, 20, 5, 7]),
        np.array([22.53, 22.53, 22.53, 22.54, 22.531]),
        np.array([114.02, 114.02, 114.02, 114.02, 114.02]),
    )
    lats, lngs = np.array([22.5301, 22.5411, 22.5311]), np.array([114.02, 114.02, 114.02])
    positions, distances = index.nearest_many(lats, lngs, 4, 150.0)
    assert index.worker_ids[positions[0][:3]].tolist() == [10, 20, 30]
    for row in range(3):
        one, d = index.nearest(float(lats[row]), float(lngs[row]), 4, 150.0)
        found = positions[row] >= 0
        assert positions[row][found].tolist() == one.tolist()
        assert distances[row][found].tolist() == d.tolist()
        assert (positions[row][~found] == -1).all()
        assert np.isinf(distances[row][~found]).all()


def test_empty_index_finds_nothing() -> None:
    """An index with no workers returns empty results."""
    index = CandidateIndex(np.array([], dtype=np.int64), np.array([]), np.array([]))
    positions, distances = index.nearest(22.53, 114.02, 5, 1000.0)
    assert len(index) == len(positions) == len(distances) == 0


@pytest.mark.parametrize(
    ("ids", "lat", "field"),
    [
        ([1, 1], [22.5, 22.6], "worker_ids"),
        ([1, 2], [22.5, 95.0], "lat"),
        ([1], [22.5, 22.6], "worker_ids"),
    ],
)
def test_index_rejects_bad_arrays(ids: list[int], lat: list[float], field: str) -> None:
    """Repeated workers, bad degrees and mismatched lengths are errors naming the field."""
    with pytest.raises(MatchingError) as info:
        CandidateIndex(np.array(ids), np.array(lat), np.full(len(lat), 114.0))
    assert info.value.field == field


def test_decode_geohash_matches_geopos() -> None:
    """Geo-set scores decode to the positions Redis's GEOPOS reports for them."""
    # (score, GEOPOS lng, GEOPOS lat) from Redis 7.0.15 after GEOADD of round numbers.
    known = [
        (4046432135345717.0, 114.01999980211258, 22.52999956292397),
        (4046432053048692.0, 114.00000125169754, 22.520000087950386),
        (1791875672646935.0, -73.98570209741592, 40.748399145634416),
        (3252046221964352.0, 151.2092998623848, -33.86880091934156),
        (3377699720527872.0, 2.68220901489e-06, 1.26736058093e-06),
    ]
    lat, lng = decode_geohash(np.array([score for score, _, _ in known]))
    assert lng == pytest.approx([x for _, x, _ in known], abs=1e-9)
    assert lat == pytest.approx([y for _, _, y in known], abs=1e-9)


def test_build_is_the_constructor() -> None:
    """CandidateIndex.build indexes the arrays of one geo-set read."""
    index = CandidateIndex.build(
        np.array([4, 2]), np.array([22.53, 22.54]), np.array([114.0, 114.0])
    )
    positions, _ = index.nearest(22.541, 114.0, 1, 500.0)
    assert index.worker_ids[positions].tolist() == [2]


def test_an_instant_job_must_leave_time_for_the_next_planned_job() -> None:
    """Finish + cautious travel + margin past the planned job's latest start: infeasible, naming the order."""
    from matching.model import Commitment

    params = MatchParams(plan_speed_mps=5.0, plan_detour_factor=1.0, plan_margin_s=600.0)
    now = 1_000_000
    j = Job(1, 22.5, 114.0, now, now + 3600, 3600, 9)
    metres = 3000.0  # 600 s at 5 m/s
    stop_lat = 22.5 + metres / 111_195
    # done at now + 60 + 3600, there 600 s later, 600 s margin: needs now + 4860
    ok = Commitment(77, stop_lat, 114.0, now + 4870)
    tight = Commitment(77, stop_lat, 114.0, now + 4800)
    c = Candidate(5, 22.5, 114.0, 1.0, available=((0, 2 * now),))
    assert why_not_eta(j, msgspec.structs.replace(c, commitment=ok), 60.0, now, params) is None
    why = why_not_eta(j, msgspec.structs.replace(c, commitment=tight), 60.0, now, params)
    assert why is not None
    assert why.startswith("planned job: would be late for planned order 77")
    assert why_not_eta(j, c, 60.0, now, params) is None  # no plan, no constraint
    own = Commitment(1, stop_lat, 114.0, now)  # the job offered is the planned one itself
    assert why_not_eta(j, msgspec.structs.replace(c, commitment=own), 60.0, now, params) is None


def test_rating_and_fairness_fade_when_workers_are_idle_and_orders_few() -> None:
    """Low pressure: rating weighs nothing and fairness only its floor; queueing: both in full; ETA always."""
    from matching.scoring import load_factor, peers_of, score

    params = MatchParams()
    now = 1_000_000
    j = Job(1, 22.5, 114.0, now, now + 3600, 3600, 9)
    star = Candidate(
        5, 22.5, 114.0, 1.0, rating_sum=50, rating_count=10, jobs_today=6, available=((0, 2 * now),)
    )
    idle = peers_of([star] * 1, n_jobs=0)
    assert idle.pressure == 0.0
    queued = Peers(jobs_today=2.0, pressure=params.load_full_pressure)
    calm = Peers(jobs_today=2.0, pressure=0.0)
    assert (load_factor(calm, params), load_factor(queued, params)) == (0.0, 1.0)
    assert load_factor(Peers(pressure=params.load_full_pressure / 2), params) == 0.5
    full = score(j, star, 600.0, now, queued, params).as_dict()
    faded = score(j, star, 600.0, now, calm, params).as_dict()
    assert faded["eta"] == full["eta"]
    assert faded["rating"][1] == 0.0
    assert full["rating"][1] < 0.0  # a bonus for 5 stars when orders queue
    assert faded["fairness"][1] == pytest.approx(full["fairness"][1] * params.fairness_floor)
    off = replace(params, load_aware=False)
    assert score(j, star, 600.0, now, calm, off).as_dict() == full  # the old scoring
