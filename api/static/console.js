// The dispatcher console: /console?city=<city_id>. Live over the city feed (docs/protocol.md);
// overrides through the REST API (docs/api.md). The token stays in sessionStorage.

/* global L */
import {
  ApiError, LiveSocket, Session, ago, api, basemap, clock, el, hhmm, makeT, mmss, pickLang,
  translateDom, wsUrl,
} from "/static/common.js";
import { SAFETY_TAB, SafetyPanel } from "/static/console-safety.js";

const STR = {
  title: { zh: "Doorstep 调度台", en: "Doorstep console" },
  logout: { zh: "退出", en: "Sign out" },
  tab_orders: { zh: "订单", en: "Orders" },
  tab_workers: { zh: "师傅", en: "Workers" },
  tab_alerts: { zh: "告警", en: "Alerts" },
  tab_safety: SAFETY_TAB,
  show_active: { zh: "显示进行中的订单", en: "Show orders in progress" },
  login_title: { zh: "调度员登录", en: "Dispatcher sign-in" },
  phone: { zh: "手机号", en: "Phone" },
  password: { zh: "密码", en: "Password" },
  login: { zh: "登录", en: "Sign in" },
  not_dispatcher: { zh: "需要调度员或管理员账号", en: "A dispatcher or admin account is needed" },
  pick_city: { zh: "选择城市", en: "Choose a city" },
  conn_live: { zh: "实时", en: "Live" },
  conn_connecting: { zh: "连接中…", en: "Connecting…" },
  conn_waiting: { zh: "已断开，{s} 秒后重连", en: "Disconnected, retry in {s} s" },
  conn_final: { zh: "无法连接：{code}", en: "Cannot connect: {code}" },
  just_now: { zh: "刚刚", en: "just now" },
  ago_s: { zh: "{n} 秒前", en: "{n} s ago" },
  w_available: { zh: "可接单", en: "available" },
  w_busy: { zh: "有任务", en: "busy with a job" },
  w_unavailable: { zh: "暂停接单", en: "paused" },
  w_offline: { zh: "离线", en: "offline" },
  w_stale: { zh: "信号中断", en: "no signal" },
  ago_m: { zh: "{n} 分钟前", en: "{n} min ago" },
  ago_h: { zh: "{n} 小时前", en: "{n} h ago" },
  c_idle: { zh: "空闲", en: "Idle" },
  c_offered: { zh: "已派单待接", en: "Offered" },
  c_en_route: { zh: "赶往中", en: "En route" },
  c_on_site: { zh: "服务现场", en: "On site" },
  c_paused: { zh: "暂停接单", en: "Paused" },
  c_stale: { zh: "信号中断", en: "Stale" },
  c_offline: { zh: "离线", en: "Offline" },
  s_confirmed: { zh: "待派单", en: "Booked" },
  s_dispatching: { zh: "派单中", en: "Dispatching" },
  s_offered: { zh: "待接单", en: "Offered" },
  s_assigned: { zh: "已指派", en: "Assigned" },
  s_en_route: { zh: "赶往中", en: "En route" },
  s_arrived: { zh: "已到达", en: "Arrived" },
  s_in_service: { zh: "服务中", en: "In service" },
  s_completed: { zh: "已完成", en: "Completed" },
  s_cancelled: { zh: "已取消", en: "Cancelled" },
  s_failed: { zh: "派单失败", en: "Failed" },
  age: { zh: "已等 {t}", en: "waiting {t}" },
  sla_left: { zh: "剩 {t}", en: "{t} left" },
  sla_late: { zh: "超时 {t}", en: "late {t}" },
  pinned: { zh: "已锁定", en: "Pinned" },
  order_n: { zh: "订单 #{id}", en: "Order #{id}" },
  booked_at: { zh: "下单", en: "Booked" },
  deadline: { zh: "时限", en: "Deadline" },
  window: { zh: "预约时段", en: "Window" },
  worker: { zh: "师傅", en: "Worker" },
  crew: { zh: "班组", en: "Crew" },
  crew_of: { zh: "需 {n} 人", en: "needs {n}" },
  attempts: { zh: "派单轮次", en: "Offer rounds" },
  none: { zh: "无", en: "none" },
  reason: { zh: "原因（必填，记入审计）", en: "Reason (required, audited)" },
  reason_needed: { zh: "请先填写原因", en: "Give a reason first" },
  assign: { zh: "指派", en: "Assign" },
  reassign: { zh: "改派", en: "Reassign" },
  unassign: { zh: "取消指派", en: "Unassign" },
  pin: { zh: "锁定", en: "Pin" },
  unpin: { zh: "解锁", en: "Unpin" },
  exclude: { zh: "排除", en: "Exclude" },
  force: { zh: "强制（忽略不符合项）", en: "Force (override warnings)" },
  force_again: { zh: "仍然指派", en: "Assign anyway" },
  crew_ids: { zh: "班组师傅 ID，逗号分隔（第一位为组长）", en: "Crew worker ids, comma-separated (the first leads)" },
  assign_crew: { zh: "指派班组", en: "Assign crew" },
  reassign_crew: { zh: "改派班组", en: "Reassign crew" },
  add_to_crew: { zh: "加入班组", en: "Add to crew" },
  chained: { zh: "接力：订单 #{order} 结束后（约 {n} 分钟）", en: "chained: after order #{order} (ends in ~{n} min)" },
  in_crew: { zh: "已在班组", en: "In the crew" },
  in_crew_why: { zh: "{who} 已在这个班组里，请选其他师傅", en: "{who} is in this crew already: pick another worker" },
  put_in_seat: { zh: "换入", en: "Put in a seat" },
  crew_count: { zh: "需要 {n} 位不同的师傅，已填 {k} 位", en: "Needs {n} different workers; {k} given" },
  replace_member: { zh: "换人", en: "Replace member" },
  replace_with: { zh: "替换为师傅 ID", en: "Replace with worker id" },
  lead: { zh: "组长", en: "lead" },
  worker_id: { zh: "师傅 ID", en: "Worker id" },
  candidates: { zh: "候选师傅（当前评分，不派单）", en: "Candidates (scored now, nothing decided)" },
  refresh: { zh: "刷新", en: "Refresh" },
  no_candidates: { zh: "附近没有可派的师傅", en: "No available worker nearby" },
  engine_pick: { zh: "引擎会选", en: "Engine would pick" },
  last_decision: { zh: "上次引擎决策 {at}：{who}", en: "Last engine decision {at}: {who}" },
  no_decision: { zh: "引擎尚未对此订单做决策", en: "The engine has not decided on this order yet" },
  nobody: { zh: "无人（{why}）", en: "nobody ({why})" },
  total: { zh: "总分", en: "Total" },
  eta: { zh: "ETA", en: "ETA" },
  t_eta: { zh: "路程", en: "ETA" },
  t_rating: { zh: "评分", en: "Rating" },
  t_fairness: { zh: "公平", en: "Fairness" },
  t_schedule: { zh: "排班", en: "Schedule" },
  t_affinity: { zh: "熟客", en: "Affinity" },
  t_team: { zh: "团队", en: "Team" },
  t_priority: { zh: "优先派单", en: "Priority" },
  t_rotation: { zh: "轮派", en: "Rotation" },
  score_note: { zh: "分数越低越好；每项为 权重×原值", en: "Lower is better; each term is weight × raw" },
  done: { zh: "已完成：{what}", en: "Done: {what}" },
  state: { zh: "状态", en: "State" },
  last_fix: { zh: "最后定位", en: "Last fix" },
  rating: { zh: "评分", en: "Rating" },
  job: { zh: "当前订单", en: "Current job" },
  trail: { zh: "过去一小时轨迹：{n} 个点", en: "Trail, last hour: {n} points" },
  plan: { zh: "今日计划（{date}）", en: "Day plan ({date})" },
  no_plan: { zh: "无计划", en: "No plan" },
  a_failed: { zh: "订单 #{id} 派单失败", en: "Order #{id}: dispatch failed" },
  a_start_locked: { zh: "订单 #{id} 核销码错误次数过多，已锁定", en: "Order #{id}: start locked after wrong start codes" },
  a_overdue_on_site: { zh: "订单 #{id} 上门服务超时（{t} 前告警）", en: "Order #{id}: on site past its service time (alerted {t} ago)" },
  a_late_predicted: { zh: "订单 #{id} 预计无法按时到达（{t} 前告警）", en: "Order #{id}: predicted to miss the window (alerted {t} ago)" },
  a_worker_stale: { zh: "订单 #{id} 服务人员信号中断（{t} 前告警）", en: "Order #{id}: the worker went quiet (alerted {t} ago)" },
  a_late: { zh: "订单 #{id} 已超时 {t}", en: "Order #{id} is late by {t}" },
  a_risk: { zh: "订单 #{id} 还剩 {t} 未派出", en: "Order #{id}: {t} left, not yet assigned" },
  a_stale: { zh: "{name} 信号中断", en: "{name}: no signal" },
  a_stale_job: { zh: "{name} 信号中断（订单 #{id}）", en: "{name}: no signal (order #{id})" },
  no_alerts: { zh: "没有告警", en: "No alerts" },
  empty_orders: { zh: "没有待派订单", en: "No open orders" },
};

