"""Reports: JSON for machines, one self-contained HTML page for people (plots as PNGs
embedded in base64, so the page is a single file to mail or attach to an issue)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: draw to files

import matplotlib.pyplot as plt
import orjson
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from simulations import kpi
from simulations.runner import RunResult

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")

# (label, path into kpis, unit, better: "low" | "high" | None)
ROWS: tuple[tuple[str, tuple[str, ...], str, str | None], ...] = (
    ("orders created", ("orders", "created"), "", None),
    ("served (completed)", ("orders", "served"), "", "high"),
    ("failed", ("orders", "failed"), "", "low"),
    ("cancelled (by the customer)", ("orders", "cancelled_by_customer"), "", "low"),
    ("cancelled (all)", ("orders", "cancelled"), "", "low"),
    ("unfinished at the end", ("orders", "unfinished"), "", "low"),
    ("fulfilment (served / not cancelled)", ("orders", "fulfilment"), "%", "high"),
    ("time to assign p50", ("orders", "time_to_assign_s", "p50"), "s", "low"),
    ("time to assign p90", ("orders", "time_to_assign_s", "p90"), "s", "low"),
    ("customer wait to arrival, mean", ("orders", "wait_to_arrival_s", "mean"), "s", "low"),
    ("customer wait to arrival p50", ("orders", "wait_to_arrival_s", "p50"), "s", "low"),
    ("customer wait to arrival p90", ("orders", "wait_to_arrival_s", "p90"), "s", "low"),
    ("ETA |error| p50", ("orders", "eta_error_s", "p50"), "s", "low"),
    ("ETA |error| p90", ("orders", "eta_error_s", "p90"), "s", "low"),
    ("ETA signed error p50 (actual - p50)", ("orders", "eta_signed_error_s", "p50"), "s", None),
    ("arrivals inside the ETA range [p50, p90]", ("orders", "eta_in_range_share"), "%", "high"),
    ("arrivals by the ETA's p90", ("orders", "eta_by_p90_share"), "%", "high"),
    ("scheduled: arrived within the window", ("orders", "scheduled_in_window_share"), "%", "high"),
    ("scheduled: arrived late", ("orders", "scheduled_late"), "", "low"),
    ("scheduled: late after an instant job", ("orders", "scheduled_late_after_instant"), "", "low"),
    ("worker utilization (holding a job)", ("workers", "utilization"), "%", None),
    ("km per completed job", ("workers", "km_per_job"), "km", "low"),
    ("Gini of jobs across workers", ("workers", "gini_jobs"), "", "low"),
    ("Gini of earnings across workers", ("workers", "gini_earnings"), "", "low"),
    ("booking to first dispatch decision p50", ("orders", "first_decision_s", "p50"), "s", "low"),
    ("dispatch tick (deciding) p50", ("dispatch", "tick_p50_ms"), "ms", "low"),
    ("dispatch tick (deciding) p99", ("dispatch", "tick_p99_ms"), "ms", "low"),
    ("ingest (fixes accepted / s)", ("dispatch", "ingest_fixes_per_s"), "/s", None),
    ("fix to index (ack) p50", ("latency", "fix_to_index_ms", "p50"), "ms", "low"),
    ("fix to index (ack) p99", ("latency", "fix_to_index_ms", "p99"), "ms", "low"),
    ("fan-out lag p50", ("latency", "fanout_lag_ms", "p50"), "ms", "low"),
    ("fan-out lag p99", ("latency", "fanout_lag_ms", "p99"), "ms", "low"),
)


def dig(data: dict[str, Any], path: Sequence[str]) -> Any:
    """``data[path[0]][path[1]]...`` or None."""
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def fmt(value: Any, unit: str) -> str:
    """A KPI for a table."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "%":
        return f"{value * 100:.1f} %"
    if isinstance(value, float):
        return f"{value:,.2f} {unit}".strip() if abs(value) < 10 else f"{value:,.1f} {unit}".strip()
    return f"{value:,} {unit}".strip()


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (and closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _cdf(ax: Axes, values: Sequence[float], label: str, color: str, scale: float = 1.0) -> None:
    if not values:
        return
    xs = [0.0, *sorted(v / scale for v in values)]
    ys = [i / (len(xs) - 1) for i in range(len(xs))]
    ax.step(xs, ys, where="post", label=label, color=color)


def _timeline(ax: Axes, r: RunResult, color: str, label: str, stacked: bool) -> None:
    s = r.series
    t = [x / 60 for x in s["t"]]
    if not t:
        return
    if stacked:
        ax.stackplot(
            t,
            s["busy"],
            s["idle"],
            s["off"],
            labels=["busy", "idle", "off shift"],
            colors=("#d62728", "#2ca02c", "#cccccc"),
            alpha=0.6,
        )
        ax2 = ax.twinx()
        ax2.plot(t, s["open_orders"], color="black", label="open orders")
        ax2.set_ylabel("open orders")
        ax2.legend(loc="upper right", fontsize=8)
        ax.legend(loc="upper left", fontsize=8)
        ax.set_ylabel("workers")
    else:
        on = [b + i for b, i in zip(s["busy"], s["idle"], strict=True)]
        util = [b / n if n else math.nan for b, n in zip(s["busy"], on, strict=True)]
        ax.plot(t, util, color=color, label=f"{label}: busy share")
        ax.set_ylabel("busy / on shift")
        ax.set_ylim(0, 1.05)
    ax.axvline(r.scenario.duration_min, color="grey", ls=":", lw=1)
    if r.scenario.warmup_min:
        ax.axvline(r.scenario.warmup_min, color="grey", ls="--", lw=1)
    ax.set_xlabel("minutes (wall clock); dashed: warm-up ends; dotted: bookings stop")


def _rates(series: dict[str, list[float]], key: str) -> tuple[list[float], list[float]]:
    t, v = series["t"], series[key]
    xs, ys = [], []
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        if dt > 0 and not (math.isnan(v[i]) or math.isnan(v[i - 1])):
            xs.append(t[i] / 60)
            ys.append((v[i] - v[i - 1]) / dt)
    return xs, ys


def run_figure(results: Sequence[RunResult]) -> bytes:
    """Six panels; several runs are overlaid (a comparison)."""
    fig, axes = plt.subplots(3, 2, figsize=(12, 12))
    many = len(results) > 1
    for i, r in enumerate(results):
        c = COLORS[i % len(COLORS)]
        instant = [o for o in r.orders if o.kind == "instant"]
        _timeline(axes[0][0], r, c, r.label, stacked=not many)
        _cdf(
            axes[0][1],
            [o.arrived - o.booked for o in instant if o.arrived is not None],
            f"{r.label}: booking → arrival",
            c,
            60,
        )
        _cdf(
            axes[0][1],
            [o.assigned - o.booked for o in instant if o.assigned is not None],
            f"{r.label}: booking → assigned",
            c,
            60,
        )
        axes[0][1].lines[-1].set_linestyle("--")
        eta = [
            (o.eta_p50_s, o.eta_p90_s, o.arrived - o.eta_at)
            for o in r.orders
            if o.arrived is not None
            and o.eta_at is not None
            and o.eta_p50_s is not None
            and o.eta_p90_s is not None
        ]
        if eta:
            axes[1][0].scatter(
                [e[0] / 60 for e in eta],
                [e[2] / 60 for e in eta],
                s=10,
                color=c,
                alpha=0.6,
                label=f"{r.label}: actual vs ETA p50",
            )
        on = [w for w in r.workers if kpi.overlap_s(w.shifts, (0.0, r.scenario.duration_s)) > 0]
        for amounts, ls, what in (
            ([float(w.completed) for w in on], "-", "jobs"),
            ([float(w.earnings_minor) for w in on], "--", "earnings"),
        ):
            xs, ys = kpi.lorenz(amounts)
            axes[1][1].plot(
                xs, ys, ls=ls, color=c, label=f"{r.label}: {what}, Gini {kpi.gini(amounts):.3f}"
            )
        lags = [max(v, 0.01) for v in r.lags_ms]
        acks = [max(v, 0.01) for v in r.acks_ms]
        bins = [10 ** (k / 10) for k in range(-10, 41)]
        if lags:
            axes[2][0].hist(
                lags,
                bins=bins,
                histtype="step",
                color=c,
                label=f"{r.label}: fan-out lag (n={len(lags)})",
            )
        if acks:
            axes[2][0].hist(
                acks,
                bins=bins,
                histtype="step",
                color=c,
                ls="--",
                label=f"{r.label}: fix → index (n={len(acks)})",
            )
        xs, ys = _rates(r.series, "fixes_accepted")
        axes[2][1].plot(xs, ys, color=c, label=f"{r.label}: fixes accepted / s")
        xs, ys = _rates(r.series, "live_delivered")
        axes[2][1].plot(xs, ys, color=c, ls="--", label=f"{r.label}: live messages delivered / s")
    axes[0][0].set_title(
        "Workers and open orders over the run"
        if not many
        else "Share of on-shift workers holding a job"
    )
    if many:
        axes[0][0].legend(fontsize=8)
    axes[0][1].set_title("Instant orders: time from booking (CDF)")
    axes[0][1].set_xlabel("minutes")
    axes[0][1].set_ylabel("share of orders")
    axes[0][1].legend(fontsize=8)
    ax = axes[1][0]
    lim = max([1.0, *[p.get_offsets()[:, :].max() for p in ax.collections if len(p.get_offsets())]])
    ax.plot([0, lim], [0, lim], color="grey", lw=1, label="actual = ETA p50")
    ax.set_title("ETA at departure against the actual trip")
    ax.set_xlabel("ETA p50 (minutes)")
    ax.set_ylabel("actual, departure → arrival (minutes)")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    ax.plot([0, 1], [0, 1], color="grey", lw=1)
    ax.set_title("Fairness: Lorenz curves over workers on shift")
    ax.set_xlabel("share of workers (fewest first)")
    ax.set_ylabel("share of jobs / earnings")
    ax.legend(fontsize=8)
    ax = axes[2][0]
    ax.set_xscale("log")
    ax.set_title("Latency: fix → customer's screen (solid), fix → ack (dashed)")
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("messages")
    ax.legend(fontsize=8)
    ax = axes[2][1]
    ax.set_title("Ingest and fan-out rate (server /metrics)")
    ax.set_xlabel("minutes")
    ax.set_ylabel("per second")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png(fig)


def _table(results: Sequence[RunResult]) -> str:
    head = "".join(f"<th>{html.escape(r.label)}</th>" for r in results)
    if len(results) == 2:
        head += f"<th>{html.escape(results[0].label)} vs {html.escape(results[1].label)}</th>"
    rows = []
    for label, path, unit, better in ROWS:
        values = [dig(r.kpis, path) for r in results]
        cells = "".join(f"<td>{fmt(v, unit)}</td>" for v in values)
        if len(results) == 2:
            a, b = values
            diff = ""
            if isinstance(a, int | float) and isinstance(b, int | float) and b:
                change = (a - b) / abs(b)
                diff = f"{change * 100:+.1f} %"
                if better is not None and abs(change) > 0.005:
                    good = (change < 0) == (better == "low")
                    diff = f'<span class="{"good" if good else "bad"}">{diff}</span>'
            cells += f"<td>{diff}</td>"
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child{text-align:left}.good{color:#2a7d2a}.bad{color:#b22}img{max-width:100%}
.note{background:#f6f6f0;border-left:4px solid #cc9;padding:.5em 1em}code{background:#eee;padding:0 .2em}
"""


def _about(r: RunResult) -> str:
    s = r.scenario
    m = r.meta
    return (
        f"<p>Scenario <code>{html.escape(s.name)}</code>, seed {s.seed}; server {html.escape(str(m.get('server')))}"
        f" (policy <b>{html.escape(str(m.get('policy')))}</b>); started {html.escape(str(m.get('started')))}, ran "
        f"{m.get('ran_s')} s; {s.workers.count} workers, {m.get('bookings_planned')} bookings planned over "
        f"{s.duration_min:g} min. KPIs count orders booked after the {s.warmup_min:g}-minute warm-up "
        "(and workers over the same span); <code>orders_with_warmup</code> in the JSON counts all.</p>"
        f'<p class="note">Time: the demand curve, shifts and time on site run {s.time_scale:g}× faster '
        f"than the wall clock (simulated day from {s.start_hour:g}:00); travel, offers, dispatch ticks, "
        "ETAs and every latency are real wall-clock time, because the server times them. Demand follows "
        "the hourly shape of LaDe-P parcel pickups (a proxy for home-service bookings).</p>"
    )


def _problems(results: Sequence[RunResult]) -> str:
    out = []
    for r in results:
        problems = r.meta.get("problems") or []
        if problems:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in problems[:30])
            out.append(
                f"<h3>{html.escape(r.label)}: {len(problems)} problems noted</h3><ul>{items}</ul>"
            )
    return "".join(out)


def eta_hours_table(results: Sequence[RunResult]) -> str:
    """Arrivals by the ETA's p90 per simulated hour, one column per run ("" if none)."""
    per = [dig(r.kpis, ("orders", "eta_by_p90_by_hour")) or {} for r in results]
    hours = sorted({h for p in per for h in p})
    if not hours:
        return ""
    head = "".join(f"<th>{html.escape(r.label)}</th>" for r in results)
    rows = []
    for h in hours:
        cells = []
        for p in per:
            c = p.get(h)
            share = c["by_p90_share"] if c else None
            mark = "" if share is None or share >= 0.9 else ' class="bad"'
            text = f"{fmt(share, '%')} of {c['n']}" if c else "–"
            cells.append(f"<td{mark}>{text}</td>")
        rows.append(f"<tr><th>{h}:00</th>{''.join(cells)}</tr>")
    return (
        "<h2>ETA p90 coverage per simulated hour</h2><p>Arrivals by the p90 of the first ETA "
        "shown after departure, by the hour it was shown (target: ≥ 90 % in every hour).</p>"
        f"<table><tr><th>hour</th>{head}</tr>{''.join(rows)}</table>"
    )


def page(
    title: str, intro: str, results: Sequence[RunResult], figure: bytes, extra: str = ""
) -> str:
    """The HTML page."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{intro}{extra}"
        f"<h2>KPIs</h2>{_table(results)}{eta_hours_table(results)}"
        f"<h2>Plots</h2>{img(figure, title)}{_problems(results)}"
        "<p>Definitions: docs/simulation.md. Raw figures: report.json next to this page.</p></body></html>"
    )


def result_json(r: RunResult) -> dict[str, Any]:
    """A run as JSON-able data (orders and workers included, raw latencies summarised)."""
    return {
        "meta": r.meta,
        "kpis": r.kpis,
        "series": r.series,
        "orders": [asdict(o) for o in r.orders],
        "workers": [asdict(w) for w in r.workers],
    }


def _write(out_dir: Path, data: Any, page_html: str, figure: bytes) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "html": out_dir / "report.html",
        "png": out_dir / "report.png",
    }
    paths["json"].write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    paths["html"].write_text(page_html, encoding="utf-8")
    paths["png"].write_bytes(figure)
    return paths


def write_run(r: RunResult, out_dir: Path) -> dict[str, Path]:
    """report.json, report.html and report.png of one run."""
    figure = run_figure([r])
    title = f"Doorstep city simulation: {r.scenario.name} ({r.label})"
    return _write(out_dir, result_json(r), page(title, _about(r), [r], figure), figure)


def write_compare(
    results: Sequence[RunResult], verdict: dict[str, Any], out_dir: Path
) -> dict[str, Path]:
    """The same scenario under several policies, side by side."""
    figure = run_figure(results)
    title = f"Doorstep policy comparison: {results[0].scenario.name}"
    lines = "".join(
        f"<li>{html.escape(k)}: <b>{html.escape(str(v))}</b></li>" for k, v in verdict.items()
    )
    extra = f"<h2>Target</h2><ul>{lines}</ul>"
    data = {"verdict": verdict, "runs": {r.label: result_json(r) for r in results}}
    return _write(out_dir, data, page(title, _about(results[0]), results, figure, extra), figure)
