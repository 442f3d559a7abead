"""The ledger's pure rules: the chart of accounts, entries that must balance.

An *account* is a string ``kind`` or ``kind:key``: the kind is one of :data:`CHART`
and says the account's type (asset, liability, revenue, expense); the key names the
sub-ledger where the kind has one (``order_funds:42``, ``worker_payable:7``,
``gateway:wechat``). An :class:`Entry` is a set of lines, each a debit or a credit of a
positive number of fen on one account; the debits equal the credits. Nothing here does
I/O: ``ledger.store`` writes what these rules accepted.

Signs: a balance is debits minus credits. Assets and expenses normally have a positive
balance, liabilities and revenue a negative one; :func:`normal_balance` turns it into
the amount as people read it (what the platform holds for an order, what it owes a worker).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from doorstep.errors import Conflict, DoorstepError, InvalidInput

AccountType = Literal["asset", "liability", "revenue", "expense"]
KeyKind = Literal["none", "id", "provider"]

CURRENCY = "CNY"
PROVIDER_KEYS = frozenset({"wechat", "alipay", "payout"})
# An entry's lines are capped so a runaway caller cannot write an unbounded entry.
MAX_LINES = 64
MAX_FEN = 10**12  # 100 亿 yuan: far above any one movement; catches unit mistakes


@dataclass(frozen=True, slots=True)
class AccountKind:
    """One kind of account in the chart."""

    type: AccountType
    key: KeyKind
    label_zh: str
    label_en: str


CHART: dict[str, AccountKind] = {
    # assets: money that is ours or held for us
    "gateway": AccountKind(
        "asset", "provider", "渠道在途资金", "money held by a payment provider for us (in transit)"
    ),
    "bank": AccountKind("asset", "none", "银行存款", "our bank account"),
    "worker_receivable": AccountKind(
        "asset", "id", "应收师傅款", "what a worker owes us (a fine beyond their balance)"
    ),
    "merchant_receivable": AccountKind(
        "asset", "id", "应收商户款", "what a merchant owes us (a fine beyond their balance)"
    ),
    # liabilities: money we hold for someone
    "order_funds": AccountKind(
        "liability", "id", "订单预收款", "a customer's money paid for an order, not yet settled"
    ),
    "refunds_pending": AccountKind(
        "liability", "provider", "退款在途", "refunds asked of a provider and not yet confirmed"
    ),
    "worker_payable": AccountKind("liability", "id", "应付师傅", "what we owe a worker"),
    "merchant_payable": AccountKind("liability", "id", "应付商户", "what we owe a merchant"),
    "payout_clearing": AccountKind(
        "liability", "provider", "提现在途", "withdrawals handed to a payout channel, not yet done"
    ),
    # revenue
    "commission_revenue": AccountKind("revenue", "none", "平台佣金收入", "platform commission"),
    "penalty_income": AccountKind("revenue", "none", "罚款收入", "fines charged to workers"),
    # expenses
    "subsidy_expense": AccountKind(
        "expense", "none", "补贴/优惠券支出", "subsidies and coupons the platform pays"
    ),
    "gateway_fees": AccountKind("expense", "provider", "渠道手续费", "payment providers' fees"),
    "incentive_expense": AccountKind(
        "expense", "none", "师傅奖励支出", "bonuses the platform pays workers"
    ),
    # after-sales (aftersales/): compensation, service insurance
    "customer_payable": AccountKind(
        "liability", "id", "应付客户", "what we owe a customer (compensation, insurance claims)"
    ),
    "insurance_fund": AccountKind(
        "liability", "none", "保险理赔准备金", "service insurance premiums held to pay claims"
    ),
    "compensation_expense": AccountKind(
        "expense", "none", "售后赔偿支出", "compensation the platform pays customers"
    ),
    # growth (growth/): points a customer holds are owed to them until spent
    "points_liability": AccountKind(
        "liability", "id", "积分负债", "the value of a customer's points (1 point = 1 fen)"
    ),
    "points_expense": AccountKind(
        "expense", "none", "积分支出", "points given to customers for their orders"
    ),
}

_ACCOUNT = re.compile(r"^([a-z_]+)(?::([A-Za-z0-9_-]{1,64}))?$")


class LedgerError(DoorstepError):
    """Root of the ledger's errors."""


class InvalidEntry(InvalidInput, LedgerError):
    """An entry breaks a rule (unbalanced, an unknown account, a bad amount …)."""

    code = "invalid_entry"