const OPEN = new Set(["confirmed", "dispatching", "offered"]);
const MOVING = new Set(["assigned", "en_route"]);
const ON_SITE = new Set(["arrived", "in_service"]);
const IN_PLAY = new Set([...OPEN, ...MOVING, ...ON_SITE]);
const CATEGORIES = ["idle", "offered", "en_route", "on_site", "paused", "stale", "offline"];
const COLORS = {
  idle: "#16a34a", offered: "#f59e0b", en_route: "#2563eb", on_site: "#7c3aed",
  paused: "#64748b", stale: "#dc2626", offline: "#cbd5e1",
};
const AT_RISK_S = 600;

const lang = pickLang();
const t = makeT(STR, lang);
document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
translateDom(t);
const $ = (id) => document.getElementById(id);
const session = new Session("console");
const cityId = new URLSearchParams(location.search).get("city");

const S = {
  city: null, staleAfterS: 30, slaS: 3600, services: new Map(),
  workers: new Map(), orders: new Map(), offers: new Map(), jobs: new Map(),
  failed: new Map(), serverAlerts: new Map(), selected: null, tab: "orders",
};
let map = null;
const markers = new Map();
const orderMarkers = new Map();
let trailLine = null;
let planLine = null;
let live = null;
let dirty = true;
const safety = new SafetyPanel({ session, cityId, lang, getMap: () => map, onChange: () => { dirty = true; } });

// ---- language and header ----------------------------------------------------------------

$("lang").textContent = lang === "en" ? "中文" : "EN";
$("lang").addEventListener("click", () => {
  const url = new URL(location.href);
  url.searchParams.set("lang", lang === "en" ? "zh" : "en");
  location.replace(url);
});
$("logout").addEventListener("click", async () => {
  if (live) live.stop();
  await session.logout();
  location.reload();
});
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => setTab(button.dataset.tab));
}
$("show-active").addEventListener("change", () => { dirty = true; });
$("close-detail").addEventListener("click", () => select(null));

function setTab(tab) {
  S.tab = tab;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.tab === tab);
  for (const name of ["orders", "workers", "alerts", "safety"]) $(`${name}-pane`).hidden = name !== tab;
  dirty = true;
}

// ---- derived state ----------------------------------------------------------------------

function rebuildJobs() {
  S.jobs.clear();
  for (const o of S.orders.values()) {
    if (o.worker_id != null && (MOVING.has(o.status) || ON_SITE.has(o.status))) S.jobs.set(o.worker_id, o);
  }
}

function offeredTo(workerId) {
  for (const [orderId, offer] of S.offers) {
    const o = S.orders.get(orderId);
    if (o && o.status === "offered" && offer.worker_ids.has(workerId)) return orderId;
  }
  return null;
}

