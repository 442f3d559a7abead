"""The pure account rules: phone numbers, masking, passwords, roles and names."""

from __future__ import annotations

import pytest

from accounts.errors import InvalidAccountInput
from accounts.rules import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    check_name,
    check_password,
    check_roles,
    mask_phone,
    normalize_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("0086 138-0013-8000", "13800138000"),
        ("138-0013-8000", "13800138000"),
        ("+86-138-0013-8000", "13800138000"),
        ("  13800138000\t", "13800138000"),
        ("19912345678", "19912345678"),
        ("14712345678", "14712345678"),
    ],
)
def test_normalize_phone_accepts_mobile_formats(raw: str, expected: str) -> None:
    """+86/0086 prefixes, spaces and dashes are accepted and stripped to 11 digits."""
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("1380013800", id="10-digits"),
        pytest.param("138001380001", id="12-digits"),
        pytest.param("+86138001380001", id="12-digits-after-prefix"),
        pytest.param("075583765432", id="landline"),
        pytest.param("0755-8376-5432", id="landline-dashed"),
        pytest.param("+86 755 8376 5432", id="landline-with-country-code"),
        pytest.param("12800138000", id="second-digit-2"),
        pytest.param("23800138000", id="first-digit-2"),
        pytest.param("1380013800a", id="trailing-letter"),
        pytest.param("138OO138OOO", id="letter-o-for-zero"),
        pytest.param("abcdefghijk", id="letters"),
        pytest.param("+8513800138000", id="other-country-code"),
        pytest.param("(138)00138000", id="parentheses"),
        pytest.param("", id="empty"),
        pytest.param("１３８００１３８０００", id="fullwidth-digits"),
        pytest.param("138００１３８０００", id="fullwidth-after-13"),
        pytest.param("13800138٠٠٠", id="arabic-indic-digits"),
    ],
)
def test_normalize_phone_rejects_non_mobiles(raw: str) -> None:
    """Wrong lengths, landlines, letters and non-ASCII digits are rejected naming the field."""
    with pytest.raises(InvalidAccountInput) as info:
        normalize_phone(raw)
    assert info.value.field == "phone"
    assert info.value.code == "invalid_field"


def test_normalize_phone_names_the_given_field() -> None:
    """The error names the field the caller passes (e.g. an address's contact phone)."""
    with pytest.raises(InvalidAccountInput) as info:
        normalize_phone("12345", "contact_phone")
    assert info.value.field == "contact_phone"


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("14700000001", "147****0001"),
        ("1234567", "****"),
        ("", "****"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    """A mobile shows its first 3 and last 4 digits; anything too short is fully hidden."""
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    "password",
    [
        "q7!vR2#m",
        "ab" * (MAX_PASSWORD // 2),
        "5829301z",
        "correct horse battery",
        "密码密码密码密码",
        "  spaced out pass  ",
    ],
)
def test_check_password_accepts(password: str) -> None:
    """8–128 characters, not one repeated, not all digits, not a common password: accepted."""
    check_password(password, phone="13812345678")


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        pytest.param("password", "common", id="password"),
        pytest.param("Password", "common", id="Password-any-case"),
        pytest.param("qwertyuiop", "common", id="qwertyuiop"),
        pytest.param("woaini1314", "common", id="woaini1314-chinese-list"),
        pytest.param("iloveyou", "common", id="iloveyou"),
        pytest.param("aaaaaaaa", "repeated", id="all-same-letter"),
        pytest.param("........", "repeated", id="all-same-dot"),
        pytest.param(" " * 8, "whitespace", id="eight-spaces"),
        pytest.param("\t \u3000 \t \u3000 ", "whitespace", id="mixed-whitespace"),
        pytest.param("+86 138-1234-5678", "phone number", id="the-phone-formatted"),
        pytest.param("13812345678abc", "phone number", id="contains-the-phone"),
    ],
)
def test_check_password_rejects_weak_ones(password: str, rule: str) -> None:
    """Common, one-character, whitespace-only passwords and the phone itself are 422s naming password and the rule."""
    with pytest.raises(InvalidAccountInput) as info:
        check_password(password, phone="13812345678")
    assert info.value.field == "password"
    assert rule in info.value.message


