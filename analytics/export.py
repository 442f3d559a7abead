"""Tables as files: CSV (UTF-8 with a byte-order mark, so Excel reads the Chinese) and
Excel (.xlsx, written by openpyxl). Pure: a table in, bytes out."""

from __future__ import annotations

import csv
import io
from typing import Final

from openpyxl import Workbook

from analytics.rules import Table

CSV_TYPE: Final = "text/csv; charset=utf-8"
XLSX_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _plain(value: object) -> object:
    if isinstance(value, float):
        return round(value, 4)
    return "" if value is None else value


def to_csv(table: Table, lang: str) -> bytes:
    """The table as CSV, a header row of titles in ``lang`` first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.headers(lang))
    for row in table.rows:
        writer.writerow([_plain(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(table: Table, lang: str, sheet: str) -> bytes:
    """The table as one Excel sheet named ``sheet``, titles in ``lang`` first."""
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet[:31]
    ws.append(table.headers(lang))
    for row in table.rows:
        ws.append(
            [
                None if v is None else (str(v) if not isinstance(v, int | float | str) else v)
                for v in row
            ]
        )
    ws.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