function category(w) {
  if (w.state === "stale") return "stale";
  if (w.state === "offline") return "offline";
  const job = S.jobs.get(w.id);
  if (job) return ON_SITE.has(job.status) ? "on_site" : "en_route";
  if (offeredTo(w.id) !== null) return "offered";
  if (w.state === "unavailable") return "paused";
  if (w.state === "busy") return "en_route";
  return "idle";
}

function deadlineMs(o) {
  if (o.deadline) return Date.parse(o.deadline);
  if (o.window_end) return Date.parse(o.window_end);
  return Date.parse(o.created_at) + S.slaS * 1000;
}

function serviceName(o) {
  const names = o.service_name || S.services.get(o.service_code);
  return names ? (names[lang] || names.zh) : o.service_code;
}

function workerName(id) {
  const w = S.workers.get(id);
  return w ? `${w.name} #${id}` : `#${id}`;
}

// ---- the map ----------------------------------------------------------------------------

function initMap() {
  const base = basemap("map", cityId);
  map = base.map;
  const [minLat, minLng, maxLat, maxLng] = S.city.bbox;
  map.fitBounds([[minLat, minLng], [maxLat, maxLng]], { padding: [20, 20] });
  trailLine = L.polyline([], { color: "#0f766e", weight: 3, opacity: 0.9, dashArray: "2 6" }).addTo(map);
  planLine = L.polyline([], { color: "#7c3aed", weight: 2, opacity: 0.8, dashArray: "8 6" }).addTo(map);
  base.ready.then(() => { document.body.dataset.mapReady = "1"; });
}

function drawWorkers() {
  const seen = new Set();
  for (const w of S.workers.values()) {
    if (w.lat == null || w.lng == null) continue;
    seen.add(w.id);
    const cat = category(w);
    const style = {
      radius: S.selected?.kind === "worker" && S.selected.id === w.id ? 10 : 7,
      color: cat === "stale" ? "#7f1d1d" : "#ffffff",
      weight: 2,
      fillColor: COLORS[cat],
      fillOpacity: cat === "offline" ? 0.6 : 0.95,
    };
    let m = markers.get(w.id);
    if (!m) {
      m = L.circleMarker([w.lat, w.lng], style).addTo(map);
      m.on("click", () => select({ kind: "worker", id: w.id }));
      markers.set(w.id, m);
    } else {
      m.setLatLng([w.lat, w.lng]);
      m.setStyle(style);
    }
    m.bindTooltip(`${w.name} · ${t(`c_${cat}`)}`);
  }
  for (const [id, m] of markers) if (!seen.has(id)) { m.remove(); markers.delete(id); }
}

function drawOrders() {
  const now = clock.now();
  const seen = new Set();
  for (const o of S.orders.values()) {
    const selected = S.selected?.kind === "order" && S.selected.id === o.id;
    if (!OPEN.has(o.status) && !selected) continue;
    seen.add(o.id);
    const left = (deadlineMs(o) - now) / 1000;
    const urgency = left < 0 ? "late" : left < AT_RISK_S ? "risk" : "ok";
    const cls = `order-pin ${urgency}${selected ? " selected" : ""}`;
    let m = orderMarkers.get(o.id);
    if (!m) {
      m = L.marker([o.lat, o.lng], { keyboard: false, zIndexOffset: 500 }).addTo(map);
      m.on("click", () => select({ kind: "order", id: o.id }));
      orderMarkers.set(o.id, m);
    }
    if (m._cls !== cls) {
      m.setIcon(L.divIcon({ className: "order-icon", html: `<div class="${cls}">#${o.id}</div>`, iconSize: null, iconAnchor: [0, 0] }));
      m._cls = cls;
    }
  }
  for (const [id, m] of orderMarkers) if (!seen.has(id)) { m.remove(); orderMarkers.delete(id); }
}

function drawLegend() {
  const counts = Object.fromEntries(CATEGORIES.map((c) => [c, 0]));
  for (const w of S.workers.values()) counts[category(w)] += 1;
  $("legend").replaceChildren(...CATEGORIES.map((c) => el("div", { class: "legend-row", dataset: { category: c } },
    el("span", { class: `swatch sw-${c}` }), `${t(`c_${c}`)} `, el("b", {}, counts[c]))));
}

// ---- lists ------------------------------------------------------------------------------

function renderOrders() {
  const now = clock.now();
  const showActive = $("show-active").checked;
  const rows = [...S.orders.values()]
    .filter((o) => OPEN.has(o.status) || (showActive && IN_PLAY.has(o.status)))
    .sort((a, b) => deadlineMs(a) - deadlineMs(b));
  const list = $("orders");
  if (!rows.length) { list.replaceChildren(el("li", { class: "empty" }, t("empty_orders"))); return; }
  list.replaceChildren(...rows.map((o) => {
    const left = (deadlineMs(o) - now) / 1000;
    const age = (now - Date.parse(o.created_at)) / 1000;
    const sla = left >= 0 ? t("sla_left", { t: mmss(left) }) : t("sla_late", { t: mmss(-left) });
    const urgency = ON_SITE.has(o.status) ? "ok" : left < 0 ? "late" : left < AT_RISK_S ? "risk" : "ok";
    const selected = S.selected?.kind === "order" && S.selected.id === o.id;
    return el("li", {
      class: `row${selected ? " selected" : ""}`, dataset: { orderId: o.id, status: o.status },
      onclick: () => select({ kind: "order", id: o.id }),
    },
    el("div", { class: "row-top" }, el("b", {}, `#${o.id}`), " ", serviceName(o),
      el("span", { class: `chip st-${o.status}` }, t(`s_${o.status}`)),
      o.pinned ? el("span", { class: "chip pinned" }, t("pinned")) : null),
    el("div", { class: "row-bottom" },
      el("span", { class: "muted" }, t("age", { t: mmss(age) })),
      o.worker_id != null ? el("span", { class: "muted" }, workerName(o.worker_id)) : null,
      el("span", { class: `sla ${urgency}` }, sla)));
  }));
}

