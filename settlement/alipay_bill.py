"""Alipay's daily trade bill (业务账单, ``bill_type=trade``) in its real file format: write
one, read one. Pure, no I/O.

What ``alipay.data.dataservice.bill.downloadurl.query`` leads to is a zip,
``<userId>_<yyyyMMdd>.csv.zip`` (``userId`` is the merchant's 2088… id with ``0156``
appended), holding two CSV files in GBK (as Windows' Chinese "ANSI" code page writes
them; the entry names are GBK too, without the zip's UTF-8 flag):

- ``<userId>_<yyyyMMdd>_业务明细.csv`` — the detail: ``#`` header lines (the account, the
  day's start and end), a dashed ``业务明细列表`` line, the column header, one row per
  trade (业务类型 ``交易``) or refund (``退款``), every value followed by a tab (so
  spreadsheets keep long numbers as text), a dashed ``业务明细列表结束`` line, then the
  totals (``#交易合计：2笔，商家实收共150.00元，…`` / ``#退款合计：…``) and the export time;
- ``<userId>_<yyyyMMdd>_业务明细(汇总).csv`` — the day's summary (``业务汇总列表``).

    #支付宝业务明细查询
    #账号：[20880000000000010156]
    #起始日期：[2026年12月05日 00:00:00]   终止日期：[2026年12月06日 00:00:00]
    #-----------------------------------------业务明细列表----------------------------------------
    支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,…,退款批次号/请求号,服务费（元）,分润（元）,备注
    2026120522001…\t,P42…\t,交易\t,日常保洁\t,2026-12-05 10:00:00\t,2026-12-05 10:00:05\t,…
    #-----------------------------------------业务明细列表结束------------------------------------
    #交易合计：2笔，商家实收共150.00元，商家优惠共0.00元
    #退款合计：1笔，商家实收退款共-50.00元，商家优惠退款共0.00元
    #导出时间：[2026年12月06日 10:00:03]

Amounts are yuan with two decimals, read and written as integer fen exactly (never
through floats); a refund row's amounts are negative. Sources for the layout are cited in
docs/settlement.md.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from settlement.reconcile import Item
from settlement.tradebill import BadBill, parse_fen, yuan

DETAIL_HEADER: tuple[str, ...] = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
)
SUMMARY_HEADER: tuple[str, ...] = (
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
)
DETAIL_START = (
    "#-----------------------------------------业务明细列表----------------------------------------"
)
DETAIL_END = (
    "#-----------------------------------------业务明细列表结束------------------------------------"
)
SUMMARY_START = (
    "#-----------------------------------------业务汇总列表----------------------------------------"
)
SUMMARY_END = (
    "#----------------------------------------业务汇总列表结束-------------------------------------"
)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
TRADE = "交易"
REFUND = "退款"
ENCODING = "gbk"
_TRADES = re.compile(
    r"#交易合计：([0-9]+)笔，商家实收共(-?[0-9]+\.[0-9]{2})元，商家优惠共(-?[0-9]+\.[0-9]{2})元"
)
_REFUNDS = re.compile(
    r"#退款合计：([0-9]+)笔，商家实收退款共(-?[0-9]+\.[0-9]{2})元，商家优惠退款共(-?[0-9]+\.[0-9]{2})元"
)


@dataclass(frozen=True, slots=True)
class BillRow:
    """One row of the detail: a trade (``交易``) or a refund (``退款``)."""

    trade_no: str  # 支付宝交易号
    out_trade_no: str  # 商户订单号
    kind: str  # 业务类型: 交易 | 退款
    subject: str  # 商品名称
    created_at: datetime  # 创建时间, Beijing time as printed (naive)
    finished_at: datetime  # 完成时间: paid, or refunded
    buyer: str  # 对方账户 (masked)
    order_fen: int  # 订单金额: the trade's amount; a refund's, negative
    receipt_fen: int  # 商家实收: what the merchant got; a refund's, negative
    out_request_no: str  # 退款批次号/请求号: our refund number ('' on a trade)
    fee_fen: int  # 服务费: the fee Alipay keeps, negative
    remark: str = ""


@dataclass(frozen=True, slots=True)
class Totals:
    """The detail's closing lines: how many trades and refunds, and their 商家实收."""

    trades: int
    trade_receipt_fen: int
    refunds: int
    refund_receipt_fen: int


def user_id(seller_id: str) -> str:
    """The ``userId`` of bill file names and download URLs: the 2088… id, then ``0156``."""
    return f"{seller_id}0156"


