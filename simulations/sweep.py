"""``python -m simulations sweep``: both matching policies at several loads, one report.

Each load level is the scenario with ``[demand] orders_per_min`` set to the level's rate;
at each level batch and greedy run the same seeded demand at the same time, each on a
fresh server of its own (as ``compare`` does). The report puts mean customer wait, the
Gini of jobs and fulfilment against the utilization each run reached, for both
policies, and checks issue 20's target at every level: batch's mean wait no worse than
greedy's (≥ 20 % lower at ≥ 85 % utilization), batch's Gini of jobs ≤ 0.2 and its
fulfilment ≥ 98 %.

``--quick`` shortens every run (bookings for 12 wall minutes, 4 of them warm-up, up to
10 of drain), gives each API call 120 s instead of 30 (set-up on a busy machine) and
runs two levels at a time: a rough figure in ~1 h instead of ~5 h. A level that fails (e.g. its set-up timed out) is reported as such and
the others go on. The page is one file, the plot an inline SVG (no script, no CDN).
"""

from __future__ import annotations

import asyncio
import html
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import orjson

from matching.params import MatchParams
from simulations.scenario import Scenario

DEFAULT_RATES = (2.5, 3.6, 5.0, 5.8)  # bookings/min: greedy reached 34, 58, 80, 91 % on futian-rush
QUICK = {"duration_min": 12.0, "warmup_min": 4.0, "drain_min": 10.0}
COLORS = {"batch": "#1f77b4", "greedy": "#d62728"}


def level_scenario(base: Scenario, rate: float, *, quick: bool) -> Scenario:
    """The base scenario at ``rate`` bookings a minute (shortened with ``quick``)."""
    demand = msgspec.structs.replace(base.demand, orders_per_min=rate)
    extra: dict[str, Any] = dict(QUICK) if quick else {}
    return msgspec.structs.replace(base, name=f"{base.name}-{rate:g}", demand=demand, **extra)


