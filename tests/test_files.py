"""Files over the API and in the service, on real PostgreSQL and a real data directory."""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from accounts.tokens import Claims
from doorstep.settings import Settings
from doorstep.stores import Stores
from files import links, service, store
from files.blobs import LocalBlobStore, local_store
from files.content import IMAGE_TYPES
from files.errors import FileAttached, FileNotFound
from files.intake import prepare
from files.models import Caller, StoredFile
from files.purposes import get, register_purpose
from tests import files_samples as s
from tests.helpers import Account, MakeUser


@pytest.fixture(scope="module")
def blobs(settings: Settings) -> LocalBlobStore:
    """The blob store the app uses (under the run's data directory)."""
    return local_store(settings.data_dir)


@pytest.fixture
async def customer(make_user: MakeUser) -> Account:
    """A fresh customer (fresh upload counts)."""
    return await make_user("customer")


def caller(account: Account) -> Claims:
    """The claims a request by ``account`` carries."""
    return Claims(account.id, account.roles, "jti", "access", 0, 2**31)


async def upload(
    client: httpx.AsyncClient,
    who: Account,
    data: bytes,
    purpose: str = "review_photo",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST the raw bytes as ``purpose``."""
    return await client.post(
        f"/v1/files?purpose={purpose}",
        content=data,
        headers=who.auth | {"content-type": "image/jpeg"} | (headers or {}),
    )


async def link(client: httpx.AsyncClient, who: Account, file_id: int, **params: Any) -> str:
    """A signed link's path, issued to ``who``."""
    r = await client.get(f"/v1/files/{file_id}/url", params=params, headers=who.auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return str(body["path"])


def blob_files(blobs: LocalBlobStore) -> set[str]:
    """Every blob on disk, temporary files included."""
    if not blobs.root.exists():
        return set()
    return {str(p.relative_to(blobs.root)) for p in blobs.root.rglob("*") if p.is_file()}


async def rows_of(stores: Stores, owner_id: int) -> int:
    """How many file rows ``owner_id`` has."""
    return int(
        await stores.pool.fetchval("SELECT count(*) FROM files WHERE owner_id = $1", owner_id)
    )


def unique_jpeg(**kw: Any) -> bytes:
    """A JPEG no other test uploads (a random pixel block)."""
    im = s.picture(60, 30)
    im.paste(tuple(secrets.token_bytes(3)), (40, 20, 60, 30))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=95, exif=s.exif_with_gps(**kw))
    return out.getvalue()


async def test_upload_stores_a_cleaned_image_with_its_metadata(
    client: httpx.AsyncClient, customer: Account, blobs: LocalBlobStore, stores: Stores
) -> None:
    """A JPEG upload is 201 with owner, purpose, type, size, hash and pixel size; the blob
    on disk is exactly the cleaned content, named by its SHA-256."""
    r = await upload(client, customer, unique_jpeg(orientation=6))
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["owner_id"] == customer.id
    assert meta["purpose"] == "review_photo"
    assert meta["media_type"] == "image/jpeg"
    assert (meta["width"], meta["height"]) == (30, 60)  # orientation applied
    assert meta["attached_to"] is None
    stored = blobs.path(meta["sha256"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == meta["sha256"]
    assert len(stored) == meta["size_bytes"]
    r = await client.get(f"/v1/files/{meta['id']}", headers=customer.auth)
    assert r.json() == meta


async def test_exif_gps_is_stripped_from_what_is_downloaded(
    client: httpx.AsyncClient, customer: Account
) -> None:
    """A phone JPEG carrying GPS EXIF comes back through its link with no EXIF at all, read back with Pillow."""
    original = unique_jpeg()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(s.GPS_IFD)[2] == (22.0, 32.0, 10.5)
    meta = (await upload(client, customer, original)).json()
    r = await client.get(await link(client, customer, meta["id"]))
    assert r.status_code == 200
    back = Image.open(io.BytesIO(r.content))
    assert back.format == "JPEG"
    assert dict(back.getexif()) == {}
    assert back.getexif().get_ifd(s.GPS_IFD) == {}
    assert "exif" not in back.info
    assert "comment" not in back.info
    assert b"Xiaomi" not in r.content
    assert b"GPS" not in r.content


async def test_download_headers(client: httpx.AsyncClient, customer: Account) -> None:
    """The download has the file's type, inline disposition, nosniff, a private cache bounded
    by the link, an ETag (304 on a repeat) and a sandboxing CSP."""
    meta = (await upload(client, customer, unique_jpeg())).json()
    path = await link(client, customer, meta["id"], ttl_s=600)
    r = await client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"] == f'inline; filename="file-{meta["id"]}.jpg"'
    assert r.headers["x-content-type-options"] == "nosniff"
    cache = r.headers["cache-control"]
    assert cache.startswith("private, max-age=")
    assert cache.endswith(", immutable")
    assert 590 <= int(cache.split("max-age=")[1].split(",")[0]) <= 600
    assert r.headers["etag"] == f'"{meta["sha256"]}"'
    assert "sandbox" in r.headers["content-security-policy"]
    again = await client.get(path, headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_a_pdf_is_downloaded_as_an_attachment(
    client: httpx.AsyncClient, customer: Account
) -> None:
    """A certificate PDF is stored as sent and served as an attachment, never rendered inline."""
    data = s.pdf()
    r = await upload(client, customer, data, "certificate")
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["media_type"] == "application/pdf"
    assert meta["width"] is None
    got = await client.get(await link(client, customer, meta["id"]))
    assert got.content == data
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    ("data", "code", "says"),
    [
        (s.windows_program(), "unsupported_file_type", "a Windows program"),
        (s.jpeg()[:400], "corrupt_file", "cut short"),
        (s.jpeg() + s.zip_archive(), "hidden_content", "ZIP archive"),
        (s.png_bomb(), "image_too_large", "more pixels than may be decoded"),
        (s.pdf(), "unsupported_file_type", "review_photo accepts image/jpeg"),
        (b"", "unsupported_file_type", "empty"),
    ],
    ids=["exe-named-jpg", "truncated", "polyglot", "bomb", "pdf-as-photo", "empty"],
)
async def test_a_bad_upload_is_refused_and_leaves_nothing(
    client: httpx.AsyncClient,
    customer: Account,
    blobs: LocalBlobStore,
    stores: Stores,
    data: bytes,
    code: str,
    says: str,
) -> None:
    """An .exe sent as photo.jpg/image/jpeg, a truncated JPEG, a JPEG+ZIP polyglot, a
    decompression bomb, a PDF as a photo, an empty body: 422 naming field body and the
    rule, and no blob, no row, no upload counted."""
    before = blob_files(blobs)
    r = await upload(
        client,
        customer,
        data,
        headers={"content-disposition": 'attachment; filename="photo.jpg"'},
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == (code, "body")
    assert says in error["message"]
    assert blob_files(blobs) == before
    assert await rows_of(stores, customer.id) == 0
    assert await store.upload_count(stores.pool, customer.id) == (None, 0)


async def test_an_oversized_upload_is_413_with_or_without_content_length(
    client: httpx.AsyncClient, customer: Account, blobs: LocalBlobStore, stores: Stores
) -> None:
    """Past the purpose's byte limit: 413 on field body, announced or streamed; nothing kept."""
    name = f"test_small_{secrets.token_hex(3)}"
    register_purpose(name, media_types=IMAGE_TYPES, max_bytes=2000, may_read=_nobody)
    data = unique_jpeg() + b"\x00" * 3000
    before = blob_files(blobs)
    r = await upload(client, customer, data, name)
    assert r.status_code == 413
    assert r.json()["error"]["field"] == "body"
    assert f"larger than 2000 bytes, the limit for {name}" in r.json()["error"]["message"]

    async def stream() -> Any:
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    r = await client.post(f"/v1/files?purpose={name}", content=stream(), headers=customer.auth)
    assert r.status_code == 413
    assert blob_files(blobs) == before
    assert await rows_of(stores, customer.id) == 0


async def test_purpose_is_required_known_and_allowed_for_the_role(
    client: httpx.AsyncClient, customer: Account, make_user: MakeUser
) -> None:
    """No purpose or an unknown one is 422 naming purpose; a worker uploading a review photo is 403."""
    r = await client.post("/v1/files", content=s.jpeg(), headers=customer.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "purpose")
    r = await upload(client, customer, s.jpeg(), "selfie")
    assert (r.status_code, r.json()["error"]["field"]) == (422, "purpose")
    assert "review_photo" in r.json()["error"]["message"]
    worker = await make_user("worker")
    r = await upload(client, worker, s.jpeg(), "review_photo")
    assert r.status_code == 403
    assert r.json()["error"] == {
        "code": "upload_not_allowed",
        "field": "purpose",
        "message": "review_photo files are uploaded by: customer",
    }
    assert (await upload(client, worker, unique_jpeg(), "job_photo")).status_code == 201


async def test_purposes_are_listed(client: httpx.AsyncClient) -> None:
    """GET /v1/file-purposes lists each purpose's types, byte limit, edge and uploaders."""
    r = await client.get("/v1/file-purposes")
    by_name = {p["name"]: p for p in r.json()}
    assert by_name["certificate"]["media_types"] == [
        "application/pdf",
        "image/jpeg",
        "image/png",
        "image/webp",
    ]
    assert by_name["review_photo"]["uploaders"] == ["customer"]
    assert by_name["id_card"]["max_bytes"] == 10 * 1024 * 1024


async def test_an_expired_link_is_410_and_a_tampered_one_403(
    client: httpx.AsyncClient, customer: Account, settings: Settings
) -> None:
    """A correctly signed link past its expiry is 410 link_expired (field exp); a link with
    its expiry, file id or signature changed is 403 bad_signature (field sig)."""
    meta = (await upload(client, customer, unique_jpeg())).json()
    key = links.link_key(settings.secret_key)
    past = int(time.time()) - 1
    expired = links.path(
        meta["id"], expires_at=past, sig=links.sign(key, file_id=meta["id"], expires_at=past)
    )
    r = await client.get(expired)
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "link_expired"
    assert r.json()["error"]["field"] == "exp"

    good = await link(client, customer, meta["id"])
    query = parse_qs(urlsplit(good).query)
    exp, sig = query["exp"][0], query["sig"][0]
    tampered = [
        f"/v1/files/{meta['id']}/content?exp={int(exp) + 86400}&sig={sig}",
        f"/v1/files/{meta['id'] + 1}/content?exp={exp}&sig={sig}",
        f"/v1/files/{meta['id']}/content?exp={exp}&sig={sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}",
    ]
    for path in tampered:
        r = await client.get(path)
        assert r.status_code == 403, path
        assert r.json()["error"]["code"] == "bad_signature"
        assert r.json()["error"]["field"] == "sig"
    r = await client.get(f"/v1/files/{meta['id']}/content?exp={exp}")
    assert (r.status_code, r.json()["error"]["field"]) == (422, "sig")
    r = await client.get(f"/v1/files/{meta['id']}/content?exp=soon&sig={sig}")
    assert (r.status_code, r.json()["error"]["field"]) == (422, "exp")
    assert (await client.get(good)).status_code == 200


async def test_another_users_file_is_404_everywhere(
    client: httpx.AsyncClient, customer: Account, make_user: MakeUser
) -> None:
    """Another customer gets 404 for the metadata, a link and a delete, as if it did not exist."""
    meta = (await upload(client, customer, unique_jpeg())).json()
    other = await make_user("customer")
    for method, path in [
        ("GET", f"/v1/files/{meta['id']}"),
        ("GET", f"/v1/files/{meta['id']}/url"),
        ("DELETE", f"/v1/files/{meta['id']}"),
    ]:
        r = await client.request(method, path, headers=other.auth)
        assert r.status_code == 404, (method, path)
        assert r.json()["error"] == {
            "code": "file_not_found",
            "field": "file_id",
            "message": r.json()["error"]["message"],
        }
    assert (await client.get(f"/v1/files/{meta['id']}", headers=customer.auth)).status_code == 200
    r = await client.get("/v1/files/999999999", headers=customer.auth)
    assert r.status_code == 404


async def test_staff_read_by_the_purpose_rule(
    client: httpx.AsyncClient, customer: Account, make_user: MakeUser
) -> None:
    """A dispatcher may read a review photo but not an ID card; an admin may read both."""
    photo = (await upload(client, customer, unique_jpeg())).json()
    card = (await upload(client, customer, unique_jpeg(), "id_card")).json()
    dispatcher = await make_user("dispatcher")
    admin = await make_user("admin")
    assert (
        await client.get(f"/v1/files/{photo['id']}/url", headers=dispatcher.auth)
    ).status_code == 200
    assert (
        await client.get(f"/v1/files/{card['id']}/url", headers=dispatcher.auth)
    ).status_code == 404
    assert (await client.get(f"/v1/files/{card['id']}/url", headers=admin.auth)).status_code == 200
    r = await client.delete(f"/v1/files/{card['id']}", headers=admin.auth)
    assert r.status_code == 404  # only owners delete


async def _nobody(caller: Caller, file: StoredFile, db: Any) -> bool:
    return False


async def test_a_capability_plugs_in_its_read_rule(
    client: httpx.AsyncClient, customer: Account, make_user: MakeUser, stores: Stores
) -> None:
    """A purpose registered with its own rule (here: the party named in the attachment, read
    from PostgreSQL) decides who besides the owner may read; staff get nothing by default."""
    party = await make_user("worker")
    stranger = await make_user("worker")
    admin = await make_user("admin")
    name = f"test_evidence_{secrets.token_hex(3)}"

    async def ticket_parties(who: Caller, file: StoredFile, db: Any) -> bool:
        ref = await db.fetchval("SELECT attached_to FROM files WHERE id = $1", file.id)
        return bool(ref == f"ticket-for:{who.user_id}")

    register_purpose(name, media_types=IMAGE_TYPES, max_bytes=10**6, may_read=ticket_parties)
    meta = (await upload(client, customer, unique_jpeg(), name)).json()
    async with stores.pool.acquire() as conn, conn.transaction():
        await service.attach(
            conn,
            file_id=meta["id"],
            owner_id=customer.id,
            purpose=name,
            ref=f"ticket-for:{party.id}",
            now=int(time.time()),
        )
    assert (await client.get(f"/v1/files/{meta['id']}/url", headers=party.auth)).status_code == 200
    for other in (stranger, admin):
        r = await client.get(f"/v1/files/{meta['id']}/url", headers=other.auth)
        assert r.status_code == 404


async def test_an_avatar_is_readable_by_anyone_signed_in_once_attached(
    client: httpx.AsyncClient, customer: Account, make_user: MakeUser, stores: Stores
) -> None:
    """Before the owner attaches an avatar only they (and staff) see it; after, anyone signed in."""
    meta = (await upload(client, customer, unique_jpeg(), "avatar")).json()
    other = await make_user("worker")
    assert (await client.get(f"/v1/files/{meta['id']}", headers=other.auth)).status_code == 404
    async with stores.pool.acquire() as conn, conn.transaction():
        await service.attach(
            conn,
            file_id=meta["id"],
            owner_id=customer.id,
            purpose="avatar",
            ref=f"profile:{customer.id}",
            now=int(time.time()),
        )
    r = await client.get(f"/v1/files/{meta['id']}", headers=other.auth)
    assert r.status_code == 200
    assert r.json()["attached_to"] == f"profile:{customer.id}"


async def test_delete_own_unattached_file_removes_its_blob(
    client: httpx.AsyncClient, customer: Account, blobs: LocalBlobStore, stores: Stores
) -> None:
    """The owner deletes an unattached file: 204, the row and the blob are gone, the link 404s."""
    meta = (await upload(client, customer, unique_jpeg())).json()
    path = await link(client, customer, meta["id"])
    r = await client.delete(f"/v1/files/{meta['id']}", headers=customer.auth)
    assert r.status_code == 204
    assert not blobs.path(meta["sha256"]).exists()
    assert not await store.blob_recorded(stores.pool, meta["sha256"])
    assert (await client.get(path)).status_code == 404
    assert (
        await client.delete(f"/v1/files/{meta['id']}", headers=customer.auth)
    ).status_code == 404


async def test_an_attached_file_cannot_be_deleted_until_detached(
    client: httpx.AsyncClient, customer: Account, stores: Stores
) -> None:
    """Attached to a review, a file is 409 file_attached on delete; detached, it can go."""
    meta = (await upload(client, customer, unique_jpeg())).json()
    now = int(time.time())
    async with stores.pool.acquire() as conn, conn.transaction():
        await service.attach(
            conn,
            file_id=meta["id"],
            owner_id=customer.id,
            purpose="review_photo",
            ref="review:1",
            now=now,
        )
    r = await client.delete(f"/v1/files/{meta['id']}", headers=customer.auth)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "file_attached"
    assert "review:1" in r.json()["error"]["message"]
    async with stores.pool.acquire() as conn, conn.transaction():
        await service.detach(conn, file_id=meta["id"], ref="review:1")
    assert (
        await client.delete(f"/v1/files/{meta['id']}", headers=customer.auth)
    ).status_code == 204


async def test_attach_checks_owner_purpose_and_state(
    client: httpx.AsyncClient, customer: Account, make_user: MakeUser, stores: Stores
) -> None:
    """Attaching someone else's file or one of another purpose is not found; twice is a conflict."""
    meta = (await upload(client, customer, unique_jpeg())).json()
    other = await make_user("customer")
    now = int(time.time())
    async with stores.pool.acquire() as conn:
        with pytest.raises(FileNotFound):
            await service.attach(
                conn,
                file_id=meta["id"],
                owner_id=other.id,
                purpose="review_photo",
                ref="review:2",
                now=now,
            )
        with pytest.raises(FileNotFound):
            await service.attach(
                conn,
                file_id=meta["id"],
                owner_id=customer.id,
                purpose="avatar",
                ref="review:2",
                now=now,
            )
        await service.attach(
            conn,
            file_id=meta["id"],
            owner_id=customer.id,
            purpose="review_photo",
            ref="review:2",
            now=now,
        )
        with pytest.raises(FileAttached):
            await service.attach(
                conn,
                file_id=meta["id"],
                owner_id=customer.id,
                purpose="review_photo",
                ref="review:3",
                now=now,
            )
        with pytest.raises(FileNotFound):
            await service.detach(conn, file_id=meta["id"], ref="review:3")


async def test_a_repeat_upload_returns_the_same_file_and_blobs_are_shared(
    client: httpx.AsyncClient, customer: Account, make_user: MakeUser, blobs: LocalBlobStore
) -> None:
    """The same content again by its owner for the same purpose, still unattached, is 200 with the
    same file; another purpose or owner gets a file of its own on the same blob, which stays until
    the last file using it is deleted."""
    data = unique_jpeg()
    first = await upload(client, customer, data)
    again = await upload(client, customer, data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = await make_user("customer")
    theirs = (await upload(client, other, data)).json()
    assert theirs["id"] != first.json()["id"]
    assert theirs["sha256"] == first.json()["sha256"]
    sha = theirs["sha256"]
    await client.delete(f"/v1/files/{first.json()['id']}", headers=customer.auth)
    assert blobs.path(sha).exists()
    got = await client.get(await link(client, other, theirs["id"]))
    assert got.status_code == 200
    await client.delete(f"/v1/files/{theirs['id']}", headers=other.auth)
    assert not blobs.path(sha).exists()


async def test_upload_count_is_kept_in_postgresql_and_holds_under_concurrency(
    client: httpx.AsyncClient, customer: Account, stores: Stores, blobs: LocalBlobStore
) -> None:
    """With 59 uploads counted this hour, five parallel uploads give exactly one 201 and four
    429 upload_limit; the refused ones leave no blob and no row."""
    now = int(time.time())
    await stores.pool.execute(
        "INSERT INTO file_upload_counts (owner_id, window_start, uploads) VALUES ($1, $2, 59)",
        customer.id,
        store.ts(now - 60),
    )
    before = blob_files(blobs)
    results = await asyncio.gather(*(upload(client, customer, unique_jpeg()) for _ in range(5)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 429, 429, 429, 429], [r.text for r in results]
    refused = [r.json()["error"] for r in results if r.status_code == 429]
    assert all(e["code"] == "upload_limit" and e["field"] == "body" for e in refused)
    assert await rows_of(stores, customer.id) == 1
    assert len(blob_files(blobs) - before) == 1
    assert (await store.upload_count(stores.pool, customer.id))[1] == 60


async def test_cleanup_removes_stale_unattached_files_and_keeps_attached_ones(
    stores: Stores, customer: Account, blobs: LocalBlobStore
) -> None:
    """Files left unattached past the grace go (row and blob); attached and recent ones stay."""
    who = caller(customer)
    now = int(time.time())
    old = now - service.UNATTACHED_GRACE_S - 60
    stale, _ = await service.upload(
        stores, blobs, who, purpose="review_photo", data=unique_jpeg(), now=old
    )
    kept, _ = await service.upload(
        stores, blobs, who, purpose="review_photo", data=unique_jpeg(), now=old
    )
    recent, _ = await service.upload(
        stores, blobs, who, purpose="review_photo", data=unique_jpeg(), now=now
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await service.attach(
            conn,
            file_id=kept.id,
            owner_id=customer.id,
            purpose="review_photo",
            ref="review:9",
            now=now,
        )
    report = await service.cleanup(stores, blobs, now=now)
    assert report.files_deleted >= 1
    assert await store.file_by_id(stores.pool, stale.id) is None
    assert not blobs.path(stale.sha256).exists()
    assert await store.file_by_id(stores.pool, kept.id) is not None
    assert blobs.path(kept.sha256).exists()
    assert await store.file_by_id(stores.pool, recent.id) is not None
    assert blobs.path(recent.sha256).exists()


async def test_cleanup_removes_what_a_crash_leaves_and_nothing_in_flight(
    stores: Stores, customer: Account, blobs: LocalBlobStore
) -> None:
    """A blob written with no row (a crash before the insert) and a half-written temporary file
    are removed; a blob whose upload is still in its transaction is left alone and completes."""
    now = int(time.time())
    orphan = secrets.token_bytes(64)
    orphan_sha = hashlib.sha256(orphan).hexdigest()
    assert await blobs.put(orphan_sha, orphan)
    blobs.tmp.mkdir(parents=True, exist_ok=True)
    half = blobs.tmp / f"{orphan_sha}.deadbeef"
    half.write_bytes(b"half")

    prepared = prepare(unique_jpeg(), get("review_photo"))
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.lock_blob(conn, prepared.sha256)  # an upload, between its write and commit
        await blobs.put(prepared.sha256, prepared.data)
        report = await service.cleanup(stores, blobs, now=now + 10, orphan_grace_s=0)
        assert blobs.path(prepared.sha256).exists()
        await store.insert_blob(
            conn,
            sha256=prepared.sha256,
            size_bytes=len(prepared.data),
            media_type="image/jpeg",
            now=now,
        )
        await store.insert_file(
            conn,
            owner_id=customer.id,
            purpose="review_photo",
            sha256=prepared.sha256,
            media_type="image/jpeg",
            size_bytes=len(prepared.data),
            width=prepared.width,
            height=prepared.height,
            now=now,
        )
    assert report.orphans_deleted >= 1
    assert report.temp_deleted >= 1
    assert not blobs.path(orphan_sha).exists()
    assert not half.exists()
    await service.cleanup(stores, blobs, now=now + 10, orphan_grace_s=0)
    assert blobs.path(prepared.sha256).exists()  # recorded now: kept


async def test_orphans_younger_than_the_grace_are_kept(
    stores: Stores, blobs: LocalBlobStore
) -> None:
    """A blob with no row written within the grace period is not removed yet."""
    data = secrets.token_bytes(32)
    sha = hashlib.sha256(data).hexdigest()
    await blobs.put(sha, data)
    await service.cleanup(stores, blobs, now=int(time.time()))
    assert blobs.path(sha).exists()
    await blobs.delete(sha)


async def test_blob_writes_are_atomic_and_idempotent(tmp_path: Path) -> None:
    """A blob appears complete under its name or not at all; writing it again changes nothing."""
    local = LocalBlobStore(tmp_path / "files")
    data = b"x" * 1000
    sha = hashlib.sha256(data).hexdigest()
    assert await local.put(sha, data) is True
    assert await local.put(sha, data) is False
    assert await local.get(sha) == data
    assert list(local.tmp.iterdir()) == []
    assert [h async for h, _ in local.listing()] == [sha]
    with pytest.raises(ValueError, match="not a SHA-256"):
        local.path("../../etc/passwd")
