// The customer's arrival map: /track/{order_id}?share=<token>, or signed in as the customer.
// Live over the order socket (docs/protocol.md); everything shown comes from its snapshot
// and the position/status messages after it.

/* global L */
import {
  LiveSocket, Session, ago, basemap, clock, el, hhmm, makeT, mmss, pickLang, translateDom, wsUrl,
} from "/static/common.js";

const STR = {
  loading: { zh: "正在加载…", en: "Loading…" },
  eta_label: { zh: "预计到达", en: "Arriving in" },
  eta_minutes: { zh: "{a}–{b} 分钟", en: "{a}–{b} min" },
  eta_soon: { zh: "即将到达", en: "Any moment" },
  eta_clock: { zh: "约 {a}–{b} 到达", en: "Around {a}–{b}" },
  eta_clock_one: { zh: "约 {a} 到达", en: "Around {a}" },
  // a chained order (接力单): the worker is still on the job before this one
  chained_title: { zh: "师傅正在附近完成上一单", en: "Your worker is finishing a job nearby" },
  chained_departs: { zh: "预计 {t} 出发（{by}），距您约 {km} 公里", en: "Expected to leave at {t} ({by}), about {km} km from you" },
  chained_soon: { zh: "即将出发，距您约 {km} 公里", en: "Leaving any moment, about {km} km from you" },
  chained_by_worker: { zh: "师傅预估", en: "the worker's estimate" },
  chained_by_duration: { zh: "按服务时长估算", en: "by the service's length" },
  code_label: { zh: "核销码", en: "Start code" },
  code_hint: { zh: "师傅开始服务前，请当面告诉师傅此码", en: "Tell it to the worker in person before the service starts" },
  code_share: { zh: "核销码仅下单人可见", en: "Only the person who booked sees the start code" },
  updated: { zh: "{ago}更新", en: "Updated {ago}" },
  stale: { zh: "位置信号中断 · {ago}", en: "No signal · last {ago}" },
  just_now: { zh: "刚刚", en: "just now" },
  ago_s: { zh: "{n} 秒前", en: "{n} s ago" },
  ago_m: { zh: "{n} 分钟前", en: "{n} min ago" },
  ago_h: { zh: "{n} 小时前", en: "{n} h ago" },
  waiting_position: { zh: "等待师傅位置…", en: "Waiting for the worker's position…" },
  rating: { zh: "★ {r} · {n} 次评价", en: "★ {r} · {n} ratings" },
  crew: { zh: "班组 {n} 人：", en: "Crew of {n}: " },
  lead: { zh: "（领队）", en: " (lead)" },
  crew_here: { zh: "已到", en: "here" },
  new_worker: { zh: "新师傅，暂无评价", en: "New worker, no ratings yet" },
  order_ref: { zh: "订单 #{id}", en: "Order #{id}" },
  conn_connecting: { zh: "正在连接…", en: "Connecting…" },
  conn_waiting: { zh: "网络中断，{s} 秒后重连…", en: "Connection lost, retrying in {s} s…" },
  login_title: { zh: "登录查看订单", en: "Sign in to see your order" },
  login_hint: { zh: "用下单的手机号登录；或使用分享链接查看", en: "Use the phone you booked with, or open a share link" },
  phone: { zh: "手机号", en: "Phone" },
  password: { zh: "密码", en: "Password" },
  login: { zh: "登录", en: "Sign in" },
  final_4401: { zh: "此分享链接已失效，请向下单人索取新链接。", en: "This share link has expired; ask for a new one." },
  final_4404: { zh: "找不到这个订单。", en: "This order was not found." },
  final_4403: { zh: "此账号不能查看这个订单。", en: "This account may not watch this order." },
  // statuses: the title shown on top, and the step in the timeline
  s_created: { zh: "订单已创建", en: "Order created" },
  s_confirmed: { zh: "已下单，正在安排", en: "Booked" },
  s_dispatching: { zh: "正在为您匹配师傅", en: "Finding a worker" },
  s_offered: { zh: "等待师傅接单", en: "Waiting for a worker to accept" },
  s_assigned: { zh: "师傅已接单", en: "Worker assigned" },
  s_en_route: { zh: "师傅正在赶来", en: "On the way" },
  s_arrived: { zh: "师傅已到达", en: "Arrived" },
  s_in_service: { zh: "服务中", en: "In service" },
  s_completed: { zh: "服务已完成", en: "Completed" },
  s_cancelled: { zh: "订单已取消", en: "Cancelled" },
  s_failed: { zh: "暂时没有师傅可接单", en: "No worker could take it" },
};

