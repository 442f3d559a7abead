"""matching: rotation (轮派) — fewer jobs first among near-equal ETAs, pure."""

from __future__ import annotations

import random
from dataclasses import replace

import msgspec
import orjson
import pytest

from doorstep.params import ParamsError, from_mapping
from matching.assess import assess_all, assess_job_by_the_rules
from matching.assign import decide_batch, decide_greedy
from matching.feasibility import chained_eta_s
from matching.model import Candidate, Chain, Decision, Job
from matching.params import MatchParams
from matching.replay import replay

NOW = 1_750_000_000
HOUR = 3600
# The fairness term off, so that the cases below show rotation alone (ETA against jobs).
OFF = MatchParams(weight_fairness=0.0, rotation_slack_s=0.0)
ON = replace(OFF, rotation_slack_s=60.0)
JOB = Job(
    order_id=50,
    lat=22.53,
    lng=114.02,
    earliest_start_s=NOW,
    latest_start_s=NOW + HOUR,
    duration_s=HOUR,
    customer_id=900,
    created_s=NOW,
    price_minor=15_000,
)


def worker(wid: int, jobs: int, **changes: object) -> Candidate:
    """A free worker near the job with ``jobs`` jobs (and 150 yuan each) today."""
    base = Candidate(
        worker_id=wid,
        lat=22.531,
        lng=114.021,
        fix_age_s=5.0,
        jobs_today=jobs,
        earnings_today_minor=15_000 * jobs,
        available=((NOW - HOUR, NOW + 10 * HOUR),),
    )
    return msgspec.structs.replace(base, **changes)


def rotation_of(d: Decision, wid: int) -> tuple[float, float]:
    """The (raw, weighted) rotation term of worker ``wid`` in decision ``d``."""
    rec = next(c for c in d.candidates if c.worker_id == wid)
    assert rec.breakdown is not None
    return rec.breakdown.as_dict()["rotation"]


def test_rotation_off_the_nearest_wins() -> None:
    """``rotation_slack_s`` 0 (off; 60 by default): no rotation term, the busier worker 50 s
    nearer wins, and the decision records the window as 0."""
    busy, idle = worker(1, jobs=3), worker(2, jobs=0)
    (d,) = decide_batch([JOB], [[busy, idle]], [{1: 100.0, 2: 150.0}], NOW, OFF)
    assert d.worker_id == 1
    assert d.peers.rotation_s == 0.0
    assert rotation_of(d, 1) == rotation_of(d, 2) == (0.0, 0.0)


def test_within_the_slack_the_worker_with_fewer_jobs_wins() -> None:
    """Slack 60 s: the worker with no job 50 s farther wins over one with 3 jobs, who pays the
    cap, 2 jobs × 1 point (60 s of ETA each); one with 1 job pays 1 point."""
    busy, idle = worker(1, jobs=3), worker(2, jobs=0)
    etas = [{1: 100.0, 2: 150.0}]
    (d,) = decide_batch([JOB], [[busy, idle]], etas, NOW, ON)
    assert d.worker_id == 2
    assert rotation_of(d, 1) == (2.0, 2.0)
    assert rotation_of(d, 2) == (0.0, 0.0)
    one_more = worker(1, jobs=1)
    (d1,) = decide_batch([JOB], [[one_more, idle]], etas, NOW, ON)
    assert d1.worker_id == 2
    assert rotation_of(d1, 1) == (1.0, 1.0)


def test_beyond_the_slack_per_job_the_nearer_worker_still_wins() -> None:
    """Nobody is sent more than one slack per job farther: the idle worker 150 s farther is
    outside the 60 s window, so the nearer one (1 job more) sets the reference and wins; and
    one job more than a worker 90 s farther (within a 120 s window) costs 120 s, not more."""
    near, far = worker(1, jobs=1), worker(2, jobs=0)
    (d,) = decide_batch([JOB], [[near, far]], [{1: 100.0, 2: 250.0}], NOW, ON)
    assert d.worker_id == 1
    assert rotation_of(d, 1) == (0.0, 0.0)
    wide = replace(ON, rotation_slack_s=120.0)
    (w,) = decide_batch([JOB], [[near, far]], [{1: 100.0, 2: 190.0}], NOW, wide)
    assert w.worker_id == 2
    assert rotation_of(w, 1) == (1.0, 2.0)
    (w2,) = decide_batch([JOB], [[near, far]], [{1: 100.0, 2: 230.0}], NOW, wide)
    assert w2.worker_id == 1  # 130 s farther: more than the 120 s one job costs


def test_the_reference_is_the_fewest_jobs_among_the_near_best_only() -> None:
    """A worker with fewer jobs outside the window does not raise the others' cost: with the
    window holding workers of 2 and 3 jobs, the one with 3 pays 1 job, the one with 2 none."""
    a, b, c = worker(1, jobs=2), worker(2, jobs=3), worker(3, jobs=0)
    (d,) = decide_batch([JOB], [[a, b, c]], [{1: 100.0, 2: 90.0, 3: 400.0}], NOW, ON)
    assert d.worker_id == 1
    assert rotation_of(d, 1) == (0.0, 0.0)
    assert rotation_of(d, 2) == (1.0, 1.0)
    assert rotation_of(d, 3) == (0.0, 0.0)


