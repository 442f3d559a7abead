"""How wrong the road ETA is, learned from arrivals: quantiles per local hour and trip band.

Pure: no I/O, no clock. Every finished trip gives one ``x = log(observed / predicted)``
(predicted = the road ETA when the worker set off, :func:`tracking.eta.eta_s`). Trips
are kept apart by the local hour of departure (0-23) and by a *band* of the predicted
trip (``EtaParams.bands_s``: under 2 min, 2-5, 5-10, 10-20, 20+ by default), because
neither the ratio nor its spread is the same for a 90-second hop, where the arrival
geofence, parking and the walk to the door dominate, and for a 20-minute drive, where
traffic does.

Each (hour, band) bucket is a histogram of ``x`` over fixed bins (``bin_width``, clipped
to ±log ``max_ratio``) whose total is capped at ``window`` trips: adding a trip to a full
bucket first scales its counts down, so old trips fade (an exponential moving histogram).
The range shown for a base ETA is read from quantiles of a blend:

    bucket(hour, band) + pool_weight x normalised( sum over hours of bucket(·, band)
                                                 + prior_weight x prior )

with ``prior`` the discretised normal of ``x`` (mean log ``prior_ratio``, sd
``prior_sd``): before any data the range is the prior's; a band learned at other hours
lends its shape to an hour that has few trips of its own; an hour with many trips speaks
for itself. The pool is moved by the hour's shift (:func:`hour_shifts`): its estimate for
the p50, an upper bound on it for the p90, so an hour of a few trips that ran fast by
chance cannot narrow its own range. p50 and p90 are the 0.5 and ``coverage`` quantiles of
the blend, the latter raised by the finite-sample (split-conformal) correction
``coverage x (1 + 1/n)`` so a bucket of a few trips does not promise 90 % it has not seen. Between bands the log
quantiles are interpolated in log(base) so a worker's range does not jump at a band edge.

Why quantiles and not the former normal model (mean and sd of ``x``, p90 = mean + 1.28 sd):
the ratio's distribution is skewed (a red light or a missed geofence adds, nothing
subtracts much) and differs by trip length; a normal fit over all lengths covered 56-76 %
in some hours of the simulated day while over-covering others (benchmarks/eta_coverage.py).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracking.eta import EtaParams

Bucket = tuple[int, int]  # (local hour 0-23, band)
Counts = tuple[float, ...]


def n_bins(params: EtaParams) -> int:
    """How many histogram bins span ±log(max_ratio)."""
    return math.ceil(2 * math.log(params.max_ratio) / params.bin_width)


def low_edge(params: EtaParams) -> float:
    """The log ratio where the first bin starts."""
    return -n_bins(params) * params.bin_width / 2


def band_of(base_s: float, params: EtaParams) -> int:
    """The band of a predicted trip: how many of ``bands_s`` it reaches."""
    return sum(1 for edge in params.bands_s if base_s >= edge)


def band_centres_s(params: EtaParams) -> tuple[float, ...]:
    """A representative base ETA per band: the geometric middle of its edges; the
    outer bands their one edge divided (first) or multiplied (last) by sqrt 2."""
    edges = params.bands_s
    inner = [math.sqrt(a * b) for a, b in itertools.pairwise(edges)]
    return (edges[0] / math.sqrt(2), *inner, edges[-1] * math.sqrt(2))


def log_ratio(observed_s: float, predicted_s: float, params: EtaParams) -> float:
    """``log(observed / predicted)`` clipped to ±log(max_ratio)."""
    limit = math.log(params.max_ratio)
    if observed_s <= 0:
        return -limit
    return min(limit, max(-limit, math.log(observed_s / predicted_s)))


def bin_of(x: float, params: EtaParams) -> int:
    """The histogram bin of a (clipped) log ratio."""
    i = math.floor((x - low_edge(params)) / params.bin_width)
    return min(n_bins(params) - 1, max(0, i))


def empty(params: EtaParams) -> Counts:
    """A bucket with no trips."""
    return (0.0,) * n_bins(params)


def learns_from(observed_s: float, predicted_s: float, params: EtaParams) -> bool:
    """Whether a trip teaches anything (else :func:`add` leaves the bucket alone)."""
    if not (math.isfinite(observed_s) and observed_s >= 0):
        raise ValueError("observed_s must be a finite number >= 0.")
    if not (math.isfinite(predicted_s) and predicted_s >= 0):
        raise ValueError("predicted_s must be a finite number >= 0.")
    return predicted_s >= params.min_learn_s and predicted_s > 0


def add(counts: Counts, observed_s: float, predicted_s: float, params: EtaParams) -> Counts:
    """``counts`` with one trip added, scaled down first so the total stays ≤ ``window``."""
    if not learns_from(observed_s, predicted_s, params):
        return counts
    total = sum(counts)
    scale = min(1.0, (params.window - 1) / total) if total > 0 else 1.0
    out = [c * scale for c in counts]
    out[bin_of(log_ratio(observed_s, predicted_s, params), params)] += 1.0
    return tuple(out)


def prior_counts(params: EtaParams) -> Counts:
    """The prior as a histogram of total 1: the normal (log prior_ratio, prior_sd) per bin."""
    mean, sd, width = math.log(params.prior_ratio), params.prior_sd, params.bin_width
    low = low_edge(params)

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((x - mean) / (sd * math.sqrt(2))))

    n = n_bins(params)
    mass = [cdf(low + (i + 1) * width) - cdf(low + i * width) for i in range(n)]
    mass[0] += cdf(low)  # the tails go to the clipping bins, as clipped trips would
    mass[-1] += 1 - cdf(low + n * width)
    return tuple(mass)


def quantile(counts: Sequence[float], q: float, params: EtaParams) -> float:
    """The ``q`` quantile of the log ratio in a histogram (linear within a bin)."""
    total = sum(counts)
    if total <= 0:
        raise ValueError("counts must hold some weight.")
    target = min(max(q, 0.0), 1.0) * total
    low, width = low_edge(params), params.bin_width
    seen = 0.0
    for i, c in enumerate(counts):
        if c > 0 and seen + c >= target:
            return low + (i + (target - seen) / c) * width
        seen += c
    return low + len(counts) * width


@dataclass(frozen=True)
class EtaCalibration:
    """One hour's learned range per band: log-ratio quantiles and the trips behind them.

    ``q50`` / ``q90`` are indexed by band; ``n`` counts the hour's own (faded) trips per
    band. ``EtaCalibration()`` (no bands) means "no calibration yet": the prior applies.
    """

    q50: tuple[float, ...] = ()
    q90: tuple[float, ...] = ()
    n: tuple[float, ...] = ()

    @property
    def trips(self) -> float:
        """The hour's own trips, all bands."""
        return sum(self.n)


