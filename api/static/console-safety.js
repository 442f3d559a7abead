// The console's safety section: SOS and trail-anomaly alerts (docs/safety.md). Loaded
// with GET /v1/safety/alerts, kept live by the feed's safety_alert messages; a
// dispatcher acknowledges (stops the escalation) and resolves with what was done.

/* global L */
import { api, clock, el, makeT, mmss } from "/static/common.js";

const STR = {
  tab_safety: { zh: "安全", en: "Safety" },
  k_sos: { zh: "紧急求助 SOS", en: "SOS" },
  k_stopped: { zh: "途中长时间停留", en: "Stopped on the way" },
  k_off_route: { zh: "偏离路线", en: "Off route" },
  k_left_site: { zh: "服务中离开上门地点", en: "Left the job address" },
  k_overstay: { zh: "超时停留", en: "Staying past the service" },
  k_late_departure: { zh: "未按时出发", en: "Not departed in time" },
  by_worker: { zh: "师傅 {name}", en: "Worker {name}" },
  by_customer: { zh: "顾客 {name}", en: "Customer {name}" },
  order: { zh: "订单 #{id}", en: "Order #{id}" },
  ago: { zh: "{t} 前", en: "{t} ago" },
  repeats: { zh: "重复 {n} 次", en: "{n} repeats" },
  escalated: { zh: "已升级 {n} 次", en: "escalated {n}×" },
  acked: { zh: "已确认", en: "acknowledged" },
  ack: { zh: "确认", en: "Acknowledge" },
  resolve: { zh: "处理完毕", en: "Resolve" },
  resolution: { zh: "处理结果（必填）", en: "What was done (required)" },
  none: { zh: "没有安全告警", en: "No safety alerts" },
  banner: { zh: "紧急求助 {n} 条待确认", en: "{n} SOS waiting for acknowledgement" },
};

export class SafetyPanel {
  constructor({ session, cityId, lang, getMap, onChange }) {
    Object.assign(this, { session, cityId, getMap, onChange });
    this.t = makeT(STR, lang);
    this.alerts = new Map();
    this.trails = new Map();
    this.markers = new Map();
    this.trailLine = null;
  }

  async load() {
    const list = await api(this.session, "GET", `/v1/safety/alerts?city_id=${encodeURIComponent(this.cityId)}`);
    this.alerts = new Map(list.map((a) => [a.id, a]));
    this.changed();
  }

  onMessage(msg) {
    const a = msg.alert;
    if (a.resolved_at) this.alerts.delete(a.id);
    else this.alerts.set(a.id, { ...this.alerts.get(a.id), ...a, name: a.name || this.alerts.get(a.id)?.name || "" });
    if (msg.trail && msg.trail.length) this.trails.set(a.id, msg.trail);
    this.changed();
  }

  count() { return this.alerts.size; }

  unacknowledgedSos() { return [...this.alerts.values()].filter((a) => a.kind === "sos" && !a.acknowledged_at).length; }

  changed() {
    this.draw();
    this.onChange();
  }

  draw() {
    const map = this.getMap();
    if (!map) return;
    for (const [id, m] of this.markers) if (!this.alerts.has(id)) { m.remove(); this.markers.delete(id); }
    for (const a of this.alerts.values()) {
      if (a.lat == null || a.lng == null) continue;
      let m = this.markers.get(a.id);
      if (!m) {
        m = L.circleMarker([a.lat, a.lng], { radius: a.kind === "sos" ? 12 : 9, color: "#dc2626", weight: 3, fillColor: a.kind === "sos" ? "#ef4444" : "#fca5a5", fillOpacity: 0.8 }).addTo(map);
        this.markers.set(a.id, m);
      } else m.setLatLng([a.lat, a.lng]);
    }
  }

  render(list, banner) {
    const t = this.t;
    const n = this.unacknowledgedSos();
    banner.hidden = n === 0;
    banner.textContent = n ? t("banner", { n }) : "";
    if (!list) return;
    const now = clock.now();
    const rows = [...this.alerts.values()].sort((a, b) => (a.kind === "sos") === (b.kind === "sos") ? Date.parse(a.raised_at) - Date.parse(b.raised_at) : (a.kind === "sos" ? -1 : 1));
    list.replaceChildren(...(rows.length ? rows.map((a) => this.row(a, now)) : [el("li", { class: "empty" }, t("none"))]));
  }

  row(a, now) {
    const t = this.t;
    const who = a.subject_role === "customer" ? t("by_customer", { name: a.name || `#${a.subject_id}` }) : t("by_worker", { name: a.name || `#${a.subject_id}` });
    const facts = [t("ago", { t: mmss((now - Date.parse(a.raised_at)) / 1000) })];
    if (a.order_id) facts.push(t("order", { id: a.order_id }));
    if (a.repeats) facts.push(t("repeats", { n: a.repeats }));
    if (a.escalations) facts.push(t("escalated", { n: a.escalations }));
    if (a.acknowledged_at) facts.push(t("acked"));
    const reason = el("input", { name: "resolution", placeholder: t("resolution"), maxlength: 500 });
    const error = el("div", { class: "error" });
    const li = el("li", {
      class: `row safety ${a.kind}`,
      dataset: { alertId: a.id, kind: a.kind, acked: a.acknowledged_at ? "1" : "0" },
    },
    el("div", {}, el("b", {}, t(`k_${a.kind}`)), " ", who),
    el("div", { class: "muted" }, facts.join(" · ")),
    a.message ? el("div", {}, a.message) : null,
    el("div", { class: "row-bottom" },
      a.acknowledged_at ? null : el("button", { type: "button", class: "ack", onclick: (ev) => { ev.stopPropagation(); this.act(a, "ack", null, error); } }, t("ack")),
      reason,
      el("button", { type: "button", class: "resolve", onclick: (ev) => { ev.stopPropagation(); this.act(a, "resolve", reason.value.trim(), error); } }, t("resolve"))),
    error);
    li.addEventListener("click", () => this.focus(a));
    return li;
  }

  focus(a) {
    const map = this.getMap();
    if (!map || a.lat == null) return;
    map.setView([a.lat, a.lng], Math.max(map.getZoom(), 15));
    const trail = this.trails.get(a.id);
    if (this.trailLine) this.trailLine.remove();
    this.trailLine = trail && trail.length > 1 ? L.polyline(trail.map(([la, ln]) => [la, ln]), { color: "#dc2626", weight: 3 }).addTo(map) : null;
  }

  async act(a, action, resolution, error) {
    error.textContent = "";
    try {
      const body = action === "resolve" ? { resolution } : undefined;
      const updated = await api(this.session, "POST", `/v1/safety/alerts/${a.id}/${action}`, body);
      if (updated.resolved_at) this.alerts.delete(a.id);
      else this.alerts.set(a.id, { ...a, ...updated });
      document.activeElement?.blur?.(); // the list redraws once the focus left it
      this.changed();
    } catch (e) {
      error.textContent = e.message;
    }
  }
}

export const SAFETY_TAB = STR.tab_safety;
