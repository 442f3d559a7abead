"""tracking.eta_calibration: the learned ETA range (quantiles per hour and trip band, prior)."""

from __future__ import annotations

import math
import random

import pytest

from tracking import eta_calibration as cal
from tracking.eta import EtaParams, eta_range
from tracking.eta_calibration import EtaCalibration

PARAMS = EtaParams()
MID_S = 850.0  # a base ETA at the centre of its band (600-1200 s): no interpolation


def learned(
    trips: list[tuple[int, float, float]], params: EtaParams = PARAMS
) -> dict[int, EtaCalibration]:
    """Every hour's calibration after (hour, observed s, predicted s) trips."""
    return cal.calibrate(cal.rebuild(trips, params), params)


def slow_trips(
    hour: int, ratios: list[float], predicted_s: float = 850.0
) -> list[tuple[int, float, float]]:
    """Trips at ``hour`` predicted at ``predicted_s`` that took ``ratio`` times as long."""
    return [(hour, predicted_s * r, predicted_s) for r in ratios]


def test_quantile_of_a_histogram_interpolates_within_bins() -> None:
    """One bin holding all the weight: its quantiles run linearly from its low to high edge."""
    counts = list(cal.empty(PARAMS))
    i = cal.bin_of(0.0, PARAMS)
    counts[i] = 10.0
    low = cal.low_edge(PARAMS) + i * PARAMS.bin_width
    assert cal.quantile(counts, 0.0, PARAMS) == pytest.approx(low)
    assert cal.quantile(counts, 0.5, PARAMS) == pytest.approx(low + PARAMS.bin_width / 2)
    assert cal.quantile(counts, 1.0, PARAMS) == pytest.approx(low + PARAMS.bin_width)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_match_the_sample_quantiles(seed: int) -> None:
    """On 2,000 log-normal ratios the histogram's p50 and p90 are the sample's within a bin."""
    rng = random.Random(seed)
    xs = sorted(rng.gauss(0.2, 0.3) for _ in range(2000))
    counts = list(cal.empty(PARAMS))
    for x in xs:
        counts[cal.bin_of(x, PARAMS)] += 1
    assert cal.quantile(counts, 0.5, PARAMS) == pytest.approx(xs[999], abs=PARAMS.bin_width)
    assert cal.quantile(counts, 0.9, PARAMS) == pytest.approx(xs[1799], abs=PARAMS.bin_width)


def test_prior_is_a_normal_histogram_of_total_one() -> None:
    """The prior sums to 1 and its median and p90 are those of N(log prior_ratio, prior_sd)."""
    prior = cal.prior_counts(PARAMS)
    assert sum(prior) == pytest.approx(1.0)
    mean, sd = math.log(PARAMS.prior_ratio), PARAMS.prior_sd
    assert cal.quantile(prior, 0.5, PARAMS) == pytest.approx(mean, abs=0.01)
    assert cal.quantile(prior, 0.9, PARAMS) == pytest.approx(mean + 1.2816 * sd, abs=0.01)


@pytest.mark.parametrize("base_s", [30.0, 200.0, 900.0, 3000.0])
def test_range_before_any_data_is_the_prior(base_s: float) -> None:
    """No trips: p50 = base x prior_ratio; p90 is the prior's p90 raised by the finite-
    sample correction (the pool counts as pool_weight trips), so >= base x the prior's p90."""
    empty = learned([])
    r = eta_range(base_s, empty[8], PARAMS)
    assert r == eta_range(base_s, EtaCalibration(), PARAMS)
    assert r.p50_s == pytest.approx(base_s * PARAMS.prior_ratio, rel=0.02)
    assert r.p90_s >= base_s * PARAMS.prior_ratio * math.exp(1.2816 * PARAMS.prior_sd) * 0.99
    assert empty[8].trips == 0


