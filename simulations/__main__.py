"""``python -m simulations``: run a scenario, compare policies, sweep loads, find the load
limit, demo.

Without ``--server`` the simulator starts a server of its own per run (``doorstep seed --demo``
then ``doorstep serve`` on a fresh database and key prefix) on the stores in
``REDIS_URL``/``DATABASE_URL``, or on embedded ones started here when those are unset.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seeding.load import ADMIN_PHONE, DEMO_PASSWORD
from simulations.scenario import Scenario, ScenarioError, load_scenario


def _out_dir(arg: str | None, scenario: Scenario, what: str) -> Path:
    if arg:
        return Path(arg)
    return Path("sim-out") / f"{scenario.name}-{what}-{time.strftime('%Y%m%d-%H%M%S')}"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _run(args: argparse.Namespace, scenario: Scenario, stores: tuple[str, str] | None) -> int:
    from simulations.report import write_run
    from simulations.runner import run
    from simulations.server import local_server, matching_lines

    out = _out_dir(args.out, scenario, "run")
    if args.server:
        result = await run(
            scenario,
            args.server,
            admin_phone=args.admin_phone,
            admin_password=args.admin_password,
            label=args.label or "run",
        )
    else:
        assert stores is not None
        extra = matching_lines(chain_s=args.chain_s, rotation_s=args.rotation_s)
        async with local_server(
            stores, out, label=args.policy, policy=args.policy, params_extra=extra
        ) as srv:
            result = await run(
                scenario,
                srv.url,
                admin_phone=srv.admin_phone,
                admin_password=srv.admin_password,
                label=args.label or args.policy,
            )
    paths = write_run(result, out)
    _print_summary([result.label], [result.kpis])
    _say(f"report: {paths['html']}  (JSON {paths['json']})")
    return 0


def _rotation(args: argparse.Namespace) -> str:
    """The servers' ``[matching] rotation_slack_s`` line from ``--rotation-s`` (or none)."""
    from simulations.server import matching_lines

    return matching_lines(rotation_s=getattr(args, "rotation_s", None))


def verdict(batch: dict[str, Any], greedy: dict[str, Any]) -> dict[str, Any]:
    """The issue's target for batch against greedy, measured: met or not, by how much."""
    wb = batch["orders"]["wait_to_arrival_s"]["mean"]
    wg = greedy["orders"]["wait_to_arrival_s"]["mean"]
    cut = (wg - wb) / wg if wb is not None and wg else None
    ub, ug = batch["workers"]["utilization"], greedy["workers"]["utilization"]
    gb, gg = batch["workers"]["gini_jobs"], greedy["workers"]["gini_jobs"]
    eb, eg = batch["workers"]["gini_earnings"], greedy["workers"]["gini_earnings"]
    fb = batch["orders"]["fulfilment"]
    out: dict[str, Any] = {
        "utilization batch / greedy": f"{ub} / {ug} (target: >= 0.8, high load)",
        "mean wait batch / greedy (s)": f"{wb} / {wg}",
        "mean wait cut by batch": f"{cut * 100:.1f} %" if cut is not None else None,
        "target: cut >= 15 %": bool(cut is not None and cut >= 0.15),
        "Gini of jobs batch / greedy": f"{gb} / {gg}",
        "Gini of earnings batch / greedy": f"{eb} / {eg}",
        "target: fairness no worse (both Ginis <=)": bool(gb <= gg and eb <= eg),
        "fulfilment batch": fb,
        "target: fulfilment >= 98 %": bool(fb is not None and fb >= 0.98),
        "target: high load (both utilizations >= 0.8)": bool(
            ub is not None and ug is not None and ub >= 0.8 and ug >= 0.8
        ),
    }
    if cut is not None and cut < 0.15:
        out["missed by"] = f"{(0.15 - cut) * 100:.1f} percentage points of wait cut"
    return out