class EntryConflict(Conflict, LedgerError):
    """An entry key was posted before with other lines, or an entry is reversed twice."""

    code = "entry_conflict"


def parse_account(account: str) -> tuple[str, str | None]:
    """``(kind, key)`` of an account string, or InvalidEntry naming the rule broken."""
    m = _ACCOUNT.match(account)
    if m is None:
        raise InvalidEntry(f"{account!r} is not an account (kind or kind:key)", field="account")
    kind, key = m.group(1), m.group(2)
    spec = CHART.get(kind)
    if spec is None:
        raise InvalidEntry(
            f"unknown account kind {kind!r}; the chart has {', '.join(sorted(CHART))}",
            field="account",
        )
    if spec.key == "none" and key is not None:
        raise InvalidEntry(f"account {kind!r} takes no key", field="account")
    if spec.key == "id" and (key is None or not key.isdigit() or key.startswith("0")):
        raise InvalidEntry(f"account {kind!r} needs a numeric id: {kind}:<id>", field="account")
    if spec.key == "provider" and key not in PROVIDER_KEYS:
        raise InvalidEntry(
            f"account {kind!r} needs a provider key ({', '.join(sorted(PROVIDER_KEYS))})",
            field="account",
        )
    return kind, key


def account_type(account: str) -> AccountType:
    """The type of an account (asset, liability, revenue, expense)."""
    return CHART[parse_account(account)[0]].type


def normal_balance(account: str, balance_fen: int) -> int:
    """A balance (debits − credits) as people read it: positive when the account holds
    what its type says (an asset we have, a liability we owe, revenue earned, an expense
    spent)."""
    return balance_fen if account_type(account) in ("asset", "expense") else -balance_fen


# Accounts every movement names, built in one place.
def gateway(provider: str) -> str:
    """Money a provider holds for us."""
    return f"gateway:{provider}"


def order_funds(order_id: int) -> str:
    """The customer's money paid for one order."""
    return f"order_funds:{order_id}"


def refunds_pending(provider: str) -> str:
    """Refunds asked of a provider, not yet confirmed."""
    return f"refunds_pending:{provider}"


def worker_payable(worker_id: int) -> str:
    """What we owe a worker."""
    return f"worker_payable:{worker_id}"


def merchant_payable(merchant_id: int) -> str:
    """What we owe a merchant."""
    return f"merchant_payable:{merchant_id}"


def worker_receivable(worker_id: int) -> str:
    """What a worker owes us."""
    return f"worker_receivable:{worker_id}"


def merchant_receivable(merchant_id: int) -> str:
    """What a merchant owes us."""
    return f"merchant_receivable:{merchant_id}"


def payout_clearing(channel: str = "payout") -> str:
    """Withdrawals handed to a payout channel."""
    return f"payout_clearing:{channel}"


def gateway_fees(provider: str) -> str:
    """A provider's fees."""
    return f"gateway_fees:{provider}"


def customer_payable(customer_id: int) -> str:
    """What we owe a customer (after-sales compensation, insurance claims)."""
    return f"customer_payable:{customer_id}"


def points_liability(customer_id: int) -> str:
    """The value of a customer's points (growth/)."""
    return f"points_liability:{customer_id}"


INSURANCE_FUND = "insurance_fund"
POINTS_EXPENSE = "points_expense"
COMPENSATION_EXPENSE = "compensation_expense"
COMMISSION_REVENUE = "commission_revenue"
SUBSIDY_EXPENSE = "subsidy_expense"
PENALTY_INCOME = "penalty_income"
INCENTIVE_EXPENSE = "incentive_expense"
BANK = "bank"


@dataclass(frozen=True, slots=True)
class Line:
    """A debit or a credit of a positive number of fen on one account (not both)."""

    account: str
    debit_fen: int = 0
    credit_fen: int = 0

    @property
    def balance_fen(self) -> int:
        """Debit minus credit."""
        return self.debit_fen - self.credit_fen


def debit(account: str, fen: int) -> Line:
    """A debit line."""
    return Line(account, debit_fen=fen)


def credit(account: str, fen: int) -> Line:
    """A credit line."""
    return Line(account, credit_fen=fen)


@dataclass(frozen=True, slots=True)
class Entry:
    """A journal entry: balanced lines, a kind (what moved the money), and a unique key.

    ``key`` makes posting idempotent: the cause's own identity (``wechat:pay:<transaction
    id>``, ``refund:<out_refund_no>:succeeded``, ``settle:order:42``). Posting the same key
    again with the same lines is a no-op; with other lines it is an EntryConflict.
    """

    key: str
    kind: str
    lines: tuple[Line, ...]
    order_id: int | None = None
    memo: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    currency: str = CURRENCY


