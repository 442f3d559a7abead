"""The timing of one worker's route in a fixed order: when each stop starts, its slack,
where the breaks go, or that the order cannot be kept. Pure integer arithmetic.

The model is the planner's (``matching.planner``) and OR-Tools': the worker leaves the
start no earlier than ``t0``, travels, may wait, serves each stop inside its window
(waiting allowed, no lateness), and reaches the end (or finishes its last stop, when
the route ends there) by ``shift_end``. A break takes ``duration_s`` and starts in
``[earliest_s, latest_s]``; it never overlaps a service, but it may interrupt travel
or fill waiting time, so a gap between two stops needs ``travel + breaks`` seconds.
A break may also fall after the route's end (the worker is done by then). Breaks are
taken in the order given (callers sort them by ``earliest_s``).

:func:`schedule` is exact for that model: a small dynamic programme over (stop,
breaks taken so far), keeping the earliest departure per state — taking a break or
a stop earlier is never worse when waiting is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INF = 1 << 62


@dataclass(frozen=True, slots=True)
class Visit:
    """One stop for the timing: its window, service time and travel from the point before."""

    window: tuple[int, int]
    service_s: int
    travel_in_s: int


@dataclass(frozen=True, slots=True)
class Timing:
    """A feasible timing: per stop arrival, start, departure and slack; the breaks."""

    arrivals: tuple[int, ...]
    starts: tuple[int, ...]
    departures: tuple[int, ...]
    slacks: tuple[int, ...]
    breaks: tuple[tuple[int, int], ...]  # (start_s, duration_s) in order
    end_s: int  # arrival at the end (or departure from the last stop)


Break = tuple[int, int, int]  # (earliest_s, latest_s, duration_s)


def _through_gap(t: int, breaks: Sequence[Break], travel_s: int) -> tuple[int, list[int]] | None:
    """Leaving at ``t``, take ``breaks`` as early as possible and travel ``travel_s`` in the
    time between them: the arrival and the break starts, or None if a break is missed."""
    cur, idle, starts = t, 0, []
    for earliest, latest, duration in breaks:
        start = max(cur, earliest)
        if start > latest:
            return None
        idle += start - cur
        starts.append(start)
        cur = start + duration
    return cur + max(0, travel_s - idle), starts


def _latest_before(deadline: int, breaks: Sequence[Break], travel_s: int) -> int:
    """The latest departure that still takes ``breaks`` (as late as possible) and travels
    ``travel_s`` before ``deadline``."""
    cur, left = deadline, travel_s
    for _, latest, duration in reversed(breaks):
        start = min(latest, cur - duration)
        left -= min(left, cur - (start + duration))
        cur = start
    return cur - left


def schedule(
    t0: int,
    visits: Sequence[Visit],
    travel_end_s: int,
    shift_end: int,
    breaks: Sequence[Break] = (),
) -> Timing | None:
    """The earliest timing of ``visits`` in this order, or None if no timing keeps every
    window, break and the shift end.

    ``t0``: earliest departure from the start; ``travel_end_s``: from the last stop (or
    the start, with no stops) to the end, 0 when the route ends at its last stop.
    The first stop's arrival is reported equal to its start (the worker leaves just in
    time); later arrivals are the earliest. Slack: how much later a stop could start
    with every later stop, break and the shift end still kept.
    """
    n_breaks = len(breaks)
    # layers[k][m] = (earliest departure after point k with m breaks taken, parent m,
    # break starts in the gap before point k, arrival, start); point 0 is the start.
    layers: list[dict[int, tuple[int, int, list[int], int, int]]] = [{0: (t0, 0, [], t0, t0)}]
    for visit in visits:
        layer: dict[int, tuple[int, int, list[int], int, int]] = {}
        for m, (t, *_rest) in layers[-1].items():
            for j in range(m, n_breaks + 1):
                through = _through_gap(t, breaks[m:j], visit.travel_in_s)
                if through is None:
                    break  # taking even more breaks here cannot help
                arrival, starts = through
                start = max(arrival, visit.window[0])
                if start > visit.window[1]:
                    continue
                departure = start + visit.service_s
                if j not in layer or departure < layer[j][0]:
                    layer[j] = (departure, m, starts, arrival, start)
        if not layer:
            return None
        layers.append(layer)

    best: tuple[int, int, int, list[int], list[int]] | None = None  # end, m_last, m_end, ...
    for m, (t, *_rest) in layers[-1].items():
        for j in range(m, n_breaks + 1):
            through = _through_gap(t, breaks[m:j], travel_end_s)
            if through is None:
                break
            end, starts = through
            if end > shift_end:
                continue
            rest = _through_gap(end, breaks[j:], 0)  # the rest after the route's end
            if rest is None:
                continue
            if best is None or end < best[0]:
                best = (end, m, j, starts, rest[1])
    if best is None:
        return None

    end_s, m, _, end_gap_starts, after_starts = best
    n = len(visits)
    starts_rev: list[int] = []
    arrivals_rev: list[int] = []
    gap_breaks: list[list[int]] = []  # per stop, the break indices taken just before it
    gap_starts: list[list[int]] = []
    for k in range(n, 0, -1):
        _, parent, b_starts, arrival, start = layers[k][m]
        starts_rev.append(start)
        arrivals_rev.append(arrival)
        gap_breaks.append(list(range(parent, m)))
        gap_starts.append(b_starts)
        m = parent
    starts = starts_rev[::-1]
    arrivals = arrivals_rev[::-1]
    gap_breaks.reverse()
    gap_starts.reverse()
    if n:
        arrivals[0] = starts[0]
    departures = [s + v.service_s for s, v in zip(starts, visits, strict=True)]

    taken_last = best[1]
    end_gap = list(breaks[taken_last : best[2]])
    after = list(breaks[best[2] :])
    # Backward: latest end, then latest start per stop with the same break placement.
    deadline = shift_end
    cur = INF
    for _, latest, duration in reversed(after):
        cur = min(latest, cur - duration)
    deadline = min(deadline, cur)
    latest_dep = _latest_before(deadline, end_gap, travel_end_s)
    slacks_rev: list[int] = []
    for k in range(n - 1, -1, -1):
        visit = visits[k]
        latest_start = min(visit.window[1], latest_dep - visit.service_s)
        slacks_rev.append(max(0, latest_start - starts[k]))
        gap = [breaks[i] for i in gap_breaks[k]]
        latest_dep = _latest_before(latest_start, gap, visit.travel_in_s)

    placed: list[tuple[int, int]] = []
    for k in range(n):
        placed += [(s, breaks[i][2]) for s, i in zip(gap_starts[k], gap_breaks[k], strict=True)]
    placed += [(s, b[2]) for s, b in zip(end_gap_starts, end_gap, strict=True)]
    placed += [(s, b[2]) for s, b in zip(after_starts, after, strict=True)]
    return Timing(
        arrivals=tuple(arrivals),
        starts=tuple(starts),
        departures=tuple(departures),
        slacks=tuple(slacks_rev[::-1]),
        breaks=tuple(placed),
        end_s=end_s,
    )
