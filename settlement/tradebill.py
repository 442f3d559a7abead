"""WeChat Pay v3's daily trade bill (交易账单, ``GET /v3/bill/tradebill``, ``bill_type=ALL``)
in its real file format: write one, read one. Pure, no I/O.

The file is CSV in UTF-8: a header row, one row per trade or refund, every value but the
first prefixed with a backtick (so spreadsheets keep long numbers as text), then a
summary header and a summary row in the same style. Amounts are yuan with two decimals
(fees with five); we read and write them as integer fen exactly, never through floats.

    交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,…
    `2026-12-05 10:00:00,`wx8888888888888888,`1900000001,`0,`,`4200001234…,`P42,`oUpF8…,`JSAPI,`SUCCESS,…
    总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
    `2,`150.00,`50.00,`0.00,`0.90000,`150.00,`50.00
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime

from settlement.errors import InvalidMoneyInput

HEADER: tuple[str, ...] = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
)
SUMMARY_HEADER: tuple[str, ...] = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_YUAN = re.compile(r"(-?)([0-9]+)\.([0-9]{2})")
_FEE = re.compile(r"(-?)([0-9]+)\.([0-9]{5})")


class BadBill(InvalidMoneyInput):
    """A trade bill that is not in WeChat Pay's format."""

    code = "bad_trade_bill"


@dataclass(frozen=True, slots=True)
class BillRow:
    """One row of the bill: a payment (``SUCCESS``) or a refund (``REFUND``)."""

    trade_time: datetime  # local time as printed (naive)
    appid: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    openid: str
    trade_type: str  # JSAPI, NATIVE, MWEB
    trade_state: str  # SUCCESS, REFUND
    bank_type: str
    currency: str
    settlement_fen: int  # 应结订单金额: what the payer paid (0 on a refund row)
    coupon_fen: int
    refund_id: str
    out_refund_no: str
    refund_fen: int  # 退款金额 (0 on a payment row)
    refund_status: str  # SUCCESS, PROCESSING … ('' on a payment row)
    description: str
    attach: str
    fee_mfen: int  # 手续费 in thousandths of a fen (the bill prints five decimals of yuan)
    rate: str  # 0.60%
    total_fen: int  # 订单金额
    requested_refund_fen: int


@dataclass(frozen=True, slots=True)
class Summary:
    """The bill's summary row."""

    count: int
    settlement_fen: int
    refund_fen: int
    coupon_refund_fen: int
    fee_mfen: int
    total_fen: int
    requested_refund_fen: int


def yuan(fen: int) -> str:
    """``12345`` → ``123.45``."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def fee_yuan(mfen: int) -> str:
    """Thousandths of a fen → yuan with five decimals (``600`` → ``0.00600``)."""
    sign = "-" if mfen < 0 else ""
    return f"{sign}{abs(mfen) // 100_000}.{abs(mfen) % 100_000:05d}"


def parse_fen(text: str, field: str) -> int:
    """``123.45`` → ``12345`` exactly; anything else is a BadBill naming the column."""
    m = _YUAN.fullmatch(text)
    if m is None:
        raise BadBill(f"must be yuan with two decimals, got {text!r}", field=field)
    value = int(m[2]) * 100 + int(m[3])
    return -value if m[1] else value


def parse_fee(text: str, field: str) -> int:
    """``0.00600`` → ``600`` thousandths of a fen."""
    m = _FEE.fullmatch(text)
    if m is None:
        raise BadBill(f"must be yuan with five decimals, got {text!r}", field=field)
    value = int(m[2]) * 100_000 + int(m[3])
    return -value if m[1] else value


def summarize(rows: list[BillRow]) -> Summary:
    """The summary WeChat prints under the rows."""
    return Summary(
        count=len(rows),
        settlement_fen=sum(r.settlement_fen for r in rows),
        refund_fen=sum(r.refund_fen for r in rows),
        coupon_refund_fen=0,
        fee_mfen=sum(r.fee_mfen for r in rows),
        total_fen=sum(r.total_fen for r in rows),
        requested_refund_fen=sum(r.requested_refund_fen for r in rows),
    )


def _tick(values: list[str]) -> list[str]:
    return ["`" + v for v in values]


def write(rows: list[BillRow]) -> bytes:
    """The bill file for ``rows`` (UTF-8 CSV, backticked values, the summary below)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(HEADER)
    for r in rows:
        w.writerow(
            _tick(
                [
                    r.trade_time.strftime(TIME_FORMAT),
                    r.appid,
                    r.mchid,
                    "0",
                    "",
                    r.transaction_id,
                    r.out_trade_no,
                    r.openid,
                    r.trade_type,
                    r.trade_state,
                    r.bank_type,
                    r.currency,
                    yuan(r.settlement_fen),
                    yuan(r.coupon_fen),
                    r.refund_id or "0",
                    r.out_refund_no or "0",
                    yuan(r.refund_fen),
                    "0.00",
                    "ORIGINAL" if r.refund_id else "",
                    r.refund_status,
                    r.description,
                    r.attach,
                    fee_yuan(r.fee_mfen),
                    r.rate,
                    yuan(r.total_fen),
                    yuan(r.requested_refund_fen),
                    "",
                ]
            )
        )
    s = summarize(rows)
    w.writerow(SUMMARY_HEADER)
    w.writerow(
        _tick(
            [
                str(s.count),
                yuan(s.settlement_fen),
                yuan(s.refund_fen),
                yuan(s.coupon_refund_fen),
                fee_yuan(s.fee_mfen),
                yuan(s.total_fen),
                yuan(s.requested_refund_fen),
            ]
        )
    )
    return out.getvalue().encode("utf-8")


