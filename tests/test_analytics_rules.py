"""Analytics rules, exports and the history generator: pure, no stores."""

from __future__ import annotations

import csv
import io
from datetime import date

import numpy as np
import pytest
from openpyxl import load_workbook

from analytics import export, places, rules
from analytics.errors import BadQuery
from analytics.rules import Sums, WorkerSums
from seeding import history

TODAY = date(2026, 6, 15)


def test_ratios_are_sums_divided_once() -> None:
    """Metrics of added rows are ratios of the added sums, not averages of averages."""
    a = Sums(orders=10, completed=8, cancelled=1, failed=1, gmv_fen=8000, assigned=9,
             assign_s_sum=90.0, ratings=2, stars_sum=10, repeat_orders=5)  # fmt: skip
    b = Sums(orders=30, completed=10, cancelled=0, failed=0, gmv_fen=30000, assigned=10,
             assign_s_sum=1000.0, ratings=8, stars_sum=24, repeat_orders=3)  # fmt: skip
    m = rules.derive(a + b)
    assert m.orders == 40
    assert m.fulfilment_rate == pytest.approx(18 / 20)
    assert m.cancel_rate == pytest.approx(1 / 40)
    assert m.avg_assign_s == pytest.approx(1090 / 19)
    assert m.avg_stars == pytest.approx(34 / 10)
    assert m.repeat_rate == pytest.approx(8 / 40)
    assert m.avg_order_fen == round(38000 / 18)


def test_empty_range_has_no_ratios() -> None:
    """With nothing to divide by, a ratio is None (shown as a dash), never 0 or an error."""
    m = rules.derive(Sums())
    assert (m.fulfilment_rate, m.avg_wait_s, m.avg_stars, m.avg_order_fen) == (None,) * 4
    assert rules.utilization(WorkerSums()) is None
    assert rules.utilization(WorkerSums(busy_s=30, available_s=60)) == 0.5


def test_quiet_days_and_hours_are_zero_rows() -> None:
    """A trend has every day of the range and the hour table all 24 hours."""
    days = rules.fill_days(date(2026, 1, 30), date(2026, 2, 2), {date(2026, 2, 1): Sums(orders=3)})
    assert [(d.isoformat(), s.orders) for d, s in days] == [
        ("2026-01-30", 0), ("2026-01-31", 0), ("2026-02-01", 3), ("2026-02-02", 0)
    ]  # fmt: skip
    assert [h for h, _ in rules.fill_hours({5: Sums(orders=1)})] == list(range(24))


def test_whole_months_of_a_range() -> None:
    """The whole calendar months inside a range, as [first day, first day after), or None."""
    assert rules.full_months(date(2025, 12, 6), date(2026, 12, 5)) == (
        date(2026, 1, 1),
        date(2026, 12, 1),
    )
    assert rules.full_months(date(2026, 1, 1), date(2026, 1, 31)) == (
        date(2026, 1, 1),
        date(2026, 2, 1),
    )
    assert rules.full_months(date(2025, 12, 1), date(2026, 12, 31)) == (
        date(2025, 12, 1),
        date(2027, 1, 1),
    )
    assert rules.full_months(date(2026, 1, 2), date(2026, 1, 31)) is None
    assert rules.full_months(date(2026, 11, 6), date(2026, 12, 5)) is None


def test_availability_takes_the_days_exception_first() -> None:
    """A dated exception replaces the weekly windows of that day; else the weekday's sum."""
    weekly = [(0, 480, 720), (0, 780, 1080), (1, 480, 1080)]
    monday = date(2026, 6, 15)
    assert rules.available_s(weekly, None, monday) == (240 + 300) * 60
    assert rules.available_s(weekly, (False, None, None), monday) == 0
    assert rules.available_s(weekly, (True, 600, 660), monday) == 3600
    assert rules.available_s(weekly, None, date(2026, 6, 17)) == 0


def test_query_defaults_to_the_last_30_days() -> None:
    """Without dates a query covers the 30 local days up to today, by day, as JSON."""
    q = rules.parse_query({"city": "shenzhen"}, today=TODAY)
    assert (q.start, q.end, q.by, q.format, q.lang) == (
        date(2026, 5, 17),
        TODAY,
        "day",
        "json",
        "zh",
    )


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"from": "2026-13-01"}, "from", "YYYY-MM-DD"),
        ({"to": "yesterday"}, "to", "YYYY-MM-DD"),
        ({"from": "2026-06-10", "to": "2026-06-01"}, "from", "after"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from", "366"),
        ({"by": "week"}, "by", "one of"),
        ({"format": "pdf"}, "format", "csv"),
        ({"lang": "fr"}, "lang", "zh or en"),
        ({"colour": "red"}, "colour", "unknown parameter"),
        ({"by": "city", "city": "shenzhen"}, "by", "leave 'city' out"),
        ({"district": "x" * 65}, "district", "64"),
    ],
)
def test_a_bad_query_names_its_field(params: dict[str, str], field: str, words: str) -> None:
    """Every rule a query breaks is reported with the field's name and the rule."""
    with pytest.raises(BadQuery) as caught:
        rules.parse_query(params, today=TODAY)
    assert caught.value.field == field
    assert words in caught.value.message


