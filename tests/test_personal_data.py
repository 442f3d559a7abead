"""Personal data encrypted at rest (issue 19 §5, docs/privacy.md): no plaintext phone, ID
number or address in the database, login by the blind index, key rotation, legacy rows,
and a wrong key failing closed."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from accounts import service as accounts
from accounts import store as accounts_store
from accounts.errors import PhoneTaken
from doorstep.db import create_pool, with_database
from doorstep.migrate import discover, migrate
from doorstep.stores import Stores
from onboarding import store as onboarding_store
from privacy import crypto, rotation
from privacy.crypto import DataKeys, UnreadableData, blind, key_id, reveal
from tests.helpers import PASSWORD, MakeUser, new_phone

DETAIL = "福田区景田北街3号 5栋1203"


def _keys(*kids: str, index: bytes | None = None) -> DataKeys:
    """Keys with fresh material under ``kids`` (the first seals)."""
    return DataKeys(tuple((k, os.urandom(32)) for k in kids), index or os.urandom(32))


@pytest.fixture
async def fresh_pool(server_urls: tuple[str, str]) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A pool on an empty, fully migrated database of its own, dropped afterwards."""
    admin_url = with_database(server_urls[1], "postgres")
    name = f"doorstep_pii_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(server_urls[1], name)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(url, min_size=1, max_size=2)
    yield pool
    await pool.close()
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def test_the_database_holds_no_plaintext_personal_data(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    live_city: str,
) -> None:
    """A customer's phone, saved address, order contact, emergency contacts and an applicant's
    ID number are stored as tokens: the raw columns never contain the plaintext, and the
    API reads them back as they were given."""
    customer = await make_user("customer")
    contact = new_phone()
    r = await client.post(
        "/v1/me/addresses",
        headers=customer.auth,
        json={
            "label": "家",
            "lat": 22.53,
            "lng": 114.01,
            "detail": DETAIL,
            "contact_phone": contact,
        },
    )
    assert r.status_code == 201, r.text
    address = r.json()
    assert (address["detail"], address["contact_phone"]) == (DETAIL, contact)
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": instant_service,
            "lat": 22.53,
            "lng": 114.01,
            "address_detail": DETAIL,
            "contact_phone": contact,
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["address_detail"] == DETAIL
    mum = new_phone()
    r = await client.put(
        "/v1/me/emergency-contacts",
        headers=customer.auth,
        json={"contacts": [{"name": "妈妈", "phone": mum}]},
    )
    assert r.status_code == 200, r.text
    id_number = "11010519491231002X"
    applicant = await make_user("worker")
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn, conn.transaction():
        await onboarding_store.create(conn, applicant.id, now)
        app = await onboarding_store.application(conn, user_id=applicant.id)
        assert app is not None
        await onboarding_store.update(conn, app.id, {"id_number": id_number}, now)
    app = await onboarding_store.application(stores.pool, user_id=applicant.id)
    assert app is not None
    assert app.id_number == id_number
    assert app.phone == applicant.phone

    pool = stores.pool
    raw = [
        await pool.fetchval("SELECT phone FROM users WHERE id = $1", customer.id),
        await pool.fetchval("SELECT detail FROM addresses WHERE id = $1", address["id"]),
        await pool.fetchval("SELECT contact_phone FROM addresses WHERE id = $1", address["id"]),
        await pool.fetchval("SELECT address_detail FROM orders WHERE id = $1", order["id"]),
        await pool.fetchval("SELECT contact_phone FROM orders WHERE id = $1", order["id"]),
        await pool.fetchval("SELECT phone FROM emergency_contacts WHERE user_id = $1", customer.id),
        await pool.fetchval("SELECT id_number FROM applications WHERE user_id = $1", applicant.id),
    ]
    plain = {customer.phone, DETAIL, contact, mum, id_number}
    for value in raw:
        assert key_id(value) == crypto.current().current, value
        assert not any(p in value for p in plain), value
    # Nowhere in those rows as text either (a copy in another column).
    for table, where, arg in (
        ("users", "id = $1", customer.id),
        ("addresses", "id = $1", address["id"]),
        ("orders", "id = $1", order["id"]),
        ("emergency_contacts", "user_id = $1", customer.id),
        ("applications", "user_id = $1", applicant.id),
    ):
        text = await pool.fetchval(f"SELECT t::text FROM {table} t WHERE {where}", arg)
        assert not any(p in text for p in plain), (table, text)
    # The login tables keep the phone's blind index, not the phone.
    assert not await pool.fetchval(
        "SELECT count(*) FROM login_failures WHERE phone = $1", customer.phone
    )


