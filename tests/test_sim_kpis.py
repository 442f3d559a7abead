"""The simulator's issue-20 KPIs, pure: scheduled jobs made late by instant dispatch, and
ETA p90 coverage per simulated hour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulations.kpi import OrderOutcome, eta_coverage_by_hour, late_after_instant, order_kpis
from simulations.sweep import level_row, write_sweep


def _o(i: int, kind: str, worker: int | None, **times: Any) -> OrderOutcome:
    return OrderOutcome(i, kind, "completed", worker, 100, **times)


def test_a_late_scheduled_job_counts_only_if_its_worker_took_an_instant_job_meanwhile() -> None:
    """Late after an instant job taken between booking and arrival: counted; late without one, or on time: not."""
    orders = [
        _o(1, "scheduled", 7, booked=0.0, arrived=500.0, window_start=100.0, window_end=400.0),
        _o(2, "instant", 7, booked=50.0, assigned=60.0, arrived=80.0),
        _o(3, "scheduled", 8, booked=0.0, arrived=500.0, window_start=100.0, window_end=400.0),
        _o(4, "instant", 8, booked=600.0, assigned=610.0, arrived=620.0),  # after: not the cause
        _o(5, "scheduled", 7, booked=0.0, arrived=300.0, window_start=100.0, window_end=400.0),
    ]
    assert late_after_instant(orders) == [1]
    k = order_kpis(orders)
    assert (k["scheduled_late"], k["scheduled_late_after_instant"]) == (2, 1)


def test_eta_coverage_is_reported_per_simulated_hour() -> None:
    """Arrivals by the p90 over arrivals with an ETA, grouped by the hour the ETA was shown."""
    orders = [
        _o(1, "instant", 1, booked=0.0, arrived=100.0, eta_at=10.0, eta_p50_s=60.0, eta_p90_s=95.0),
        _o(2, "instant", 1, booked=0.0, arrived=200.0, eta_at=20.0, eta_p50_s=60.0, eta_p90_s=90.0),
        _o(
            3, "instant", 1, booked=0.0, arrived=400.0, eta_at=350.0, eta_p50_s=30.0, eta_p90_s=60.0
        ),
        _o(4, "instant", 1, booked=0.0),  # never arrived: not counted
    ]
    by_hour = eta_coverage_by_hour(orders, lambda t: 9 + int(t // 300))
    assert by_hour == {
        "09": {"n": 2, "by_p90_share": 0.5},
        "10": {"n": 1, "by_p90_share": 1.0},
    }
    assert order_kpis(orders, lambda t: 9)["eta_by_p90_by_hour"]["09"]["n"] == 3


def _kpis(util: float, wait: float, gini: float, fulfil: float) -> dict[str, object]:
    return {
        "workers": {
            "utilization": util,
            "gini_jobs": gini,
            "gini_earnings": gini,
            "km_per_job": 1.0,
        },
        "orders": {
            "wait_to_arrival_s": {"mean": wait, "p90": 2 * wait},
            "fulfilment": fulfil,
            "created": 100,
            "served": round(100 * fulfil),
            "failed": 100 - round(100 * fulfil),
            "cancelled": 0,
            "unfinished": 0,
            "eta_by_p90_share": 0.9,
        },
    }


def test_the_sweep_checks_the_target_per_level_and_writes_one_self_contained_page(
    tmp_path: Path,
) -> None:
    """No worse than greedy below 85 %, 20 % lower from 85 %, Gini and fulfilment per level with its split (served, failed, open); the page has an inline SVG and no outside URL."""
    low = level_row(2.5, {"batch": _kpis(0.4, 100, 0.15, 1.0), "greedy": _kpis(0.4, 101, 0.2, 1.0)})
    high = level_row(
        5.0, {"batch": _kpis(0.88, 350, 0.1, 0.99), "greedy": _kpis(0.86, 400, 0.1, 0.97)}
    )
    assert low["target"]["wait_met"]
    assert low["target"]["wait_cut_needed"] == 0.0
    assert high["target"]["wait_cut_needed"] == 0.2
    assert not high["target"]["wait_met"]  # 12.5 % is not 20 %
    assert high["target"]["gini_met"]
    assert high["target"]["fulfilment_met"]
    assert (high["greedy"]["served"], high["greedy"]["failed"]) == (97, 3)  # fulfilment's split
    data = {
        "scenario": "s",
        "workers": 60,
        "time_scale": 12.0,
        "quick": True,
        "started": "a",
        "ended": "b",
        "wall_min": 30.0,
        "levels": [low, high],
    }
    paths = write_sweep(data, tmp_path)
    text = paths["html"].read_text(encoding="utf-8")
    assert "<svg" in text
    assert text.count("<polyline") == 6  # 3 panels × 2 policies
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text
    assert json.loads(paths["json"].read_text())["levels"][1]["target"]["wait_cut"] == 0.125
    assert "batch without chaining or rotation" in text


def test_the_sweep_page_names_the_batch_servers_chaining_and_rotation(tmp_path: Path) -> None:
    """A sweep run with --chain-s and --rotation-s says so in its report's heading."""
    row = level_row(2.5, {"batch": _kpis(0.4, 100, 0.15, 1.0), "greedy": _kpis(0.4, 101, 0.2, 1.0)})
    data = {
        "scenario": "s",
        "workers": 60,
        "time_scale": 12.0,
        "quick": False,
        "started": "a",
        "ended": "b",
        "wall_min": 70.0,
        "levels": [row],
        "batch_params": {"chain_s": 300.0, "rotation_slack_s": 60.0},
    }
    text = write_sweep(data, tmp_path)["html"].read_text(encoding="utf-8")
    assert "batch with chain_s = 300 s, rotation_slack_s = 60 s" in text


def test_the_run_report_lists_eta_coverage_per_hour_and_marks_hours_below_90_percent() -> None:
    """One row per simulated hour, one column per run; an hour under 90 % is marked bad."""
    from types import SimpleNamespace
    from typing import Any, cast

    from simulations.report import eta_hours_table

    runs: Any = [
        SimpleNamespace(
            label="batch",
            kpis={
                "orders": {
                    "eta_by_p90_by_hour": {
                        "09": {"n": 10, "by_p90_share": 0.95},
                        "10": {"n": 5, "by_p90_share": 0.8},
                    }
                }
            },
        )
    ]
    text = eta_hours_table(cast(Any, runs))
    assert "<th>09:00</th><td>95.0 % of 10</td>" in text
    assert '<th>10:00</th><td class="bad">80.0 % of 5</td>' in text
    assert eta_hours_table(cast(Any, [SimpleNamespace(label="x", kpis={})])) == ""


def test_the_sweep_plot_leaves_out_an_axis_label_that_would_overlap_the_one_before() -> None:
    """Two levels at 86 % and 88 % utilization: their points are both drawn, the axis labels only 86 % (they would overlap)."""
    from simulations.sweep import svg_plot

    high = level_row(
        5.0, {"batch": _kpis(0.86, 350, 0.1, 0.99), "greedy": _kpis(0.88, 400, 0.1, 0.97)}
    )
    svg = svg_plot([high])
    assert svg.count(">86%</text>") == 3  # one per panel
    assert ">88%</text>" not in svg
    assert svg.count("<circle") == 6  # 3 panels × 2 policies, one level
