"""What a notification says, per kind, channel and language. Pure data and formatting.

The inbox has a title and a body per kind and language. An SMS is a *template code*
with parameters, as Chinese gateways require (the text is registered with the gateway
beforehand and only the parameters travel); :data:`SMS_TEMPLATES` holds the text each
code stands for, which the sandbox gateway is configured with. Chinese is the default;
a user whose language is ``en`` gets the English text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

LANGUAGES = frozenset({"zh", "en"})
DEFAULT_LANGUAGE = "zh"
SIGN_NAME = "到家服务"  # the SMS signature (【到家服务】) registered with the gateway


@dataclass(frozen=True, slots=True)
class Text:
    """An inbox title and body, with ``{name}`` placeholders."""

    title: str
    body: str


# Inbox texts by kind, then language. Placeholders: order_id, service, time, worker.
INBOX: dict[str, dict[str, Text]] = {
    "order_booked": {
        "zh": Text("预约已提交", "您预约的{service}（订单 {order_id}）已提交，时间 {time}。"),
        "en": Text("Booking received", "Your {service} (order {order_id}) is booked for {time}."),
    },
    "order_assigned": {
        "zh": Text(
            "已为您安排师傅", "{worker}将为您提供{service}（订单 {order_id}），时间 {time}。"
        ),
        "en": Text(
            "Your pro is assigned", "{worker} will do your {service} (order {order_id}) at {time}."
        ),
    },
    "job_assigned": {
        "zh": Text("新工单", "您有新工单：{service}（订单 {order_id}），时间 {time}。"),
        "en": Text("New job", "New job: {service} (order {order_id}) at {time}."),
    },
    "crew_joined": {
        "zh": Text("加入班组", "您已加入工单的班组：{service}（订单 {order_id}），时间 {time}。"),
        "en": Text(
            "Added to a crew",
            "You joined the crew of a job: {service} (order {order_id}) at {time}.",
        ),
    },
    "crew_left": {
        "zh": Text("已调离班组", "您已被调离工单 {order_id}（{service}，{time}）的班组。"),
        "en": Text(
            "Removed from a crew",
            "You were taken off the crew of job {order_id} ({service}, {time}).",
        ),
    },
    "order_departed": {
        "zh": Text("师傅已出发", "{worker}已出发前往您处（订单 {order_id}）。"),
        "en": Text("On the way", "{worker} is on the way (order {order_id})."),
    },
    "order_arrived": {
        "zh": Text("师傅已到达", "{worker}已到达（订单 {order_id}）。"),
        "en": Text("Arrived", "{worker} has arrived (order {order_id})."),
    },
    "order_started": {
        "zh": Text("服务已开始", "订单 {order_id} 的{service}已开始。"),
        "en": Text("Service started", "Your {service} (order {order_id}) has started."),
    },
    "order_completed": {
        "zh": Text("服务已完成", "订单 {order_id} 的{service}已完成，欢迎评价。"),
        "en": Text(
            "Service completed", "Your {service} (order {order_id}) is done. Please rate it."
        ),
    },
    "order_cancelled": {
        "zh": Text("订单已取消", "订单 {order_id}（{service}）已取消。"),
        "en": Text("Order cancelled", "Order {order_id} ({service}) was cancelled."),
    },
    "job_cancelled": {
        "zh": Text("工单已取消", "工单 {order_id}（{service}，{time}）已取消。"),
        "en": Text("Job cancelled", "Job {order_id} ({service}, {time}) was cancelled."),
    },
    "order_rescheduled": {
        "zh": Text("预约时间已更改", "订单 {order_id} 的时间改为 {time}。"),
        "en": Text("Booking moved", "Order {order_id} is now at {time}."),
    },
    "offer": {
        "zh": Text("新的派单", "附近有{service}订单（{order_id}），请尽快打开应用接单。"),
        "en": Text(
            "New offer", "A {service} job nearby (order {order_id}): open the app to take it."
        ),
    },
    "welcome": {
        "zh": Text("欢迎使用到家服务", "账号已开通，祝您使用愉快。"),
        "en": Text("Welcome", "Your account is ready."),
    },
    "reminder_eve": {
        "zh": Text("明日服务提醒", "提醒：明天 {time} 有{service}（订单 {order_id}）。"),
        "en": Text("Tomorrow", "Reminder: {service} tomorrow at {time} (order {order_id})."),
    },
    "reminder_hour": {
        "zh": Text("服务即将开始", "提醒：{service}将于 {time} 开始（订单 {order_id}）。"),
        "en": Text("In one hour", "Reminder: {service} at {time} (order {order_id})."),
    },
}

INBOX["reminder_certificate"] = {  # placeholders: certificate, expires_on, days
    "zh": Text(
        "证书即将到期",
        "您的{certificate}将于{expires_on}到期（还有{days}天），请及时续期并上传新证书，"
        "到期后将无法接相关订单。",
    ),
    "en": Text(
        "Certificate expiring",
        "Your {certificate} expires on {expires_on} (in {days} days). Renew it and upload "
        "the new one: after it expires you cannot take jobs that need it.",
    ),
}

INBOX["member_up"] = {  # placeholder: level
    "zh": Text(
        "会员升级", "恭喜您升级为{level}！积分加倍和每月专属优惠券已生效，在“我的 → 会员”查看。"
    ),
    "en": Text(
        "Membership upgraded",
        "You are now {level}: more points per order and a monthly coupon pack. See Me → Membership.",
    ),
}
INBOX["member_down"] = {  # placeholder: level
    "zh": Text(
        "会员等级变更", "近12个月积分有所减少，您的会员等级调整为{level}。继续下单即可升级。"
    ),
    "en": Text(
        "Membership level changed",
        "Your points over the last 12 months fell: your level is now {level}. Orders earn it back.",
    ),
}

# SMS template code → text per language (``${name}`` parameters, as the gateway has them).
SMS_TEMPLATES: dict[str, str] = {
    "DS_ORDER_ASSIGNED_ZH": "${worker}将于${time}上门为您提供${service}，订单${order_id}。",
    "DS_ORDER_ASSIGNED_EN": "${worker} will do your ${service} at ${time}, order ${order_id}.",
    "DS_ORDER_DEPARTED_ZH": "${worker}已出发，请留意来电。订单${order_id}。",
    "DS_ORDER_DEPARTED_EN": "${worker} is on the way. Order ${order_id}.",
    "DS_ORDER_ARRIVED_ZH": "${worker}已到达，订单${order_id}。",
    "DS_ORDER_ARRIVED_EN": "${worker} has arrived. Order ${order_id}.",
    "DS_ORDER_CANCELLED_ZH": "您的订单${order_id}（${service}）已取消。",
    "DS_ORDER_CANCELLED_EN": "Your order ${order_id} (${service}) was cancelled.",
    "DS_JOB_CANCELLED_ZH": "工单${order_id}（${service}，${time}）已取消。",
    "DS_JOB_CANCELLED_EN": "Job ${order_id} (${service}, ${time}) was cancelled.",
    "DS_CREW_LEFT_ZH": "您已被调离工单${order_id}（${service}，${time}）。",
    "DS_CREW_LEFT_EN": "You were taken off job ${order_id} (${service}, ${time}).",
    "DS_OFFER_ZH": "附近有${service}订单${order_id}，请打开应用接单。",
    "DS_OFFER_EN": "A ${service} job nearby, order ${order_id}: open the app to take it.",
    "DS_REMINDER_ZH": "提醒：${time}有${service}，订单${order_id}。",
    "DS_REMINDER_EN": "Reminder: ${service} at ${time}, order ${order_id}.",
    "DS_CERT_EXPIRING_ZH": "您的${certificate}将于${expires_on}到期，请及时续期。",
    "DS_CERT_EXPIRING_EN": "Your ${certificate} expires on ${expires_on}; please renew it.",
    "DS_LOGIN_CODE_ZH": "您的登录验证码为${code}，5分钟内有效，请勿告诉他人。",
    "DS_LOGIN_CODE_EN": "Your login code is ${code}. It expires in 5 minutes; share it with no one.",
    # Safety (safety/service.py): an SOS's emergency contacts, and its escalation to staff.
    "DS_SOS_CONTACT_ZH": "紧急求助：${name}通过到家服务发起了求助，请尽快联系。实时位置：${link}",
    "DS_SOS_CONTACT_EN": "Emergency: ${name} raised an SOS on Doorstep. Please reach them. Live location: ${link}",
    "DS_SOS_ESCALATED_ZH": "紧急求助警报${alert_id}（${name}）${seconds}秒无人确认，请立即处理。",
    "DS_SOS_ESCALATED_EN": "SOS alert ${alert_id} (${name}) unacknowledged for ${seconds} s: act now.",
}

# Which kinds have an SMS, and under which template (the language suffix is added).
SMS_OF_KIND: dict[str, str] = {
    "order_assigned": "DS_ORDER_ASSIGNED",
    "order_departed": "DS_ORDER_DEPARTED",
    "order_arrived": "DS_ORDER_ARRIVED",
    "order_cancelled": "DS_ORDER_CANCELLED",
    "job_cancelled": "DS_JOB_CANCELLED",
    "crew_left": "DS_CREW_LEFT",
    "offer": "DS_OFFER",
    "reminder_eve": "DS_REMINDER",
    "reminder_hour": "DS_REMINDER",
    "reminder_certificate": "DS_CERT_EXPIRING",
}

_PARAM = re.compile(r"\$\{(\w+)\}")


def language(raw: str | None) -> str:
    """The language to write in: the user's if we have it, else Chinese."""
    return raw if raw in LANGUAGES else DEFAULT_LANGUAGE


def inbox_text(kind: str, lang: str, values: Mapping[str, str]) -> tuple[str, str]:
    """(title, body) of an inbox notification."""
    text = INBOX[kind][language(lang)]
    return text.title.format_map(values), text.body.format_map(values)


def sms_template(kind: str, lang: str) -> str | None:
    """The SMS template code of ``kind`` in ``lang``; None if the kind has no SMS."""
    base = SMS_OF_KIND.get(kind)
    return None if base is None else f"{base}_{language(lang).upper()}"


def sms_params(template_code: str, values: Mapping[str, str]) -> dict[str, str]:
    """Only the parameters the template uses (a gateway refuses others)."""
    return {name: values[name] for name in _PARAM.findall(SMS_TEMPLATES[template_code])}


def render_sms(template_code: str, params: Mapping[str, str]) -> str:
    """The text a template code and its parameters stand for; KeyError if one is missing."""
    return _PARAM.sub(lambda m: str(params[m.group(1)]), SMS_TEMPLATES[template_code])