def test_an_idle_worker_with_fewer_jobs_wins_over_a_chained_one_at_a_similar_eta() -> None:
    """The counterweight for chained orders: a worker finishing their 3rd job next door (2 min
    left + 1 min road) loses to an idle worker with 1 job 40 s farther; with rotation off the
    chained worker wins; an idle worker 5 min farther does not win either way."""
    chained = worker(2, jobs=3, state="busy", chain=Chain(order_id=40, ends_s=NOW + 120))
    idle = worker(1, jobs=1)
    eta_chain = chained_eta_s(chained, 60.0, NOW)
    params = replace(ON, chain_s=300.0)
    etas = [{1: eta_chain + 40.0, 2: eta_chain}]
    (d,) = decide_batch([JOB], [[idle, chained]], etas, NOW, params)
    assert d.worker_id == 1
    assert rotation_of(d, 2) == (2.0, 2.0)
    (off,) = decide_batch(
        [JOB], [[idle, chained]], etas, NOW, replace(params, rotation_slack_s=0.0)
    )
    assert off.worker_id == 2
    far = [{1: eta_chain + 300.0, 2: eta_chain}]
    (d_far,) = decide_batch([JOB], [[idle, chained]], far, NOW, params)
    assert d_far.worker_id == 2


def test_greedy_ignores_rotation() -> None:
    """The nearest-idle baseline decides by ETA; its stored scores carry the term all the same."""
    busy, idle = worker(1, jobs=3), worker(2, jobs=0)
    (d,) = decide_greedy([JOB], [[busy, idle]], [{1: 100.0, 2: 150.0}], NOW, ON)
    assert d.worker_id == 1
    assert rotation_of(d, 1) == (2.0, 2.0)


def test_a_stored_decision_replays_the_same_with_its_window() -> None:
    """The window is kept in the decision's peers: the stored decision reads back and replays
    to the same worker and bytes, also under params with rotation off (the stored window
    wins, as the stored pressure does)."""
    busy, idle = worker(1, jobs=3), worker(2, jobs=0)
    (d,) = decide_batch([JOB], [[busy, idle]], [{1: 100.0, 2: 150.0}], NOW, ON)
    stored = Decision.from_json(d.to_json())
    assert stored == d.for_storage()
    assert stored.peers.rotation_s == 60.0
    (again,) = replay([stored], ON)
    assert again.to_json() == stored.to_json()
    (what_if,) = replay([stored], OFF)  # another params digest, the same scores
    assert (what_if.worker_id, what_if.candidates) == (2, stored.candidates)


def test_a_decision_stored_before_rotation_replays_without_it() -> None:
    """JSON from before the term (seven terms, peers without ``rotation_s``) reads back with
    rotation 0 and replays to the nearer worker even under params that turn rotation on."""
    busy, idle = worker(1, jobs=3), worker(2, jobs=0)
    (d,) = decide_batch([JOB], [[busy, idle]], [{1: 100.0, 2: 150.0}], NOW, OFF)
    doc = orjson.loads(d.to_json())
    doc["terms"] = doc["terms"][:-1]
    del doc["peers"]["rotation_s"]
    for c in doc["candidates"]:
        if c["breakdown"] is not None:
            c["breakdown"]["raw"] = c["breakdown"]["raw"][:-1]
            c["breakdown"]["weighted"] = c["breakdown"]["weighted"][:-1]
    old = Decision.from_json(orjson.dumps(doc))
    assert old.peers.rotation_s is None
    assert rotation_of(old, 1) == (0.0, 0.0)
    (again,) = replay([old], ON)
    assert again.worker_id == 1
    assert rotation_of(again, 1) == (0.0, 0.0)


@pytest.mark.parametrize("seed", range(50))
def test_assess_all_equals_the_rules_pair_by_pair_then_rotated(seed: int) -> None:
    """``assess_all`` gives exactly ``assess_pair``'s records with ``rotate`` applied to the
    job's list, to the last bit, on random candidates, ETAs and windows."""
    rng = random.Random(seed)
    params = MatchParams(rotation_slack_s=rng.choice([30.0, 60.0, 120.0]), rotation_cap=2.0)
    cands = [
        worker(i + 1, jobs=rng.randrange(5), fix_age_s=rng.choice([5.0, 5.0, 500.0]))
        for i in range(rng.randrange(1, 9))
    ]
    etas = [[rng.uniform(30.0, 900.0) for _ in cands]]
    (got,), peers = assess_all([JOB], [cands], etas, NOW, params, None)
    expected = assess_job_by_the_rules(JOB, cands, etas[0], NOW, peers, params)
    assert got.records == expected.records
    assert got.costs == expected.costs
    for i in expected.feasible:
        b = got.records[i].breakdown
        assert b is not None
        assert b.total == pytest.approx(sum(b.weighted))


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"rotation_slack_s": -1.0}, "rotation_slack_s must be"),
        ({"rotation_cap": -0.5}, "rotation_cap must be"),
        ({"rotation_slack_s": float("inf")}, "rotation_slack_s must be"),
    ],
)
def test_bad_rotation_params_are_refused(table: dict[str, float], words: str) -> None:
    """A negative or infinite window, or a negative cap, is refused naming the key."""
    with pytest.raises(ParamsError, match=words):
        from_mapping(MatchParams, table, section="matching")
