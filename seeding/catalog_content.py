"""The static service catalog of the demo city: skills, certificates, categories, services.

Plain data, bilingual (zh first). Prices are in fen (1 CNY = 100 fen), durations in
minutes. Codes are stable snake_case identifiers that other tables refer to.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SkillSeed:
    """A skill a worker can hold and a service can require."""

    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class CertificateKindSeed:
    """A kind of certificate (licence) and how many years one stays valid."""

    code: str
    name_zh: str
    name_en: str
    validity_years: int

    def __post_init__(self) -> None:
        if self.validity_years < 1:
            raise ValueError(f"{self.code}: validity_years must be >= 1")


@dataclass(frozen=True, slots=True)
class CategorySeed:
    """A top-level group of services; `sort` orders them in the customer app."""

    code: str
    name_zh: str
    name_en: str
    sort: int


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One step of a service's standard procedure (标准流程)."""

    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class ServiceSeed:
    """A bookable service with its fixed price, duration, requirements and checklist."""

    code: str
    category: str
    name_zh: str
    name_en: str
    description_zh: str
    description_en: str
    price_minor: int
    duration_min: int
    required_skills: tuple[str, ...]
    required_certificates: tuple[str, ...]
    checklist: tuple[ChecklistItem, ...]
    instant: bool
    scheduled: bool
    crew_size: int = 1  # workers who do it together (docs/dispatch.md#crews)

    def __post_init__(self) -> None:
        if self.price_minor <= 0:
            raise ValueError(f"{self.code}: price_minor must be > 0")
        if self.duration_min <= 0:
            raise ValueError(f"{self.code}: duration_min must be > 0")
        if not self.required_skills:
            raise ValueError(f"{self.code}: required_skills must not be empty")
        if not 3 <= len(self.checklist) <= 8:
            raise ValueError(f"{self.code}: checklist must have 3 to 8 items")
        if not (self.instant or self.scheduled):
            raise ValueError(f"{self.code}: instant or scheduled must be true")
        if not 1 <= self.crew_size <= 8:
            raise ValueError(f"{self.code}: crew_size must be between 1 and 8")


def _steps(*pairs: tuple[str, str]) -> tuple[ChecklistItem, ...]:
    return tuple(ChecklistItem(zh, en) for zh, en in pairs)


SKILLS: tuple[SkillSeed, ...] = (
    SkillSeed("cleaning", "日常保洁", "Home cleaning"),
    SkillSeed("deep_cleaning", "深度保洁", "Deep cleaning"),
    SkillSeed("appliance_cleaning", "家电清洗", "Appliance cleaning"),
    SkillSeed("appliance_repair", "家电维修", "Appliance repair"),
    SkillSeed("plumbing", "水路维修", "Plumbing"),
    SkillSeed("electrical", "电路维修", "Electrical work"),
    SkillSeed("cooking", "家常烹饪", "Home cooking"),
    SkillSeed("childcare", "婴幼儿照护", "Childcare"),
    SkillSeed("maternity_care", "母婴护理", "Maternity and newborn care"),
    SkillSeed("elderly_care", "老人护理", "Elderly care"),
)

CERTIFICATE_KINDS: tuple[CertificateKindSeed, ...] = (
    CertificateKindSeed("housekeeping", "家政服务员证", "Housekeeping service certificate", 5),
    CertificateKindSeed(
        "electrician", "低压电工作业证", "Low-voltage electrician operation licence", 6
    ),
    CertificateKindSeed("maternity_nurse", "母婴护理师证", "Maternity nurse certificate", 5),
    CertificateKindSeed("elderly_caregiver", "养老护理员证", "Elderly caregiver certificate", 5),
    CertificateKindSeed("health", "健康证", "Health certificate", 1),
)

CATEGORIES: tuple[CategorySeed, ...] = (
    CategorySeed("cleaning", "日常保洁", "Cleaning", 10),
    CategorySeed("appliance", "家电清洗与维修", "Appliance cleaning & repair", 20),
    CategorySeed("plumbing_electrical", "水电维修", "Plumbing & electrical", 30),
    CategorySeed("nanny", "保姆/育儿嫂/月嫂", "Nanny & childcare", 40),
    CategorySeed("elderly_care", "养老护理", "Elderly care", 50),
)

