"""Seeded demo city for Shenzhen, Futian: catalog, merchant teams, workers and customers.

Pure: no I/O and no clock. Everything is drawn from one ``random.Random(seed)``, and
certificate dates are relative to the ``today`` the caller passes, so the same
arguments always give an equal :class:`CitySeed`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from seeding.catalog_content import (
    CATEGORIES,
    CERTIFICATE_KINDS,
    SERVICES,
    SKILLS,
    CategorySeed,
    CertificateKindSeed,
    ChecklistItem,
    ServiceSeed,
    SkillSeed,
)

__all__ = [
    "MAX_JITTER_M",
    "TEAM_SHARE",
    "AddressSeed",
    "AvailabilitySeed",
    "Catalog",
    "CategorySeed",
    "CertificateKindSeed",
    "CertificateSeed",
    "ChecklistItem",
    "CitySeed",
    "CustomerSeed",
    "ServiceSeed",
    "SkillSeed",
    "TeamSeed",
    "WorkerSeed",
    "build_catalog",
    "build_city",
]

MAX_JITTER_M = 25.0
"""Homes and addresses lie at most this far from the road node they were drawn from."""

TEAM_SHARE = 0.4
"""Share of workers employed by a merchant team (家政公司) rather than independent."""

_M_PER_DEG_LAT = 111_320.0
_MINUTES_PER_DAY = 24 * 60


# --- Seed records -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AvailabilitySeed:
    """One weekly window a worker takes jobs in: weekday 0=Mon..6=Sun, minutes of day."""

    weekday: int
    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError("weekday must be in 0..6 (0 = Monday)")
        if not 0 <= self.start_min < self.end_min <= _MINUTES_PER_DAY:
            raise ValueError("availability must satisfy 0 <= start_min < end_min <= 1440")


@dataclass(frozen=True, slots=True)
class CertificateSeed:
    """A certificate a worker holds; valid from ``issued_on`` through ``expires_on``."""

    kind: str
    number: str
    issued_on: date
    expires_on: date

    def __post_init__(self) -> None:
        if self.issued_on >= self.expires_on:
            raise ValueError("certificate issued_on must be before expires_on")

    def is_valid_on(self, day: date) -> bool:
        """Whether the certificate is in force on ``day`` (both ends inclusive)."""
        return self.issued_on <= day <= self.expires_on


@dataclass(frozen=True, slots=True)
class WorkerSeed:
    """A worker: full name, skill codes, certificates, home base, weekly hours, ratings."""

    phone: str
    name: str
    skills: tuple[str, ...]
    certificates: tuple[CertificateSeed, ...]
    home_lat: float
    home_lng: float
    availability: tuple[AvailabilitySeed, ...]
    rating_sum: int
    rating_count: int
    team_code: str | None

    def qualifies_for(self, service: ServiceSeed, on: date) -> bool:
        """Holds every skill the service needs and every certificate, in force on ``on``."""
        valid = {c.kind for c in self.certificates if c.is_valid_on(on)}
        return (
            set(service.required_skills) <= set(self.skills)
            and set(service.required_certificates) <= valid
        )


@dataclass(frozen=True, slots=True)
class TeamSeed:
    """A merchant team (家政公司) and the phone and name of its manager."""

    code: str
    name: str
    merchant_phone: str
    merchant_name: str


@dataclass(frozen=True, slots=True)
class AddressSeed:
    """A customer's saved address: label (家/公司/父母家), position, door-level detail."""

    label: str
    lat: float
    lng: float
    detail: str


@dataclass(frozen=True, slots=True)
class CustomerSeed:
    """A customer with one to three saved addresses, the first labelled 家."""

    phone: str
    name: str
    addresses: tuple[AddressSeed, ...]


@dataclass(frozen=True, slots=True)
class CitySeed:
    """Everything ``doorstep seed --demo`` inserts for the demo city."""

    skills: tuple[SkillSeed, ...]
    certificate_kinds: tuple[CertificateKindSeed, ...]
    categories: tuple[CategorySeed, ...]
    services: tuple[ServiceSeed, ...]
    teams: tuple[TeamSeed, ...]
    workers: tuple[WorkerSeed, ...]
    customers: tuple[CustomerSeed, ...]