def test_heatmap_level_and_resolution() -> None:
    """The heatmap takes hex or district, and H3 resolution 7 or 8 only."""
    assert rules.parse_heat({}) == ("hex", 8)
    assert rules.parse_heat({"level": "district", "res": "7"}) == ("district", 7)
    for params, field in (
        ({"level": "city"}, "level"),
        ({"res": "9"}, "res"),
        ({"res": "x"}, "res"),
    ):
        with pytest.raises(BadQuery) as caught:
            rules.parse_heat(params)
        assert caught.value.field == field


def _table() -> rules.Table:
    return rules.breakdown_table(
        "category",
        [("cleaning", Sums(orders=4, completed=3, cancelled=1, gmv_fen=30000)), ("水电", Sums())],
    )


def test_csv_export_has_titles_and_every_row() -> None:
    """CSV starts with a BOM (Excel reads the Chinese), then titles in the asked language
    and one line per row with the raw values (fen, ratios as fractions)."""
    body = export.to_csv(_table(), "zh")
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["品类", "订单数", "完成"]
    assert rows[1][0] == "cleaning"
    assert rows[1][1] == "4"
    assert rows[1][5] == "30000"
    assert rows[1][rows[0].index("履约率")] == "0.75"
    assert rows[2][0] == "水电"
    assert rows[2][rows[0].index("履约率")] == ""
    assert next(csv.reader(io.StringIO(export.to_csv(_table(), "en").decode("utf-8-sig"))))[:2] == [
        "Category",
        "Orders",
    ]


def test_xlsx_export_reads_back() -> None:
    """The Excel file opens with openpyxl and holds the same titles and values."""
    book = load_workbook(io.BytesIO(export.to_xlsx(_table(), "en", "by-category")))
    ws = book.active
    assert ws is not None
    assert ws.title == "by-category"
    values = list(ws.iter_rows(values_only=True))
    assert values[0][:2] == ("Category", "Orders")
    assert values[1][:6] == ("cleaning", 4, 3, 1, 0, 30000)
    assert values[2][0] == "水电"


def test_places_find_the_district_and_nested_cells() -> None:
    """A point in Futian is in 福田区, one in the sea in none; a cell's parent contains it."""
    names = places.district_of([22.540, 22.30], [114.050, 114.30])
    assert names == ["福田区", ""]
    (cell,) = places.cell_of([22.54], [114.05])
    parent = places.to_res(cell, 7)
    assert parent != cell
    assert places.to_res(cell, 8) == cell
    feature = places.hex_feature(parent, {"orders": 3})
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    assert len(ring) == 7


def _generate(seed: int) -> history.History:
    lat = np.array([22.53, 22.54, 22.55, 22.535])
    lng = np.array([114.02, 114.03, 114.04, 114.025])
    services = [
        history.ServiceOption("daily_cleaning_2h", 10900, 120, True, True),
        history.ServiceOption("ac_cleaning", 8900, 60, True, True),
        history.ServiceOption("move_in_cleaning", 89900, 480, False, True),
        history.ServiceOption("maternity_nanny_26d", 1380000, 37440, False, True),
    ]
    return history.generate(
        orders=5000, first_day=date(2026, 1, 1), days=28, timezone="Asia/Shanghai",
        sites_lat=lat, sites_lng=lng, services=services, curve=tuple(range(1, 25)),
        seed=seed,
    )  # fmt: skip


def test_history_is_seeded_and_consistent() -> None:
    """The same seed gives the same history; each order's times follow its outcome."""
    a, b = _generate(5), _generate(5)
    assert np.array_equal(a.created_s, b.created_s)
    assert np.array_equal(a.customer, b.customer)
    assert not np.array_equal(a.created_s, _generate(6).created_s)
    assert a.n == 5000
    assert np.all(np.diff(a.created_s) >= 0)
    done = a.status == history.COMPLETED
    assert np.all(a.completed_s[done] > a.arrived_s[done])
    assert np.all(a.arrived_s[done] > a.assigned_s[done])
    assert np.all(np.isnan(a.completed_s[~done]))
    assert np.all(a.worker[np.isnan(a.assigned_s)] == -1)
    assert np.all(a.stars[~done] == 0)
    assert set(np.unique(a.stars[done])) <= {0, 1, 2, 3, 4, 5}
    assert not np.any(a.service == 3)  # a 26-day booking is left out of the mix
    assert np.all(a.scheduled[a.service == 2])  # a scheduled-only service
    # Customers come back: fewer customers than orders, and some order many times.
    assert len(np.unique(a.customer)) < a.n / 3
    first = a.first_order_s()
    assert np.nanmin(first) == a.created_s[0]