def shifted(counts: Sequence[float], shift: float, params: EtaParams) -> list[float]:
    """A histogram moved by ``shift`` in log ratio (whole bins; what leaves piles up at the ends)."""
    k = round(shift / params.bin_width)
    n = len(counts)
    out = [0.0] * n
    for i, c in enumerate(counts):
        out[min(n - 1, max(0, i + k))] += c
    return out


@dataclass(frozen=True)
class HourShift:
    """How much slower (log ratio) an hour's trips run than its bands' trips at all hours.

    ``point`` is the estimate, ``upper`` a one-sided bound on it (``shift_z`` standard
    errors above): the p50 uses the first, the p90 the second.
    """

    point: float
    upper: float


def band_medians(buckets: Mapping[Bucket, Counts], params: EtaParams) -> list[float | None]:
    """Each band's median log ratio over all hours (None: the band has no trips)."""
    zero = empty(params)
    out: list[float | None] = []
    for band in range(len(params.bands_s) + 1):
        total = [sum(buckets.get((h, band), zero)[i] for h in range(24)) for i in range(len(zero))]
        out.append(quantile(total, 0.5, params) if sum(total) > 0 else None)
    return out


def hour_shifts(buckets: Mapping[Bucket, Counts], params: EtaParams) -> list[HourShift]:
    """Per hour, its shift from the bands' medians, shrunk by how much hours differ, and
    an upper bound on it that a sparse hour cannot undercut by chance.

    An hour's raw shift is the median of its trips' ``x - median of x in their band``
    (all bands pooled). Its standard error is ``1.2533 sigma / sqrt(n)`` (the median's,
    with ``sigma`` the within-hour spread of those differences, IQR / 1.349, pooled over
    hours). How much hours truly differ, ``tau^2``, is the trip-weighted variance of the
    raw shifts less their mean squared error (method of moments, floored at 0). Each hour
    then gets the normal-normal posterior: mean ``(mu/tau^2 + raw/se^2) / (1/tau^2 +
    1/se^2)`` and variance ``1 / (1/tau^2 + 1/se^2)``. ``upper`` is the larger of two
    one-sided bounds: the posterior's, ``shift_z`` sds up, and the hour's own, not
    shrunk: ``raw + own_shift_z se``. The first keeps an hour whose few trips ran fast
    by chance from narrowing its range (where hours do not differ, ``tau`` 0, it is the
    common shift ``mu``); the second keeps one slow hour among many alike, which the
    pooled ``tau`` hardly sees, from being shrunk onto the others (12 trips 1.6x slower
    among 1.3x hours: covered in 4 of 20 seeds by the posterior bound alone, 39 of 40
    with both). ``own_shift_z`` is lower than ``shift_z`` because the own bound widens
    every sparse hour whatever the others say (on the flat benchmark day, seeds 21-23,
    it made the median p90 2-6 % wider at 1.0, 5-9 % at 1.645). An hour with no trips
    gets ``mu + shift_z tau``. The former rule (the raw shift shrunk towards 0 by a fixed
    ``shift_weight`` trips) let an hour of 11 trips whose median happened to be low shift
    its p90 down (65 % covered at 22:00, benchmarks/eta_coverage.py)."""
    medians = band_medians(buckets, params)
    n_bins_ = n_bins(params)
    diffs: list[list[float]] = []
    for hour in range(24):
        acc = [0.0] * n_bins_
        for band, m in enumerate(medians):
            own = buckets.get((hour, band))
            if own is not None and m is not None:
                for i, c in enumerate(shifted(own, -m, params)):
                    acc[i] += c
        diffs.append(acc)
    n = [sum(d) for d in diffs]
    raw = [quantile(d, 0.5, params) if w > 0 else 0.0 for d, w in zip(diffs, n, strict=True)]
    within = [0.0] * n_bins_
    for hour in range(24):
        if n[hour] > 0:
            for i, c in enumerate(shifted(diffs[hour], -raw[hour], params)):
                within[i] += c
    total = sum(n)
    if total <= 0:
        return [HourShift(0.0, 0.0)] * 24
    spread = (quantile(within, 0.75, params) - quantile(within, 0.25, params)) / 1.349
    sigma = max(spread, params.bin_width)  # a histogram resolves no finer than a bin
    se2 = [(1.2533 * sigma) ** 2 / w if w > 0 else math.inf for w in n]
    seen = [h for h in range(24) if n[h] > 0]
    mu = sum(n[h] * raw[h] for h in seen) / total
    between = sum(n[h] * (raw[h] - mu) ** 2 for h in seen) / total
    noise = sum(n[h] * se2[h] for h in seen) / total
    tau2 = max(0.0, between - noise)
    out = []
    z = params.shift_z
    for hour in range(24):
        if tau2 == 0:
            mean, var = mu, 0.0
        elif n[hour] == 0:
            mean, var = mu, tau2
        else:
            precision = 1 / tau2 + 1 / se2[hour]
            mean, var = (mu / tau2 + raw[hour] / se2[hour]) / precision, 1 / precision
        upper = mean + z * math.sqrt(var)
        if n[hour] > 0:  # the hour's own evidence, unshrunk, is honoured too
            upper = max(upper, raw[hour] + params.own_shift_z * math.sqrt(se2[hour]))
        out.append(HourShift(mean, upper))
    return out


