"""The pure demo-city generator: catalog consistency and seeded Futian content."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import date, timedelta

import pytest

from seeding.futian import (
    MAX_JITTER_M,
    TEAM_SHARE,
    CitySeed,
    build_catalog,
    build_city,
)

TODAY = date(2025, 3, 15)

# Synthetic road nodes spread over Futian (about 22.52-22.56 N, 114.02-114.09 E).
_node_rng = random.Random(1)
NODES = [
    (round(_node_rng.uniform(22.52, 22.56), 6), round(_node_rng.uniform(114.02, 114.09), 6))
    for _ in range(300)
]


@pytest.fixture(scope="module")
def city() -> CitySeed:
    return build_city(NODES, today=TODAY)


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def _nearest_node_m(point: tuple[float, float]) -> float:
    return min(_distance_m(point, node) for node in NODES)


def test_same_seed_gives_equal_city() -> None:
    """Two builds with the same seed and today are equal."""
    assert build_city(NODES, today=TODAY, seed=3) == build_city(NODES, today=TODAY, seed=3)


def test_different_seed_gives_different_city() -> None:
    """A different seed changes the workers and customers."""
    a = build_city(NODES, today=TODAY, seed=3)
    b = build_city(NODES, today=TODAY, seed=4)
    assert a.workers != b.workers
    assert a.customers != b.customers


def test_default_counts(city: CitySeed) -> None:
    """Defaults give 240 workers, 120 customers, 4 teams, >=14 services, >=5 categories."""
    assert len(city.workers) == 240
    assert len(city.customers) == 120
    assert len(city.teams) == 4
    assert len(city.services) >= 14
    assert len(city.categories) >= 5


def test_catalog_codes_are_unique() -> None:
    """Skill, certificate, category and service codes are unique within their table."""
    skills, kinds, categories, services = build_catalog()
    for table in (skills, kinds, categories, services):
        codes = [row.code for row in table]
        assert len(codes) == len(set(codes))


def test_services_refer_to_catalog_rows() -> None:
    """Every service's category, skills and certificates exist in the catalog."""
    skills, kinds, categories, services = build_catalog()
    skill_codes = {s.code for s in skills}
    kind_codes = {k.code for k in kinds}
    category_codes = {c.code for c in categories}
    for service in services:
        assert service.category in category_codes, service.code
        assert set(service.required_skills) <= skill_codes, service.code
        assert set(service.required_certificates) <= kind_codes, service.code


def test_every_skill_and_category_is_used() -> None:
    """No catalog skill or category is left without a service."""
    skills, _, categories, services = build_catalog()
    assert {s.code for s in skills} == {k for sv in services for k in sv.required_skills}
    assert {c.code for c in categories} == {sv.category for sv in services}


def test_services_have_plausible_content() -> None:
    """Services have 3-8 checklist steps, bilingual text, and prices within reason."""
    *_, services = build_catalog()
    for service in services:
        assert 3 <= len(service.checklist) <= 8, service.code
        assert all(item.zh and item.en for item in service.checklist), service.code
        assert service.name_zh, service.code
        assert service.name_en, service.code
        assert service.description_zh, service.code
        assert service.description_en, service.code
        assert 1_000 <= service.price_minor <= 3_000_000, service.code


def test_booking_modes_fit_the_service() -> None:
    """Nanny, elderly care and deep cleaning are long: they are booked ahead only."""
    *_, services = build_catalog()
    by_code = {s.code: s for s in services}
    for service in services:
        assert service.scheduled, service.code
        long_job = service.duration_min >= 240 or service.category == "elderly_care"
        if long_job and service.code != "cooking_2h":
            assert not service.instant, service.code
    assert by_code["daily_cleaning_3h"].instant
    assert by_code["pipe_repair"].instant
    assert not by_code["deep_cleaning"].instant