function renderWorkers() {
  const rows = [...S.workers.values()].sort((a, b) => CATEGORIES.indexOf(category(a)) - CATEGORIES.indexOf(category(b)) || a.id - b.id);
  const now = clock.now();
  $("workers").replaceChildren(...rows.map((w) => {
    const cat = category(w);
    const job = S.jobs.get(w.id);
    return el("li", {
      class: `row${S.selected?.kind === "worker" && S.selected.id === w.id ? " selected" : ""}`,
      dataset: { workerId: w.id, category: cat },
      onclick: () => select({ kind: "worker", id: w.id }),
    },
    el("div", { class: "row-top" }, el("span", { class: `swatch sw-${cat}` }), el("b", {}, w.name), ` #${w.id}`,
      el("span", { class: "chip" }, t(`c_${cat}`))),
    el("div", { class: "row-bottom" },
      el("span", { class: "muted" }, w.ts_ms ? ago((now - w.ts_ms) / 1000, t) : "—"),
      job ? el("span", { class: "muted" }, `#${job.id}`) : null));
  }));
}

function alerts() {
  const now = clock.now();
  const out = [];
  for (const a of S.serverAlerts.values()) {
    const key = `a_${a.kind}` in STR ? `a_${a.kind}` : "a_overdue_on_site";
    out.push({ rank: 0, kind: a.kind, text: t(key, { id: a.order_id, t: mmss((now - Date.parse(a.raised_at)) / 1000) }), ref: { kind: "order", id: a.order_id } });
  }
  for (const o of S.failed.values()) out.push({ rank: 0, kind: "failed", text: t("a_failed", { id: o.id }), ref: { kind: "order", id: o.id } });
  for (const o of S.orders.values()) {
    if (ON_SITE.has(o.status)) continue;
    const left = (deadlineMs(o) - now) / 1000;
    if (left < 0) out.push({ rank: 1, kind: "late", text: t("a_late", { id: o.id, t: mmss(-left) }), ref: { kind: "order", id: o.id } });
    else if (left < AT_RISK_S && OPEN.has(o.status)) out.push({ rank: 3, kind: "risk", text: t("a_risk", { id: o.id, t: mmss(left) }), ref: { kind: "order", id: o.id } });
  }
  for (const w of S.workers.values()) {
    if (w.state !== "stale") continue;
    const job = S.jobs.get(w.id);
    out.push({
      rank: job ? 1 : 2,
      kind: "stale",
      text: job ? t("a_stale_job", { name: w.name, id: job.id }) : t("a_stale", { name: w.name }),
      ref: { kind: "worker", id: w.id },
    });
  }
  return out.sort((a, b) => a.rank - b.rank);
}

function renderAlerts() {
  const list = alerts();
  $("n-alerts").textContent = list.length;
  $("n-alerts").classList.toggle("hot", list.some((a) => a.rank <= 1));
  if (S.tab !== "alerts") return;
  $("alerts").replaceChildren(...(list.length ? list.map((a) => el("li", {
    class: `row alert ${a.kind}`, dataset: { kind: a.kind }, onclick: () => select(a.ref),
  }, a.text)) : [el("li", { class: "empty" }, t("no_alerts"))]));
}

function render() {
  if (!map) return;
  rebuildJobs();
  drawWorkers();
  drawOrders();
  drawLegend();
  $("n-orders").textContent = [...S.orders.values()].filter((o) => OPEN.has(o.status)).length;
  $("n-workers").textContent = [...S.workers.values()].filter((w) => !["offline", "stale"].includes(category(w))).length;
  if (S.tab === "orders") renderOrders();
  if (S.tab === "workers") renderWorkers();
  renderAlerts();
  $("n-safety").textContent = safety.count();
  $("n-safety").classList.toggle("hot", safety.unacknowledgedSos() > 0);
  safety.render(S.tab === "safety" && !document.activeElement?.closest?.("#safety") ? $("safety") : null, $("sos-banner"));
  dirty = false;
}

setInterval(() => {
  $("clock").textContent = S.city ? hhmm(clock.now(), S.city.timezone) : "";
  dirty = true;
}, 1000);
(function frame() {
  if (dirty) render();
  requestAnimationFrame(frame);
})();

// ---- details ----------------------------------------------------------------------------

function select(ref) {
  S.selected = ref;
  dirty = true;
  trailLine?.setLatLngs([]);
  planLine?.setLatLngs([]);
  const wasHidden = $("detail").hidden;
  $("detail").hidden = !ref;
  if (wasHidden !== !ref) map.invalidateSize(); // the map's width changed
  if (!ref) return;
  if (ref.kind === "order") showOrder(ref.id);
  else showWorker(ref.id);
}

function field(label, value) {
  return el("div", { class: "field" }, el("span", { class: "muted" }, label), el("span", {}, value));
}

function message(text, kind = "info") {
  const box = $("detail-message");
  if (box) { box.textContent = text; box.className = `message ${kind}`; }
}

