"""Worker onboarding over the API: sign-up by SMS code, profile, documents checked by type
and size, identity and background checks through the sandbox provider, the reviewers'
queue, per-document verdicts, changes and resubmission, approval into the workforce,
every step audited."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from doorstep.stores import Stores
from onboarding.sandbox import SandboxServer
from tests.files_samples import jpeg, pdf
from tests.helpers import Account, MakeUser
from tests.onboarding_setup import Trade, fill_in, make_trade, sign_up, upload


@pytest.fixture
async def trade(client: httpx.AsyncClient, admin: Account, stores: Stores) -> Trade:
    """A skill needing a certificate, and a service needing the skill."""
    return await make_trade(client, admin, stores)


@pytest.fixture
def sandbox(live_app: tuple[str, Any]) -> Any:
    """The app's verification sandbox, its faults off again after the test."""
    server: SandboxServer = live_app[1].state.verify_sandbox
    yield server.provider
    server.provider.faults.clear()


def _err(r: httpx.Response) -> tuple[int, str, str | None]:
    e = r.json()["error"]
    return r.status_code, e["code"], e["field"]


async def test_bad_input_names_the_field_and_the_rule(
    client: httpx.AsyncClient, stores: Stores, live_city: str, trade: Trade
) -> None:
    """A wrong ID checksum, a face photo too small, a PDF as a face, a certificate without dates: 422 naming field and rule."""
    who = await sign_up(client, stores)
    r = await client.patch(
        "/v1/onboarding/application", headers=who.auth, json={"id_number": "110105194912310021"}
    )
    assert _err(r) == (422, "invalid_id_number", "id_number")
    assert "ISO 7064 MOD 11-2" in r.json()["error"]["message"]
    small = await upload(client, who, jpeg(60, 30, gps=False), "id_card")
    r = await client.post(
        "/v1/onboarding/application/documents",
        headers=who.auth,
        json={"kind": "face", "file_id": small},
    )
    assert _err(r) == (422, "wrong_document", "file_id")
    assert "shorter edge" in r.json()["error"]["message"]
    scan = await upload(client, who, pdf(), "certificate")
    r = await client.post(
        "/v1/onboarding/application/documents",
        headers=who.auth,
        json={"kind": "face", "file_id": scan},
    )
    assert _err(r) == (422, "wrong_document", "file_id")
    r = await client.post(
        "/v1/onboarding/application/documents",
        headers=who.auth,
        json={"kind": "health", "file_id": scan, "number": "JK123"},
    )
    assert _err(r) == (422, "invalid_field", "issued_on")
    r = await client.post("/v1/onboarding/application/submit", headers=who.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "real_name"


async def test_an_empty_patch_changes_nothing(
    client: httpx.AsyncClient, stores: Stores, live_city: str
) -> None:
    """PATCH with no fields answers the application as it was (it was a 500: an UPDATE
    with nothing to set; found by tests/test_access_matrix.py)."""
    who = await sign_up(client, stores)
    before = (await client.get("/v1/onboarding/application", headers=who.auth)).json()
    r = await client.patch("/v1/onboarding/application", headers=who.auth, json={})
    assert r.status_code == 200, r.text
    after = r.json()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


async def test_apply_review_fix_resubmit_and_become_a_worker(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: Account,
    live_city: str,
    trade: Trade,
    sandbox: Any,
) -> None:
    """The whole path: apply, checks pass, a document is rejected and the application sent back, fixed, resubmitted, approved; the worker exists with verified certificates and every step is audited."""
    who = await sign_up(client, stores)
    assert "worker" in who.roles
    app = await fill_in(client, who, city=live_city, trade=trade)
    r = await client.post("/v1/onboarding/application/submit", headers=who.auth)
    assert r.status_code == 200, r.text
    app = r.json()
    assert (app["status"], app["identity_status"], app["background_status"]) == (
        "submitted",
        "verified",
        "clear",
    )
    queue = (await client.get("/v1/onboarding/applications", headers=admin.auth)).json()
    assert app["id"] in [q["id"] for q in queue]
    item = next(q for q in queue if q["id"] == app["id"])
    assert "*" in item["id_number_masked"]
    r = await client.get("/v1/onboarding/applications", headers=who.auth)
    assert r.status_code == 403
    back = next(d for d in app["documents"] if d["kind"] == "id_back")
    base = f"/v1/onboarding/applications/{app['id']}"
    r = await client.put(
        f"{base}/documents/{back['id']}/verdict", headers=admin.auth, json={"verdict": "reject"}
    )
    assert _err(r) == (422, "invalid_field", "reason")
    r = await client.put(
        f"{base}/documents/{back['id']}/verdict",
        headers=admin.auth,
        json={"verdict": "reject", "reason": "背面模糊，请重新拍摄"},
    )
    assert r.json()["status"] == "rejected"
    r = await client.post(f"{base}/decision", headers=admin.auth, json={"decision": "approve"})
    assert r.status_code == 409
    r = await client.post(
        f"{base}/decision",
        headers=admin.auth,
        json={"decision": "request_changes", "reason": "请重新上传身份证背面"},
    )
    assert r.json()["status"] == "changes_requested"
    mine = (await client.get("/v1/onboarding/application", headers=who.auth)).json()
    assert mine["reason"] == "请重新上传身份证背面"
    fid = await upload(client, who, jpeg(700, 500, gps=False), "id_card")
    r = await client.post(
        "/v1/onboarding/application/documents",
        headers=who.auth,
        json={"kind": "id_back", "file_id": fid},
    )
    assert r.status_code == 201
    assert [d["status"] for d in r.json()["documents"] if d["kind"] == "id_back"] == [
        "pending",
        "replaced",
    ]
    r = await client.post("/v1/onboarding/application/submit", headers=who.auth)
    assert r.json()["status"] == "submitted"
    full = (await client.get(base, headers=admin.auth)).json()
    for d in full["documents"]:
        if d["status"] == "pending":
            r = await client.put(
                f"{base}/documents/{d['id']}/verdict",
                headers=admin.auth,
                json={"verdict": "approve"},
            )
            assert r.status_code == 200, r.text
    r = await client.post(f"{base}/decision", headers=admin.auth, json={"decision": "approve"})
    assert r.status_code == 200, r.text
    steps = [s["step"] for s in r.json()["steps"]]
    for step in (
        "created",
        "profile",
        "document",
        "submitted",
        "checks",
        "document_rejected",
        "changes_requested",
        "resubmitted",
        "document_approved",
        "approved",
    ):
        assert step in steps, (step, steps)
    rejected = next(s for s in r.json()["steps"] if s["step"] == "document_rejected")
    assert (rejected["actor_id"], rejected["reason"]) == (admin.id, "背面模糊，请重新拍摄")
    worker = (await client.get(f"/v1/workers/{who.id}", headers=admin.auth)).json()
    assert worker["skills"] == [trade.skill]
    certificates = {(c["kind"], c["status"]) for c in worker["certificates"]}
    assert certificates == {(trade.certificate, "verified"), ("health", "verified")}
    assert await stores.pool.fetchval(
        "SELECT exams_required FROM workers WHERE user_id = $1", who.id
    )


async def test_identity_mismatch_and_a_provider_timeout_are_recorded_and_rechecked(
    client: httpx.AsyncClient,
    stores: Stores,
    admin: Account,
    live_app: tuple[str, Any],
    live_city: str,
    trade: Trade,
    sandbox: Any,
) -> None:
    """The mismatch fault makes the identity check 'mismatch' (approval refused); a hanging provider is 'unavailable'; a recheck clears both."""
    who = await sign_up(client, stores, name="李娜")
    await fill_in(client, who, city=live_city, trade=trade, name="李娜")
    sandbox.faults.add("mismatch")
    app = (await client.post("/v1/onboarding/application/submit", headers=who.auth)).json()
    assert app["identity_status"] == "mismatch"
    assert "姓名和身份证号不一致" in app["identity_detail"]
    base = f"/v1/onboarding/applications/{app['id']}"
    for d in app["documents"]:
        await client.put(
            f"{base}/documents/{d['id']}/verdict", headers=admin.auth, json={"verdict": "approve"}
        )
    r = await client.post(f"{base}/decision", headers=admin.auth, json={"decision": "approve"})
    assert _err(r) == (409, "application_state", "identity_status")
    sandbox.faults.clear()
    sandbox.faults.add("timeout")
    verifier = live_app[1].state.verifier
    verifier._http.timeout = httpx.Timeout(0.5)
    await stores.pool.execute(
        "UPDATE applications SET identity_status = 'unchecked', background_status = 'unchecked' WHERE id = $1",
        app["id"],
    )
    r = await client.post(f"{base}/checks", headers=admin.auth)
    assert (r.json()["identity_status"], r.json()["background_status"]) == (
        "unavailable",
        "unavailable",
    )
    sandbox.faults.clear()
    verifier._http.timeout = httpx.Timeout(verifier.config.timeout_s)
    r = await client.post(f"{base}/checks", headers=admin.auth)
    assert (r.json()["identity_status"], r.json()["background_status"]) == ("verified", "clear")
    r = await client.post(f"{base}/decision", headers=admin.auth, json={"decision": "approve"})
    assert r.json()["status"] == "approved"


async def test_the_sandbox_refuses_a_bad_signature(live_app: tuple[str, Any]) -> None:
    """A request signed with another secret is AuthFailure.SignatureFailure, as the real API answers."""
    from onboarding.provider import ProviderConfig, ProviderUnavailable, TencentLikeClient

    real = live_app[1].state.verifier
    wrong = TencentLikeClient(
        ProviderConfig(real.config.url, real.config.secret_id, "not-the-secret")
    )
    with pytest.raises(ProviderUnavailable, match=r"AuthFailure\.SignatureFailure"):
        await wrong.check(name="张三", id_number="11010519491231002X")
    await wrong.close()


async def test_a_reviewer_reads_the_queue_and_the_scans_a_dispatcher_does_not(
    client: httpx.AsyncClient,
    stores: Stores,
    make_user: MakeUser,
    live_city: str,
    trade: Trade,
) -> None:
    """The reviewer role sees the queue and may open an ID card scan; a dispatcher gets 403 on the queue and 404 on the scan."""
    who = await sign_up(client, stores, name="周丽")
    await fill_in(client, who, city=live_city, trade=trade, name="周丽")
    app = (await client.post("/v1/onboarding/application/submit", headers=who.auth)).json()
    reviewer, dispatcher = await make_user("reviewer"), await make_user("dispatcher")
    assert (await client.get("/v1/me", headers=reviewer.auth)).status_code == 200
    r = await client.get(f"/v1/onboarding/applications/{app['id']}", headers=reviewer.auth)
    assert r.status_code == 200
    front = next(d for d in r.json()["documents"] if d["kind"] == "id_front")
    r = await client.get(f"/v1/files/{front['file_id']}/url", headers=reviewer.auth)
    assert r.status_code == 200, r.text
    assert (
        await client.get("/v1/onboarding/applications", headers=dispatcher.auth)
    ).status_code == 403
    r = await client.get(f"/v1/files/{front['file_id']}/url", headers=dispatcher.auth)
    assert r.status_code == 404