def test_trades_that_need_a_licence_require_it() -> None:
    """Electrical work needs 电工证, 月嫂 母婴护理师证, elderly care 养老护理员证."""
    *_, services = build_catalog()
    for service in services:
        if "electrical" in service.required_skills:
            assert "electrician" in service.required_certificates, service.code
        if "maternity_care" in service.required_skills:
            assert "maternity_nurse" in service.required_certificates, service.code
    assert "elderly_caregiver" in {
        c for s in services if s.category == "elderly_care" for c in s.required_certificates
    }


def test_worker_skills_come_from_the_catalog_and_match_a_service(city: CitySeed) -> None:
    """Every worker's skills exist, and each worker can do at least one service."""
    skill_codes = {s.code for s in city.skills}
    for worker in city.workers:
        assert worker.skills, worker.phone
        assert set(worker.skills) <= skill_codes, worker.phone
        held = {c.kind for c in worker.certificates}
        assert any(
            set(s.required_skills) <= set(worker.skills) and set(s.required_certificates) <= held
            for s in city.services
        ), worker.phone


def test_certificates_match_skills(city: CitySeed) -> None:
    """A worker with a licensed skill holds the licence (in force or not)."""
    needs = {
        "deep_cleaning": "housekeeping",
        "electrical": "electrician",
        "maternity_care": "maternity_nurse",
        "elderly_care": "elderly_caregiver",
    }
    for worker in city.workers:
        kinds = [c.kind for c in worker.certificates]
        assert len(kinds) == len(set(kinds)), worker.phone
        for skill, kind in needs.items():
            if skill in worker.skills:
                assert kind in kinds, worker.phone


def test_certificate_dates_are_consistent(city: CitySeed) -> None:
    """Issued before expiry and not in the future; some expire soon, a few have expired."""
    certs = [c for w in city.workers for c in w.certificates]
    kinds = {k.code: k for k in city.certificate_kinds}
    assert all(c.kind in kinds for c in certs)
    assert all(c.issued_on < c.expires_on and c.issued_on <= TODAY for c in certs)
    numbers = [c.number for c in certs]
    assert len(numbers) == len(set(numbers))
    expired = [c for c in certs if c.expires_on < TODAY]
    soon = [c for c in certs if TODAY <= c.expires_on <= TODAY + timedelta(days=30)]
    assert 0 < len(expired) < 0.1 * len(certs)
    assert 0 < len(soon) < 0.2 * len(certs)


def test_phones_are_unique_mobile_numbers(city: CitySeed) -> None:
    """Worker, merchant and customer phones are distinct 11-digit 13x-19x numbers."""
    phones = (
        [w.phone for w in city.workers]
        + [t.merchant_phone for t in city.teams]
        + [c.phone for c in city.customers]
    )
    assert len(phones) == len(set(phones))
    for phone in phones:
        assert len(phone) == 11, phone
        assert phone.isdigit(), phone
        assert phone[:2] in {"13", "14", "15", "16", "17", "18", "19"}, phone


def test_homes_and_addresses_lie_near_nodes(city: CitySeed) -> None:
    """Worker homes and customer addresses are within 50 m of a given road node."""
    points = [(w.home_lat, w.home_lng) for w in city.workers]
    points += [(a.lat, a.lng) for c in city.customers for a in c.addresses]
    assert max(_nearest_node_m(p) for p in points) <= min(50.0, MAX_JITTER_M + 1)


def test_availability_windows_are_valid(city: CitySeed) -> None:
    """Windows have weekday 0..6 and 0 <= start < end <= 1440; everyone works some day."""
    for worker in city.workers:
        assert worker.availability, worker.phone
        for window in worker.availability:
            assert 0 <= window.weekday <= 6
            assert 0 <= window.start_min < window.end_min <= 1440
        days = [w.weekday for w in worker.availability]
        assert len(days) == len(set(days)), worker.phone