def level_row(rate: float, by: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One level's figures for both policies and the target checked."""
    row: dict[str, Any] = {"orders_per_min": rate}
    for policy, k in by.items():
        row[policy] = {
            "utilization": k["workers"]["utilization"],
            "wait_mean_s": k["orders"]["wait_to_arrival_s"]["mean"],
            "wait_p90_s": k["orders"]["wait_to_arrival_s"]["p90"],
            "gini_jobs": k["workers"]["gini_jobs"],
            "gini_earnings": k["workers"]["gini_earnings"],
            "fulfilment": k["orders"]["fulfilment"],
            "orders": k["orders"]["created"],
            # What fulfilment leaves out: failed, or still open when the drain ended
            # (cancelled orders are outside its denominator).
            **{n: k["orders"].get(n) for n in ("served", "failed", "cancelled", "unfinished")},
            "km_per_job": k["workers"]["km_per_job"],
            "eta_by_p90_share": k["orders"]["eta_by_p90_share"],
        }
    row["target"] = target(row)
    return row


def target(row: dict[str, Any]) -> dict[str, Any]:
    """Issue 20 §2 at one level: met or not, and the numbers."""
    b, g = row.get("batch"), row.get("greedy")
    if not b or not g:
        return {}
    wb, wg = b["wait_mean_s"], g["wait_mean_s"]
    cut = (wg - wb) / wg if wb is not None and wg else None
    util = (
        min(u for u in (b["utilization"], g["utilization"]) if u is not None)
        if (b["utilization"] is not None and g["utilization"] is not None)
        else None
    )
    need = 0.20 if util is not None and util >= 0.85 else 0.0
    return {
        "wait_cut": round(cut, 4) if cut is not None else None,
        "wait_cut_needed": need,
        "wait_met": cut is not None and cut >= need,
        "gini_met": b["gini_jobs"] is not None and b["gini_jobs"] <= 0.2,
        "fulfilment_met": b["fulfilment"] is not None and b["fulfilment"] >= 0.98,
    }


def _scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
    return a + (v - lo) / (hi - lo) * (b - a) if hi > lo else (a + b) / 2


def svg_plot(rows: Sequence[dict[str, Any]]) -> str:
    """Three panels (mean wait, Gini of jobs, fulfilment) against utilization, one line
    per policy, as inline SVG."""
    panels = (
        ("wait_mean_s", "mean wait (s) · 平均等待", None),
        ("gini_jobs", "Gini of jobs · 接单基尼系数", 0.2),
        ("fulfilment", "fulfilment · 履约率", 0.98),
    )
    w, h, pad = 300, 220, 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{3 * w}" height="{h + 30}" '
        f'viewBox="0 0 {3 * w} {h + 30}" font-family="sans-serif" font-size="11">'
    ]
    utils = [
        r[p]["utilization"]
        for r in rows
        for p in COLORS
        if p in r and r[p]["utilization"] is not None
    ]
    ulo, uhi = (min([*utils, 0.4]), max([*utils, 1.0])) if utils else (0.4, 1.0)
    for i, (key, title, line) in enumerate(panels):
        x0 = i * w
        vals = [r[p][key] for r in rows for p in COLORS if p in r and r[p][key] is not None] + (
            [line] if line is not None else []
        )
        vlo, vhi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        if key == "wait_mean_s":
            vlo = 0.0
        margin = (vhi - vlo) * 0.1 or 0.05
        vlo, vhi = vlo - (margin if key != "wait_mean_s" else 0), vhi + margin

        def px(u: float, x0: int = x0) -> float:
            return _scale(u, ulo, uhi, x0 + pad, x0 + w - 10)

        def py(v: float, vlo: float = vlo, vhi: float = vhi) -> float:
            return _scale(v, vlo, vhi, h - 25, 20)

        out.append(f'<text x="{x0 + pad}" y="12" font-weight="bold">{html.escape(title)}</text>')
        out.append(
            f'<rect x="{x0 + pad}" y="20" width="{w - pad - 10}" height="{h - 45}" '
            'fill="none" stroke="#999"/>'
        )
        for frac in (0.0, 0.5, 1.0):
            v = vlo + frac * (vhi - vlo)
            out.append(
                f'<text x="{x0 + pad - 4}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>'
            )
        last_x = -1e9
        for u in sorted({round(x, 2) for x in utils}):
            if px(u) - last_x < 28:  # closer than a label's width: the next one only
                continue
            last_x = px(u)
            out.append(
                f'<text x="{px(u):.1f}" y="{h - 12}" text-anchor="middle">{u * 100:.0f}%</text>'
            )
        out.append(
            f'<text x="{x0 + w / 2 + 15:.0f}" y="{h + 2}" text-anchor="middle">'
            "utilization · 利用率</text>"
        )
        if line is not None:
            out.append(
                f'<line x1="{x0 + pad}" x2="{x0 + w - 10}" y1="{py(line):.1f}" '
                f'y2="{py(line):.1f}" stroke="#2ca02c" stroke-dasharray="4 3"/>'
            )
        for policy, color in COLORS.items():
            pts = sorted(
                (r[policy]["utilization"], r[policy][key])
                for r in rows
                if policy in r
                and r[policy]["utilization"] is not None
                and r[policy][key] is not None
            )
            if not pts:
                continue
            path = " ".join(f"{px(u):.1f},{py(v):.1f}" for u, v in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            for u, v in pts:
                out.append(f'<circle cx="{px(u):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>')
    for j, (policy, color) in enumerate(COLORS.items()):
        out.append(
            f'<rect x="{10 + j * 90}" y="{h + 14}" width="12" height="4" fill="{color}"/>'
            f'<text x="{26 + j * 90}" y="{h + 20}">{policy}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _batch_params(bp: dict[str, Any]) -> str:
    """The batch servers' chaining and rotation settings, for the report's heading."""
    chain, rot = bp.get("chain_s") or 0, bp.get("rotation_slack_s") or 0
    if not chain and not rot:
        return "; batch without chaining or rotation"
    return f"; batch with chain_s = {chain:g} s, rotation_slack_s = {rot:g} s"


def page(data: dict[str, Any]) -> str:
    """The sweep's report: the plot, a table per level, the target per level."""
    rows = data["levels"]

    def f(v: Any, pct: bool = False) -> str:
        if v is None:
            return "–"
        return f"{v * 100:.1f} %" if pct else (f"{v:g}" if isinstance(v, int | float) else str(v))

    trs = []
    for r in rows:
        if "error" in r:
            trs.append(
                f"<tr><td>{r['orders_per_min']:g}</td>"
                f'<td colspan="9">failed: {html.escape(r["error"])}</td></tr>'
            )
        t = r.get("target", {})
        for p in COLORS:
            if p not in r:
                continue
            k = r[p]
            trs.append(
                f"<tr><td>{r['orders_per_min']:g}</td><td>{p}</td><td>{f(k['utilization'], True)}</td>"
                f"<td>{f(k['wait_mean_s'])}</td><td>{f(k['wait_p90_s'])}</td>"
                f"<td>{f(k['gini_jobs'])}</td><td>{f(k['fulfilment'], True)}</td>"
                f"<td>{f(k['orders'])}</td><td>{f(k['km_per_job'])}</td>"
                + (
                    f"<td>{f(t.get('wait_cut'), True)} (need ≥ {t.get('wait_cut_needed', 0) * 100:.0f} %)"
                    f" {'✓' if t.get('wait_met') else '✗'} · Gini {'✓' if t.get('gini_met') else '✗'}"
                    f" · fulfilment {'✓' if t.get('fulfilment_met') else '✗'}</td>"
                    if p == "batch" and t
                    else "<td></td>"
                )
                + "</tr>"
            )
    about = html.escape(
        f"scenario {data['scenario']}, {data['workers']} workers, time scale "
        f"{data['time_scale']:g}×, {'quick' if data['quick'] else 'full'} sweep, "
        f"{data['started']} – {data['ended']} ({data['wall_min']:.0f} min)"
        + _batch_params(data.get("batch_params", {}))
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>派单策略负载扫描 · Policy sweep</title>
<style>body{{font-family:sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}th{{background:#f4f4f4}}</style>
</head><body>
<h1>派单策略负载扫描 <small>Matching policies at four loads</small></h1>
<p>{about}</p>
<p>目标 Target (issue 20 §2): batch 的平均等待不差于 greedy，利用率 ≥ 85 % 时低 ≥ 20 %；
batch 接单基尼系数 ≤ 0.2，履约率 ≥ 98 %。Batch's mean wait no worse than greedy's at every
level and ≥ 20 % lower at ≥ 85 % utilization; batch's Gini of jobs ≤ 0.2 and fulfilment ≥ 98 %.</p>
{svg_plot(rows)}
<table><tr><th>bookings/min</th><th>policy</th><th>utilization</th><th>mean wait s</th>
<th>p90 wait s</th><th>Gini of jobs</th><th>fulfilment</th><th>orders</th><th>km/job</th>
<th>target (batch vs greedy)</th></tr>
{"".join(trs)}</table>
</body></html>
"""


async def run_sweep(
    base: Scenario,
    stores: tuple[str, str],
    out: Path,
    *,
    rates: Sequence[float] = DEFAULT_RATES,
    quick: bool = False,
    parallel_levels: int = 1,
    chain_s: float | None = None,
    rotation_s: float | None = None,
) -> dict[str, Any]:
    """Run every level (both policies at once each), write sweep.json and sweep.html.

    ``chain_s`` and ``rotation_s`` set ``[matching] chain_s`` and ``rotation_slack_s`` on the
    batch servers (None: the defaults; greedy decides by the nearest free worker's ETA
    alone, so they would change nothing there)."""
    from simulations.runner import RunResult, run
    from simulations.server import local_server, matching_lines

    defaults = MatchParams()
    started = time.time()
    gate = asyncio.Semaphore(parallel_levels)
    batch_params = matching_lines(chain_s=chain_s, rotation_s=rotation_s)

    async def one(scenario: Scenario, policy: str, show: bool) -> RunResult:
        extra = batch_params if policy == "batch" else ""
        async with local_server(
            stores, out / scenario.name, label=policy, policy=policy, params_extra=extra
        ) as srv:
            return await run(
                scenario,
                srv.url,
                admin_phone=srv.admin_phone,
                admin_password=srv.admin_password,
                label=policy,
                progress=show,
                http_timeout_s=120.0,  # set-up calls on a busy machine (several servers at once)
            )

    async def level(i: int, rate: float) -> dict[str, Any]:
        async with gate:
            scenario = level_scenario(base, rate, quick=quick)
            try:  # a task group: if one policy's run fails, the other is stopped too
                async with asyncio.TaskGroup() as tg:
                    pair = [
                        tg.create_task(one(scenario, "batch", i == 0)),
                        tg.create_task(one(scenario, "greedy", False)),
                    ]
            except Exception as e:  # one level failing (a busy machine) keeps the others
                why = e.exceptions[0] if isinstance(e, ExceptionGroup) else e
                print(  # at once, not only in the report an hour later
                    f"level {rate:g}/min failed:\n"
                    + "".join(traceback.format_exception(why)).rstrip(),
                    file=sys.stderr,
                    flush=True,
                )
                return {
                    "orders_per_min": rate,
                    "error": f"{type(why).__name__}: {why}",
                    "target": {},
                }
            return level_row(rate, {t.result().label: t.result().kpis for t in pair})

    rows = list(await asyncio.gather(*(level(i, r) for i, r in enumerate(rates))))
    ended = time.time()
    data = {
        "scenario": base.name,
        "workers": base.workers.count,
        "time_scale": base.time_scale,
        "quick": quick,
        "parallel_levels": parallel_levels,
        "batch_params": {
            "chain_s": defaults.chain_s if chain_s is None else chain_s,
            "rotation_slack_s": defaults.rotation_slack_s if rotation_s is None else rotation_s,
        },
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "ended": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ended)),
        "wall_min": round((ended - started) / 60, 1),
        "levels": rows,
        "all_met": all(
            r["target"].get(k) for r in rows for k in ("wait_met", "gini_met", "fulfilment_met")
        ),
        "failed_levels": [r["orders_per_min"] for r in rows if "error" in r],
    }
    write_sweep(data, out)
    return data


def write_sweep(data: dict[str, Any], out: Path) -> dict[str, Path]:
    """sweep.json and sweep.html in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "html": out / "sweep.html"}
    paths["json"].write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    paths["html"].write_text(page(data), encoding="utf-8")
    return paths