_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_KIND = re.compile(r"^[a-z][a-z_.]{0,63}$")


def _fen(value: object, name: str) -> int:
    if type(value) is not int:  # bools and floats are not fen
        raise InvalidEntry(f"{name} must be an integer number of fen", field=name)
    if value < 0 or value > MAX_FEN:
        raise InvalidEntry(f"{name} must be between 0 and {MAX_FEN} fen", field=name)
    return value


def validate(entry: Entry) -> Entry:
    """The entry if it may be posted, else InvalidEntry naming the rule broken.

    Rules: a printable key; a kind like ``payment.captured``; currency CNY; 2..64
    lines; each line one side only, a positive integer of fen, on a known account;
    debits equal credits.
    """
    if not _KEY.match(entry.key):
        raise InvalidEntry("key must be 1..200 printable ASCII characters", field="key")
    if not _KIND.match(entry.kind):
        raise InvalidEntry("kind must look like 'payment.captured'", field="kind")
    if entry.currency != CURRENCY:
        raise InvalidEntry(f"currency must be {CURRENCY}, not {entry.currency!r}", field="currency")
    if not 2 <= len(entry.lines) <= MAX_LINES:
        raise InvalidEntry(f"an entry has 2..{MAX_LINES} lines", field="lines")
    debits = credits = 0
    for i, line in enumerate(entry.lines):
        d = _fen(line.debit_fen, f"lines[{i}].debit_fen")
        c = _fen(line.credit_fen, f"lines[{i}].credit_fen")
        if (d > 0) == (c > 0):
            raise InvalidEntry(
                "a line is a positive debit or a positive credit, not both or neither",
                field=f"lines[{i}]",
            )
        parse_account(line.account)
        debits += d
        credits += c
    if debits != credits:
        raise InvalidEntry(
            f"debits ({debits} fen) must equal credits ({credits} fen)", field="lines"
        )
    return entry


def reversal(entry: Entry, *, key: str, memo: str) -> Entry:
    """The entry that undoes ``entry``: every line on the other side."""
    return Entry(
        key=key,
        kind=f"{entry.kind}.reversal"[:64] if not entry.kind.endswith(".reversal") else entry.kind,
        lines=tuple(Line(x.account, x.credit_fen, x.debit_fen) for x in entry.lines),
        order_id=entry.order_id,
        memo=memo,
        data={"reverses": entry.key},
    )


def same_lines(a: Iterable[Line], b: Iterable[Line]) -> bool:
    """Whether two entries move the same amounts on the same accounts (line order aside)."""

    def norm(lines: Iterable[Line]) -> list[tuple[str, int, int]]:
        return sorted((x.account, x.debit_fen, x.credit_fen) for x in lines)

    return norm(a) == norm(b)


def balances(lines: Iterable[Line]) -> dict[str, int]:
    """Each account's balance (debits − credits) over the lines."""
    out: dict[str, int] = {}
    for line in lines:
        out[line.account] = out.get(line.account, 0) + line.balance_fen
    return out


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant, for the check command and the tests."""

    rule: str
    detail: str


def check_balances(balances_fen: dict[str, int]) -> list[Violation]:
    """Invariants over account balances (debits − credits):

    - the ledger as a whole balances (the sum of all balances is 0);
    - no order's funds are overdrawn (refunded or settled more than was paid);
    - nobody is owed a negative amount (a worker, a merchant: paid out more than earned);
    - no provider has given back more than it held for us;
    - nothing is pending a negative amount (refunds or payouts confirmed twice);
    - nobody owes us a negative amount (a fine reversed after it was recovered is paid
      back into the wallet, not left as a negative debt).
    """
    out: list[Violation] = []
    total = sum(balances_fen.values())
    if total != 0:
        out.append(Violation("ledger_balanced", f"all balances sum to {total} fen, not 0"))
    for account, bal in sorted(balances_fen.items()):
        kind, _ = parse_account(account)
        held = normal_balance(account, bal)
        if (
            kind
            in (
                "order_funds",
                "worker_payable",
                "merchant_payable",
                "refunds_pending",
                "payout_clearing",
                "gateway",
                "worker_receivable",
                "merchant_receivable",
            )
            and held < 0
        ):
            out.append(Violation(f"{kind}_not_negative", f"{account} holds {held} fen"))
    return out