def _untick(values: list[str], line: int) -> list[str]:
    out = []
    for i, v in enumerate(values):
        if not v.startswith("`"):
            raise BadBill(f"line {line}: value {i + 1} lacks the leading backtick", field="bill")
        out.append(v[1:])
    return out


def read(data: bytes) -> tuple[list[BillRow], Summary]:
    """Parse a bill file; its summary must agree with its rows."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadBill("is not UTF-8", field="bill") from None
    lines = list(csv.reader(io.StringIO(text)))
    lines = [ln for ln in lines if ln]
    if not lines or tuple(lines[0]) != HEADER:
        raise BadBill("the first row is not the trade bill's header (交易时间,…)", field="bill")
    try:
        split = next(i for i, ln in enumerate(lines) if tuple(ln) == SUMMARY_HEADER)
    except StopIteration:
        raise BadBill("has no summary header (总交易单数,…)", field="bill") from None
    if split != len(lines) - 2:
        raise BadBill("the summary must be the last two rows", field="bill")
    rows = [_row(_untick(ln, n + 2), n + 2) for n, ln in enumerate(lines[1:split])]
    sv = _untick(lines[-1], len(lines))
    if len(sv) != len(SUMMARY_HEADER) or not sv[0].isdigit():
        raise BadBill("the summary row does not fit its header", field="bill")
    summary = Summary(
        count=int(sv[0]),
        settlement_fen=parse_fen(sv[1], "应结订单总金额"),
        refund_fen=parse_fen(sv[2], "退款总金额"),
        coupon_refund_fen=parse_fen(sv[3], "充值券退款总金额"),
        fee_mfen=parse_fee(sv[4], "手续费总金额"),
        total_fen=parse_fen(sv[5], "订单总金额"),
        requested_refund_fen=parse_fen(sv[6], "申请退款总金额"),
    )
    if summary != summarize(rows):
        raise BadBill("the summary does not add up to the rows", field="bill")
    return rows, summary


def _row(v: list[str], line: int) -> BillRow:
    if len(v) != len(HEADER):
        raise BadBill(f"line {line}: {len(v)} values for {len(HEADER)} columns", field="bill")
    try:
        at = datetime.strptime(v[0], TIME_FORMAT)
    except ValueError:
        raise BadBill(f"line {line}: 交易时间 is not {TIME_FORMAT}", field="bill") from None
    return BillRow(
        trade_time=at,
        appid=v[1],
        mchid=v[2],
        transaction_id=v[5],
        out_trade_no=v[6],
        openid=v[7],
        trade_type=v[8],
        trade_state=v[9],
        bank_type=v[10],
        currency=v[11],
        settlement_fen=parse_fen(v[12], "应结订单金额"),
        coupon_fen=parse_fen(v[13], "代金券金额"),
        refund_id="" if v[14] == "0" else v[14],
        out_refund_no="" if v[15] == "0" else v[15],
        refund_fen=parse_fen(v[16], "退款金额"),
        refund_status=v[19],
        description=v[20],
        attach=v[21],
        fee_mfen=parse_fee(v[22], "手续费"),
        rate=v[23],
        total_fen=parse_fen(v[24], "订单金额"),
        requested_refund_fen=parse_fen(v[25], "申请退款金额"),
    )