async function showOrder(id) {
  let o = S.orders.get(id);
  if (!o) {
    try { o = normalizeOrder(await api(session, "GET", `/v1/orders/${id}`)); } catch (e) { o = null; }
  }
  const body = $("detail-body");
  if (!o) { body.replaceChildren(el("p", {}, `#${id}`)); return; }
  const reason = el("input", { id: "reason", placeholder: t("reason"), maxlength: 500 });
  const workerInput = el("input", { id: "worker-input", placeholder: t("worker_id"), inputmode: "numeric" });
  const force = el("input", { id: "force", type: "checkbox" });
  const holds = o.worker_id != null && (MOVING.has(o.status) || ON_SITE.has(o.status));
  const isCrew = (o.crew_size || 1) > 1;
  body.replaceChildren(...[
    el("h3", {}, t("order_n", { id: o.id }), " ", el("span", { class: `chip st-${o.status}`, id: "order-status" }, t(`s_${o.status}`)),
      o.pinned ? el("span", { class: "chip pinned" }, t("pinned")) : null),
    el("div", { class: "muted" }, serviceName(o)),
    field(t("booked_at"), hhmm(Date.parse(o.created_at), S.city.timezone)),
    o.window_start ? field(t("window"), `${hhmm(Date.parse(o.window_start), S.city.timezone)}–${hhmm(Date.parse(o.window_end), S.city.timezone)}`) : null,
    field(t("deadline"), hhmm(deadlineMs(o), S.city.timezone)),
    field(t("worker"), o.worker_id != null ? workerName(o.worker_id) : t("none")),
    // A crew order: every member, the lead first (docs/dispatch.md#crews).
    (o.crew_size || 1) > 1 ? crewField(o) : null,
    field(t("attempts"), String(o.dispatch_attempts ?? 0)),
    el("div", { class: "actions" },
      reason,
      el("div", { class: "action-row" },
        workerInput,
        // A crew order is assigned to a whole crew (below), never to one worker.
        isCrew ? null : el("button", { type: "button", id: "assign-by-id", onclick: () => assign(o, Number(workerInput.value), force.checked) }, holds ? t("reassign") : t("assign")),
        el("button", { type: "button", id: "exclude-by-id", onclick: () => override(o, "exclude", { worker_id: Number(workerInput.value) }) }, t("exclude"))),
      isCrew ? crewActions(o, holds, force) : null,
      el("label", { class: "filter" }, force, " ", t("force")),
      el("div", { class: "action-row" },
        holds ? el("button", { type: "button", id: "unassign", onclick: () => override(o, "unassign", {}) }, t("unassign")) : null,
        el("button", { type: "button", id: "pin", onclick: () => override(o, "pin", { pinned: !o.pinned }) }, o.pinned ? t("unpin") : t("pin")))),
    el("div", { id: "detail-message", class: "message" }),
    el("h4", {}, t("candidates"), " ", el("button", { type: "button", class: "small", onclick: () => loadCandidates(o) }, t("refresh"))),
    el("div", { id: "candidates" }, "…"),
    el("div", { id: "decision", class: "muted" }),
  ].filter(Boolean));
  map.panTo([o.lat, o.lng]);
  loadCandidates(o);
  loadDecision(o);
}

// A crew order (docs/dispatch.md#crews): the whole crew by id, the lead first (a
// candidate's button adds them to the list), and, once a crew holds it, one member's seat
// given to another worker.
function crewField(o) {
  const box = field(t("crew"), (o.crew || []).length
    ? o.crew.map((w) => workerName(w)).join(", ") : t("crew_of", { n: o.crew_size }));
  box.id = "order-crew";
  return box;
}

function crewOptions(crew) {
  return crew.map((w, i) => el("option", { value: w }, workerName(w), i === 0 ? ` (${t("lead")})` : ""));
}

// The open order's crew changed on the feed (another dispatcher, the engine): its crew
// field and the replace-member choices follow, in place (what is typed is kept).
function refreshCrew(o) {
  const box = $("order-crew");
  if (box) box.replaceWith(crewField(o));
  const out = $("replace-out");
  if (out && (o.crew || []).length) out.replaceChildren(...crewOptions(o.crew));
  markCrewCandidates(o);
}

// Who is in the crew already: the crew holding the order (as the feed last said), and for
// "add to crew" also the workers named in the crew field. Their candidate buttons are
// disabled, saying why; the server refuses them too (a worker named twice, 422
// worker_ids[i]; a newcomer in the crew already, 422 in_worker_id).
function heldCrew(o) {
  return new Set(S.orders.get(o.id)?.crew || o.crew || []);
}

function crewNow(o) {
  return new Set([...heldCrew(o), ...crewIds()]);
}

function markCrewCandidates(o) {
  const named = crewNow(o);
  const held = heldCrew(o);
  for (const b of document.querySelectorAll("#candidates button.add-to-crew, #candidates button.replace-with")) {
    const wid = Number(b.dataset.workerId);
    const adding = b.classList.contains("add-to-crew");
    const inCrew = (adding ? named : held).has(wid);
    b.disabled = inCrew;
    b.title = inCrew ? t("in_crew_why", { who: workerName(wid) }) : "";
    if (adding) b.textContent = inCrew ? t("in_crew") : t("add_to_crew");
  }
}