def upper_quantile(counts: Sequence[float], params: EtaParams) -> float:
    """The p90 of a blend of total weight ``w``: its ``coverage x (1 + 1/w)`` quantile
    (the split-conformal finite-sample correction)."""
    weight = sum(counts)
    return quantile(counts, min(1.0, params.coverage * (1 + 1 / weight)), params)


def calibrate(buckets: Mapping[Bucket, Counts], params: EtaParams) -> dict[int, EtaCalibration]:
    """Every hour's calibration from the learned buckets (missing buckets: no trips)."""
    n_bands = len(params.bands_s) + 1
    zero = empty(params)
    prior = prior_counts(params)
    shifts = hour_shifts(buckets, params)
    pools: list[Counts] = []
    for band in range(n_bands):  # the band's shape with each hour's shift taken out
        summed = [params.prior_weight * p for p in prior]
        for hour in range(24):
            own = buckets.get((hour, band))
            if own is not None:
                for i, c in enumerate(shifted(own, -shifts[hour].point, params)):
                    summed[i] += c
        total = sum(summed)
        pools.append(tuple(params.pool_weight * c / total for c in summed))
    out: dict[int, EtaCalibration] = {}
    for hour in range(24):
        q50, q90, n = [], [], []
        for band in range(n_bands):
            own = buckets.get((hour, band), zero)
            mid = shifted(pools[band], shifts[hour].point, params)
            high = shifted(pools[band], shifts[hour].upper, params)
            q50.append(quantile([a + b for a, b in zip(own, mid, strict=True)], 0.5, params))
            q90.append(upper_quantile([a + b for a, b in zip(own, high, strict=True)], params))
            n.append(sum(own))
        out[hour] = EtaCalibration(tuple(q50), tuple(q90), tuple(n))
    return out