_CLEANING_SERVICES: tuple[ServiceSeed, ...] = (
    ServiceSeed(
        code="daily_cleaning_2h",
        category="cleaning",
        name_zh="日常保洁2小时",
        name_en="Home cleaning, 2 hours",
        description_zh="适合一室一厅或小两房：客厅、卧室、厨房台面与卫生间的日常清洁，自带清洁工具。",
        description_en=(
            "For a one- or small two-bedroom flat: everyday cleaning of living room, "
            "bedrooms, kitchen surfaces and bathroom; the worker brings the tools."
        ),
        price_minor=10_900,
        duration_min=120,
        required_skills=("cleaning",),
        required_certificates=(),
        checklist=_steps(
            ("进门穿鞋套，与客户确认重点区域", "Put on shoe covers; agree the priority areas"),
            ("由上到下、由里到外擦拭家具表面", "Wipe surfaces top to bottom, inside out"),
            ("清洁厨房台面、灶台与水槽", "Clean kitchen counters, hob and sink"),
            ("清洁卫生间台盆、马桶与淋浴区", "Clean washbasin, toilet and shower"),
            ("吸尘并拖地", "Vacuum and mop the floors"),
            ("收集垃圾，请客户验收", "Take out the rubbish; walk the customer through"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="daily_cleaning_3h",
        category="cleaning",
        name_zh="日常保洁3小时",
        name_en="Home cleaning, 3 hours",
        description_zh="适合两房至三房：全屋日常清洁，含厨卫重点清洁与地面清洁，自带清洁工具。",
        description_en=(
            "For a two- to three-bedroom flat: whole-home everyday cleaning with extra "
            "care for kitchen and bathrooms; the worker brings the tools."
        ),
        price_minor=15_900,
        duration_min=180,
        required_skills=("cleaning",),
        required_certificates=(),
        checklist=_steps(
            ("进门穿鞋套，与客户确认重点区域", "Put on shoe covers; agree the priority areas"),
            ("整理床铺与台面杂物", "Make the beds and tidy surfaces"),
            ("由上到下、由里到外擦拭家具表面", "Wipe surfaces top to bottom, inside out"),
            ("厨房台面、灶台、水槽去油污", "Degrease kitchen counters, hob and sink"),
            ("卫生间台盆、马桶、淋浴区除垢", "Descale washbasin, toilet and shower"),
            ("吸尘并拖地", "Vacuum and mop the floors"),
            ("收集垃圾，请客户验收", "Take out the rubbish; walk the customer through"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="deep_cleaning",
        category="cleaning",
        name_zh="深度保洁",
        name_en="Deep cleaning",
        description_zh=(
            "两人上门约5小时：全屋除尘除垢，含柜内、门窗框、踢脚线、厨房油污与卫生间水垢，"
            "适合换季或久未打扫的住宅。"
        ),
        description_en=(
            "Two workers for about 5 hours: whole-home dust and scale removal including "
            "inside cupboards, window and door frames, skirting, kitchen grease and "
            "bathroom limescale."
        ),
        price_minor=39_900,
        duration_min=300,
        required_skills=("cleaning", "deep_cleaning"),
        required_certificates=("housekeeping",),
        checklist=_steps(
            ("上门检查房屋现状并拍照记录", "Survey the home and photograph its state"),
            ("铺设保护膜，遮盖家电与地面", "Lay protective covers over appliances and floors"),
            (
                "柜内、柜顶、门框与踢脚线除尘",
                "Dust inside and on top of cupboards, frames, skirting",
            ),
            (
                "厨房重油污清洁（灶台、墙面、橱柜）",
                "Remove heavy kitchen grease from hob, walls, cabinets",
            ),
            ("卫生间除水垢、除霉、疏通地漏", "Descale, remove mould and clear the floor drain"),
            ("门窗玻璃与窗槽清洁", "Clean window glass and tracks"),
            ("地面清洁与消毒", "Clean and disinfect the floors"),
            ("对照拍照记录请客户验收", "Walk the customer through against the photos"),
        ),
        instant=False,
        scheduled=True,
        crew_size=2,  # "两人上门": a crew of two
    ),
    ServiceSeed(
        code="move_in_cleaning",
        category="cleaning",
        name_zh="开荒保洁",
        name_en="Post-renovation cleaning",
        description_zh="新房装修后首次清洁（100㎡以内）：清除施工粉尘、胶渍、漆点与水泥点，三人作业。",
        description_en=(
            "First clean after renovation (up to 100 m²): removes construction dust, glue, "
            "paint and cement spots; a crew of three."
        ),
        price_minor=89_900,
        duration_min=480,
        required_skills=("cleaning", "deep_cleaning"),
        required_certificates=("housekeeping",),
        checklist=_steps(
            ("确认面积与施工残留，拍照记录", "Confirm the area and leftovers; photograph them"),
            ("清除大块建筑垃圾与包装物", "Clear building waste and packaging"),
            ("铲除胶渍、漆点、水泥点", "Scrape off glue, paint and cement spots"),
            ("全屋由上到下除尘", "Dust the whole home top to bottom"),
            ("门窗、玻璃、窗槽清洁", "Clean doors, windows, glass and tracks"),
            ("厨卫洁具与五金去污抛光", "Clean and polish kitchen and bathroom fittings"),
            ("地面清洗两遍", "Wash the floors twice"),
            ("请客户验收并签字", "Customer inspects and signs off"),
        ),
        instant=False,
        scheduled=True,
        crew_size=3,  # "三人作业": a crew of three
    ),
    ServiceSeed(
        code="window_cleaning",
        category="cleaning",
        name_zh="擦玻璃",
        name_en="Window cleaning",
        description_zh="室内可安全触及的玻璃、窗框与窗槽清洁，不含高空外墙作业。",
        description_en=(
            "Glass, frames and tracks that can be reached safely from inside; no "
            "work on the outside of high-rise facades."
        ),
        price_minor=19_900,
        duration_min=180,
        required_skills=("cleaning",),
        required_certificates=(),
        checklist=_steps(
            ("确认窗户数量与安全条件", "Count the windows and check they are safe to reach"),
            ("清洁窗槽与窗框", "Clean tracks and frames"),
            ("玻璃喷洒清洁剂后刮净擦干", "Spray, squeegee and dry the glass"),
            ("擦拭窗台与纱窗", "Wipe sills and fly screens"),
            ("请客户验收", "Customer inspects"),
        ),
        instant=True,
        scheduled=True,
    ),
)

_APPLIANCE_SERVICES: tuple[ServiceSeed, ...] = (
    ServiceSeed(
        code="range_hood_cleaning",
        category="appliance",
        name_zh="油烟机清洗",
        name_en="Range hood cleaning",
        description_zh="拆洗油烟机叶轮、油网与油杯，高温蒸汽去油污，按台计价。",
        description_en=(
            "Takes apart and washes the fan wheel, grease filter and oil cup with hot "
            "steam; priced per unit."
        ),
        price_minor=16_900,
        duration_min=90,
        required_skills=("appliance_cleaning",),
        required_certificates=(),
        checklist=_steps(
            ("断电并铺设防护", "Switch off power and lay protective covers"),
            ("试机检查，记录原有故障", "Test-run and note existing faults"),
            ("拆卸油网、油杯与叶轮", "Remove filter, oil cup and fan wheel"),
            ("高温蒸汽与专用清洁剂去油", "Degrease with hot steam and cleaner"),
            ("擦洗机身与周边墙面", "Clean the body and the wall around it"),
            ("装回部件，通电试机", "Reassemble and test-run"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="ac_cleaning",
        category="appliance",
        name_zh="空调清洗（挂机）",
        name_en="Air conditioner cleaning (wall unit)",
        description_zh="挂式空调内机拆洗：滤网、蒸发器与风轮清洗消毒，按台计价。",
        description_en=(
            "Indoor wall unit: filter, evaporator and blower washed and disinfected; "
            "priced per unit."
        ),
        price_minor=8_900,
        duration_min=60,
        required_skills=("appliance_cleaning",),
        required_certificates=(),
        checklist=_steps(
            ("断电，铺设接水罩与防护布", "Switch off; fit the drip cover and drop cloth"),
            ("试机检查，记录原有故障", "Test-run and note existing faults"),
            ("拆洗滤网", "Remove and wash the filters"),
            ("蒸发器与风轮喷洗消毒", "Spray-wash and disinfect evaporator and blower"),
            ("擦净外壳，装回部件", "Wipe the casing and reassemble"),
            ("通电试机，确认出风与排水", "Test-run; check airflow and drainage"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="washer_cleaning",
        category="appliance",
        name_zh="洗衣机清洗",
        name_en="Washing machine cleaning",
        description_zh="拆卸内筒清除水垢与霉菌（波轮或滚筒），按台计价。",
        description_en=(
            "Takes out the drum to remove scale and mould (top- or front-loader); priced per unit."
        ),
        price_minor=12_900,
        duration_min=90,
        required_skills=("appliance_cleaning",),
        required_certificates=(),
        checklist=_steps(
            ("断电断水，铺设防护", "Cut power and water; lay protective covers"),
            ("拆卸内筒", "Remove the drum"),
            ("清除水垢、污垢与霉菌", "Remove scale, dirt and mould"),
            ("消毒内外筒与密封圈", "Disinfect drums and door seal"),
            ("装回内筒，空转试机", "Reassemble and run an empty cycle"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="fridge_cleaning",
        category="appliance",
        name_zh="冰箱清洗",
        name_en="Refrigerator cleaning",
        description_zh="冰箱内胆、隔板、密封条清洁除味与消毒，按台计价。",
        description_en=(
            "Liner, shelves and door seals cleaned, deodorised and disinfected; per unit."
        ),
        price_minor=11_900,
        duration_min=90,
        required_skills=("appliance_cleaning",),
        required_certificates=(),
        checklist=_steps(
            ("与客户确认食材暂存方式", "Agree with the customer where the food goes meanwhile"),
            ("断电，取出隔板与抽屉", "Switch off; take out shelves and drawers"),
            ("清洗隔板、抽屉与内胆", "Wash shelves, drawers and liner"),
            ("清洁密封条并除味消毒", "Clean seals; deodorise and disinfect"),
            ("装回部件，通电确认制冷", "Reassemble; switch on and confirm cooling"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="ac_repair",
        category="appliance",
        name_zh="空调维修",
        name_en="Air conditioner repair",
        description_zh="上门检测维修不制冷、漏水、异响等故障；价格为上门检测费，配件与加氟另计。",
        description_en=(
            "Diagnoses and repairs no cooling, leaks and noise; the price is the call-out "
            "and diagnosis fee, parts and refrigerant extra."
        ),
        price_minor=8_000,
        duration_min=90,
        required_skills=("appliance_repair",),
        required_certificates=(),
        checklist=_steps(
            ("出示工牌，了解故障现象", "Show ID; hear the fault described"),
            ("检测并告知故障原因", "Diagnose and explain the cause"),
            ("报价，客户确认后维修", "Quote; repair only after the customer agrees"),
            ("维修或更换配件，保留旧件", "Repair or replace parts; hand back the old ones"),
            ("试机确认，清理现场", "Test-run and clean up"),
            ("说明保修期限", "Explain the warranty period"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="washer_repair",
        category="appliance",
        name_zh="洗衣机维修",
        name_en="Washing machine repair",
        description_zh="上门检测维修不进水、不排水、不脱水、异响等故障；价格为上门检测费，配件另计。",
        description_en=(
            "Diagnoses and repairs filling, draining, spinning and noise faults; the price "
            "is the call-out and diagnosis fee, parts extra."
        ),
        price_minor=8_000,
        duration_min=90,
        required_skills=("appliance_repair",),
        required_certificates=(),
        checklist=_steps(
            ("出示工牌，了解故障现象", "Show ID; hear the fault described"),
            ("检测并告知故障原因", "Diagnose and explain the cause"),
            ("报价，客户确认后维修", "Quote; repair only after the customer agrees"),
            ("维修或更换配件，保留旧件", "Repair or replace parts; hand back the old ones"),
            ("试机确认，清理现场", "Test-run and clean up"),
        ),
        instant=True,
        scheduled=True,
    ),
)

_PLUMBING_ELECTRICAL_SERVICES: tuple[ServiceSeed, ...] = (
    ServiceSeed(
        code="pipe_repair",
        category="plumbing_electrical",
        name_zh="水管维修",
        name_en="Water pipe repair",
        description_zh="水管漏水、接头渗水、阀门损坏的检修；价格含人工，材料另计。",
        description_en=(
            "Leaking pipes, seeping joints and broken valves; labour included, materials extra."
        ),
        price_minor=8_000,
        duration_min=60,
        required_skills=("plumbing",),
        required_certificates=(),
        checklist=_steps(
            ("关闭总阀，确认漏点", "Close the main valve; find the leak"),
            ("报价，客户确认后施工", "Quote; work only after the customer agrees"),
            ("更换或修复管件与阀门", "Replace or repair fittings and valves"),
            ("通水试压，确认无渗漏", "Restore water; pressure-check for leaks"),
            ("清理现场", "Clean up"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="drain_unclogging",
        category="plumbing_electrical",
        name_zh="管道疏通",
        name_en="Drain unclogging",
        description_zh="马桶、地漏、洗菜盆与面盆下水堵塞疏通，不破坏管道。",
        description_en="Clears blocked toilets, floor drains and sinks without breaking pipes.",
        price_minor=12_000,
        duration_min=60,
        required_skills=("plumbing",),
        required_certificates=(),
        checklist=_steps(
            ("确认堵塞位置与程度", "Locate the blockage and judge how bad it is"),
            ("铺设防护，防止污水外溢", "Lay covers against overflow"),
            ("使用疏通机或专用工具疏通", "Clear it with a drain machine or tools"),
            ("放水测试排水顺畅", "Run water to confirm it drains"),
            ("清洁消毒作业区域", "Clean and disinfect the work area"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="faucet_install",
        category="plumbing_electrical",
        name_zh="龙头花洒安装",
        name_en="Tap and shower head installation",
        description_zh="水龙头、花洒、角阀的安装或更换，按个计价，材料由客户提供或另购。",
        description_en=(
            "Installs or replaces a tap, shower head or angle valve; per piece, parts "
            "supplied by the customer or bought extra."
        ),
        price_minor=6_000,
        duration_min=45,
        required_skills=("plumbing",),
        required_certificates=(),
        checklist=_steps(
            ("关闭进水阀", "Close the supply valve"),
            ("拆除旧件，检查接口", "Remove the old part; inspect the connection"),
            ("缠生料带安装新件", "Fit the new part with PTFE tape"),
            ("通水检查无渗漏", "Open the water and check for leaks"),
            ("清理现场", "Clean up"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="circuit_repair",
        category="plumbing_electrical",
        name_zh="电路维修",
        name_en="Electrical circuit repair",
        description_zh="跳闸、短路、断路、漏电检测与维修，持证电工上门；材料另计。",
        description_en=(
            "Tripping breakers, short and open circuits, earth leakage; a licensed "
            "electrician, materials extra."
        ),
        price_minor=10_000,
        duration_min=90,
        required_skills=("electrical",),
        required_certificates=("electrician",),
        checklist=_steps(
            ("出示电工证，了解故障现象", "Show the electrician licence; hear the fault"),
            ("断电并验电", "Isolate and prove dead"),
            ("排查故障回路", "Trace the faulty circuit"),
            ("报价，客户确认后维修", "Quote; repair only after the customer agrees"),
            ("维修或更换线路、开关", "Repair or replace wiring and breakers"),
            ("通电测试，检测漏电保护", "Re-energise; test the RCD"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="light_install",
        category="plumbing_electrical",
        name_zh="灯具安装",
        name_en="Light fitting installation",
        description_zh="吸顶灯、吊灯、筒灯的安装或更换，按盏计价，持证电工上门。",
        description_en=(
            "Installs or replaces ceiling lights, pendants and downlights; per fitting, a "
            "licensed electrician."
        ),
        price_minor=6_000,
        duration_min=60,
        required_skills=("electrical",),
        required_certificates=("electrician",),
        checklist=_steps(
            ("确认灯具型号与安装位置", "Confirm the fitting and where it goes"),
            ("断电并验电", "Isolate and prove dead"),
            ("拆除旧灯，固定底座", "Remove the old light; fix the base"),
            ("接线并做好绝缘", "Wire up and insulate"),
            ("通电测试", "Switch on and test"),
            ("清理现场与包装", "Clean up and take the packaging"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="socket_switch_replace",
        category="plumbing_electrical",
        name_zh="开关插座更换",
        name_en="Switch and socket replacement",
        description_zh="墙壁开关、插座的更换，按个计价，持证电工上门。",
        description_en="Replaces wall switches and sockets; per piece, a licensed electrician.",
        price_minor=4_000,
        duration_min=30,
        required_skills=("electrical",),
        required_certificates=("electrician",),
        checklist=_steps(
            ("断电并验电", "Isolate and prove dead"),
            ("拆除旧面板，检查线路", "Remove the old plate; inspect the wiring"),
            ("接线安装新面板", "Wire and fit the new plate"),
            ("通电测试", "Switch on and test"),
        ),
        instant=True,
        scheduled=True,
    ),
)

_NANNY_SERVICES: tuple[ServiceSeed, ...] = (
    ServiceSeed(
        code="cooking_2h",
        category="nanny",
        name_zh="做饭阿姨（2小时）",
        name_en="Home cook, 2 hours",
        description_zh="上门做一顿家常饭（4菜1汤以内），含洗菜切配与厨房收拾，食材由客户准备。",
        description_en=(
            "Cooks one home-style meal (up to four dishes and a soup), including prep and "
            "tidying the kitchen; the customer supplies the ingredients."
        ),
        price_minor=8_900,
        duration_min=120,
        required_skills=("cooking",),
        required_certificates=("health",),
        checklist=_steps(
            ("出示健康证，确认菜单与口味忌口", "Show the health certificate; agree menu and diet"),
            ("洗菜切配", "Wash and prepare the ingredients"),
            ("烹饪并按时出餐", "Cook and serve on time"),
            ("清洗锅具餐具", "Wash pots and dishes"),
            ("清洁灶台与台面，处理厨余", "Clean hob and counters; take out food waste"),
        ),
        instant=True,
        scheduled=True,
    ),
    ServiceSeed(
        code="childcare_day",
        category="nanny",
        name_zh="育儿嫂（按天）",
        name_en="Childcare nanny, per day",
        description_zh="白天10小时照看0-3岁婴幼儿：喂养、洗护、早教陪玩，兼做宝宝辅食与简单家务。",
        description_en=(
            "Ten daytime hours looking after a child aged 0-3: feeding, bathing, play and "
            "early learning, baby food and light housework."
        ),
        price_minor=38_000,
        duration_min=600,
        required_skills=("childcare", "cooking", "cleaning"),
        required_certificates=("housekeeping", "health"),
        checklist=_steps(
            ("与家长交接宝宝作息与注意事项", "Hand-over with the parents: routine and cautions"),
            ("按时喂养并记录奶量与辅食", "Feed on schedule; log milk and food"),
            ("洗澡、抚触与换洗", "Bathing, massage and changing"),
            ("早教陪玩与户外活动", "Play, early learning and time outdoors"),
            ("清洗消毒奶瓶与宝宝衣物", "Wash and sterilise bottles and baby clothes"),
            ("离开前与家长交接当天情况", "Report the day to the parents before leaving"),
        ),
        instant=False,
        scheduled=True,
    ),
    ServiceSeed(
        code="maternity_nanny_26d",
        category="nanny",
        name_zh="月嫂（26天）",
        name_en="Maternity nanny (yuesao), 26 days",
        description_zh="住家26天24小时照护产妇与新生儿：月子餐、产后护理、新生儿喂养与洗护。",
        description_en=(
            "Lives in for 26 days, caring round the clock for mother and newborn: "
            "confinement meals, postnatal care, feeding and bathing the baby."
        ),
        price_minor=1_380_000,
        duration_min=26 * 24 * 60,
        required_skills=("maternity_care", "childcare", "cooking"),
        required_certificates=("maternity_nurse", "health"),
        checklist=_steps(
            ("上户出示母婴护理师证与健康证", "Show maternity and health certificates on arrival"),
            ("制定月子餐与新生儿护理计划", "Plan confinement meals and newborn care"),
            ("新生儿喂养、洗澡、脐带护理", "Feed and bathe the newborn; umbilical care"),
            ("观察黄疸与体温并记录", "Watch jaundice and temperature; keep a log"),
            ("产妇伤口与乳房护理", "Postnatal wound and breast care"),
            ("每日与家属沟通宝宝情况", "Update the family daily"),
            ("下户前交接护理记录", "Hand over the care log when leaving"),
        ),
        instant=False,
        scheduled=True,
    ),
)

_ELDERLY_SERVICES: tuple[ServiceSeed, ...] = (
    ServiceSeed(
        code="elderly_care_4h",
        category="elderly_care",
        name_zh="居家养老护理（4小时）",
        name_en="Home elderly care, 4 hours",
        description_zh="上门4小时照护老人：生活照料、助餐助浴、测量血压血糖、陪伴聊天。",
        description_en=(
            "Four hours of care at home: daily living help, meals and bathing, blood "
            "pressure and sugar checks, company."
        ),
        price_minor=22_000,
        duration_min=240,
        required_skills=("elderly_care",),
        required_certificates=("elderly_caregiver", "health"),
        checklist=_steps(
            ("了解老人身体状况与用药", "Learn the client's health and medication"),
            ("测量血压、血糖并记录", "Measure blood pressure and sugar; log them"),
            ("协助进餐、洗浴与如厕", "Help with meals, bathing and toileting"),
            ("按医嘱提醒服药", "Prompt medication as prescribed"),
            ("陪伴聊天或适度活动", "Conversation or light exercise"),
            ("向家属反馈当天情况", "Report the visit to the family"),
        ),
        instant=False,
        scheduled=True,
    ),
    ServiceSeed(
        code="elderly_care_day",
        category="elderly_care",
        name_zh="养老护理（按天）",
        name_en="Elderly care, per day",
        description_zh="白天12小时全程照护失能或半失能老人，含一日三餐、翻身拍背与康复陪练。",
        description_en=(
            "Twelve daytime hours of full care for a frail or bedridden client: three "
            "meals, turning and back patting, rehabilitation exercises."
        ),
        price_minor=46_000,
        duration_min=720,
        required_skills=("elderly_care", "cooking"),
        required_certificates=("elderly_caregiver", "health"),
        checklist=_steps(
            ("与家属交接老人状况与注意事项", "Hand-over with the family: condition and cautions"),
            ("测量生命体征并记录", "Take vital signs; log them"),
            ("准备适合老人的三餐", "Cook three meals suited to the client"),
            ("定时翻身、拍背，预防压疮", "Turn and pat regularly to prevent bedsores"),
            ("协助康复训练", "Assist rehabilitation exercises"),
            ("按医嘱提醒服药", "Prompt medication as prescribed"),
            ("离开前向家属交接", "Report to the family before leaving"),
        ),
        instant=False,
        scheduled=True,
    ),
    ServiceSeed(
        code="hospital_escort",
        category="elderly_care",
        name_zh="陪诊（半天）",
        name_en="Hospital escort, half day",
        description_zh="陪同老人就医4小时：挂号取号、排队候诊、取药缴费、护送回家。",
        description_en=(
            "Four hours with the client at hospital: registration, queueing, pharmacy "
            "and payments, and the way home."
        ),
        price_minor=19_900,
        duration_min=240,
        required_skills=("elderly_care",),
        required_certificates=("health",),
        checklist=_steps(
            ("提前确认医院、科室与就诊时间", "Confirm hospital, department and time beforehand"),
            ("上门接老人出发", "Collect the client from home"),
            ("协助挂号、候诊与检查", "Help with registration, waiting and tests"),
            ("取药缴费并讲解医嘱", "Collect medicine, pay and explain the doctor's advice"),
            ("护送回家并向家属反馈", "Take the client home and report to the family"),
        ),
        instant=False,
        scheduled=True,
    ),
)

SERVICES: tuple[ServiceSeed, ...] = (
    _CLEANING_SERVICES
    + _APPLIANCE_SERVICES
    + _PLUMBING_ELECTRICAL_SERVICES
    + _NANNY_SERVICES
    + _ELDERLY_SERVICES
)