def test_ratings_are_realistic(city: CitySeed) -> None:
    """Ratings are 1-5 stars; some workers are new, most average 4.6-4.95, a few are poor."""
    averages = []
    for worker in city.workers:
        assert worker.rating_count * 1 <= worker.rating_sum <= worker.rating_count * 5
        if worker.rating_count:
            averages.append(worker.rating_sum / worker.rating_count)
    new = len(city.workers) - len(averages)
    assert 0 < new < 0.25 * len(city.workers)
    good = sum(4.55 <= a <= 4.97 for a in averages)
    poor = sum(a < 4.1 for a in averages)
    assert good > 0.7 * len(averages)
    assert 0 < poor < 0.1 * len(averages)


def test_teams_hold_about_forty_percent_of_workers(city: CitySeed) -> None:
    """About 40% of workers belong to a team; every team exists and has staff."""
    codes = {t.code for t in city.teams}
    assert len(codes) == len(city.teams)
    members = Counter(w.team_code for w in city.workers if w.team_code is not None)
    assert set(members) == codes
    assert sum(members.values()) == round(TEAM_SHARE * len(city.workers))


def test_customers_have_labelled_addresses(city: CitySeed) -> None:
    """Each customer has 1-3 distinct labelled addresses, the first being 家."""
    for customer in city.customers:
        labels = [a.label for a in customer.addresses]
        assert 1 <= len(labels) <= 3
        assert labels[0] == "家"
        assert len(labels) == len(set(labels))
        assert set(labels) <= {"家", "公司", "父母家"}
        assert all(a.detail for a in customer.addresses)
        assert customer.name


@pytest.mark.parametrize("seed", [1, 7, 42, 2024])
def test_every_service_has_three_qualified_workers(seed: int) -> None:
    """Each service has >= 3 workers with all its skills and certificates in force today."""
    city = build_city(NODES, today=TODAY, seed=seed)
    for service in city.services:
        qualified = [w for w in city.workers if w.qualifies_for(service, TODAY)]
        assert len(qualified) >= 3, service.code


def test_small_city_still_covers_every_service() -> None:
    """Even 18 workers (3 per worker type) cover every service three times."""
    city = build_city(NODES, today=TODAY, workers=18, customers=0, teams=0)
    assert all(w.team_code is None for w in city.workers)
    for service in city.services:
        assert sum(w.qualifies_for(service, TODAY) for w in city.workers) >= 3, service.code


def test_a_single_node_works() -> None:
    """One node is enough: everything lies around it."""
    city = build_city([(22.5431, 114.0579)], today=TODAY, workers=5, customers=3)
    assert len(city.workers) == 5
    assert all(
        _distance_m((w.home_lat, w.home_lng), (22.5431, 114.0579)) <= 26 for w in city.workers
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": []}, "nodes must not be empty"),
        ({"workers": 0}, "workers must be >= 1"),
        ({"customers": -1}, "customers must be >= 0"),
        ({"teams": -1}, "teams must be in"),
        ({"teams": 10_000}, "teams must be in"),
        ({"nodes": [(95.0, 114.0)]}, "nodes[0]: lat"),
        ({"nodes": [(22.5, float("nan"))]}, "nodes[0]: lng"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], message: str) -> None:
    """Empty nodes, no workers, negative counts and bad coordinates raise ValueError."""
    args: dict[str, object] = {"nodes": NODES, "today": TODAY, **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_city(**args)  # type: ignore[arg-type]


def test_crew_services_are_seeded_with_the_crew_their_description_names() -> None:
    """The seed's 开荒保洁 says "三人作业" and has crew_size 3, 深度保洁 says "两人上门" and has 2; every other service is one worker."""
    from seeding.catalog_content import SERVICES

    crews = {s.code: s.crew_size for s in SERVICES if s.crew_size != 1}
    assert crews == {"move_in_cleaning": 3, "deep_cleaning": 2}
    assert "三人" in next(s for s in SERVICES if s.code == "move_in_cleaning").description_zh
    assert "两人" in next(s for s in SERVICES if s.code == "deep_cleaning").description_zh
