"""Alipay notifications: what verifying one costs, and how many the sandbox delivers.

Claim (issue 17's money benchmark needs ≥ 500 notifications/s with p99 ≤ 50 ms): the
Alipay part of handling a notification — parsing the form and checking its RSA2
signature, app id, seller id and amounts (``payments.alipay.read_notification``) — is
a small part of that budget, and the sandbox gateway delivers notifications over real
HTTP faster than that target.

Method, in one run:

- *verify*: ``read_notification`` over ``n`` distinct signed notifications, timed one by
  one; baseline: ``parse_qsl`` of the same bodies (the form parsing alone), so the
  ratio is the cost of the checks.
- *wire*: the sandbox (a real uvicorn server) pays ``trades`` trades at once and
  delivers their notifications to a merchant endpoint (another real uvicorn server)
  that verifies each with the adapter and answers ``success``; notifications
  acknowledged per second, and p99 of payment → acknowledgement.

``python -m benchmarks.alipay_notify [--quick]`` prints JSON. No stores needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from payments.alipay import read_notification
from payments.alipay_sign import sign_notification
from payments.providers import PrepayRequest
from tests.alipay_live import APP_ID, SELLER_ID, live_alipay, make_keys


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _bodies(key: rsa.RSAPrivateKey, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        params = {
            "notify_time": "2026-12-06 15:00:00",
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(12),
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "app_id": APP_ID,
            "seller_id": SELLER_ID,
            "trade_no": f"2026120622001{i:015d}",
            "out_trade_no": f"DS{i:010d}",
            "trade_status": "TRADE_SUCCESS",
            "total_amount": f"{1 + i % 500}.{i % 100:02d}",
            "buyer_pay_amount": f"{1 + i % 500}.{i % 100:02d}",
            "subject": "深度保洁 3 小时",
            "gmt_payment": "2026-12-06 15:00:00",
        }
        out.append(urlencode(sign_notification(params, key)).encode())
    return out


def verify_bench(n: int) -> dict[str, float]:
    """Per-notification µs of read_notification vs parse_qsl alone."""
    keys = make_keys()
    public = keys.alipay.public_key()
    bodies = _bodies(keys.alipay, n)
    base: list[float] = []
    full: list[float] = []
    for body in bodies:  # alternate, so the machine's load hits both alike
        t0 = time.perf_counter()
        dict(parse_qsl(body.decode(), keep_blank_values=True))
        t1 = time.perf_counter()
        read_notification(body, app_id=APP_ID, seller_id=SELLER_ID, key=public)
        t2 = time.perf_counter()
        base.append((t1 - t0) * 1e6)
        full.append((t2 - t1) * 1e6)
    sign_us = []
    for body in bodies[:200]:
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        t0 = time.perf_counter()
        sign_notification(params, keys.alipay)
        sign_us.append((time.perf_counter() - t0) * 1e6)
    return {
        "n": n,
        "sandbox_sign_us_p50": round(statistics.median(sign_us), 1),
        "parse_only_us_p50": round(statistics.median(base), 1),
        "verify_us_p50": round(statistics.median(full), 1),
        "verify_us_p99": round(_p(full, 0.99), 1),
        "verify_per_s_one_core": round(1e6 / statistics.mean(full)),
        "ratio_verify_to_parse_p50": round(statistics.median(full) / statistics.median(base), 1),
    }


async def wire_bench(trades: int) -> dict[str, float]:
    """Notifications acknowledged per second over real HTTP, and pay → ack p99."""
    async with live_alipay(make_keys()) as live:
        outs = [f"DSB{i:08d}{secrets.token_hex(3)}" for i in range(trades)]
        sem = asyncio.Semaphore(16)

        async def create(out: str) -> None:
            async with sem:
                await live.provider.prepay(
                    PrepayRequest(
                        out_trade_no=out,
                        description="bench",
                        amount_fen=1234,
                        channel="precreate",
                        notify_url=live.notify_url,
                    )
                )

        await asyncio.gather(*(create(o) for o in outs))
        paid_at: dict[str, float] = {}
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for out in outs:
            trade = live.sandbox.book.trades[out]
            paid_at[out] = time.monotonic()  # the clock of Attempt.at
            assert live.sandbox.pay(trade) is None
        deadline = t0 + 120
        # uvicorn and the sandbox offer no event for "all acknowledged"
        while sum(1 for d in live.sandbox.deliveries if d.acked) < trades:
            if time.perf_counter() > deadline:
                raise SystemExit("not every notification was acknowledged within 120 s")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        latency_ms = [
            (d.attempts[-1].at - paid_at[d.out_trade_no]) * 1e3
            for d in live.sandbox.deliveries
            if d.acked
        ]
        tries = sum(len(d.attempts) for d in live.sandbox.deliveries)
        rejected = len(live.merchant.rejected)
    return {
        "trades": trades,
        "acked_per_s": round(trades / elapsed),
        "pay_to_ack_ms_p50": round(statistics.median(latency_ms), 1),
        "pay_to_ack_ms_p99": round(_p(latency_ms, 0.99), 1),
        "cpu_ms_per_notification": round(cpu_s * 1e3 / trades, 2),
        "tries": tries,
        "rejected": rejected,
    }


def main() -> None:
    """Run both parts; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer notifications (~10 s)")
    args = parser.parse_args()
    n, trades = (500, 200) if args.quick else (5000, 1000)
    out = {"verify": verify_bench(n), "wire": asyncio.run(wire_bench(trades))}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