def test_bands_split_trips_by_predicted_length() -> None:
    """Band edges (120, 300, 600, 1200 s): a trip's band is how many edges it reaches."""
    assert [cal.band_of(s, PARAMS) for s in (0, 119, 120, 299, 300, 650, 1200, 9000)] == [
        0,
        0,
        1,
        1,
        2,
        3,
        4,
        4,
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_learned_hour_covers_90_percent_of_its_trips(seed: int) -> None:
    """400 trips at 08:00, 1.4x slower with log-normal spread 0.25: p50 ~ 1.4 x base and
    the p90 covers ~90 % of those trips (and of 2,000 fresh ones like them)."""
    rng = random.Random(seed)
    ratios = [rng.lognormvariate(math.log(1.4), 0.25) for _ in range(400)]
    hours = learned(slow_trips(8, ratios))
    r = eta_range(MID_S, hours[8], PARAMS)
    assert r.p50_s == pytest.approx(1.4 * MID_S, rel=0.05)
    covered = sum(MID_S * x <= r.p90_s for x in ratios) / len(ratios)
    fresh = [rng.lognormvariate(math.log(1.4), 0.25) for _ in range(2000)]
    assert 0.88 <= covered <= 0.95
    assert 0.88 <= sum(MID_S * x <= r.p90_s for x in fresh) / len(fresh) <= 0.96


def test_hours_are_learned_apart() -> None:
    """Rush-hour trips twice as slow widen 08:00's range and leave 14:00's (fast trips) narrow."""
    rng = random.Random(4)
    trips = slow_trips(8, [rng.lognormvariate(math.log(2.0), 0.15) for _ in range(300)])
    trips += slow_trips(14, [rng.lognormvariate(0.0, 0.1) for _ in range(300)])
    hours = learned(trips)
    rush, calm = eta_range(MID_S, hours[8], PARAMS), eta_range(MID_S, hours[14], PARAMS)
    assert rush.p90_s > 2.0 * MID_S
    assert calm.p90_s < 1.3 * MID_S
    assert hours[8].n[cal.band_of(MID_S, PARAMS)] == pytest.approx(300)


def test_an_hour_without_trips_borrows_its_band_from_other_hours() -> None:
    """An hour with no trips of its own gets the band's shape learned at other hours, not
    the prior's: trips 1.6x slower all day move 03:00's p50 to ~1.6x too."""
    rng = random.Random(6)
    trips = [
        (h, MID_S * rng.lognormvariate(math.log(1.6), 0.1), MID_S)
        for h in range(7, 20)
        for _ in range(30)
    ]
    night = learned(trips)[3]
    assert night.trips == 0
    assert eta_range(MID_S, night, PARAMS).p50_s == pytest.approx(1.6 * MID_S, rel=0.06)


def test_short_trips_get_their_own_wider_range() -> None:
    """Short hops that take 2-3x their prediction (geofence, parking) do not widen the
    range of 15-minute drives that run to time, and get a wide one themselves."""
    rng = random.Random(7)
    trips = [(10, 90.0 * rng.uniform(2.0, 3.0), 90.0) for _ in range(200)]
    trips += [(10, MID_S * rng.lognormvariate(0.0, 0.08), MID_S) for _ in range(200)]
    hour = learned(trips)[10]
    short, drive = eta_range(60.0, hour, PARAMS), eta_range(MID_S, hour, PARAMS)
    assert short.p90_s > 2.5 * 60.0
    assert drive.p90_s < 1.2 * MID_S


def test_the_range_changes_smoothly_across_a_band_edge() -> None:
    """Between band centres the range is interpolated: 299 s and 301 s differ by < 1 %."""
    rng = random.Random(8)
    trips = [(9, 200.0 * rng.uniform(1.8, 2.2), 200.0) for _ in range(200)]
    trips += [(9, 450.0 * rng.uniform(1.0, 1.1), 450.0) for _ in range(200)]
    hour = learned(trips)[9]
    below, above = eta_range(299.0, hour, PARAMS), eta_range(301.0, hour, PARAMS)
    assert above.p90_s / below.p90_s == pytest.approx(301 / 299, rel=0.01)


def test_a_full_bucket_forgets_old_trips() -> None:
    """Past ``window`` trips a bucket fades: after 200 trips at 1x and 200 at 2x with a
    window of 20, p50 is 2x; the bucket's total never passes the window."""
    params = EtaParams(window=20)
    trips = slow_trips(12, [1.0] * 200 + [2.0] * 200)
    buckets = cal.rebuild(trips, params)
    assert sum(buckets[(12, cal.band_of(MID_S, params))]) == pytest.approx(20.0)
    hour = cal.calibrate(buckets, params)[12]
    assert eta_range(MID_S, hour, params).p50_s == pytest.approx(2 * MID_S, rel=0.06)


def test_one_outlier_is_clipped() -> None:
    """A trip 100x slower lands in the last bin, as a max_ratio trip would."""
    assert cal.add(cal.empty(PARAMS), 60_000.0, MID_S, PARAMS) == cal.add(
        cal.empty(PARAMS), MID_S * PARAMS.max_ratio, MID_S, PARAMS
    )
    assert cal.add(cal.empty(PARAMS), 0.0, MID_S, PARAMS)[0] == 1.0


def test_tiny_predictions_teach_nothing_and_bad_durations_are_refused() -> None:
    """A trip predicted under min_learn_s leaves the bucket alone; a negative or NaN
    duration is an error naming the argument."""
    assert cal.add(cal.empty(PARAMS), 300.0, 10.0, PARAMS) == cal.empty(PARAMS)
    with pytest.raises(ValueError, match="observed_s"):
        cal.add(cal.empty(PARAMS), -1.0, MID_S, PARAMS)
    with pytest.raises(ValueError, match="predicted_s"):
        cal.add(cal.empty(PARAMS), MID_S, math.nan, PARAMS)


@pytest.mark.parametrize("ratios", [[1.0] * 30, [0.5, 3.0, 1.0], [0.3] * 10, [4.0, 0.25] * 20])
def test_p90_is_never_below_p50(ratios: list[float]) -> None:
    """Whatever was observed, at any base ETA, p90 >= p50 > 0."""
    hour = learned(slow_trips(5, ratios, 250.0))[5]
    for base in (30.0, 250.0, 700.0, 2000.0):
        r = eta_range(base, hour, PARAMS)
        assert r.p90_s >= r.p50_s > 0


def test_buckets_round_trip_through_their_stored_form() -> None:
    """A bucket encodes and parses back (4 decimals); another layout's bucket is refused."""
    counts = cal.add(cal.add(cal.empty(PARAMS), 700.0, MID_S, PARAMS), 500.0, MID_S, PARAMS)
    assert cal.parse_counts(cal.encode_counts(counts), PARAMS) == counts
    assert cal.parse_counts("[1,2,3]", PARAMS) is None
    assert cal.parse_counts("nonsense", PARAMS) is None
    assert cal.parse_field(cal.bucket_field((17, 3))) == (17, 3)
    assert cal.layout(PARAMS) != cal.layout(EtaParams(bands_s=(300.0,)))


def day_of_trips(
    rng: random.Random, per_hour: dict[int, int], ratio_by_hour: dict[int, float], sd: float = 0.2
) -> list[tuple[int, float, float]]:
    """Trips at the band centre: ``per_hour[h]`` of them at hour h, log-normal around
    ``ratio_by_hour.get(h, 1.3)`` with log sd ``sd``."""
    return [
        (h, MID_S * rng.lognormvariate(math.log(ratio_by_hour.get(h, 1.3)), sd), MID_S)
        for h, n in per_hour.items()
        for _ in range(n)
    ]


def test_no_trips_no_shift() -> None:
    """Before any trip every hour's shift and its bound are 0."""
    assert cal.hour_shifts({}, PARAMS) == [cal.HourShift(0.0, 0.0)] * 24


def test_where_hours_do_not_differ_every_hour_gets_the_common_shift() -> None:
    """All hours alike (a few trips at night, many by day): the hours' medians differ
    no more than chance says, so every hour gets the same point shift, and its bound is
    at most its own trips' median one standard error up."""
    rng = random.Random(11)
    per_hour = {h: (8 if h < 7 or h > 20 else 100) for h in range(24)}
    shifts = cal.hour_shifts(cal.rebuild(day_of_trips(rng, per_hour, {}), PARAMS), PARAMS)
    assert len({s.point for s in shifts}) == 1
    assert all(s.upper >= s.point for s in shifts)
    assert max(s.upper for s in shifts[7:21]) - shifts[0].point < 0.1
    assert abs(shifts[0].point) < 0.05


def test_a_sparse_hour_that_ran_fast_by_chance_keeps_the_common_range() -> None:
    """Eight night trips that happen to be the fastest of their kind (all hours truly alike)
    do not narrow 03:00's p90 below the busy hours' (the former rule cut it by ~20 %)."""
    rng = random.Random(12)
    per_hour = {h: 100 for h in range(7, 21)}
    trips = day_of_trips(rng, per_hour, {})
    fast = sorted(MID_S * rng.lognormvariate(math.log(1.3), 0.2) for _ in range(40))[:8]
    trips += [(3, observed, MID_S) for observed in fast]
    hours = learned(trips)
    night, noon = eta_range(MID_S, hours[3], PARAMS), eta_range(MID_S, hours[12], PARAMS)
    assert night.p90_s >= 0.97 * noon.p90_s


def test_where_hours_differ_a_sparse_hour_gets_a_margin_that_shrinks_with_its_trips() -> None:
    """Rush hours 2x slower: the bound above an hour's shift is wider the fewer its trips
    (5 at 19:00, 40 at 20:00, 150 at 12:00), widest for an hour with none (03:00), and
    each sparse hour's point is pulled towards the common shift but still above 0."""
    rng = random.Random(13)
    per_hour = {h: 150 for h in (7, 8, 9, 10, 11, 12, 13, 14)} | {19: 5, 20: 40}
    ratio = {7: 2.0, 8: 2.0, 9: 2.0, 19: 2.0, 20: 2.0}
    shifts = cal.hour_shifts(cal.rebuild(day_of_trips(rng, per_hour, ratio), PARAMS), PARAMS)
    margin = {h: shifts[h].upper - shifts[h].point for h in (3, 19, 20, 12)}
    assert margin[3] > margin[19] > margin[20] > margin[12] >= 0
    assert margin[12] < 0.05
    assert shifts[19].upper > shifts[8].point - 0.1  # slow like the rush hours, or more
    assert shifts[12].point < 0 < shifts[8].point


def test_a_sparse_slow_hour_is_covered_across_seeds() -> None:
    """An evening hour 1.6x slower with 12 trips among busy 1.3x hours: over 20 seeds its
    p90 covers >= 90 % of 2,000 fresh trips like its own in at least 19 (the pooled
    bound alone in 4: the others hide the one slow hour)."""
    ok = 0
    for seed in range(20):
        rng = random.Random(100 + seed)
        per_hour = {h: 120 for h in range(8, 17)} | {18: 12}
        trips = day_of_trips(rng, per_hour, {18: 1.6})
        hour = learned(trips)[18]
        p90 = eta_range(MID_S, hour, PARAMS).p90_s
        fresh = [MID_S * rng.lognormvariate(math.log(1.6), 0.2) for _ in range(2000)]
        ok += sum(x <= p90 for x in fresh) / len(fresh) >= 0.9
    assert ok >= 19
