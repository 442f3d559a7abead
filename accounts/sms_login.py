"""Login by a one-time code sent by SMS: the phone owner's way in, beside passwords.

``request_code`` sends a code to a phone with an active account (the answer is the same
whether or not it has one), at most ``per_phone_min`` a minute and ``per_phone_hour``
an hour per phone, and ``per_network_hour`` an hour per client network. The counters
are in PostgreSQL (``rate_windows``): with the database away, no code is sent (fail
closed). ``login_with_code`` takes the newest code sent to the phone, once, before it
expires, with ``max_failures`` wrong tries. It does not look at the password limits
(:mod:`accounts.throttle`): someone guessing the password cannot keep the owner out.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Protocol

from accounts import sms_codes, store
from accounts.errors import BadSmsCode, TooManyAttempts
from accounts.models import TokenPair
from accounts.rules import normalize_phone
from accounts.service import Client, TokenPolicy, _issue_pair
from accounts.sms_codes import CodeLimits, StoredCode
from doorstep.db import Tx
from doorstep.stores import Stores
from privacy.crypto import blind

DEFAULT_CODE_LIMITS = CodeLimits()


class SmsQueue(Protocol):
    """What login needs of notifications: an SMS queued in our transaction."""

    async def queue_sms(
        self,
        tx: Tx,
        *,
        key: str,
        user_id: int | None,
        phone: str,
        template_code: str,
        params: dict[str, str],
        not_before: datetime,
    ) -> int | None: ...


async def _limit(
    tx: Tx, bucket: str, key: str, most: int, window_s: int, now: datetime, field: str | None
) -> None:
    hits, started = await store.hit_window(
        tx, bucket=bucket, key=key, now=now, window_start_after=now - timedelta(seconds=window_s)
    )
    if hits > most:
        retry = int((started + timedelta(seconds=window_s) - now).total_seconds())
        raise TooManyAttempts(
            f"at most {most} code(s) per {window_s} s; try again in {max(1, retry)} s",
            field=field,
            retry_after_s=retry,
        )


async def request_code(
    stores: Stores,
    sms: SmsQueue,
    *,
    phone: str,
    signing_key: str,
    now: int,
    client: Client,
    language: str = "zh",
    limits: CodeLimits = DEFAULT_CODE_LIMITS,
) -> str:
    """Send a login code to ``phone`` if it has an active account; the normalized phone."""
    phone = normalize_phone(phone)
    at = datetime.fromtimestamp(now, UTC)
    key = blind("phone", phone).hex()  # what is stored for the phone: its blind index
    async with stores.pool.acquire() as conn, conn.transaction():
        await _limit(conn, "sms-code-min", key, limits.per_phone_min, 60, at, "phone")
        await _limit(conn, "sms-code-hour", key, limits.per_phone_hour, 3600, at, "phone")
        if not client.exempt:
            await _limit(
                conn, "sms-code-net", client.network, limits.per_network_hour, 3600, at, None
            )
        found = await store.credentials_by_phone(conn, phone)
        if found is None or found[0].status != "active":
            return phone  # answered like a success: no list of customers' phones from it
        code = sms_codes.make_code(secrets.randbelow(10**limits.digits), limits)
        code_id = await conn.fetchval(
            "INSERT INTO sms_codes (phone, code_hash, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            key,
            sms_codes.code_hash(signing_key, phone, code),
            at,
            at + timedelta(seconds=limits.ttl_s),
        )
        lang = language if language in ("zh", "en") else "zh"
        lang = (
            await conn.fetchval(
                "SELECT language FROM notification_settings WHERE user_id = $1", found[0].id
            )
            or lang
        )
        await sms.queue_sms(
            conn,
            key=f"login-code:{code_id}",
            user_id=found[0].id,
            phone=phone,
            template_code=f"DS_LOGIN_CODE_{str(lang).upper()}",
            params={"code": code},
            not_before=at,  # codes ignore quiet hours: the owner is waiting for it
        )
    return phone


async def login_with_code(
    stores: Stores,
    policy: TokenPolicy,
    *,
    phone: str,
    code: str,
    signing_key: str,
    now: int,
    limits: CodeLimits = DEFAULT_CODE_LIMITS,
) -> TokenPair:
    """A token pair for the newest code sent to ``phone``, used once before it expires."""
    phone = normalize_phone(phone)
    if not (code.isascii() and code.isdigit() and len(code) == limits.digits):
        raise BadSmsCode(f"a code is {limits.digits} digits", field="code")
    at = datetime.fromtimestamp(now, UTC)
    wrong: BadSmsCode | None = None
    async with stores.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT id, code_hash, expires_at, used_at, failures FROM sms_codes "
            "WHERE phone = $1 ORDER BY id DESC LIMIT 1 FOR UPDATE",
            blind("phone", phone).hex(),
        )
        stored = StoredCode(**dict(row)) if row is not None else None
        try:
            sms_codes.check(
                stored, sms_codes.code_hash(signing_key, phone, code), now=at, limits=limits
            )
        except BadSmsCode as e:
            if stored is None or stored.used_at is not None or stored.expires_at <= at:
                raise
            wrong = e  # counted below, in this transaction
        if stored is not None:
            if wrong is not None:
                await conn.execute(
                    "UPDATE sms_codes SET failures = failures + 1 WHERE id = $1", stored.id
                )
            else:
                await conn.execute("UPDATE sms_codes SET used_at = $2 WHERE id = $1", stored.id, at)
    if wrong is not None:
        raise wrong
    found = await store.credentials_by_phone(stores.pool, phone)
    if found is None or found[0].status != "active":
        raise BadSmsCode("this phone has no active account", field="phone")
    pair, _ = await _issue_pair(stores, found[0], policy, now)
    return pair