def test_the_common_password_list_is_bundled() -> None:
    """The bundled list holds thousands of entries, all lower case and at least 8 long."""
    from accounts.rules import common_passwords

    words = common_passwords()
    assert len(words) > 10_000
    assert all(w == w.lower() and len(w) >= MIN_PASSWORD for w in words)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * (MIN_PASSWORD - 1), id="one-too-short"),
        pytest.param("a" * (MAX_PASSWORD + 1), id="one-too-long"),
        pytest.param("12345678", id="digits-only"),
        pytest.param("1" * MAX_PASSWORD, id="long-digits-only"),
        pytest.param("１２３４５６７８", id="fullwidth-digits-only"),
    ],
)
def test_check_password_rejects(password: str) -> None:
    """Too short, too long or digits-only passwords are rejected naming the field."""
    with pytest.raises(InvalidAccountInput) as info:
        check_password(password)
    assert info.value.field == "password"


def test_check_password_names_the_given_field() -> None:
    """The error names the field the caller passes."""
    with pytest.raises(InvalidAccountInput) as info:
        check_password("short", field="new_password")
    assert info.value.field == "new_password"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["customer"], ("customer",)),
        (["worker", "admin"], ("admin", "worker")),
        (["worker", "worker"], ("worker",)),
        (["dispatcher", "admin", "dispatcher"], ("admin", "dispatcher")),
        (
            ["merchant", "worker", "customer", "dispatcher", "admin"],
            ("admin", "customer", "dispatcher", "merchant", "worker"),
        ),
    ],
)
def test_check_roles_dedupes_and_sorts(roles: list[str], expected: tuple[str, ...]) -> None:
    """Known roles come back once each, sorted."""
    assert check_roles(roles) == expected


@pytest.mark.parametrize(
    ("roles", "in_message"),
    [
        pytest.param([], "at least one", id="empty"),
        pytest.param(["king"], "'king'", id="unknown"),
        pytest.param(["customer", "king"], "'king'", id="known-and-unknown"),
        pytest.param(["Admin"], "'Admin'", id="wrong-case"),
        pytest.param([""], "''", id="blank"),
    ],
)
def test_check_roles_rejects(roles: list[str], in_message: str) -> None:
    """No roles, or any unknown role, is rejected naming the field and the culprit."""
    with pytest.raises(InvalidAccountInput) as info:
        check_roles(roles)
    assert info.value.field == "roles"
    assert in_message in info.value.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("张三", "张三"),
        ("  张三 ", "张三"),
        ("a", "a"),
        ("x" * 64, "x" * 64),
        (" " + "x" * 64 + " ", "x" * 64),
    ],
)
def test_check_name_trims(name: str, expected: str) -> None:
    """A name is trimmed and kept if 1–64 characters remain."""
    assert check_name(name) == expected


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "x" * 65])
def test_check_name_rejects(name: str) -> None:
    """Blank or over-long names are rejected naming the field."""
    with pytest.raises(InvalidAccountInput) as info:
        check_name(name, field="contact_name")
    assert info.value.field == "contact_name"


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        pytest.param("\u200b", "invisible", id="zero-width-space-only"),
        pytest.param("\u200b\u200c\u200d", "invisible", id="zero-width-joiners-only"),
        pytest.param("\u3164", "visible character", id="hangul-filler"),
        pytest.param("\u2800\u2800", "visible character", id="braille-blank"),
        pytest.param("\u0301\u0301", "visible character", id="combining-marks-only"),
        pytest.param("张三\u202e", "bidirectional", id="rtl-override"),
        pytest.param("\u202egpj.exe", "bidirectional", id="rtl-override-spoof"),
        pytest.param("张\u2067三", "bidirectional", id="rtl-isolate"),
        pytest.param("张三\u200f", "bidirectional", id="rtl-mark"),
        pytest.param("张\u200b三", "invisible", id="zero-width-inside"),
        pytest.param("\ufeff张三", "invisible", id="byte-order-mark"),
        pytest.param("张\u00ad三", "invisible", id="soft-hyphen"),
        pytest.param("张\t三", "invisible or control", id="tab-inside"),
        pytest.param("张\u2028三", "invisible or control", id="line-separator"),
        pytest.param("张\ue000三", "invisible or control", id="private-use"),
    ],
)
def test_check_name_rejects_invisible_and_bidi_characters(name: str, rule: str) -> None:
    """Names with no visible character or holding bidi controls or other format/control characters are rejected, naming the field, the rule and the code point."""
    with pytest.raises(InvalidAccountInput) as info:
        check_name(name)
    assert info.value.field == "name"
    assert rule in info.value.message


@pytest.mark.parametrize("name", ["张三", "O'Brien", "José", "李 四", "🌸小美", "Ａ", "محمد"])
def test_check_name_keeps_real_names(name: str) -> None:
    """Names of any script, with spaces, apostrophes, accents or emoji, are kept."""
    assert check_name(name) == name