const STEPS = ["confirmed", "dispatching", "assigned", "en_route", "arrived", "in_service", "completed"];
const MOVING = new Set(["assigned", "en_route"]);
const DONE = new Set(["completed", "cancelled", "failed"]);

const lang = pickLang();
const t = makeT(STR, lang);
document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
translateDom(t);

const $ = (id) => document.getElementById(id);
const orderId = Number(location.pathname.split("/").filter(Boolean).pop());
const share = new URLSearchParams(location.search).get("share");
const session = new Session("customer");

const S = {
  order: null, worker: null, position: null, eta: null, etaAtMs: 0, route: null, routeIndex: 0,
  staleAfterS: 30, timeline: [], timeZone: "Asia/Shanghai", cityId: null,
  chained: null, // the worker is still on the job before (docs/protocol.md): {departs_at, …}
};
let view = null; // {map, workerMarker, destMarker, routeLine}
let live = null;
let userMoved = false;

$("lang").textContent = lang === "en" ? "中文" : "EN";
$("lang").addEventListener("click", () => {
  const url = new URL(location.href);
  url.searchParams.set("lang", lang === "en" ? "zh" : "en");
  location.replace(url); // the share token stays in the URL
});

// ---- rendering --------------------------------------------------------------------------

function render() {
  const o = S.order;
  if (!o) return;
  $("status-title").textContent = t(`s_${o.status}`);
  $("status-title").dataset.status = o.status;
  const name = o.service_name ? (o.service_name[lang] || o.service_name.zh) : o.service_code;
  $("service-name").textContent = name;
  $("order-ref").textContent = t("order_ref", { id: o.id });
  renderWorker();
  renderCode();
  renderTimeline();
  renderMap();
  tick();
}

function renderWorker() {
  const w = S.worker;
  $("worker-card").hidden = !w || DONE.has(S.order.status);
  if (!w) return;
  $("avatar").textContent = (w.name || "师").slice(0, 1);
  $("worker-name").textContent = w.name;
  $("worker-rating").textContent = w.rating == null
    ? t("new_worker")
    : t("rating", { r: Number(w.rating).toFixed(2), n: w.rating_count });
  // A crew order: every member, the lead (whose position the map shows) first.
  const crew = S.crew || [];
  $("worker-crew").hidden = crew.length < 2;
  $("worker-crew").textContent = crew.length < 2 ? "" : t("crew", { n: crew.length }) + crew
    .map((m) => m.name + (m.lead ? t("lead") : "") + (m.arrived ? ` ✓${t("crew_here")}` : ""))
    .join("、");
}

function renderCode() {
  const arrived = S.order.status === "arrived";
  const code = S.order.start_code;
  $("code-card").hidden = !arrived;
  $("start-code").textContent = code || "";
  $("start-code").hidden = !code;
  $("code-card").classList.toggle("no-code", !code);
  const hint = $("code-card").querySelector(".muted");
  hint.textContent = code ? t("code_hint") : t("code_share");
}

