"""Alipay's amounts and RSA2 signatures, pure, checked both ways against python-alipay-sdk."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from doorstep.errors import InvalidInput
from payments.alipay_money import fen_to_yuan, yuan_to_fen
from payments.alipay_sign import (
    BadResponse,
    encode_response,
    load_private_key,
    load_public_key,
    notification_ok,
    parse_response,
    private_pem,
    public_pem,
    request_ok,
    sign_notification,
    sign_params,
    signed_text,
    signing_content,
)

APP = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ALIPAY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _sdk() -> Any:
    from payments.alipay import _sdk as sdk_classes

    AliPay, _ = sdk_classes()  # imported without the SDK's logging set-up
    return AliPay(
        appid="2021000000000077",
        app_private_key_string=private_pem(APP),
        alipay_public_key_string=public_pem(ALIPAY.public_key()),
        sign_type="RSA2",
    )


# ---- amounts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fen"),
    [("0.01", 1), ("12.34", 1234), ("19.99", 1999), ("0.10", 10), ("100000000.00", 10**10)],
)
def test_yuan_strings_become_exact_fen(text: str, fen: int) -> None:
    """A yuan string with two decimals is read as exact integer fen, and written back the same."""
    assert yuan_to_fen(text) == fen
    assert fen_to_yuan(fen) == text


@pytest.mark.parametrize(
    "bad",
    [
        "12.3",
        "12",
        "12.345",
        "1e3",
        "-1.00",
        " 1.00",
        "1.00 ",
        "01.00",
        "0.00",
        "100000000.01",
        "１.００",
        "1,00",
        "",
        12.34,
        1234,
        None,
    ],
)
def test_anything_but_yuan_with_two_decimals_is_refused(bad: object) -> None:
    """Floats, integers, one or three decimals, signs, spaces, exponents, full-width digits, zero and too much are refused naming the field."""
    with pytest.raises(InvalidInput) as e:
        yuan_to_fen(bad, field="total_amount")
    assert e.value.field == "total_amount"


@pytest.mark.parametrize("bad", [0, -1, 12.5, True, 10**10 + 1, "100"])
def test_only_integer_fen_in_range_are_written(bad: object) -> None:
    """fen_to_yuan refuses floats, booleans, strings, zero, negatives and amounts past Alipay's limit."""
    with pytest.raises(InvalidInput) as e:
        fen_to_yuan(bad)  # type: ignore[arg-type]
    assert e.value.field == "amount_fen"


# ---- requests -------------------------------------------------------------------------


def test_a_request_signed_by_the_sdk_verifies_here_and_tampering_breaks_it() -> None:
    """python-alipay-sdk's signed request (sorted k=v, sign excluded, sign_type included) checks out with our code; a changed amount does not."""
    from urllib.parse import parse_qsl

    sdk = _sdk()
    query = sdk.client_api(
        "alipay.trade.precreate",
        {"out_trade_no": "o1", "total_amount": "12.34", "subject": "深度保洁"},
        notify_url="http://127.0.0.1/notify",
    )
    params = dict(parse_qsl(query, keep_blank_values=True))
    assert params["sign_type"] == "RSA2"
    assert request_ok(params, APP.public_key())
    tampered = params | {"biz_content": params["biz_content"].replace("12.34", "0.01")}
    assert not request_ok(tampered, APP.public_key())
    assert not request_ok(params, ALIPAY.public_key())  # not the app's key


def test_our_signed_request_is_the_sdk_signature_of_the_same_parameters() -> None:
    """Signing the same parameters here and in the SDK gives the same sign (PKCS#1 v1.5 is deterministic)."""
    sdk = _sdk()
    params = {
        "app_id": "2021000000000077",
        "method": "alipay.trade.query",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-12-06 15:00:00",
        "version": "1.0",
        "biz_content": '{"out_trade_no":"o1"}',
    }
    ours = sign_params(params, APP)
    raw = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    assert ours["sign"] == sdk._sign(raw)


def test_the_signed_text_leaves_out_sign_and_empty_values() -> None:
    """Empty values and sign are not signed; sign_type is, for requests, and is not, for notifications."""
    params = {"b": "2", "a": "1", "empty": "", "sign": "x", "sign_type": "RSA2"}
    assert signing_content(params) == "a=1&b=2&sign_type=RSA2"
    assert signing_content(params, unsigned={"sign", "sign_type"}) == "a=1&b=2"