function sameIds(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function crewActions(o, holds, force) {
  const crewInput = el("input", { id: "crew-input", placeholder: t("crew_ids"), inputmode: "numeric", oninput: () => markCrewCandidates(o) });
  const rows = [el("div", { class: "action-row" },
    crewInput,
    el("button", { type: "button", id: "assign-crew", onclick: () => assignCrew(o, crewIds(), force.checked) }, holds ? t("reassign_crew") : t("assign_crew")))];
  if (holds && (o.crew || []).length) {
    const out = el("select", { id: "replace-out" }, ...crewOptions(o.crew));
    const into = el("input", { id: "replace-in", placeholder: t("replace_with"), inputmode: "numeric" });
    rows.push(el("div", { class: "action-row" }, out, into,
      el("button", { type: "button", id: "replace-member", onclick: () => replaceMember(o, Number(out.value), Number(into.value), force.checked) }, t("replace_member"))));
  }
  return rows;
}

function crewIds() {
  return ($("crew-input")?.value || "").split(/[\s,，、]+/).filter(Boolean).map(Number);
}

function addToCrew(o, workerId) {
  if (crewNow(o).has(workerId)) { message(t("in_crew_why", { who: workerName(workerId) }), "error"); return; }
  const ids = [...crewIds(), workerId];
  $("crew-input").value = ids.join(", ");
  message(t("crew_count", { n: o.crew_size, k: ids.length }));
  markCrewCandidates(o);
}

function putInSeat(o, workerId) {
  if (heldCrew(o).has(workerId)) { message(t("in_crew_why", { who: workerName(workerId) }), "error"); return; }
  const into = $("replace-in");
  if (into) { into.value = String(workerId); into.focus(); }
}

function scoreTable(decision, o, { actions }) {
  const terms = decision.terms || [];
  const holds = o.worker_id != null && (MOVING.has(o.status) || ON_SITE.has(o.status));
  const head = el("tr", {}, el("th", {}, t("worker")), el("th", {}, t("eta")), el("th", {}, t("total")),
    ...terms.map((term) => el("th", {}, t(`t_${term}`))), actions ? el("th", {}) : null);
  const rows = (decision.candidates || []).map((c) => {
    const wid = c.candidate.worker_id;
    const chosen = decision.worker_id === wid;
    const cells = c.feasible
      ? [el("td", { class: "num" }, c.breakdown.total.toFixed(1)),
        ...c.breakdown.weighted.map((v, i) => el("td", { class: "num", title: `raw ${c.breakdown.raw[i].toFixed(2)}` }, v.toFixed(1)))]
      : [el("td", { class: "why", colspan: terms.length + 1 }, c.why_not)];
    return el("tr", { class: `${c.feasible ? "" : "infeasible"}${chosen ? " chosen" : ""}`, dataset: { workerId: wid } },
      el("td", {}, chosen ? "★ " : "", workerName(wid),
        // A chained candidate (docs/dispatch.md#chained-orders): busy, free after their job.
        c.candidate.chain ? el("div", { class: "muted chained" }, t("chained", {
          order: c.candidate.chain.order_id,
          n: Math.max(0, Math.round((c.candidate.chain.ends_s - decision.now_s) / 60)),
        })) : null),
      el("td", { class: "num" }, c.eta_s != null ? `${Math.round(c.eta_s / 60)}′` : "—"),
      ...cells,
      actions && (o.crew_size || 1) > 1 ? el("td", {}, el("button", {
        type: "button", class: "small add-to-crew", dataset: { workerId: wid },
        onclick: () => addToCrew(o, wid),
      }, t("add_to_crew")),
      // Once a crew holds the order, a candidate can take one member's seat.
      holds && (o.crew || []).length ? el("button", {
        type: "button", class: "small replace-with", dataset: { workerId: wid },
        onclick: () => putInSeat(o, wid),
      }, t("put_in_seat")) : null)
        : actions ? el("td", {}, el("button", {
          type: "button", class: "small assign", dataset: { workerId: wid },
          onclick: () => assign(o, wid, $("force")?.checked ?? false),
        }, holds ? t("reassign") : t("assign"))) : null);
  });
  return el("table", { class: "scores" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

async function loadCandidates(o) {
  const box = $("candidates");
  try {
    const preview = await api(session, "GET", `/v1/orders/${o.id}/candidates`);
    if (S.selected?.kind !== "order" || S.selected.id !== o.id) return;
    const d = preview.decision;
    box.replaceChildren(
      d.candidates.length ? scoreTable({ ...d, worker_id: preview.worker_id }, o, { actions: true }) : el("p", { class: "muted" }, t("no_candidates")),
      el("p", { class: "muted" }, t("score_note")),
    );
    if ((o.crew_size || 1) > 1) markCrewCandidates(o);
  } catch (e) {
    box.textContent = e.message;
  }
}

async function loadDecision(o) {
  const box = $("decision");
  try {
    const rows = await api(session, "GET", `/v1/orders/${o.id}/decisions`);
    if (S.selected?.kind !== "order" || S.selected.id !== o.id) return;
    if (!rows.length) { box.textContent = t("no_decision"); return; }
    const last = rows[0];
    const who = last.worker_id != null ? workerName(last.worker_id) : t("nobody", { why: last.decision.reason });
    const details = el("details", {}, el("summary", {}, t("last_decision", { at: hhmm(Date.parse(last.at), S.city.timezone), who })),
      scoreTable(last.decision, o, { actions: false }));
    box.replaceChildren(details);
  } catch (e) {
    box.textContent = e.message;
  }
}

function reasonOrComplain() {
  const input = $("reason");
  const reason = input?.value.trim();
  if (!reason) {
    input?.classList.add("invalid");
    input?.focus();
    message(t("reason_needed"), "error");
    return null;
  }
  input.classList.remove("invalid");
  return reason;
}

async function assign(o, workerId, force) {
  const reason = reasonOrComplain();
  if (!reason) return;
  if (!Number.isSafeInteger(workerId) || workerId < 1) { $("worker-input")?.focus(); return; }
  try {
    const result = await api(session, "POST", `/v1/orders/${o.id}/assign`, { worker_id: workerId, reason, force });
    applyOrder(result.order);
    message(t("done", { what: `${t("assign")} → ${workerName(workerId)}` }), "ok");
    showOrder(o.id).then(() => message(t("done", { what: `${t("assign")} → ${workerName(workerId)}` }), "ok"));
  } catch (e) {
    if (e instanceof ApiError && e.code === "infeasible_assignment") {
      message(e.message, "error");
      $("detail-message").append(" ", el("button", { type: "button", class: "small", id: "force-assign", onclick: () => assign(o, workerId, true) }, t("force_again")));
    } else {
      message(e.message, "error");
    }
  }
}

async function assignCrew(o, ids, force) {
  const reason = reasonOrComplain();
  if (!reason) return;
  if (!ids.length || ids.some((w) => !Number.isSafeInteger(w) || w < 1)) { $("crew-input")?.focus(); return; }
  const what = `${t("assign_crew")} → ${ids.map((w) => workerName(w)).join(", ")}`;
  try {
    const result = await api(session, "POST", `/v1/orders/${o.id}/crew/assign`, { worker_ids: ids, reason, force });
    applyOrder(result.order);
    await showOrder(o.id);
    message(t("done", { what }), "ok");
  } catch (e) {
    message(e.message, "error");
    if (e instanceof ApiError && e.code === "infeasible_assignment") {
      $("detail-message").append(" ", el("button", { type: "button", class: "small", id: "force-assign", onclick: () => assignCrew(o, ids, true) }, t("force_again")));
    }
  }
}

async function replaceMember(o, out, into, force) {
  const reason = reasonOrComplain();
  if (!reason) return;
  if (!Number.isSafeInteger(into) || into < 1) { $("replace-in")?.focus(); return; }
  const what = `${t("replace_member")}: ${workerName(out)} → ${workerName(into)}`;
  try {
    const result = await api(session, "POST", `/v1/orders/${o.id}/crew/replace`, { out_worker_id: out, in_worker_id: into, reason, force });
    applyOrder(result.order);
    await showOrder(o.id);
    message(t("done", { what }), "ok");
  } catch (e) {
    message(e.message, "error");
    if (e instanceof ApiError && e.code === "infeasible_assignment") {
      $("detail-message").append(" ", el("button", { type: "button", class: "small", id: "force-assign", onclick: () => replaceMember(o, out, into, true) }, t("force_again")));
    }
  }
}

async function override(o, action, extra) {
  const reason = reasonOrComplain();
  if (!reason) return;
  if ("worker_id" in extra && (!Number.isSafeInteger(extra.worker_id) || extra.worker_id < 1)) { $("worker-input")?.focus(); return; }
  try {
    const result = await api(session, "POST", `/v1/orders/${o.id}/${action}`, { ...extra, reason });
    if (result?.order) applyOrder(result.order);
    const what = t(action === "pin" ? (extra.pinned ? "pin" : "unpin") : action);
    await showOrder(o.id);
    message(t("done", { what }), "ok");
  } catch (e) {
    message(e.message, "error");
  }
}

async function showWorker(id) {
  const w = S.workers.get(id);
  const body = $("detail-body");
  if (!w) { body.replaceChildren(el("p", {}, `#${id}`)); return; }
  const cat = category(w);
  const job = S.jobs.get(id);
  const date = new Intl.DateTimeFormat("en-CA", { timeZone: S.city.timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(clock.now());
  body.replaceChildren(
    el("h3", {}, w.name, ` #${w.id} `, el("span", { class: `chip cat-${cat}` }, t(`c_${cat}`))),
    field(t("state"), t(`w_${w.state}`)),
    field(t("last_fix"), w.ts_ms ? ago((clock.now() - w.ts_ms) / 1000, t) : "—"),
    field(t("rating"), w.rating != null ? `★ ${Number(w.rating).toFixed(2)} (${w.rating_count})` : "—"),
    field(t("job"), job ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); select({ kind: "order", id: job.id }); } }, `#${job.id} · ${t(`s_${job.status}`)}`) : t("none")),
    el("p", { id: "trail-info", class: "muted" }, "…"),
    el("h4", {}, t("plan", { date })),
    el("div", { id: "plan" }, "…"),
  );
  if (w.lat != null) map.panTo([w.lat, w.lng]);
  api(session, "GET", `/v1/workers/${id}/trail`).then((points) => {
    if (S.selected?.kind !== "worker" || S.selected.id !== id) return;
    const line = points.map((p) => [p.lat, p.lng]);
    trailLine.setLatLngs(line.length === 1 ? [line[0], line[0]] : line);
    $("trail-info").textContent = t("trail", { n: points.length });
  }).catch((e) => {
    if (S.selected?.kind !== "worker" || S.selected.id !== id) return; // another panel now
    $("trail-info").textContent = e.message;
  });
  api(session, "GET", `/v1/workers/${id}/plan?date=${date}`).then((plan) => {
    if (S.selected?.kind !== "worker" || S.selected.id !== id) return;
    $("plan").replaceChildren(renderPlan(plan, w));
  }).catch((e) => {
    if (S.selected?.kind !== "worker" || S.selected.id !== id) return; // another panel now
    $("plan").replaceChildren(el("p", { class: "muted", id: "no-plan" }, e.status === 404 ? t("no_plan") : e.message));
  });
}

// The day plan from GET /v1/workers/{id}/plan (issue #5's day plans): its stops in order,
// listed and drawn on the map as a dashed line from the worker through them.
function renderPlan(plan, worker) {
  const stops = plan?.stops || [];
  planLine?.setLatLngs([]);
  if (plan?.version == null || !stops.length) return el("p", { class: "muted", id: "no-plan" }, t("no_plan"));
  const tz = S.city.timezone;
  const at = (v) => (v ? hhmm(Date.parse(v), tz) : "");
  const points = stops.filter((s) => s.lat != null).map((s) => [s.lat, s.lng]);
  if (worker.lat != null) points.unshift([worker.lat, worker.lng]);
  planLine?.setLatLngs(points);
  return el("ol", { class: "plan", id: "plan-stops" }, ...stops.map((s) => el("li", { dataset: { orderId: s.order_id } },
    el("b", {}, `#${s.order_id}`), " ", serviceName(s), " ",
    el("span", { class: "muted" }, `${at(s.start_at)}–${at(s.departure_at)}`),
    s.window_start ? el("span", { class: "muted" }, ` (${t("window")} ${at(s.window_start)}–${at(s.window_end)})`) : null)));
}

// ---- feed messages ----------------------------------------------------------------------

function normalizeOrder(o) {
  return { ...o, deadline: o.deadline || null };
}

function applyOrder(o) {
  const current = S.orders.get(o.id);
  if (current && o.version != null && current.version != null && o.version < current.version) return;
  const merged = { ...(current || {}), ...normalizeOrder(o) };
  if (IN_PLAY.has(merged.status)) S.orders.set(o.id, merged); else S.orders.delete(o.id);
  if (merged.status !== "offered") S.offers.delete(o.id);
  if (merged.status === "failed") S.failed.set(o.id, merged);
  dirty = true;
}

function onSnapshot(msg) {
  clock.sync(msg.now_ms);
  S.staleAfterS = msg.stale_after_s;
  S.slaS = msg.instant_sla_s;
  S.workers.clear();
  for (const w of msg.roster || []) S.workers.set(w.id, { ...w });
  S.orders.clear();
  for (const o of msg.orders || []) S.orders.set(o.id, o);
  S.offers.clear();
  for (const f of msg.offers || []) {
    const entry = S.offers.get(f.order_id) || { worker_ids: new Set(), expires_at_ms: f.expires_at_ms };
    entry.worker_ids.add(f.worker_id);
    S.offers.set(f.order_id, entry);
  }
  dirty = true;
  document.body.dataset.feed = "live";
}

async function onOrder(msg) {
  const known = S.orders.get(msg.order_id);
  if (known) {
    const crewMoved = Array.isArray(msg.crew) && !sameIds(msg.crew, known.crew || []);
    applyOrder({
      id: msg.order_id, status: msg.status, version: msg.version, worker_id: msg.worker_id,
      ...(Array.isArray(msg.crew) ? { crew: msg.crew } : {}),
    });
    const now = S.orders.get(msg.order_id);
    if (crewMoved && now && S.selected?.kind === "order" && S.selected.id === msg.order_id) refreshCrew(now);
  } else if (IN_PLAY.has(msg.status) || msg.status === "failed") {
    try {
      applyOrder(await api(session, "GET", `/v1/orders/${msg.order_id}`));
    } catch { /* gone or not visible: nothing to show */ }
  }
  if (S.selected?.kind === "order" && S.selected.id === msg.order_id) {
    const chip = $("order-status");
    if (chip) { chip.textContent = t(`s_${msg.status}`); chip.className = `chip st-${msg.status}`; }
  }
}

function onMessage(msg) {
  switch (msg.type) {
    case "snapshot": onSnapshot(msg); break;
    case "positions":
      for (const p of msg.workers) {
        const w = S.workers.get(p.id) || { id: p.id, name: `#${p.id}`, rating: null, rating_count: 0 };
        Object.assign(w, { lat: p.lat, lng: p.lng, ts_ms: p.ts_ms, accuracy_m: p.accuracy_m, state: p.state });
        S.workers.set(p.id, w);
      }
      dirty = true;
      break;
    case "worker_state": {
      const w = S.workers.get(msg.id);
      if (w) { w.state = msg.state; dirty = true; }
      break;
    }
    case "stale":
      for (const id of msg.ids) { const w = S.workers.get(id); if (w && w.state !== "offline") w.state = "stale"; }
      dirty = true;
      break;
    case "order": onOrder(msg); break;
    case "offers":
      S.offers.set(msg.order_id, { worker_ids: new Set(msg.worker_ids), expires_at_ms: msg.expires_at_ms });
      dirty = true;
      break;
    case "alert":
      if (msg.resolved) S.serverAlerts.delete(msg.alert_id);
      else S.serverAlerts.set(msg.alert_id, msg);
      dirty = true;
      break;
    case "safety_alert": safety.onMessage(msg); break;
    case "override":
      if (S.selected?.kind === "order" && S.selected.id === msg.order_id) loadDecision(S.orders.get(msg.order_id) || { id: msg.order_id });
      break;
    default: break;
  }
}

function onState(state, info) {
  if (state === "live" && S.city) safety.load().catch(() => {}); // what the gap missed
  const pill = $("conn");
  pill.dataset.state = state;
  pill.textContent = state === "live" ? t("conn_live")
    : state === "waiting" ? t("conn_waiting", { s: Math.max(1, Math.round(info.delayMs / 1000)) })
      : t("conn_connecting");
}

// ---- start ------------------------------------------------------------------------------

async function socketUrl(lastClose) {
  if (lastClose === 4401 && !(await session.refresh())) { showLogin(); return null; }
  const token = await session.access();
  if (!token) { showLogin(); return null; }
  return wsUrl(`/v1/ws/cities/${encodeURIComponent(cityId)}/feed?access_token=${encodeURIComponent(token)}`);
}

function showLogin() {
  $("login").hidden = false;
}

async function start() {
  const user = session.get()?.user;
  $("who").textContent = user ? `${user.name}` : "";
  if (!S.city) {
    try {
      S.city = await api(null, "GET", `/v1/cities/${encodeURIComponent(cityId)}`);
    } catch (e) {
      $("city-name").textContent = e.message;
      return;
    }
  }
  $("city-name").textContent = lang === "en" ? S.city.name_en : S.city.name_zh;
  try {
    for (const s of await api(null, "GET", "/v1/services")) S.services.set(s.code, { zh: s.name_zh, en: s.name_en });
  } catch { /* names fall back to codes */ }
  if (!map) initMap();
  try {
    const failed = await api(session, "GET", `/v1/orders?status=failed&city_id=${encodeURIComponent(cityId)}&limit=20`);
    const since = Date.now() - 2 * 3600 * 1000;
    for (const o of failed) if (Date.parse(o.updated_at) > since) S.failed.set(o.id, o);
  } catch { /* alerts for failures seen live only */ }
  try {
    for (const a of await api(session, "GET", `/v1/alerts?city_id=${encodeURIComponent(cityId)}`)) S.serverAlerts.set(a.id, { ...a, alert_id: a.id });
  } catch { /* alerts seen live only */ }
  try { await safety.load(); } catch { /* safety alerts seen live only */ }
  live = new LiveSocket({
    url: socketUrl,
    onMessage,
    onState,
    onFinal: (code) => { $("conn").dataset.state = "final"; $("conn").textContent = t("conn_final", { code }); },
  });
  live.connect();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const user = await session.login($("login-phone").value.trim(), $("login-password").value);
    if (!user.roles.some((r) => r === "dispatcher" || r === "admin")) {
      await session.logout();
      $("login-error").textContent = t("not_dispatcher");
      return;
    }
    $("login").hidden = true;
    if (live) { live.stop(); live = null; }
    start();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

async function pickCity() {
  $("pick-city").hidden = false;
  const cities = await api(null, "GET", "/v1/cities").catch(() => []);
  $("cities").replaceChildren(...cities.map((c) => el("li", { class: "row" },
    el("a", { href: `/console?city=${encodeURIComponent(c.id)}` }, `${lang === "en" ? c.name_en : c.name_zh} (${c.id})`))));
}

if (!cityId) pickCity();
else if (!session.get()) showLogin();
else start();