function renderTimeline() {
  const status = S.order.status;
  const reached = new Map();
  for (const e of S.timeline) reached.set(e.status, e.at);
  const list = $("timeline");
  list.replaceChildren();
  let steps = STEPS.filter((s) => s !== "dispatching" || reached.has("dispatching"));
  if (status === "cancelled" || status === "failed") {
    steps = steps.filter((s) => reached.has(s)).concat([status]);
  }
  const currentIndex = steps.indexOf(status === "offered" ? "dispatching" : status);
  steps.forEach((step, i) => {
    const at = reached.get(step) || (step === "dispatching" ? reached.get("offered") : null);
    const cls = i < currentIndex ? "done" : i === currentIndex ? "current" : "todo";
    const label = step === "dispatching" && status === "offered" ? t("s_offered") : t(`s_${step}`);
    list.append(el("li", { class: cls, dataset: { status: step } },
      el("span", { class: "dot" }),
      el("span", { class: "label" }, label),
      el("span", { class: "at" }, at ? hhmm(Date.parse(at), S.timeZone) : "")));
  });
}

function workerIcon() {
  return L.divIcon({
    className: "worker-icon",
    html: `<div id="worker-marker" class="worker-dot"><span>${escapeHtml((S.worker?.name || "师").slice(0, 1))}</span></div>`,
    iconSize: [36, 36],
    iconAnchor: [18, 18],
  });
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function ensureMap() {
  if (view || !S.cityId) return;
  const { map } = basemap("map", S.cityId, { zoomControl: false });
  L.control.zoom({ position: "bottomright" }).addTo(map);
  map.setView([S.order.lat, S.order.lng], 16);
  map.on("dragstart", () => { userMoved = true; });
  const destMarker = L.marker([S.order.lat, S.order.lng], {
    icon: L.divIcon({ className: "dest-icon", html: '<div class="dest-pin"></div>', iconSize: [26, 34], iconAnchor: [13, 32] }),
    keyboard: false,
  }).addTo(map);
  const routeLine = L.polyline([], { color: "#2563eb", weight: 5, opacity: 0.85, lineJoin: "round" }).addTo(map);
  view = { map, destMarker, routeLine, workerMarker: null };
}

function renderMap() {
  ensureMap();
  if (!view) return;
  const showWorker = S.position && !DONE.has(S.order.status);
  if (!showWorker) {
    if (view.workerMarker) { view.workerMarker.remove(); view.workerMarker = null; }
    view.routeLine.setLatLngs([]);
    return;
  }
  const here = [S.position.lat, S.position.lng];
  if (!view.workerMarker) {
    view.workerMarker = L.marker(here, { icon: workerIcon(), zIndexOffset: 1000, keyboard: false }).addTo(view.map);
  } else {
    glide(view.workerMarker, here);
  }
  markTarget(here);
  drawRoute(here);
  follow(here);
}

function markTarget([lat, lng]) {
  const node = document.getElementById("worker-marker");
  if (node) { node.dataset.lat = lat.toFixed(6); node.dataset.lng = lng.toFixed(6); }
}

// Move the marker smoothly to its new place (about a second), not in jumps.
function glide(marker, to) {
  const from = marker.getLatLng();
  const start = performance.now();
  const step = (now) => {
    const k = Math.min(1, (now - start) / 900);
    marker.setLatLng([from.lat + (to[0] - from.lat) * k, from.lng + (to[1] - from.lng) * k]);
    if (k < 1 && marker._glide === step) requestAnimationFrame(step);
  };
  marker._glide = step;
  requestAnimationFrame(step);
}

// The route from the snapshot, trimmed to what is still ahead of the worker.
function drawRoute(here) {
  if (!MOVING.has(S.order.status)) { view.routeLine.setLatLngs([]); return; }
  const route = S.route && S.route.length ? S.route : [[S.order.lat, S.order.lng]];
  let best = S.routeIndex;
  let bestD = Infinity;
  for (let i = S.routeIndex; i < route.length; i++) {
    const d = (route[i][0] - here[0]) ** 2 + ((route[i][1] - here[1]) * 0.92) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  }
  S.routeIndex = best;
  view.routeLine.setLatLngs([here, ...route.slice(best + 1)]);
}

function follow(here) {
  if (userMoved) return;
  const ahead = MOVING.has(S.order.status) && S.route ? S.route.slice(S.routeIndex) : [];
  const bounds = L.latLngBounds([here, [S.order.lat, S.order.lng], ...ahead]);
  const inner = view.map.getBounds().pad(-0.15);
  if (!inner.contains(bounds)) view.map.fitBounds(bounds, { padding: [48, 48], maxZoom: 17 });
}

// Every second: the age of the position, the ETA countdown.
function tick() {
  if (!S.order) return;
  const badge = $("fresh-badge");
  const active = !DONE.has(S.order.status) && S.worker;
  if (active && S.position) {
    const age = (clock.now() - S.position.ts_ms) / 1000;
    const stale = age > S.staleAfterS;
    badge.hidden = false;
    badge.classList.toggle("stale", stale);
    badge.textContent = stale ? t("stale", { ago: ago(age, t) }) : t("updated", { ago: ago(age, t) });
  } else if (active && S.chained) {
    badge.hidden = true; // finishing a job elsewhere: their position there is not shown
  } else if (active) {
    badge.hidden = false;
    badge.classList.remove("stale");
    badge.textContent = t("waiting_position");
  } else {
    badge.hidden = true;
  }
  const card = $("eta-card");
  if (S.eta && MOVING.has(S.order.status)) {
    const gone = (Date.now() - S.etaAtMs) / 1000;
    // Chained: the worker has not left, so the wait never drops below the drive itself.
    const floor = S.chained && S.order.status === "assigned" ? S.chained.drive : { p50_s: 0, p90_s: 0 };
    const p50 = Math.max(floor.p50_s, S.eta.p50_s - gone);
    const p90 = Math.max(p50, floor.p90_s, S.eta.p90_s - gone);
    card.hidden = false;
    const a = Math.max(1, Math.ceil(p50 / 60));
    const b = Math.max(a, Math.ceil(p90 / 60));
    $("eta-range").textContent = p50 < 60 ? t("eta_soon") : t("eta_minutes", { a, b });
    $("eta-range").dataset.p50 = String(Math.round(S.eta.p50_s));
    $("eta-countdown").textContent = mmss(p50);
    const now = clock.now();
    const [from, to] = [hhmm(now + p50 * 1000, S.timeZone), hhmm(now + p90 * 1000, S.timeZone)];
    $("eta-clock").textContent = from === to ? t("eta_clock_one", { a: from }) : t("eta_clock", { a: from, b: to });
    renderChained(gone);
  } else {
    card.hidden = true;
  }
}
setInterval(tick, 1000);

// A chained order: when the worker leaves the job before (its expected end) and how far.
function renderChained(gone) {
  const c = S.chained && S.order.status === "assigned" ? S.chained : null;
  $("chained").hidden = !c;
  if (!c) return;
  const km = (c.distance_m / 1000).toFixed(1);
  const left = c.departs_in_s - gone;
  $("chained").dataset.departsInS = String(c.departs_in_s);
  $("chained").dataset.by = c.by;
  $("chained-departs").textContent = left < 60
    ? t("chained_soon", { km })
    : t("chained_departs", {
      t: hhmm(Date.parse(c.departs_at), S.timeZone), by: t(`chained_by_${c.by}`), km,
    });
}

// ---- messages ---------------------------------------------------------------------------

async function onSnapshot(msg) {
  clock.sync(msg.now_ms);
  const first = !S.order;
  S.order = msg.order;
  S.worker = msg.worker;
  S.crew = msg.crew || null;
  S.position = msg.position;
  S.eta = msg.eta;
  S.etaAtMs = Date.now();
  S.route = msg.route;
  S.chained = msg.chained || null;
  S.routeIndex = 0;
  S.staleAfterS = msg.stale_after_s;
  S.timeline = msg.timeline || [];
  if (first) {
    S.cityId = msg.order.city_id;
    try {
      const city = await fetch(`/v1/cities/${encodeURIComponent(S.cityId)}`).then((r) => r.json());
      if (city.timezone) S.timeZone = city.timezone;
    } catch { /* the default zone will do */ }
  }
  render();
}

function onPosition(msg) {
  if (!S.order || (S.worker && msg.worker_id !== S.worker.id)) return;
  if (S.position && msg.ts_ms < S.position.ts_ms) return; // an older fix: keep the newer
  S.position = { lat: msg.lat, lng: msg.lng, ts_ms: msg.ts_ms, accuracy_m: msg.accuracy_m };
  if (msg.eta) { S.eta = msg.eta; S.etaAtMs = Date.now(); }
  S.chained = null; // the worker's fixes reach this order: they left the job before
  renderMap();
  tick();
}

function onStatus(msg) {
  if (!S.order || msg.version <= S.order.version) return;
  const holderChanged = (msg.worker_id ?? null) !== (S.worker?.id ?? null);
  S.order = { ...S.order, status: msg.status, version: msg.version };
  S.timeline = [...S.timeline, { status: msg.status, action: msg.action, at: msg.at }];
  if (holderChanged || (msg.status === "assigned" && !S.worker)) {
    live.resync(); // a new worker: the snapshot brings their name, position and route
  }
  if (DONE.has(msg.status)) { S.eta = null; }
  if (msg.status !== "assigned") S.chained = null;
  render();
}

// The job before has a new expected end (the worker's estimate): a new wait and ETA.
function onChained(msg) {
  if (!S.order || S.order.status !== "assigned" || msg.worker_id !== S.worker?.id) return;
  S.chained = msg.chained;
  S.eta = msg.eta;
  S.etaAtMs = Date.now();
  tick();
}

function onMessage(msg) {
  if (msg.type === "snapshot") onSnapshot(msg);
  else if (msg.type === "position") onPosition(msg);
  else if (msg.type === "status") onStatus(msg);
  else if (msg.type === "chained") onChained(msg);
}

function onState(state, info) {
  const conn = $("conn");
  if (state === "live") { conn.hidden = true; return; }
  conn.hidden = false;
  conn.textContent = state === "waiting"
    ? t("conn_waiting", { s: Math.max(1, Math.round(info.delayMs / 1000)) })
    : t("conn_connecting");
}

function showFinal(code) {
  $("final").hidden = false;
  $("final-text").textContent = t(`final_${code}`) || String(code);
  $("conn").hidden = true;
}

// ---- connecting -------------------------------------------------------------------------

async function socketUrl(lastClose) {
  const path = `/v1/ws/orders/${orderId}`;
  if (share) {
    if (lastClose === 4401) { showFinal(4401); return null; }
    return wsUrl(`${path}?share=${encodeURIComponent(share)}`);
  }
  if (lastClose === 4401 && !(await session.refresh())) { showLogin(); return null; }
  const token = await session.access();
  if (!token) { showLogin(); return null; }
  return wsUrl(`${path}?access_token=${encodeURIComponent(token)}`);
}

function start() {
  live = new LiveSocket({
    url: socketUrl,
    onMessage,
    onState,
    onFinal: (code) => showFinal(code),
  });
  live.resync = () => {
    if (live.ws) { const ws = live.ws; live.ws = null; ws.close(1000); }
    live.attempt = 0;
    live.connect();
  };
  live.connect();
}

function showLogin() {
  $("login").hidden = false;
  $("conn").hidden = true;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await session.login($("login-phone").value.trim(), $("login-password").value);
    $("login").hidden = true;
    if (live) live.stop();
    start();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

if (!Number.isSafeInteger(orderId) || orderId < 1) showFinal(4404);
else if (!share && !session.get()) showLogin();
else start();
