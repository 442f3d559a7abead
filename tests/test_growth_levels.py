"""Membership rules without I/O: levels from points over the window, progress, changes,
the month a pack belongs to, the keys that issue a pack once, the params' checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from doorstep.params import ParamsError, from_mapping
from growth import levels as lv
from growth.levels import MembershipParams, PackItem

P = MembershipParams()


@pytest.mark.parametrize(
    ("points", "code"),
    [
        (0, "regular"),
        (-20, "regular"),
        (999, "regular"),
        (1000, "silver"),
        (4999, "silver"),
        (5000, "gold"),
        (19_999, "gold"),
        (20_000, "diamond"),
        (10**7, "diamond"),
    ],
)
def test_the_level_is_the_highest_threshold_reached(points: int, code: str) -> None:
    """Each threshold is reached at exactly its points; below 0 is the first level."""
    assert lv.level_for(points, P).code == code


def test_progress_toward_the_next_level() -> None:
    """1,500 points: silver, 3,500 to gold, an eighth of the way (1000→5000); the top
    level has no next and is all the way."""
    p = lv.progress(1500, P)
    assert (p.level.code, p.next_level and p.next_level.code) == ("silver", "gold")
    assert (p.points_to_next, p.share_bps) == (3500, 1250)
    top = lv.progress(25_000, P)
    assert (top.next_level, top.points_to_next, top.share_bps) == (None, 0, 10_000)


def test_a_change_is_up_or_down_and_a_first_bottom_level_is_none() -> None:
    """From nothing to the first level is no change; up and down by thresholds."""
    gold, regular = lv.level_for(5000, P), lv.level_for(0, P)
    assert lv.change(None, regular, P) is None
    assert lv.change(None, gold, P) == "up"
    assert lv.change("silver", gold, P) == "up"
    assert lv.change("diamond", gold, P) == "down"
    assert lv.change("gold", gold, P) is None
    assert lv.change("retired", regular, P) == "down"  # a level no longer in the params


def test_the_window_and_the_month_are_taken_from_now() -> None:
    """The window ends at now; a pack's month is China's (16:30 UTC on 31 Jan is February)."""
    now = datetime(2026, 1, 31, 16, 30, tzinfo=UTC)
    assert lv.month_of(now) == "2026-02"
    assert lv.month_of(datetime(2026, 1, 31, 15, 59, tzinfo=UTC)) == "2026-01"
    assert (now - lv.window_start(now, P)).days == 365


def test_a_pack_is_keyed_per_customer_month_level_item_and_copy() -> None:
    """Diamond gives 2 + 1 coupons, each with its own key; a template per item and terms."""
    diamond = lv.level_for(20_000, P)
    keys = lv.pack_keys(7, "2026-02", diamond)
    assert [k for _, _, k in keys] == [
        "member:7:2026-02:diamond:0:0",
        "member:7:2026-02:diamond:0:1",
        "member:7:2026-02:diamond:1:0",
    ]
    assert lv.system_key(diamond, 1) == "member:diamond:1:5000:30000:30"
    assert lv.pack_keys(7, "2026-02", lv.level_for(0, P)) == []


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"window_days": 0}, "window_days"),
        ({"levels": []}, "first level"),
        ({"levels": [{"code": "a", "name_zh": "a", "name_en": "a", "min_points": 5}]}, "first"),
        (
            {
                "levels": [
                    {"code": "a", "name_zh": "a", "name_en": "a", "min_points": 0},
                    {"code": "b", "name_zh": "b", "name_en": "b", "min_points": 0},
                ]
            },
            "more points",
        ),
        (
            {"levels": [{"code": "a", "name_zh": "a", "name_en": "a", "min_points": 0, "x": 1}]},
            "unknown key",
        ),
        (
            {
                "levels": [
                    {
                        "code": "a",
                        "name_zh": "a",
                        "name_en": "a",
                        "min_points": 0,
                        "multiplier_bps": 9000,
                    }
                ]
            },
            "multiplier_bps",
        ),
    ],
)
def test_bad_params_are_refused_naming_the_rule(table: dict[str, object], words: str) -> None:
    """A bad [membership] table is a ParamsError that says what is wrong."""
    with pytest.raises(ParamsError, match=words):
        from_mapping(MembershipParams, table, section="membership")


def test_the_params_file_levels_load() -> None:
    """The shipped params give four levels with rising thresholds and their packs."""
    from pathlib import Path

    from doorstep.params import load_toml

    table = load_toml(Path(__file__).parents[1] / "params" / "doorstep.toml")["membership"]
    params = from_mapping(MembershipParams, table, section="membership")
    assert [x.code for x in params.ladder] == ["regular", "silver", "gold", "diamond"]
    assert params.by_code("gold") is not None
    assert params.ladder[3].pack[1] == PackItem(5000, 30000, 30, 1)
    with pytest.raises(ValueError, match="min_spend_fen"):
        PackItem(1000, 500)
