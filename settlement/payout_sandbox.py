"""The payout sandbox: a real local HTTP server shaped like WeChat Pay's transfer to a
balance (商家转账到零钱, API v3).

- ``POST /v3/transfer/batches``: a batch of transfers (``out_batch_no``, ``batch_name``,
  ``batch_remark``, ``total_amount``, ``total_num``, ``transfer_detail_list`` of
  ``out_detail_no``, ``transfer_amount``, ``transfer_remark``, ``openid``); answers
  ``{out_batch_no, batch_id, create_time, batch_status: "ACCEPTED"}``. The same
  ``out_batch_no`` with the same content answers the same batch again (a retry after a
  timeout is safe); with other content, 400 ``INVALID_REQUEST``.
- ``GET /v3/transfer/batches/out-batch-no/{out_batch_no}?need_query_detail=true``: the
  batch (``ACCEPTED`` → ``PROCESSING`` → ``FINISHED``) and its details.
- ``GET /v3/transfer/batches/out-batch-no/{no}/details/out-detail-no/{detail_no}``: one
  transfer (``PROCESSING`` → ``SUCCESS`` or ``FAIL`` with ``fail_reason``).

Every request must carry the v3 ``Authorization`` (RSA-SHA256 by the merchant's key,
:mod:`payments.wechat_wire`): a wrong signature, merchant, serial, a stale timestamp or a
reused nonce is 401 ``SIGN_ERROR``. Every answer is signed by the platform key
(``Wechatpay-Signature``), in public-key mode. Errors are ``{"code", "message"}`` with
WeChat's statuses (400 ``PARAM_ERROR``, 404 ``NOT_FOUND``, 403 ``NOT_ENOUGH`` …).

A transfer settles ``settle_delay_s`` after it was taken; the outcome is decided when it
is taken. Fault switches (``POST /sandbox/faults {"mode": "fail"|"timeout"|"not_enough",
"count": n}``, the next n batches; or an openid ending in ``FAIL``): ``fail`` — the
transfers end ``FAIL`` (``ACCOUNT_FROZEN``), the money never leaves; ``timeout`` — the
batch is taken but the answer comes only after ``hang_s`` (the client gives up: the
outcome is unknown to it until it queries); ``not_enough`` — 403, nothing taken.
The sandbox keeps its transfers in PostgreSQL (``payout_sandbox_*``), as a provider would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payments import wechat_wire as wire

log = logging.getLogger("doorstep.payout_sandbox")
CST = ZoneInfo("Asia/Shanghai")
_NO = re.compile(r"^[A-Za-z0-9]{5,32}$")
FAULTS = ("fail", "timeout", "not_enough")


@dataclass
class PayoutSandboxConfig:
    """The sandbox's merchant (whose requests it accepts) and its own platform key."""

    mchid: str
    appid: str
    merchant_serial: str
    merchant_public: rsa.RSAPublicKey
    platform_key: rsa.RSAPrivateKey = field(default_factory=wire.new_key_pair)
    platform_serial: str = field(default_factory=lambda: "PUB_KEY_ID_" + secrets.token_hex(12))
    settle_delay_s: float = 0.3
    hang_s: float = 6.0


def _now_text(at: datetime) -> str:
    return at.astimezone(CST).isoformat(timespec="seconds")