class Catalog(NamedTuple):
    """The static catalog; unpacks as ``skills, certificate_kinds, categories, services``."""

    skills: tuple[SkillSeed, ...]
    certificate_kinds: tuple[CertificateKindSeed, ...]
    categories: tuple[CategorySeed, ...]
    services: tuple[ServiceSeed, ...]


def build_catalog() -> Catalog:
    """The skills, certificate kinds, categories and services of the demo city."""
    return Catalog(SKILLS, CERTIFICATE_KINDS, CATEGORIES, SERVICES)


# --- Name and place pools -----------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹"
    "彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖"
)
_SURNAME_WEIGHTS = tuple(1.0 / (rank + 4) for rank in range(len(_SURNAMES)))

# Given names typical of workers in their 40s and 50s, and of younger customers.
_GIVEN_WORKER_F = _words(
    "秀英 桂英 秀兰 玉兰 桂兰 凤英 丽华 美华 春梅 红梅 小红 翠花 淑珍 玉梅 金凤 "
    "彩霞 海燕 丽娟 雪梅 晓燕 丽萍 秀珍 桂香 月娥 春兰 素芬 美玲 芳 霞 敏 红 萍 娟"
)
_GIVEN_WORKER_M = _words(
    "建国 建华 志强 国强 伟 强 军 勇 磊 涛 斌 超 明 杰 鹏 辉 刚 平 海波 "
    "建军 志刚 永强 俊 文华 德明 春生 国华 宏伟 立新 小龙 伟东 家福"
)
_GIVEN_YOUNG_F = _words(
    "思琪 雨欣 佳怡 婷婷 晓雯 梓涵 欣怡 诗涵 一诺 子涵 嘉怡 雅琪 静怡 佳琪 梦瑶 "
    "晓彤 心怡 可欣 语嫣 慧敏 颖 璐 洁 倩"
)
_GIVEN_YOUNG_M = _words(
    "浩然 子轩 宇航 俊杰 志远 一鸣 文博 博文 家豪 浩宇 明轩 天宇 子豪 嘉伟 振华 "
    "晨阳 泽宇 思远 凯 昊 磊 睿 瀚文"
)

_TEAM_PLACES = (
    ("鹏城", "pengcheng"),
    ("福田", "futian"),
    ("莲花", "lianhua"),
    ("香蜜", "xiangmi"),
    ("景田", "jingtian"),
    ("梅林", "meilin"),
    ("华强", "huaqiang"),
    ("皇岗", "huanggang"),
    ("新洲", "xinzhou"),
    ("车公庙", "chegongmiao"),
)
_TEAM_BRANDS = (
    ("优家", "youjia"),
    ("安心", "anxin"),
    ("好帮手", "haobangshou"),
    ("阳光", "yangguang"),
    ("贴心", "tiexin"),
    ("巧手", "qiaoshou"),
    ("乐居", "leju"),
    ("家和", "jiahe"),
)
MAX_TEAMS = len(_TEAM_PLACES) * len(_TEAM_BRANDS)

_RESIDENTIAL_STREETS = _words(
    "景田北街 景田南街 莲花北村 彩田村 梅林一村 园岭新村 百花二路 香蜜湖路 上沙东村 "
    "下沙村 皇岗村 福田村 新洲村 石厦北街 益田村 天安数码城 华富路 红荔西路 侨香路 "
    "农林路 安托山六路 八卦一路"
)
_OFFICE_ROADS = _words(
    "深南大道 益田路 金田路 福华路 民田路 彩田路 新洲路 华强北路 福中路 滨河大道"
)
_OFFICE_TOWERS = _words(
    "中心大厦 金融大厦 国际商务中心 世纪中心 科技大厦 时代广场 商会大厦 投资大厦"
)

_PHONE_PREFIXES = _words(
    "130 131 132 133 134 135 136 137 138 139 150 151 152 155 156 157 158 159 "
    "166 176 177 178 180 181 182 183 185 186 187 188 189 191 193 195 198 199"
)

_CERT_PREFIX = {
    "housekeeping": "JZ",
    "electrician": "T",
    "maternity_nurse": "MY",
    "elderly_caregiver": "YL",
    "health": "JK",
}

# Certificates a skill implies (every holder of the skill has them, possibly expired).
_SKILL_CERTS: dict[str, tuple[str, ...]] = {
    "deep_cleaning": ("housekeeping",),
    "electrical": ("electrician",),
    "maternity_care": ("maternity_nurse", "health"),
    "elderly_care": ("elderly_caregiver", "health"),
    "childcare": ("health",),
    "cooking": ("health",),
}