@functools.lru_cache(maxsize=8)
def prior_calibration(params: EtaParams) -> EtaCalibration:
    """The calibration before any trip is known (every hour the same)."""
    return calibrate({}, params)[0]


def log_quantiles(base_s: float, cal: EtaCalibration, params: EtaParams) -> tuple[float, float]:
    """(log p50 ratio, log p90 ratio) for a base ETA: interpolated between band centres
    in log(base), the end bands held flat beyond their centres."""
    centres = band_centres_s(params)
    if len(cal.q50) != len(centres):
        raise ValueError("calibration has a different number of bands than params.bands_s.")
    if base_s <= centres[0]:
        return cal.q50[0], cal.q90[0]
    if base_s >= centres[-1]:
        return cal.q50[-1], cal.q90[-1]
    b = next(i for i in range(1, len(centres)) if base_s < centres[i])
    f = math.log(base_s / centres[b - 1]) / math.log(centres[b] / centres[b - 1])
    q50 = cal.q50[b - 1] + f * (cal.q50[b] - cal.q50[b - 1])
    q90 = cal.q90[b - 1] + f * (cal.q90[b] - cal.q90[b - 1])
    return q50, max(q50, q90)


def rebuild(trips: Iterable[tuple[int, float, float]], params: EtaParams) -> dict[Bucket, Counts]:
    """The buckets from trips (local hour of departure, observed s, predicted s), oldest
    first: the same as adding them one by one."""
    buckets: dict[Bucket, Counts] = {}
    for hour, observed_s, predicted_s in trips:
        if not learns_from(observed_s, predicted_s, params):
            continue
        key = (hour, band_of(predicted_s, params))
        buckets[key] = add(buckets.get(key, empty(params)), observed_s, predicted_s, params)
    return buckets


def layout(params: EtaParams) -> str:
    """A fingerprint of the histogram layout: stored buckets of another layout are stale."""
    bands = ",".join(f"{b:g}" for b in params.bands_s)
    return f"v1|{n_bins(params)}|{params.bin_width:g}|{params.max_ratio:g}|{bands}"


def encode_counts(counts: Counts) -> str:
    """A bucket as stored (JSON list, 4 decimals)."""
    return json.dumps([round(c, 4) for c in counts], separators=(",", ":"))


def parse_counts(raw: str | bytes, params: EtaParams) -> Counts | None:
    """A stored bucket, or None if it is not one of this layout."""
    try:
        values = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(values, list)
        or len(values) != n_bins(params)
        or not all(isinstance(v, int | float) and v >= 0 for v in values)
    ):
        return None
    return tuple(float(v) for v in values)


def bucket_field(bucket: Bucket) -> str:
    """The hash field of a bucket: ``"hour:band"``."""
    return f"{bucket[0]}:{bucket[1]}"


def parse_field(field: str | bytes) -> Bucket | None:
    """A hash field back to its bucket, or None."""
    text = field.decode() if isinstance(field, bytes) else field
    hour, _, band = text.partition(":")
    if not (hour.isdigit() and band.isdigit()):
        return None
    return int(hour), int(band)