# ---- answers ----------------------------------------------------------------------------


def test_our_signed_answer_verifies_in_the_sdk_and_a_changed_one_does_not() -> None:
    """The sandbox's answer format passes python-alipay-sdk's check; a tampered byte fails it."""
    from alipay.exceptions import AliPayValidationError

    sdk = _sdk()
    payload = {"code": "10000", "msg": "Success", "sub_msg": "交易{不}存在", "total_amount": "9.99"}
    raw = encode_response("alipay_trade_query_response", payload, ALIPAY).decode()
    assert sdk._verify_and_return_sync_response(raw, "alipay_trade_query_response") == payload
    assert parse_response(raw.encode(), "alipay.trade.query", ALIPAY.public_key()) == payload
    with pytest.raises(AliPayValidationError):
        sdk._verify_and_return_sync_response(
            raw.replace("9.99", "0.99"), "alipay_trade_query_response"
        )
    with pytest.raises(BadResponse):
        parse_response(
            raw.replace("9.99", "0.99").encode(), "alipay.trade.query", ALIPAY.public_key()
        )


def test_the_signed_text_is_cut_from_the_raw_answer_even_with_braces_in_strings() -> None:
    """The object's exact text is found by parsing, so braces inside strings do not cut it short."""
    raw = '{"x_response":{"msg":"a}b{","n":{"k":1}},"sign":"s"}'
    assert signed_text(raw, "x_response") == '{"msg":"a}b{","n":{"k":1}}'


# ---- notifications ------------------------------------------------------------------------


def test_a_notification_is_verified_without_sign_type_and_fails_when_changed() -> None:
    """A signed notification checks out under Alipay's public key; a changed amount, or another key's signature, does not."""
    params = {
        "notify_id": "n1",
        "sign_type": "RSA2",
        "out_trade_no": "o1",
        "total_amount": "12.34",
        "refund_fee": "",
    }
    signed = sign_notification(params, ALIPAY)
    assert notification_ok(signed, ALIPAY.public_key())
    assert notification_ok(signed | {"sign_type": "RSA"}, ALIPAY.public_key())  # not signed
    assert not notification_ok(signed | {"total_amount": "1234.00"}, ALIPAY.public_key())
    forged = sign_notification(params, APP)
    assert not notification_ok(forged, ALIPAY.public_key())
    assert not notification_ok(signed | {"sign": "not base64!"}, ALIPAY.public_key())
    # The SDK agrees (it leaves sign_type out when told to verify).
    sdk = _sdk()
    data = {k: v for k, v in signed.items() if k not in ("sign", "refund_fee")}
    assert sdk.verify(data, signed["sign"])


def test_keys_load_from_pem_or_the_consoles_bare_base64() -> None:
    """A key pasted as the Alipay console shows it (base64, no PEM lines) loads like its PEM."""
    der_private = APP.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    der_public = APP.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bare_private = base64.b64encode(der_private).decode()
    bare_public = base64.b64encode(der_public).decode()
    assert private_pem(load_private_key(bare_private)) == private_pem(APP)
    assert public_pem(load_public_key(bare_public)) == public_pem(APP.public_key())
    with pytest.raises(ValueError, match="not an RSA private key") as e:
        load_private_key("not a key")
    assert "not a key" not in str(e.value)
    assert json.dumps(private_pem(APP))  # PEM text is what the SDK takes


def test_importing_the_sdk_leaves_the_processs_logging_alone() -> None:
    """In a fresh process, building the adapter keeps the handlers open and adds none (the SDK's import-time dictConfig is skipped)."""
    import subprocess
    import sys

    code = (
        "import io, logging\n"
        "from payments.alipay import _sdk\n"
        "stream = io.StringIO()\n"
        "handler = logging.StreamHandler(stream)\n"
        "logging.getLogger().addHandler(handler)\n"
        "_sdk()\n"
        "assert handler in logging._handlerList or any(r() is handler for r in logging._handlerList)\n"
        "assert logging.getLogger('python-alipay-sdk').handlers == []\n"
        "logging.getLogger('x').warning('still here')\n"
        "assert 'still here' in stream.getvalue()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