def file_names(seller_id: str, day: date) -> tuple[str, str, str]:
    """(the zip, the detail, the summary) for a merchant's day."""
    stem = f"{user_id(seller_id)}_{day:%Y%m%d}"
    return f"{stem}.csv.zip", f"{stem}_业务明细.csv", f"{stem}_业务明细(汇总).csv"


def totals(rows: list[BillRow]) -> Totals:
    """The closing totals of ``rows``."""
    trades = [r for r in rows if r.kind == TRADE]
    refunds = [r for r in rows if r.kind == REFUND]
    return Totals(
        trades=len(trades),
        trade_receipt_fen=sum(r.receipt_fen for r in trades),
        refunds=len(refunds),
        refund_receipt_fen=sum(r.receipt_fen for r in refunds),
    )


def _cn_time(at: datetime) -> str:
    return f"{at:%Y}年{at:%m}月{at:%d}日 {at:%H:%M:%S}"


def _preamble(title: str, seller_id: str, day: date) -> list[str]:
    start = datetime(day.year, day.month, day.day)
    return [
        f"#{title}",
        f"#账号：[{user_id(seller_id)}]",
        f"#起始日期：[{_cn_time(start)}]   终止日期：[{_cn_time(start + timedelta(days=1))}]",
    ]


def _csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def write_detail(rows: list[BillRow], *, seller_id: str, day: date, exported_at: datetime) -> str:
    """The detail file's text (encode it GBK)."""
    lines = [
        *_preamble("支付宝业务明细查询", seller_id, day),
        DETAIL_START,
        ",".join(DETAIL_HEADER),
    ]
    for r in rows:
        values = [
            r.trade_no,
            r.out_trade_no,
            r.kind,
            r.subject,
            r.created_at.strftime(TIME_FORMAT),
            r.finished_at.strftime(TIME_FORMAT),
            "",
            "",
            "",
            "",
            r.buyer,
            yuan(r.order_fen),
            yuan(r.receipt_fen),
            "0.00",
            "0.00",
            "0.00",
            "0.00",
            "0.00",
            "",
            "0.00",
            "0.00",
            r.out_request_no,
            yuan(r.fee_fen),
            "0.00",
            r.remark,
        ]
        lines.append(_csv_line([v + "\t" for v in values]))
    t = totals(rows)
    lines += [
        DETAIL_END,
        f"#交易合计：{t.trades}笔，商家实收共{yuan(t.trade_receipt_fen)}元，商家优惠共0.00元",
        f"#退款合计：{t.refunds}笔，商家实收退款共{yuan(t.refund_receipt_fen)}元，商家优惠退款共0.00元",
        f"#导出时间：[{_cn_time(exported_at)}]",
    ]
    return "\r\n".join(lines) + "\r\n"


def write_summary(rows: list[BillRow], *, seller_id: str, day: date, exported_at: datetime) -> str:
    """The summary file's text (encode it GBK): one 合计 row."""
    t = totals(rows)
    order = sum(r.order_fen for r in rows)
    receipt = t.trade_receipt_fen + t.refund_receipt_fen
    fee = sum(r.fee_fen for r in rows)
    total = ["", "合计", str(t.trades), str(t.refunds), yuan(order), yuan(receipt)]
    total += ["0.00", "0.00", "0.00", yuan(fee), "0.00", yuan(receipt + fee)]
    lines = [
        *_preamble("支付宝业务汇总查询", seller_id, day),
        SUMMARY_START,
        ",".join(SUMMARY_HEADER),
    ]
    lines += [_csv_line(total), SUMMARY_END, f"#导出时间：[{_cn_time(exported_at)}]"]
    return "\r\n".join(lines) + "\r\n"


class _GbkName(zipfile.ZipInfo):
    """A zip entry whose name is stored in GBK without the UTF-8 flag, as Alipay's are."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode(ENCODING), self.flag_bits & ~0x800


def write(rows: list[BillRow], *, seller_id: str, day: date, exported_at: datetime) -> bytes:
    """The bill as Alipay serves it: the zip of the two GBK files."""
    _, detail, summary = file_names(seller_id, day)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (
            (detail, write_detail(rows, seller_id=seller_id, day=day, exported_at=exported_at)),
            (summary, write_summary(rows, seller_id=seller_id, day=day, exported_at=exported_at)),
        ):
            info = _GbkName(name, date_time=exported_at.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text.encode(ENCODING))
    return out.getvalue()


# ---- reading ---------------------------------------------------------------------------------


def detail_text(data: bytes) -> str:
    """The detail file's text from the zip Alipay serves (or from the detail file itself)."""
    if data.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(data), metadata_encoding=ENCODING) as z:
                names = [n for n in z.namelist() if n.endswith("业务明细.csv") and "汇总" not in n]
                if len(names) != 1:
                    raise BadBill("the zip holds no _业务明细.csv detail file", field="bill")
                raw = z.read(names[0])
        except (zipfile.BadZipFile, KeyError, EOFError) as e:
            raise BadBill(f"is not a readable zip: {e}", field="bill") from None
    else:
        raw = data
    try:
        return raw.decode(ENCODING)
    except UnicodeDecodeError:
        raise BadBill("the 业务明细 file is not GBK", field="bill") from None