class PayoutSandbox:
    """The sandbox's request handling."""

    def __init__(self, pool: asyncpg.Pool[Any], config: PayoutSandboxConfig) -> None:
        self.pool = pool
        self.config = config
        self.faults: deque[str] = deque()
        self._nonces: dict[str, float] = {}
        self.app = Starlette(
            routes=[
                Route("/v3/transfer/batches", self.create, methods=["POST"]),
                Route(
                    "/v3/transfer/batches/out-batch-no/{out_batch_no}",
                    self.query_batch,
                    methods=["GET"],
                ),
                Route(
                    "/v3/transfer/batches/out-batch-no/{out_batch_no}/details/out-detail-no/{out_detail_no}",
                    self.query_detail,
                    methods=["GET"],
                ),
                Route("/sandbox/faults", self.set_faults, methods=["POST"]),
            ]
        )

    # --- the wire ---------------------------------------------------------------

    def _answer(self, status: int, body: dict[str, Any] | None) -> Response:
        raw = orjson.dumps(body) if body is not None else b""
        headers = wire.signed_headers(
            self.config.platform_key,
            self.config.platform_serial,
            raw,
            timestamp=int(time.time()),
            nonce=wire.new_nonce(),
        )
        headers["Request-ID"] = secrets.token_hex(16)
        return Response(raw, status_code=status, media_type="application/json", headers=headers)

    def _error(self, status: int, code: str, message: str) -> Response:
        return self._answer(status, {"code": code, "message": message})

    def _nonce_fresh(self, nonce: str) -> bool:
        now = time.monotonic()
        for old, at in list(self._nonces.items()):
            if now - at > wire.SKEW_S:
                del self._nonces[old]
        if not nonce or nonce in self._nonces:
            return False
        self._nonces[nonce] = now
        return True

    async def _authentic(self, request: Request, body: bytes) -> Response | None:
        """None if the request's v3 signature checks out, else the SIGN_ERROR answer."""
        auth = wire.parse_authorization(request.headers.get("authorization", ""))
        if auth is None:
            return self._error(401, "SIGN_ERROR", "Authorization 头缺失或格式错误")
        if auth.mchid != self.config.mchid:
            return self._error(401, "SIGN_ERROR", "商户号与证书不匹配")
        if auth.serial_no != self.config.merchant_serial:
            return self._error(401, "SIGN_ERROR", "证书序列号不存在")
        if not auth.timestamp.isdigit() or abs(time.time() - int(auth.timestamp)) > wire.SKEW_S:
            return self._error(401, "SIGN_ERROR", "timestamp 超出有效期")
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        message = wire.request_message(request.method, url, auth.timestamp, auth.nonce_str, body)
        if not wire.verify(self.config.merchant_public, message, auth.signature):
            return self._error(401, "SIGN_ERROR", "签名错误")
        if not self._nonce_fresh(auth.nonce_str):
            return self._error(401, "SIGN_ERROR", "nonce_str 重复")
        return None

    # --- switches -----------------------------------------------------------------

    async def set_faults(self, request: Request) -> Response:
        """``POST /sandbox/faults {"mode", "count"}``: the next ``count`` batches fail so."""
        try:
            data = orjson.loads(await request.body())
            mode, count = data["mode"], int(data.get("count", 1))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return self._error(400, "PARAM_ERROR", 'body: {"mode": …, "count": n}')
        if mode == "clear":
            self.faults.clear()
        elif mode in FAULTS and 1 <= count <= 100:
            self.faults.extend([mode] * count)
        else:
            return self._error(400, "PARAM_ERROR", f"mode is one of {', '.join(FAULTS)}, clear")
        return self._answer(200, {"pending": list(self.faults)})

    # --- transfers ----------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        """``POST /v3/transfer/batches``."""
        body = await request.body()
        refused = await self._authentic(request, body)
        if refused is not None:
            return refused
        try:
            data = orjson.loads(body)
            problem = _check_batch(data, self.config.appid)
        except orjson.JSONDecodeError:
            problem = "请求体不是合法的 JSON"
        if problem is not None:
            return self._error(400, "PARAM_ERROR", problem)
        fault = self.faults.popleft() if self.faults else None
        if fault == "not_enough":
            return self._error(403, "NOT_ENOUGH", "商户运营账户资金不足")
        details = data["transfer_detail_list"]
        request_hash = hashlib.sha256(
            orjson.dumps(
                [data["out_batch_no"], data["total_amount"], data["total_num"], details],
                option=orjson.OPT_SORT_KEYS,
            )
        ).hexdigest()
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('payout-sandbox:' || $1))",
                data["out_batch_no"],
            )
            known = await conn.fetchrow(
                "SELECT batch_id, request_hash, created_at FROM payout_sandbox_batches "
                "WHERE out_batch_no = $1",
                data["out_batch_no"],
            )
            if known is not None:
                if known["request_hash"] != request_hash:
                    return self._error(
                        400, "INVALID_REQUEST", "商户批次单号已存在，且请求参数不一致"
                    )
                return self._answer(
                    200,
                    self._accepted(data["out_batch_no"], known["batch_id"], known["created_at"]),
                )
            taken = await conn.fetchval(
                "SELECT out_detail_no FROM payout_sandbox_details WHERE out_detail_no = ANY($1)",
                [d["out_detail_no"] for d in details],
            )
            if taken is not None:
                return self._error(400, "INVALID_REQUEST", f"商户明细单号 {taken} 已存在")
            batch_id = "1030000" + now.strftime("%Y%m%d") + secrets.token_hex(10)
            await conn.execute(
                "INSERT INTO payout_sandbox_batches (out_batch_no, batch_id, mchid, appid, "
                "batch_name, batch_remark, total_amount, total_num, request_hash, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                data["out_batch_no"],
                batch_id,
                self.config.mchid,
                data["appid"],
                data["batch_name"],
                data["batch_remark"],
                data["total_amount"],
                data["total_num"],
                request_hash,
                now,
            )
            settles = now + timedelta(seconds=self.config.settle_delay_s)
            for d in details:
                fails = fault == "fail" or d["openid"].endswith("FAIL")
                await conn.execute(
                    "INSERT INTO payout_sandbox_details (out_detail_no, out_batch_no, detail_id, "
                    "transfer_amount, transfer_remark, openid, user_name, outcome, fail_reason, "
                    "settles_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    d["out_detail_no"],
                    data["out_batch_no"],
                    "1040000" + now.strftime("%Y%m%d") + secrets.token_hex(10),
                    d["transfer_amount"],
                    d["transfer_remark"],
                    d["openid"],
                    d.get("user_name"),
                    "FAIL" if fails else "SUCCESS",
                    "ACCOUNT_FROZEN" if fails else "",
                    settles,
                    now,
                )
        log.info(
            "payout sandbox took batch %s (%d fen)", data["out_batch_no"], data["total_amount"]
        )
        if fault == "timeout":
            await asyncio.sleep(self.config.hang_s)
        return self._answer(200, self._accepted(data["out_batch_no"], batch_id, now))

    @staticmethod
    def _accepted(out_batch_no: str, batch_id: str, at: datetime) -> dict[str, Any]:
        return {
            "out_batch_no": out_batch_no,
            "batch_id": batch_id,
            "create_time": _now_text(at),
            "batch_status": "ACCEPTED",
        }

    @staticmethod
    def _detail_status(row: asyncpg.Record, now: datetime) -> str:
        return str(row["outcome"]) if now >= row["settles_at"] else "PROCESSING"

    async def query_batch(self, request: Request) -> Response:
        """``GET /v3/transfer/batches/out-batch-no/{out_batch_no}``."""
        refused = await self._authentic(request, b"")
        if refused is not None:
            return refused
        no = request.path_params["out_batch_no"]
        batch = await self.pool.fetchrow(
            "SELECT * FROM payout_sandbox_batches WHERE out_batch_no = $1", no
        )
        if batch is None:
            return self._error(404, "NOT_FOUND", "记录不存在")
        rows = await self.pool.fetch(
            "SELECT * FROM payout_sandbox_details WHERE out_batch_no = $1 ORDER BY out_detail_no",
            no,
        )
        now = datetime.now(UTC)
        states = [self._detail_status(r, now) for r in rows]
        done = all(s != "PROCESSING" for s in states)
        ok = [r for r, s in zip(rows, states, strict=True) if s == "SUCCESS"]
        bad = [r for r, s in zip(rows, states, strict=True) if s == "FAIL"]
        out: dict[str, Any] = {
            "transfer_batch": {
                "mchid": batch["mchid"],
                "out_batch_no": no,
                "batch_id": batch["batch_id"],
                "appid": batch["appid"],
                "batch_status": "FINISHED" if done else "PROCESSING",
                "batch_type": "API",
                "batch_name": batch["batch_name"],
                "batch_remark": batch["batch_remark"],
                "total_amount": batch["total_amount"],
                "total_num": batch["total_num"],
                "create_time": _now_text(batch["created_at"]),
                "update_time": _now_text(max(r["settles_at"] for r in rows) if done else now),
                "success_amount": sum(r["transfer_amount"] for r in ok),
                "success_num": len(ok),
                "fail_amount": sum(r["transfer_amount"] for r in bad),
                "fail_num": len(bad),
            }
        }
        if request.query_params.get("need_query_detail") == "true":
            out["transfer_detail_list"] = [
                {
                    "detail_id": r["detail_id"],
                    "out_detail_no": r["out_detail_no"],
                    "detail_status": s,
                }
                for r, s in zip(rows, states, strict=True)
            ]
        return self._answer(200, out)

    async def query_detail(self, request: Request) -> Response:
        """``GET …/out-batch-no/{no}/details/out-detail-no/{detail_no}``."""
        refused = await self._authentic(request, b"")
        if refused is not None:
            return refused
        r = await self.pool.fetchrow(
            "SELECT d.*, b.batch_id, b.appid, b.mchid FROM payout_sandbox_details d "
            "JOIN payout_sandbox_batches b USING (out_batch_no) "
            "WHERE d.out_batch_no = $1 AND d.out_detail_no = $2",
            request.path_params["out_batch_no"],
            request.path_params["out_detail_no"],
        )
        if r is None:
            return self._error(404, "NOT_FOUND", "记录不存在")
        now = datetime.now(UTC)
        status = self._detail_status(r, now)
        out = {
            "mchid": r["mchid"],
            "out_batch_no": r["out_batch_no"],
            "batch_id": r["batch_id"],
            "appid": r["appid"],
            "out_detail_no": r["out_detail_no"],
            "detail_id": r["detail_id"],
            "detail_status": status,
            "transfer_amount": r["transfer_amount"],
            "transfer_remark": r["transfer_remark"],
            "openid": r["openid"],
            "initiate_time": _now_text(r["created_at"]),
            "update_time": _now_text(r["settles_at"] if status != "PROCESSING" else now),
        }
        if status == "FAIL":
            out["fail_reason"] = r["fail_reason"]
        return self._answer(200, out)