# --- Weekly hours ---------------------------------------------------------------------


def _days(days: Sequence[int], start_h: float, end_h: float) -> tuple[AvailabilitySeed, ...]:
    return tuple(AvailabilitySeed(d, int(start_h * 60), int(end_h * 60)) for d in days)


def _six_days(rng: random.Random, start_h: float, end_h: float) -> tuple[AvailabilitySeed, ...]:
    day_off = rng.choice((6, 6, 6, 0, 1, 2, 3, 4, 5))
    return _days([d for d in range(7) if d != day_off], start_h, end_h)


_SHIFTS: dict[str, Callable[[random.Random], tuple[AvailabilitySeed, ...]]] = {
    "full_time": lambda rng: _six_days(rng, 8, 18),
    "long_day": lambda rng: _six_days(rng, 8, 20),
    "weekday_day": lambda rng: _days(range(5), 9, 17),
    "mornings": lambda rng: _days(range(6), 7, 12),
    "evenings": lambda rng: _days(range(5), 17.5, 21.5),
    "weekends": lambda rng: _days((5, 6), 9, 18),
    "live_in": lambda rng: _days(range(7), 0, 24),
}


# --- Worker archetypes ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Archetype:
    code: str
    weight: float
    female_share: float
    core_skills: tuple[str, ...]
    optional_skills: tuple[tuple[str, float], ...]
    housekeeping_share: float
    shifts: tuple[tuple[str, float], ...]  # the first is the one "complete" workers get


_ARCHETYPES = (
    _Archetype(
        "cleaner",
        0.36,
        0.9,
        ("cleaning",),
        (("deep_cleaning", 0.7), ("appliance_cleaning", 0.25), ("cooking", 0.15)),
        0.55,
        (
            ("full_time", 0.45),
            ("weekday_day", 0.15),
            ("mornings", 0.15),
            ("evenings", 0.1),
            ("weekends", 0.15),
        ),
    ),
    _Archetype(
        "appliance_technician",
        0.15,
        0.05,
        ("appliance_repair", "appliance_cleaning"),
        (("electrical", 0.25), ("plumbing", 0.15)),
        0.0,
        (("full_time", 0.5), ("long_day", 0.25), ("evenings", 0.1), ("weekends", 0.15)),
    ),
    _Archetype(
        "plumber_electrician",
        0.15,
        0.03,
        ("plumbing",),
        (("electrical", 0.7), ("appliance_repair", 0.2)),
        0.0,
        (("full_time", 0.5), ("long_day", 0.25), ("evenings", 0.1), ("weekends", 0.15)),
    ),
    _Archetype(
        "nanny",
        0.13,
        1.0,
        ("childcare", "cooking", "cleaning"),
        (),
        0.85,
        (("full_time", 0.7), ("weekday_day", 0.3)),
    ),
    _Archetype(
        "maternity_nanny",
        0.07,
        1.0,
        ("maternity_care", "childcare", "cooking"),
        (("cleaning", 0.5),),
        0.4,
        (("live_in", 1.0),),
    ),
    _Archetype(
        "elderly_caregiver",
        0.14,
        0.75,
        ("elderly_care", "cooking"),
        (("cleaning", 0.5),),
        0.4,
        (("full_time", 0.5), ("weekday_day", 0.3), ("mornings", 0.2)),
    ),
)
_COMPLETE_PER_ARCHETYPE = 3


# --- The generator --------------------------------------------------------------------


def build_city(
    nodes: Sequence[tuple[float, float]],
    *,
    today: date,
    seed: int = 7,
    workers: int = 240,
    customers: int = 120,
    teams: int = 4,
) -> CitySeed:
    """Generate the demo city on the given road nodes (WGS-84 ``(lat, lng)`` pairs).

    Homes and addresses lie within :data:`MAX_JITTER_M` of a node. Certificate dates are
    relative to ``today``: most in force, some expiring within 30 days, a few expired.
    With ``workers >= 18`` every service has at least 3 workers qualified on ``today``.
    """
    points = _check_nodes(nodes)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if customers < 0:
        raise ValueError(f"customers must be >= 0, got {customers}")
    if not 0 <= teams <= MAX_TEAMS:
        raise ValueError(f"teams must be in 0..{MAX_TEAMS}, got {teams}")

    rng = random.Random(seed)
    gen = _Generator(rng, points, today)
    team_seeds = gen.teams(teams)
    return CitySeed(
        skills=SKILLS,
        certificate_kinds=CERTIFICATE_KINDS,
        categories=CATEGORIES,
        services=SERVICES,
        teams=team_seeds,
        workers=gen.workers(workers, team_seeds),
        customers=tuple(gen.customer() for _ in range(customers)),
    )