async def test_login_by_phone_finds_the_account_through_the_blind_index(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    """Login by phone works though the phone is encrypted: the lookup is by its keyed index;
    a second account on the same phone is refused by the index's uniqueness."""
    phone = new_phone()
    user = await accounts.create_user(
        stores, phone=phone, name="索引", password=PASSWORD, roles=["customer"]
    )
    stored = await stores.pool.fetchrow(
        "SELECT phone, phone_bidx FROM users WHERE id = $1", user.id
    )
    assert stored is not None
    assert stored["phone_bidx"] == blind("phone", phone)
    assert phone not in stored["phone"]
    r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["phone"] == phone
    with pytest.raises(PhoneTaken):
        await accounts.create_user(
            stores, phone=phone, name="重复", password=PASSWORD, roles=["customer"]
        )


async def test_id_numbers_stay_unique_through_their_blind_index(
    make_user: MakeUser, stores: Stores
) -> None:
    """A second application with the same ID number is found by the index (and refused by
    the unique index), though both numbers are stored encrypted with different nonces."""
    number = "440305199001011234"
    now = datetime.now(UTC)
    ids = []
    for _ in range(2):
        user = await make_user("worker")
        await onboarding_store.create(stores.pool, user.id, now)
        app = await onboarding_store.application(stores.pool, user_id=user.id)
        assert app is not None
        ids.append(app.id)
    async with stores.pool.acquire() as conn, conn.transaction():
        await onboarding_store.update(conn, ids[0], {"id_number": number}, now)
    assert await onboarding_store.id_number_taken(stores.pool, number, ids[1])
    assert not await onboarding_store.id_number_taken(stores.pool, number, ids[0])
    with pytest.raises(asyncpg.UniqueViolationError):
        async with stores.pool.acquire() as conn, conn.transaction():
            await onboarding_store.update(conn, ids[1], {"id_number": number}, now)


def test_a_wrong_or_changed_key_fails_closed() -> None:
    """A token opened with a wrong key, an unknown key id, a changed token, a token of
    another column or a plaintext value raises UnreadableData, never returns the text."""
    keys = _keys("k1")
    token = keys.seal("users.phone", "13800000000")
    assert keys.open("users.phone", token) == "13800000000"
    wrong = DataKeys((("k1", os.urandom(32)),), keys.index_key)
    with pytest.raises(UnreadableData, match="wrong key"):
        wrong.open("users.phone", token)
    with pytest.raises(UnreadableData, match="does not hold"):
        _keys("k2").open("users.phone", token)
    changed = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(UnreadableData):
        keys.open("users.phone", changed)
    with pytest.raises(UnreadableData):
        keys.open("orders.contact_phone", token)  # the column is the associated data
    with pytest.raises(UnreadableData, match="not encrypted"):
        keys.open("users.phone", "13800000000")
    assert keys.open("users.phone", "") == ""


async def test_a_wrong_key_fails_closed_on_the_stores(stores: Stores, make_user: MakeUser) -> None:
    """With keys that do not open the stored tokens, reading an account raises
    UnreadableData (503 over HTTP) instead of handing out ciphertext or plaintext."""
    user = await make_user("customer")
    current = crypto.current()
    wrong = DataKeys(((current.current, os.urandom(32)),), current.index_key)
    with crypto.using(wrong), pytest.raises(UnreadableData):
        await accounts_store.user_by_id(stores.pool, user.id)
    assert (await accounts_store.user_by_id(stores.pool, user.id)) is not None


async def test_rotation_re_encrypts_in_resumable_batches_while_old_rows_read(
    fresh_pool: asyncpg.Pool[Any],
) -> None:
    """Rows sealed under k1 read under (k2, k1) while a rotation to k2 runs in batches; a
    stopped run resumes where it got to; afterwards every row is under k2 and k2 alone
    opens them, k1 alone does not."""
    index = os.urandom(32)
    old = _keys("k1", index=index)
    phones = [new_phone() for _ in range(5)]
    with crypto.using(old):
        for p in phones:
            await accounts_store.insert_user(
                fresh_pool, phone=p, name="轮换", password_hash="x", roles=("customer",)
            )
    k2 = _keys("k2", index=index)
    both = DataKeys(k2.keys + old.keys, index)
    with crypto.using(both):
        first = await rotation.rotate(
            fresh_pool, both, batch=2, columns=rotation.COLUMNS[:1], stop_after=1
        )
        assert first[0].resealed == 2
        assert not first[0].done
        ids = [
            key_id(r["phone"])
            for r in await fresh_pool.fetch("SELECT phone FROM users ORDER BY id")
        ]
        assert ids == ["k2", "k2", "k1", "k1", "k1"]
        # Mid-rotation every row reads, and login's lookup finds each.
        for p in phones:
            found = await accounts_store.credentials_by_phone(fresh_pool, p)
            assert found is not None
            assert found[0].phone == p
        state = await fresh_pool.fetchrow(
            "SELECT key_id, done FROM pii_rotation WHERE col = 'users.phone'"
        )
        assert state is not None
        assert (state["key_id"], state["done"]) == ("k2", False)
        rest = await rotation.rotate(fresh_pool, both, batch=2)
        assert rest[0].resumed
        assert rest[0].resealed == 3
        assert rest[0].done
        again = await rotation.rotate(fresh_pool, both, batch=2)
        assert all(o.resealed == 0 for o in again)
    rows = await fresh_pool.fetch("SELECT phone FROM users ORDER BY id")
    assert {key_id(r["phone"]) for r in rows} == {"k2"}
    assert [k2.open("users.phone", r["phone"]) for r in rows] == phones
    with pytest.raises(UnreadableData):
        old.open("users.phone", rows[0]["phone"])


async def test_a_rotation_stops_at_a_value_no_key_opens(fresh_pool: asyncpg.Pool[Any]) -> None:
    """A row sealed under a key the rotation is not given stops it with UnreadableData
    (nothing is re-encrypted from garbage) and plaintext written after 0030 is refused."""
    keys = _keys("k1")
    with crypto.using(keys):
        await accounts_store.insert_user(
            fresh_pool, phone=new_phone(), name="甲", password_hash="x", roles=("customer",)
        )
    with pytest.raises(UnreadableData):
        await rotation.rotate(fresh_pool, _keys("k9"), columns=rotation.COLUMNS[:1])
    await fresh_pool.execute(
        "INSERT INTO emergency_contacts (user_id, position, name, phone) "
        "SELECT id, 1, '乙', '13912345678' FROM users LIMIT 1"
    )
    col = next(c for c in rotation.COLUMNS if c.name == "emergency_contacts.phone")
    with pytest.raises(UnreadableData, match="not encrypted"):
        await rotation.rotate(fresh_pool, keys, columns=(col,))


async def test_plaintext_rows_from_before_0030_are_encrypted_after_migrating(
    server_urls: tuple[str, str],
) -> None:
    """A database with plaintext rows migrated to 0030 marks its columns; the start-up step
    encrypts them (phones get their blind index, so login finds them) and clears the
    marks; a fresh database has no marks."""
    admin_url = with_database(server_urls[1], "postgres")
    name = f"doorstep_pii_old_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(server_urls[1], name)
    try:
        conn = await asyncpg.connect(url)
        before = [m for m in discover() if m.version < 30]
        await migrate(conn, before)
        phone = new_phone()
        uid = await conn.fetchval(
            "INSERT INTO users (phone, name, password_hash, roles) "
            "VALUES ($1, '旧', 'x', ARRAY['customer']) RETURNING id",
            phone,
        )
        await conn.execute(
            "INSERT INTO addresses (user_id, label, lat, lng, detail) VALUES ($1, '家', 22.5, 114.0, $2)",
            uid,
            DETAIL,
        )
        await migrate(conn)
        marked = {r["col"] for r in await conn.fetch("SELECT col FROM pii_plaintext")}
        assert marked == {"users.phone", "addresses.detail", "addresses.contact_phone"}
        await conn.close()
        keys = _keys("k1")
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            with crypto.using(keys):
                with pytest.raises(UnreadableData, match="not encrypted"):
                    await accounts_store.user_by_id(pool, uid)  # no plaintext fallback
                done = await rotation.encrypt_plaintext(pool, keys)
                assert {o.column: o.resealed for o in done}["users.phone"] == 1
                found = await accounts_store.credentials_by_phone(pool, phone)
                assert found is not None
                assert found[0].id == uid
                [address] = await accounts_store.addresses_of(pool, uid)
                assert address.detail == DETAIL
            assert await pool.fetchval("SELECT count(*) FROM pii_plaintext") == 0
            assert reveal is not None
            raw = await pool.fetchval("SELECT detail FROM addresses WHERE user_id = $1", uid)
            assert DETAIL not in raw
            assert key_id(raw) == "k1"
            assert await rotation.encrypt_plaintext(pool, keys) == []
        finally:
            await pool.close()
    finally:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def test_a_fresh_database_marks_nothing(fresh_pool: asyncpg.Pool[Any]) -> None:
    """Migrating an empty database leaves no column to encrypt at start-up."""
    assert await fresh_pool.fetchval("SELECT count(*) FROM pii_plaintext") == 0


def test_keys_from_settings_and_their_errors() -> None:
    """DOORSTEP_DATA_KEYS and DOORSTEP_BLIND_INDEX_KEY are parsed (the first key seals);
    malformed ones are refused naming the setting; without them keys derive from the
    secret key, the same for the same secret."""
    from doorstep.errors import InvalidInput
    from doorstep.settings import from_env

    k1, k2, ix = crypto.new_key(), crypto.new_key(), crypto.new_key()
    env = {"DOORSTEP_DATA_KEYS": f"k2:{k2},k1:{k1}", "DOORSTEP_BLIND_INDEX_KEY": ix}
    settings = from_env({**env, "DOORSTEP_SECRET_KEY": "s" * 40})
    keys = DataKeys.of(settings)
    assert keys.ids == ("k2", "k1")
    for bad in ("k1", "K1:abc", f"k1:{k1},k1:{k2}", "k1:c2hvcnQ"):
        with pytest.raises(InvalidInput) as e:
            from_env({"DOORSTEP_DATA_KEYS": bad})
        assert e.value.field == "DOORSTEP_DATA_KEYS"
    with pytest.raises(InvalidInput) as e:
        from_env({"DOORSTEP_BLIND_INDEX_KEY": "c2hvcnQ"})
    assert e.value.field == "DOORSTEP_BLIND_INDEX_KEY"
    a, b = DataKeys.derived("s" * 40), DataKeys.derived("s" * 40)
    assert a.fingerprint() == b.fingerprint()
    assert a.ids == ("s0",)
    assert a.fingerprint() != DataKeys.derived("t" * 40).fingerprint()


def test_keys_new_prints_a_usable_key() -> None:
    """`doorstep keys new` prints a fresh base64url key that DOORSTEP_DATA_KEYS accepts."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "doorstep", "keys", "new"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert crypto.parse_data_keys(f"k1:{key}")[0][1] != b""
