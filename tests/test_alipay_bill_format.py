"""Alipay's 业务账单 file format, pure: written and read back exactly, and every way a file
can be wrong refused as 422 bad_trade_bill naming what is wrong."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime

import pytest

from settlement import alipay_bill
from settlement.reconcile import Item
from settlement.tradebill import BadBill

DAY = date(2026, 12, 5)
SELLER = "2088000000000001"


def _rows() -> list[alipay_bill.BillRow]:
    trade = alipay_bill.BillRow(
        trade_no="2026120522001400000000000001",
        out_trade_no="P42-abc",
        kind=alipay_bill.TRADE,
        subject="日常保洁, 3 小时",  # a comma: quoted in the CSV
        created_at=datetime(2026, 12, 5, 9, 0),
        finished_at=datetime(2026, 12, 5, 9, 1),
        buyer="138******01",
        order_fen=15000,
        receipt_fen=15000,
        out_request_no="",
        fee_fen=-90,
    )
    refund = alipay_bill.BillRow(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        kind=alipay_bill.REFUND,
        subject=trade.subject,
        created_at=trade.created_at,
        finished_at=datetime(2026, 12, 5, 15, 30),
        buyer=trade.buyer,
        order_fen=-5001,
        receipt_fen=-5001,
        out_request_no="RF1a2b3c",
        fee_fen=0,
    )
    return [trade, refund]


def _zip() -> bytes:
    return alipay_bill.write(
        _rows(), seller_id=SELLER, day=DAY, exported_at=datetime(2026, 12, 6, 10, 0, 3)
    )


def _detail() -> str:
    return alipay_bill.write_detail(
        _rows(), seller_id=SELLER, day=DAY, exported_at=datetime(2026, 12, 6, 10, 0, 3)
    )


def test_written_and_read_back_exactly() -> None:
    """The zip reads back to the same rows, totals and items (refund keyed by its 请求号, positive), in fen with no rounding."""
    rows, totals = alipay_bill.read(_zip())
    assert rows == _rows()
    assert totals == alipay_bill.Totals(1, 15000, 1, -5001)
    assert alipay_bill.items(rows) == [
        Item("payment", "P42-abc", 15000),
        Item("refund", "RF1a2b3c", 5001),
    ]


def test_the_files_are_gbk_and_the_detail_file_alone_reads_too() -> None:
    """Both files are GBK (not UTF-8); the detail file on its own (as a person might upload it) reads the same."""
    with zipfile.ZipFile(io.BytesIO(_zip()), metadata_encoding="gbk") as z:
        names = z.namelist()
        raw = z.read(names[0])
    assert names == [
        f"{SELLER}0156_20261205_业务明细.csv",
        f"{SELLER}0156_20261205_业务明细(汇总).csv",
    ]
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert raw.decode("gbk").startswith("#支付宝业务明细查询\r\n#账号：[20880000000000010156]")
    assert alipay_bill.read(raw)[0] == _rows()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda t: t.replace("#交易合计：1笔", "#交易合计：2笔"), "do not add up"),
        (lambda t: t.replace("商家实收共150.00元", "商家实收共150.01元"), "do not add up"),
        (lambda t: t.replace("#退款合计", "#退款总计"), "退款合计"),
        (lambda t: t.replace("150.00\t", "150.0\t", 1), "two decimals"),
        (lambda t: t.replace("150.00\t", "1.5e2\t", 1), "two decimals"),
        (lambda t: t.replace(",交易\t", ",支付\t"), "业务类型"),
        (lambda t: t.replace("P42-abc\t", "P42-abc", 1), "trailing tab"),
        (lambda t: t.replace("2026-12-05 09:01:00", "2026/12/05 09:01"), "完成时间"),
        (lambda t: t.replace("支付宝交易号,", "交易号,"), "header"),
        (lambda t: t.replace(alipay_bill.DETAIL_END, "#----"), "业务明细列表"),
        (lambda t: t.replace(",RF1a2b3c\t", ",\t"), "请求号"),
        (lambda t: t.replace(",-5001", ",5001").replace("-50.01", "50.01"), "negative"),
    ],
)
def test_a_wrong_file_is_refused_saying_what(change: object, why: str) -> None:
    """Totals that do not add up, a malformed amount, an unknown 业务类型, a value without its tab, a bad time, a wrong header or end line, a refund without its number: BadBill (422 bad_trade_bill) naming the problem."""
    assert callable(change)
    text = change(_detail())
    assert text != _detail()
    with pytest.raises(BadBill, match=why) as e:
        alipay_bill.read(text.encode("gbk"))
    assert e.value.code == "bad_trade_bill"
    assert e.value.field in ("bill", "订单金额（元）")  # the file, or the column at fault


def test_not_a_bill_at_all() -> None:
    """A UTF-8 file (WeChat's bill), a broken zip and a zip without the detail are refused."""
    with pytest.raises(BadBill, match="业务明细"):
        alipay_bill.read("交易时间,公众账号ID\n".encode())
    with pytest.raises(BadBill, match="zip"):
        alipay_bill.read(b"PK\x03\x04broken")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "x")
    with pytest.raises(BadBill, match=r"no _业务明细\.csv"):
        alipay_bill.read(empty.getvalue())