def _check_nodes(nodes: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(nodes) == 0:
        raise ValueError("nodes must not be empty: pass the road-graph nodes of the service area")
    points = []
    for i, (lat, lng) in enumerate(nodes):
        flat, flng = float(lat), float(lng)
        if not (math.isfinite(flat) and -90 <= flat <= 90):
            raise ValueError(f"nodes[{i}]: lat must be a finite degree in -90..90, got {lat}")
        if not (math.isfinite(flng) and -180 <= flng <= 180):
            raise ValueError(f"nodes[{i}]: lng must be a finite degree in -180..180, got {lng}")
        points.append((flat, flng))
    return points


class _Generator:
    """Draws every random choice from one ``Random`` so a seed fixes the whole city."""

    def __init__(self, rng: random.Random, nodes: list[tuple[float, float]], today: date):
        self.rng = rng
        self.nodes = nodes
        self.today = today
        self.phones: set[str] = set()
        self.cert_numbers: set[str] = set()
        self.validity = {k.code: k.validity_years for k in CERTIFICATE_KINDS}
        self.skill_order = {s.code: i for i, s in enumerate(SKILLS)}
        self.cert_order = {k.code: i for i, k in enumerate(CERTIFICATE_KINDS)}

    # identities

    def phone(self) -> str:
        while True:
            number = self.rng.choice(_PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def name(self, given: Sequence[str]) -> str:
        surname = self.rng.choices(_SURNAMES, weights=_SURNAME_WEIGHTS)[0]
        return surname + self.rng.choice(given)

    def near_node(self) -> tuple[float, float]:
        lat, lng = self.rng.choice(self.nodes)
        distance_m = MAX_JITTER_M * math.sqrt(self.rng.random())
        bearing = self.rng.uniform(0.0, 2 * math.pi)
        dlat = distance_m * math.cos(bearing) / _M_PER_DEG_LAT
        cos_lat = max(math.cos(math.radians(lat)), 1e-6)
        dlng = distance_m * math.sin(bearing) / (_M_PER_DEG_LAT * cos_lat)
        # Rounding to 1e-6 degrees moves a point by at most ~0.08 m.
        return round(lat + dlat, 6), round(lng + dlng, 6)

    # teams

    def teams(self, count: int) -> tuple[TeamSeed, ...]:
        combos = [(p, b) for p in _TEAM_PLACES for b in _TEAM_BRANDS]
        result = []
        for (place_zh, place_en), (brand_zh, brand_en) in self.rng.sample(combos, count):
            given = _GIVEN_YOUNG_M if self.rng.random() < 0.6 else _GIVEN_WORKER_F
            result.append(
                TeamSeed(
                    code=f"{place_en}_{brand_en}",
                    name=f"深圳市{place_zh}{brand_zh}家政服务有限公司",
                    merchant_phone=self.phone(),
                    merchant_name=self.name(given),
                )
            )
        return tuple(result)

    # workers

    def workers(self, count: int, teams: tuple[TeamSeed, ...]) -> tuple[WorkerSeed, ...]:
        plan: list[tuple[_Archetype, bool]] = []
        if count >= _COMPLETE_PER_ARCHETYPE * len(_ARCHETYPES):
            plan = [(a, True) for a in _ARCHETYPES for _ in range(_COMPLETE_PER_ARCHETYPE)]
        weights = [a.weight for a in _ARCHETYPES]
        plan += [(a, False) for a in self.rng.choices(_ARCHETYPES, weights, k=count - len(plan))]
        self.rng.shuffle(plan)

        team_of: dict[int, str] = {}
        if teams:
            members = self.rng.sample(range(count), round(TEAM_SHARE * count))
            team_of = {w: teams[i % len(teams)].code for i, w in enumerate(members)}
        return tuple(
            self.worker(archetype, complete, team_of.get(i))
            for i, (archetype, complete) in enumerate(plan)
        )

    def worker(self, archetype: _Archetype, complete: bool, team_code: str | None) -> WorkerSeed:
        """One worker; a ``complete`` one has every optional skill and only valid papers."""
        rng = self.rng
        female = rng.random() < archetype.female_share
        name = self.name(_GIVEN_WORKER_F if female else _GIVEN_WORKER_M)
        skills = set(archetype.core_skills)
        skills.update(s for s, p in archetype.optional_skills if complete or rng.random() < p)
        kinds = {kind for s in skills for kind in _SKILL_CERTS.get(s, ())}
        if archetype.housekeeping_share > 0 and (
            complete or rng.random() < archetype.housekeeping_share
        ):
            kinds.add("housekeeping")
        certificates = tuple(
            self.certificate(kind, always_valid=complete)
            for kind in sorted(kinds, key=self.cert_order.__getitem__)
        )
        if complete:
            shift = archetype.shifts[0][0]
        else:
            names, shares = zip(*archetype.shifts, strict=True)
            shift = rng.choices(names, shares)[0]
        lat, lng = self.near_node()
        rating_sum, rating_count = self.ratings()
        return WorkerSeed(
            phone=self.phone(),
            name=name,
            skills=tuple(sorted(skills, key=self.skill_order.__getitem__)),
            certificates=certificates,
            home_lat=lat,
            home_lng=lng,
            availability=_SHIFTS[shift](rng),
            rating_sum=rating_sum,
            rating_count=rating_count,
            team_code=team_code,
        )

    def certificate(self, kind: str, *, always_valid: bool) -> CertificateSeed:
        """87% in force for 45+ days, 8% expiring within 30 days, 5% expired."""
        years = self.validity[kind]
        roll = 0.0 if always_valid else self.rng.random()
        if roll < 0.87:
            days_left = self.rng.randint(45, years * 365 - 30)
        elif roll < 0.95:
            days_left = self.rng.randint(1, 30)
        else:
            days_left = -self.rng.randint(1, 120)
        expires_on = self.today + timedelta(days=days_left)
        issued_on = _years_before(expires_on, years)
        while True:
            number = f"{_CERT_PREFIX[kind]}{issued_on.year}{self.rng.randrange(10**8):08d}"
            if number not in self.cert_numbers:
                self.cert_numbers.add(number)
                return CertificateSeed(kind, number, issued_on, expires_on)

    def ratings(self) -> tuple[int, int]:
        """(sum of 1-5 stars, count): 10% new, mostly 4.6-4.95, some 4.3-4.6, a few ~3.8."""
        rng = self.rng
        if rng.random() < 0.10:
            return 0, 0
        count = min(1500, max(3, int(rng.lognormvariate(math.log(60), 1.0))))
        roll = rng.random()
        if roll < 0.05:
            average = rng.uniform(3.6, 4.0)
        elif roll < 0.15:
            average = rng.uniform(4.3, 4.6)
        else:
            average = rng.uniform(4.6, 4.95)
        return min(5 * count, max(count, round(average * count))), count

    # customers

    def customer(self) -> CustomerSeed:
        rng = self.rng
        given = _GIVEN_YOUNG_F if rng.random() < 0.55 else _GIVEN_YOUNG_M
        name = self.name(given)
        labels = ["家"]
        if rng.random() < 0.45:
            labels.append("公司")
        if rng.random() < 0.25:
            labels.append("父母家")
        addresses = []
        for label in labels:
            lat, lng = self.near_node()
            detail = self.office_detail() if label == "公司" else self.home_detail()
            addresses.append(AddressSeed(label, lat, lng, detail))
        return CustomerSeed(self.phone(), name, tuple(addresses))

    def home_detail(self) -> str:
        rng = self.rng
        street = rng.choice(_RESIDENTIAL_STREETS)
        floor, room = rng.randint(1, 33), rng.randint(1, 8)
        return f"{street}{rng.randint(1, 60)}号 {rng.randint(1, 12)}栋{floor}{room:02d}"

    def office_detail(self) -> str:
        rng = self.rng
        road, tower = rng.choice(_OFFICE_ROADS), rng.choice(_OFFICE_TOWERS)
        wing = rng.choice("AB")
        return f"{road}{rng.randint(1, 80) * 100 + 8}号 {tower}{wing}座{rng.randint(3, 52)}楼"


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)