def _check_batch(data: Any, appid: str) -> str | None:
    """The PARAM_ERROR message for a batch that breaks the API's rules, else None."""
    if not isinstance(data, dict):
        return "请求体必须是 JSON 对象"
    for name in ("appid", "out_batch_no", "batch_name", "batch_remark"):
        if not isinstance(data.get(name), str) or not data[name]:
            return f"{name} 必填"
    if data["appid"] != appid:
        return "appid 与商户号不匹配"
    if not _NO.match(data["out_batch_no"]):
        return "out_batch_no 须为 5-32 位数字和字母"
    if len(data["batch_name"]) > 32 or len(data["batch_remark"]) > 32:
        return "batch_name、batch_remark 不超过 32 个字符"
    details = data.get("transfer_detail_list")
    if not isinstance(details, list) or not 1 <= len(details) <= 1000:
        return "transfer_detail_list 须有 1-1000 条明细"
    total = 0
    for i, d in enumerate(details):
        if not isinstance(d, dict):
            return f"transfer_detail_list[{i}] 必须是对象"
        amount = d.get("transfer_amount")
        if type(amount) is not int or amount < 30:
            return f"transfer_detail_list[{i}].transfer_amount 须为不少于 30 分的整数"
        if not isinstance(d.get("out_detail_no"), str) or not _NO.match(d["out_detail_no"]):
            return f"transfer_detail_list[{i}].out_detail_no 须为 5-32 位数字和字母"
        if not isinstance(d.get("openid"), str) or not d["openid"]:
            return f"transfer_detail_list[{i}].openid 必填"
        if (
            not isinstance(d.get("transfer_remark"), str)
            or not 1 <= len(d["transfer_remark"]) <= 32
        ):
            return f"transfer_detail_list[{i}].transfer_remark 须为 1-32 个字符"
        total += amount
    if data.get("total_num") != len(details):
        return "total_num 与明细条数不一致"
    if data.get("total_amount") != total:
        return "total_amount 与明细金额之和不一致"
    return None


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the process's own server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class PayoutSandboxServer:
    """The sandbox on a real uvicorn server, in this process."""

    def __init__(self, sandbox: PayoutSandbox, port: int) -> None:
        self.sandbox = sandbox
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = _QuietServer(
            uvicorn.Config(
                sandbox.app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve, and return once it listens."""
        self._task = asyncio.create_task(self._server.serve(), name="payout-sandbox")
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        log.info("payout sandbox (WeChat transfers) at %s", self.url)

    async def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
