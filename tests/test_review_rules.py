"""Reviews' pure rules: validation, the edit window (``now`` passed in), aggregates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dispatch.review_rules import (
    TAGS,
    EditWindowClosed,
    InvalidReview,
    ReviewInput,
    ReviewParams,
    changed_photos,
    check_edit_window,
    check_hide_reason,
    check_photo,
    check_reply,
    check_review,
    check_working_since,
    stars_delta,
    summarize,
    totals,
    years_of_experience,
)

P = ReviewParams()


def _field(e: pytest.ExceptionInfo[InvalidReview]) -> str | None:
    return e.value.field


def test_a_full_review_is_cleaned() -> None:
    """Text is stripped, repeated tags and photos are kept once, in order."""
    r = check_review(ReviewInput(5, "  好 ", 5, 4, 3, ("准时", "专业", "准时"), (3, 1, 3)), P)
    assert (r.text, r.tags, r.photos) == ("好", ("准时", "专业"), (3, 1))
    assert (r.quality, r.attitude, r.punctuality) == (5, 4, 3)


@pytest.mark.parametrize(
    ("review", "field"),
    [
        (ReviewInput(0), "stars"),
        (ReviewInput(6), "stars"),
        (ReviewInput(5, quality=0), "quality"),
        (ReviewInput(5, attitude=6), "attitude"),
        (ReviewInput(5, punctuality=9), "punctuality"),
        (ReviewInput(5, tags=("准时", "好极了")), "tags[1]"),
        (ReviewInput(5, tags=TAGS[:6]), "tags"),
        (ReviewInput(5, photos=tuple(range(1, 8))), "photos"),
        (ReviewInput(5, "x" * 2001), "text"),
    ],
)
def test_a_bad_review_names_the_field(review: ReviewInput, field: str) -> None:
    """Each broken rule is an InvalidReview naming the field (tags by index)."""
    with pytest.raises(InvalidReview) as e:
        check_review(review, P)
    assert _field(e) == field


def test_an_unknown_tag_lists_the_known_ones() -> None:
    """The message of an unknown tag says which tags exist."""
    with pytest.raises(InvalidReview) as e:
        check_review(ReviewInput(4, tags=("棒",)), P)
    assert "准时" in e.value.message
    assert "态度差" in e.value.message


@pytest.mark.parametrize(
    ("owner", "purpose", "media", "why"),
    [
        (None, None, None, "no such photo of yours"),
        (8, "review_photo", "image/jpeg", "no such photo of yours"),
        (7, "certificate", "application/pdf", "must be an image"),
        (7, "avatar", "image/png", "must be a file uploaded for review_photo"),
    ],
)
def test_a_photo_must_be_the_authors_review_image(
    owner: int | None, purpose: str | None, media: str | None, why: str
) -> None:
    """Someone else's file, a PDF, or an image of another purpose is refused, naming photos[i]."""
    with pytest.raises(InvalidReview) as e:
        check_photo(2, file_owner=owner, purpose=purpose, media_type=media, author=7)
    assert _field(e) == "photos[2]"
    assert why in e.value.message
    check_photo(0, file_owner=7, purpose="review_photo", media_type="image/webp", author=7)


def test_the_edit_window_closes_after_the_param() -> None:
    """Editable up to edit_window_s after sending (inclusive), a 409 naming the rule after."""
    sent = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    check_edit_window(sent, sent.timestamp() + 86400, P)
    with pytest.raises(EditWindowClosed) as e:
        check_edit_window(sent, sent.timestamp() + 86401, P)
    assert "24 h" in e.value.message
    assert e.value.field == "order_id"
    with pytest.raises(EditWindowClosed):
        check_edit_window(sent, sent.timestamp() + 61, ReviewParams(edit_window_s=60))


def test_reply_and_reason_are_stripped_and_bounded() -> None:
    """A reply is 1..500 characters, a hiding reason 2..200, blanks not counting."""
    assert check_reply("  谢谢 ") == "谢谢"
    with pytest.raises(InvalidReview) as e:
        check_reply("   ")
    assert e.value.field == "text"
    assert check_hide_reason(" 辱骂 ") == "辱骂"
    with pytest.raises(InvalidReview) as e2:
        check_hide_reason("x")
    assert e2.value.field == "reason"


def test_working_since_is_a_plausible_past_date() -> None:
    """A start date in the future or before 1950 is refused naming working_since."""
    today = date(2026, 12, 6)
    assert check_working_since(date(2010, 5, 1), today) == date(2010, 5, 1)
    assert check_working_since(None, today) is None
    for bad in (date(2026, 12, 7), date(1949, 12, 31)):
        with pytest.raises(InvalidReview) as e:
            check_working_since(bad, today)
        assert e.value.field == "working_since"


def test_years_of_experience_count_whole_years() -> None:
    """Whole years since the start date; unknown or future → None (omitted)."""
    today = date(2026, 12, 6)
    assert years_of_experience(date(2020, 12, 6), today) == 6
    assert years_of_experience(date(2020, 12, 7), today) == 5
    assert years_of_experience(None, today) is None
    assert years_of_experience(date(2027, 1, 1), today) is None


def test_aggregates_average_each_dimension_over_those_who_rated_it() -> None:
    """Averages round to 2 decimals; a dimension counts only reviews that rated it; tags most-used first."""
    got = summarize(
        totals(
            [
                ReviewInput(5, quality=5, attitude=4, punctuality=5, tags=("准时", "专业")),
                ReviewInput(4, quality=4, tags=("准时",)),
                ReviewInput(2, tags=("迟到",)),
            ]
        )
    )
    assert got.count == 3
    assert got.average == 3.67
    assert got.dimensions == {"quality": 4.5, "attitude": 4.0, "punctuality": 5.0}
    assert got.dimension_counts == {"quality": 2, "attitude": 1, "punctuality": 1}
    assert list(got.tags.items()) == [("准时", 2), ("专业", 1), ("迟到", 1)]


def test_no_reviews_means_no_averages() -> None:
    """With nothing to average, the averages are None, not 0."""
    got = summarize(totals([]))
    assert (got.count, got.average, got.tags) == (0, None, {})
    assert set(got.dimensions.values()) == {None}


def test_edits_move_sums_and_photos_by_the_difference() -> None:
    """An edit adds new - old stars; photos split into those to attach and to detach."""
    assert stars_delta(5, 2) == -3
    assert stars_delta(3, 3) == 0
    assert changed_photos((1, 2, 3), (3, 4)) == ([4], [1, 2])


def test_params_are_checked() -> None:
    """Out-of-range params are refused at start-up."""
    with pytest.raises(ValueError, match="edit_window_s"):
        ReviewParams(edit_window_s=-1)
    with pytest.raises(ValueError, match="max_tags"):
        ReviewParams(max_tags=99)