def _untab(v: str, line: int) -> str:
    if not v.endswith("\t"):
        raise BadBill(f"line {line}: a value lacks its trailing tab", field="bill")
    return v[:-1]


def _time(text: str, line: int, name: str) -> datetime:
    try:
        return datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise BadBill(f"line {line}: {name} is not {TIME_FORMAT}", field="bill") from None


def _row(values: list[str], line: int) -> BillRow:
    if len(values) != len(DETAIL_HEADER):
        raise BadBill(
            f"line {line}: {len(values)} values for {len(DETAIL_HEADER)} columns", field="bill"
        )
    v = [_untab(x, line) for x in values]
    kind = v[2]
    if kind not in (TRADE, REFUND):
        raise BadBill(f"line {line}: 业务类型 must be 交易 or 退款, got {kind!r}", field="bill")
    order = parse_fen(v[11], "订单金额（元）")
    receipt = parse_fen(v[12], "商家实收（元）")
    if (kind == TRADE) != (order >= 0) or (kind == REFUND and not v[21]):
        raise BadBill(
            f"line {line}: a 交易 has a positive 订单金额, a 退款 a negative one and its 请求号",
            field="bill",
        )
    return BillRow(
        trade_no=v[0],
        out_trade_no=v[1],
        kind=kind,
        subject=v[3],
        created_at=_time(v[4], line, "创建时间"),
        finished_at=_time(v[5], line, "完成时间"),
        buyer=v[10],
        order_fen=order,
        receipt_fen=receipt,
        out_request_no=v[21],
        fee_fen=parse_fen(v[22], "服务费（元）"),
        remark=v[24],
    )


def read(data: bytes) -> tuple[list[BillRow], Totals]:
    """Parse a bill (the zip, or its detail file); its closing totals must agree with its rows.
    Anything else is a :class:`BadBill` (422 ``bad_trade_bill``) saying what is wrong."""
    lines = detail_text(data).splitlines()
    try:
        start = lines.index(DETAIL_START)
        end = lines.index(DETAIL_END)
    except ValueError:
        raise BadBill(
            "is not Alipay's 业务明细 (no 业务明细列表 … 业务明细列表结束 lines)", field="bill"
        ) from None
    if end <= start or tuple(next(csv.reader([lines[start + 1]]))) != DETAIL_HEADER:
        raise BadBill("the line after 业务明细列表 is not the detail's header", field="bill")
    rows = []
    for n in range(start + 2, end):
        if lines[n].strip():
            rows.append(_row(next(csv.reader([lines[n]])), n + 1))
    footer = lines[end + 1 : end + 3]
    m1 = _TRADES.fullmatch(footer[0]) if footer else None
    m2 = _REFUNDS.fullmatch(footer[1]) if len(footer) > 1 else None
    if m1 is None or m2 is None:
        raise BadBill("the 交易合计 / 退款合计 lines are missing or malformed", field="bill")
    stated = Totals(
        trades=int(m1[1]),
        trade_receipt_fen=parse_fen(m1[2], "交易合计"),
        refunds=int(m2[1]),
        refund_receipt_fen=parse_fen(m2[2], "退款合计"),
    )
    if stated != totals(rows):
        raise BadBill("the 交易合计 / 退款合计 do not add up to the rows", field="bill")
    return rows, stated


def items(rows: list[BillRow]) -> list[Item]:
    """The payments (by ``out_trade_no``, 订单金额) and refunds (by 退款批次号/请求号, our
    ``out_refund_no``; the amount refunded) a bill lists, for :func:`reconcile.compare`."""
    return [
        Item("payment", r.out_trade_no, r.order_fen)
        if r.kind == TRADE
        else Item("refund", r.out_request_no, -r.order_fen)
        for r in rows
    ]