def compare_runs(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """``compare``'s servers as (label, policy, params added): each listed policy, and with
    ``--chain-s S`` batch again with ``chain_s = S`` (``batch-chain``) while ``batch`` runs
    without chaining (on by default), so that chaining is compared in the same run."""
    from simulations.server import matching_lines

    rotation = _rotation(args)  # every server: greedy decides by ETA whatever it is
    off = matching_lines(chain_s=0.0) if args.chain_s else ""
    runs = [(p, p, (off if p == "batch" else "") + rotation) for p in args.policies]
    if args.chain_s:
        runs.append(("batch-chain", "batch", matching_lines(chain_s=args.chain_s) + rotation))
    return runs


async def _compare(args: argparse.Namespace, scenario: Scenario, stores: tuple[str, str]) -> int:
    from simulations.report import write_compare
    from simulations.runner import RunResult, run
    from simulations.server import local_server
    from simulations.sweep import level_scenario

    if args.rate is not None:
        scenario = level_scenario(scenario, args.rate, quick=False)
    out = _out_dir(args.out, scenario, "compare")
    runs = compare_runs(args)

    async def one(label: str, policy: str, extra: str, show: bool) -> RunResult:
        async with local_server(stores, out, label=label, policy=policy, params_extra=extra) as srv:
            return await run(
                scenario,
                srv.url,
                admin_phone=srv.admin_phone,
                admin_password=srv.admin_password,
                label=label,
                progress=show,
            )

    results: list[RunResult] = []
    if args.sequential:
        for label, policy, extra in runs:
            _say(f"--- {label}: a fresh server, the same seeded scenario")
            results.append(await one(label, policy, extra, True))
    else:
        _say(
            f"--- {', '.join(r[0] for r in runs)} at the same time, one fresh server each "
            "(the same seeded scenario; progress shown for the first)"
        )
        results = list(await asyncio.gather(*(one(*r, i == 0) for i, r in enumerate(runs))))
    by = {r.label: r.kpis for r in results}
    v = verdict(by["batch"], by["greedy"]) if {"batch", "greedy"} <= set(by) else {}
    paths = write_compare(results, v, out)
    _print_summary([r.label for r in results], [r.kpis for r in results])
    for k, val in v.items():
        _say(f"  {k}: {val}")
    _say(f"report: {paths['html']}  (JSON {paths['json']})")
    return 0


async def _sweep(args: argparse.Namespace, scenario: Scenario, stores: tuple[str, str]) -> int:
    from simulations.sweep import run_sweep

    out = _out_dir(args.out, scenario, "sweep")
    parallel = args.parallel_levels or (2 if args.quick else 1)
    _say(
        f"--- {len(args.rates)} load levels ({', '.join(f'{r:g}' for r in args.rates)} "
        f"bookings/min), batch and greedy at once per level, {parallel} level(s) at a time"
        + (" (quick)" if args.quick else "")
    )
    data = await run_sweep(
        scenario,
        stores,
        out,
        rates=args.rates,
        quick=args.quick,
        parallel_levels=parallel,
        chain_s=args.chain_s,
        rotation_s=args.rotation_s,
    )
    for row in data["levels"]:
        if "error" in row:
            _say(f"  {row['orders_per_min']:g}/min: failed: {row['error']}")
            continue
        b, g, t = row["batch"], row["greedy"], row["target"]
        _say(
            f"  {row['orders_per_min']:g}/min: utilization {b['utilization']} / {g['utilization']}, "
            f"mean wait {b['wait_mean_s']} / {g['wait_mean_s']} s (cut {t.get('wait_cut')}), "
            f"Gini {b['gini_jobs']} / {g['gini_jobs']}, fulfilment {b['fulfilment']} / "
            f"{g['fulfilment']}; met: wait {t.get('wait_met')}, Gini {t.get('gini_met')}, "
            f"fulfilment {t.get('fulfilment_met')}"
        )
    _say(f"all targets met: {data['all_met']}; {data['wall_min']} min")
    _say(f"report: {out / 'sweep.html'}  (JSON {out / 'sweep.json'})")
    return 0


async def _load(
    args: argparse.Namespace, scenario: Scenario, stores: tuple[str, str] | None
) -> int:
    from simulations.load import run_load, write_load
    from simulations.server import local_server

    out = _out_dir(args.out, scenario, "load")
    if args.server:
        result = await run_load(scenario, args.server, args.admin_phone, args.admin_password)
    else:
        assert stores is not None
        extra = "[socket]\nframes_per_s = 20.0\n"
        async with local_server(stores, out, label="load", params_extra=extra) as srv:
            result = await run_load(scenario, srv.url, srv.admin_phone, srv.admin_password)
    paths = write_load(result, out)
    _say(f"capacity: {result['capacity']}")
    if result.get("limited_by") == "simulator":
        _say("  (the simulator's own loop was late at the breaking step: a lower bound)")
    _say(f"report: {paths['html']}  (JSON {paths['json']})")
    return 0


def _print_summary(labels: Sequence[str], kpis: Sequence[dict[str, Any]]) -> None:
    from simulations.report import ROWS, dig, fmt

    width = max(len(r[0]) for r in ROWS)
    _say("".ljust(width) + "".join(f"{lab:>16}" for lab in labels))
    for label, path, unit, _ in ROWS:
        _say(label.ljust(width) + "".join(f"{fmt(dig(k, path), unit):>16}" for k in kpis))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulations",
        description="Simulate a city of workers and customers against a Doorstep server, "
        "through its public API only; write a KPI report (JSON + HTML).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, server: bool = True) -> None:
        sp.add_argument("scenario", type=Path, help="scenario file (TOML)")
        sp.add_argument("--out", help="report directory (default sim-out/<scenario>-<what>-<time>)")
        if server:
            sp.add_argument(
                "--server",
                help="URL of a running server (default: start one, seeded, on fresh storage)",
            )
            sp.add_argument("--admin-phone", default=ADMIN_PHONE, help="admin login (--server)")
            sp.add_argument("--admin-password", default=DEMO_PASSWORD, help="its password")

    r = sub.add_parser("run", help="run one scenario and write its report")
    common(r)
    r.add_argument(
        "--policy",
        choices=("batch", "greedy"),
        default="batch",
        help="matching policy of the server started here (not with --server)",
    )
    r.add_argument("--label", help="name of the run in the report")
    r.add_argument(
        "--chain-s",
        type=float,
        help="[matching] chain_s of the server started here: chained orders (接力单) to workers "
        "whose job ends within S seconds (default: params/doorstep.toml's, 300; 0: off; "
        "docs/dispatch.md#chained-orders; greedy never chains)",
    )
    r.add_argument(
        "--rotation-s",
        type=float,
        help="[matching] rotation_slack_s of the servers started here: fewer jobs first among "
        "candidates within S seconds of the best ETA (default: params/doorstep.toml's, 60; "
        "0: off; docs/dispatch.md#rotation-fewer-jobs-first-among-near-equal-etas)",
    )
    c = sub.add_parser("compare", help="the same scenario under several policies, one report")
    common(c, server=False)
    c.add_argument(
        "--policies", nargs="+", default=["batch", "greedy"], choices=("batch", "greedy")
    )
    c.add_argument(
        "--chain-s",
        type=float,
        default=0.0,
        help="also run batch with [matching] chain_s = S (label batch-chain), compared in "
        "the same run with batch without chaining (default 0: not run, and batch has "
        "params/doorstep.toml's chain_s, 300)",
    )
    c.add_argument(
        "--rotation-s",
        type=float,
        help="[matching] rotation_slack_s of the servers started here: fewer jobs first among "
        "candidates within S seconds of the best ETA (default: params/doorstep.toml's, 60; "
        "greedy ignores it; docs/dispatch.md#rotation-fewer-jobs-first-among-near-equal-etas)",
    )
    c.add_argument(
        "--rate",
        type=float,
        help="bookings per minute instead of the scenario's (as a sweep level sets it)",
    )
    c.add_argument(
        "--sequential",
        action="store_true",
        help="one policy after the other (default: all at once, so that every policy runs "
        "on the same machine load)",
    )
    sw = sub.add_parser(
        "sweep", help="both policies at several loads: wait, fairness, fulfilment (HTML + JSON)"
    )
    common(sw, server=False)
    sw.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[2.5, 3.6, 5.0, 5.8],
        help="bookings per minute of each level (default: 34, 58, 80, 91 %% utilization measured "
        "by greedy on futian-rush)",
    )
    sw.add_argument(
        "--quick",
        action="store_true",
        help="short runs (12 min of bookings, 4 of warm-up, 10 of drain), two levels at a time",
    )
    sw.add_argument(
        "--parallel-levels",
        type=int,
        default=0,
        help="levels run at once (default: 1, or 2 with --quick)",
    )
    sw.add_argument(
        "--chain-s",
        type=float,
        help="[matching] chain_s of the batch servers: chained orders (接力单) to workers whose "
        "job ends within S seconds (default: params/doorstep.toml's, 300; 0: off; "
        "docs/dispatch.md#chained-orders)",
    )
    sw.add_argument(
        "--rotation-s",
        type=float,
        help="[matching] rotation_slack_s of the batch servers: fewer jobs first among "
        "candidates within S seconds of the best ETA (default: params/doorstep.toml's, 60; "
        "0: off)",
    )
    ld = sub.add_parser("load", help="add workers and watchers until a service level breaks")
    common(ld)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        print(f"simulations: {e}", file=sys.stderr)
        return 2
    from simulations.runner import SetupError

    try:
        if getattr(args, "server", None):
            return asyncio.run(_dispatch(args, scenario, None))
        from doorstep.embedded import env_or_embedded_urls

        with env_or_embedded_urls("doorstep-sim-") as stores:
            return asyncio.run(_dispatch(args, scenario, stores))
    except SetupError as e:
        print(f"simulations: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("simulations: interrupted", file=sys.stderr)
        return 130


async def _dispatch(
    args: argparse.Namespace, scenario: Scenario, stores: tuple[str, str] | None
) -> int:
    if args.command == "run":
        return await _run(args, scenario, stores)
    if args.command == "compare":
        assert stores is not None
        return await _compare(args, scenario, stores)
    if args.command == "sweep":
        assert stores is not None
        return await _sweep(args, scenario, stores)
    return await _load(args, scenario, stores)


if __name__ == "__main__":
    sys.exit(main())
