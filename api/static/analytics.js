// The operators' analytics page: /admin/analytics?city=<id>&from=YYYY-MM-DD&to=YYYY-MM-DD.
// Figures from /v1/analytics/* (docs/analytics.md); the map is the city's own basemap
// (common.js) with the demand heatmap on top. Plain ES module, no build step.

/* global L */
import { ApiError, Session, api, basemap, el, makeT, pickLang, translateDom } from "/static/common.js";

const STR = {
  title: { zh: "运营数据", en: "Analytics" },
  from: { zh: "从", en: "From" },
  to: { zh: "至", en: "To" },
  all_categories: { zh: "全部品类", en: "All categories" },
  apply: { zh: "查询", en: "Apply" },
  logout: { zh: "退出", en: "Sign out" },
  trend: { zh: "趋势（按日）", en: "Trend (by day)" },
  heatmap: { zh: "需求热力图", en: "Demand heatmap" },
  hex: { zh: "六边形", en: "Hexagons" },
  district: { zh: "区", en: "Districts" },
  heat_max: { zh: "最高 {n} 单", en: "max {n} orders" },
  by_day: { zh: "按日", en: "By day" },
  by_hour: { zh: "按小时", en: "By hour" },
  by_district: { zh: "按区", en: "By district" },
  by_category: { zh: "按品类", en: "By category" },
  by_city: { zh: "按城市", en: "By city" },
  workers: { zh: "师傅", en: "Workers" },
  export_csv: { zh: "导出 CSV", en: "Export CSV" },
  export_xlsx: { zh: "导出 Excel", en: "Export Excel" },
  login_title: { zh: "运营登录", en: "Operator sign-in" },
  phone: { zh: "手机号", en: "Phone" },
  password: { zh: "密码", en: "Password" },
  login: { zh: "登录", en: "Sign in" },
  not_operator: { zh: "此账号没有数据分析权限", en: "This account may not read analytics" },
  refreshed: { zh: "数据更新于 {t}", en: "Data as of {t}" },
  never: { zh: "汇总尚未生成", en: "Rollups not built yet" },
  k_orders: { zh: "订单数", en: "Orders" },
  k_gmv: { zh: "GMV", en: "GMV" },
  k_fulfilment: { zh: "履约率", en: "Fulfilment" },
  k_assign: { zh: "平均派单时长", en: "Time to assign" },
  k_wait: { zh: "平均等待", en: "Customer wait" },
  k_cancel: { zh: "取消率", en: "Cancellations" },
  k_stars: { zh: "平均评分", en: "Satisfaction" },
  k_new: { zh: "新客", en: "New customers" },
  k_repeat: { zh: "复购率", en: "Repeat rate" },
  k_new_repeat: { zh: "新增复购客户", en: "New repeat customers" },
  k_util: { zh: "师傅利用率", en: "Worker utilization" },
  k_income: { zh: "师傅收入", en: "Worker income" },
  k_subsidy: { zh: "券补贴", en: "Coupon subsidy" },
  k_coupon_orders: { zh: "用券订单", en: "Coupon orders" },
  k_coupon_return: { zh: "券投入产出比", en: "Coupon return" },
  // column titles (the same as the exports')
  c_day: { zh: "日期", en: "Day" },
  c_hour: { zh: "小时", en: "Hour" },
  c_district: { zh: "区", en: "District" },
  c_category: { zh: "品类", en: "Category" },
  c_city: { zh: "城市", en: "City" },
  c_orders: { zh: "订单数", en: "Orders" },
  c_completed: { zh: "完成", en: "Completed" },
  c_cancelled: { zh: "取消", en: "Cancelled" },
  c_failed: { zh: "失败", en: "Failed" },
  c_gmv_fen: { zh: "GMV（元）", en: "GMV (¥)" },
  c_fulfilment_rate: { zh: "履约率", en: "Fulfilment" },
  c_cancel_rate: { zh: "取消率", en: "Cancel rate" },
  c_avg_assign_s: { zh: "派单时长", en: "To assign" },
  c_avg_wait_s: { zh: "等待", en: "Wait" },
  c_ratings: { zh: "评价数", en: "Ratings" },
  c_avg_stars: { zh: "评分", en: "Stars" },
  c_new_customers: { zh: "新客", en: "New" },
  c_repeat_orders: { zh: "复购单", en: "Repeat orders" },
  c_repeat_rate: { zh: "复购率", en: "Repeat rate" },
  c_new_repeat_customers: { zh: "新增复购", en: "New repeaters" },
  c_avg_order_fen: { zh: "客单价（元）", en: "Avg order (¥)" },
  c_coupon_orders: { zh: "用券订单", en: "Coupon orders" },
  c_coupon_gmv_fen: { zh: "用券GMV（元）", en: "Coupon GMV (¥)" },
  c_subsidy_fen: { zh: "券补贴（元）", en: "Coupon subsidy (¥)" },
  c_points_redeemed_fen: { zh: "积分抵扣（元）", en: "Points spent (¥)" },
  c_coupon_return: { zh: "券投入产出比", en: "Coupon return" },
  c_worker_id: { zh: "师傅 ID", en: "Worker id" },
  c_name: { zh: "姓名", en: "Name" },
  c_jobs: { zh: "完成单数", en: "Jobs" },
  c_busy_s: { zh: "忙碌（时）", en: "Busy (h)" },
  c_available_s: { zh: "可接单（时）", en: "Available (h)" },
  c_utilization: { zh: "利用率", en: "Utilization" },
  c_income_fen: { zh: "收入（元）", en: "Income (¥)" },
};

const lang = pickLang();
const t = makeT(STR, lang);
const $ = (id) => document.getElementById(id);
const session = new Session("admin");
const params = new URLSearchParams(location.search);
const state = { city: params.get("city") || "", tab: "day", level: "hex", map: null, heat: null, mapCity: null, trendRows: null };

// ---- formatting -----------------------------------------------------------------------

const nf = new Intl.NumberFormat(lang === "zh" ? "zh-CN" : "en-GB");
const yuan = (fen) => (fen === null || fen === undefined ? "–" : `¥${nf.format(Math.round(fen / 100))}`);
const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
const secs = (s) => {
  if (s === null || s === undefined) return "–";
  if (s < 120) return `${Math.round(s)} ${lang === "zh" ? "秒" : "s"}`;
  return `${(s / 60).toFixed(1)} ${lang === "zh" ? "分钟" : "min"}`;
};
const hours = (s) => (s === null || s === undefined ? "–" : nf.format(Math.round(s / 3600)));
const num = (n) => (n === null || n === undefined ? "–" : nf.format(n));
const FORMAT = {
  gmv_fen: yuan, avg_order_fen: yuan, income_fen: yuan,
  coupon_gmv_fen: yuan, subsidy_fen: yuan, points_redeemed_fen: yuan,
  coupon_return: (x) => (x === null || x === undefined ? "–" : `${x.toFixed(1)}×`),
  fulfilment_rate: pct, cancel_rate: pct, repeat_rate: pct, utilization: pct,
  avg_assign_s: secs, avg_wait_s: secs, busy_s: hours, available_s: hours,
  avg_stars: (x) => (x === null || x === undefined ? "–" : x.toFixed(2)),
};
const cell = (column, value) => (FORMAT[column] || ((v) => (typeof v === "number" && column !== "hour" && column !== "worker_id" ? num(v) : v ?? "–")))(value);

// ---- dates ----------------------------------------------------------------------------

const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
function defaultRange() {
  const to = new Date();
  const from = new Date(to);
  from.setDate(from.getDate() - 29);
  return [iso(from), iso(to)];
}

function query(extra = {}) {
  const q = new URLSearchParams({ from: $("from").value, to: $("to").value, ...extra });
  if (state.city) q.set("city", state.city);
  if ($("category").value && !("nocategory" in extra)) q.set("category", $("category").value);
  q.delete("nocategory");
  return q;
}

function showError(e) {
  const field = e instanceof ApiError && e.field ? ` (${e.field})` : "";
  $("error").textContent = `${e.message}${field}`;
}

// ---- KPIs -----------------------------------------------------------------------------

function renderKpis(s) {
  const m = s.metrics;
  const cards = [
    ["orders", "k_orders", num(m.orders)],
    ["gmv", "k_gmv", yuan(m.gmv_fen)],
    ["fulfilment", "k_fulfilment", pct(m.fulfilment_rate)],
    ["assign", "k_assign", secs(m.avg_assign_s)],
    ["wait", "k_wait", secs(m.avg_wait_s)],
    ["cancel", "k_cancel", `${pct(m.cancel_rate)} · ${num(m.cancelled)}`],
    ["stars", "k_stars", FORMAT.avg_stars(m.avg_stars)],
    ["new", "k_new", num(m.new_customers)],
    ["repeat", "k_repeat", pct(m.repeat_rate)],
    ["new-repeat", "k_new_repeat", num(m.new_repeat_customers)],
    ["util", "k_util", pct(s.workers.utilization)],
    ["income", "k_income", yuan(s.workers.income_fen)],
    ["subsidy", "k_subsidy", yuan(m.subsidy_fen)],
    ["coupon-orders", "k_coupon_orders", num(m.coupon_orders)],
    ["coupon-return", "k_coupon_return", FORMAT.coupon_return(m.coupon_return)],
  ];
  $("kpis").replaceChildren(...cards.map(([id, label, value]) =>
    el("div", { class: "kpi", id: `kpi-${id}` }, el("div", { class: "label" }, t(label)), el("div", { class: "value" }, value))));
  $("refreshed").textContent = s.refreshed
    ? t("refreshed", { t: new Date(s.refreshed.refreshed_at).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") })
    : t("never");
}

// ---- trend ----------------------------------------------------------------------------

const TREND_METRICS = ["orders", "gmv_fen", "fulfilment_rate", "avg_assign_s", "avg_wait_s", "cancel_rate", "avg_stars", "new_customers", "repeat_rate", "subsidy_fen", "coupon_orders"];

function renderTrend() {
  const table = state.trendRows;
  const svg = $("trend");
  if (!table) return;
  const metric = $("trend-metric").value || "orders";
  const k = table.columns.indexOf(metric);
  const pts = table.rows.map((r) => r[k]);
  const values = pts.filter((v) => v !== null);
  const max = Math.max(1e-9, ...values);
  const W = 600, H = 200, top = 14, bottom = 18;
  const x = (i) => (pts.length <= 1 ? W / 2 : (i / (pts.length - 1)) * W);
  const y = (v) => top + (1 - v / max) * (H - top - bottom);
  let d = "";
  pts.forEach((v, i) => { if (v !== null) d += `${d ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`; });
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attrs) => { const n = document.createElementNS(ns, tag); for (const [a, b] of Object.entries(attrs)) n.setAttribute(a, b); return n; };
  const kids = [make("line", { class: "grid", x1: 0, x2: W, y1: y(max), y2: y(max) }), make("line", { class: "grid", x1: 0, x2: W, y1: y(0), y2: y(0) })];
  if (d) {
    kids.push(make("path", { class: "area", d: `${d}L${x(pts.length - 1)},${y(0)}L${x(0)},${y(0)}Z` }));
    kids.push(make("path", { class: "line", d, id: "trend-line" }));
  }
  const label = make("text", { x: 4, y: 11 });
  label.textContent = `${t(`c_${metric}`)} · max ${cell(metric, max)}`;
  const first = make("text", { x: 2, y: H - 4 });
  first.textContent = table.rows[0]?.[0] ?? "";
  const last = make("text", { x: W - 2, y: H - 4, "text-anchor": "end" });
  last.textContent = table.rows.at(-1)?.[0] ?? "";
  svg.replaceChildren(...kids, label, first, last);
}

// ---- map ------------------------------------------------------------------------------

function heatColour(share) {
  // light yellow → orange → deep red
  const stops = [[255, 237, 160], [254, 178, 76], [240, 59, 32], [128, 0, 38]];
  const p = Math.max(0, Math.min(1, share)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(p));
  const f = p - i;
  const c = stops[i].map((a, j) => Math.round(a + (stops[i + 1][j] - a) * f));
  return `rgb(${c.join(",")})`;
}

async function renderHeat() {
  if (!state.city) return;
  if (state.mapCity !== state.city) {
    if (state.map) state.map.remove();
    const { map } = basemap("map", state.city, { zoomControl: true });
    state.map = map;
    state.mapCity = state.city;
    state.heat = null;
    state.fitted = false;
    const city = state.cities.find((c) => c.id === state.city);
    if (city) map.fitBounds([[city.bbox[0], city.bbox[1]], [city.bbox[2], city.bbox[3]]]);
    map.createPane("heat").style.zIndex = 300;
  }
  const data = await api(session, "GET", `/v1/analytics/heatmap?${query({ level: state.level, nocategory: "" })}`);
  if (state.heat) state.heat.remove();
  state.heat = L.geoJSON(data, {
    pane: "heat",
    style: (f) => ({ color: "#7a0019", weight: 0.6, fillColor: heatColour(Math.sqrt(f.properties.orders / Math.max(1, data.max))), fillOpacity: 0.55 }),
    onEachFeature: (f, layer) => layer.bindTooltip(`${f.properties.district || f.properties.h3}: ${num(f.properties.orders)}`),
  }).addTo(state.map);
  if (!state.fitted && data.features.length) {
    state.map.fitBounds(state.heat.getBounds(), { padding: [16, 16], maxZoom: 15 });
    state.fitted = true;
  }
  $("heat-max").textContent = t("heat_max", { n: num(data.max) });
}

// ---- tables ---------------------------------------------------------------------------

function tablePath(format) {
  if (state.tab === "workers") {
    const q = query({ format, lang });
    q.delete("category");
    return `/v1/analytics/workers?${q}`;
  }
  const q = query({ by: state.tab, format, lang });
  if (state.tab === "city") q.delete("city");
  return `/v1/analytics/breakdown?${q}`;
}

async function renderTable() {
  const data = state.tab === "day" && state.trendRows ? state.trendRows : await api(session, "GET", tablePath("json"));
  const head = el("tr", {}, data.columns.map((c, i) =>
    el("th", { class: typeof data.rows[0]?.[i] === "string" ? "text" : null }, t(`c_${c}`))));
  const label = (column, v) => (column === "category" ? state.categoryNames?.[v] || v : cell(column, v));
  const body = data.rows.map((r) => el("tr", {}, r.map((v, i) =>
    el("td", { class: typeof v === "string" ? "text" : null }, label(data.columns[i], v)))));
  $("table").replaceChildren(el("thead", {}, head), el("tbody", {}, body));
  $("table").dataset.tab = state.tab;
  $("table").dataset.rows = String(data.rows.length);
}

async function download(format) {
  $("error").textContent = "";
  try {
    const token = await session.access();
    const r = await fetch(tablePath(format), { headers: { authorization: `Bearer ${token}` } });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new ApiError(r.status, body.error || { message: r.statusText });
    }
    const blob = await r.blob();
    const name = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "")?.[1] || `analytics.${format}`;
    const a = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  } catch (e) { showError(e); }
}

// ---- loading --------------------------------------------------------------------------

async function load() {
  $("error").textContent = "";
  const url = new URL(location.href);
  for (const [k, v] of [["city", state.city], ["from", $("from").value], ["to", $("to").value]]) if (v) url.searchParams.set(k, v);
  history.replaceState(null, "", url);
  try {
    const [summary, trend] = await Promise.all([
      api(session, "GET", `/v1/analytics/summary?${query()}`),
      api(session, "GET", `/v1/analytics/breakdown?${query({ by: "day" })}`),
    ]);
    renderKpis(summary);
    state.trendRows = trend;
    renderTrend();
    await Promise.all([renderTable(), renderHeat()]);
    document.body.dataset.loaded = "1";
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { showLogin(); return; }
    showError(e);
  }
}

// Where the signed-in account may read analytics (GET /v1/me/permissions), or null.
async function analyticsScopes() {
  const mine = await api(session, "GET", "/v1/me/permissions");
  const held = mine.permissions.find((h) => h.permission === "analytics.read");
  const scopes = (held?.scopes || []).filter((s) => s !== "own");
  return scopes.length ? scopes : null;
}

async function start() {
  const who = session.get()?.user;
  $("who").textContent = who ? who.name : "";
  state.cities = await api(null, "GET", "/v1/cities");
  const scopes = await analyticsScopes();
  if (scopes && !scopes.includes("platform")) {  // a city operator: their cities only
    state.cities = state.cities.filter((c) => scopes.includes(`city:${c.id}`));
    if (state.city && !scopes.includes(`city:${state.city}`)) state.city = "";
  }
  if (!state.city && state.cities.length) state.city = state.cities[0].id;
  $("city").replaceChildren(...state.cities.map((c) => el("option", { value: c.id, selected: c.id === state.city }, lang === "zh" ? c.name_zh : c.name_en)));
  const categories = await api(null, "GET", "/v1/categories");
  state.categoryNames = Object.fromEntries(categories.map((c) => [c.code, lang === "zh" ? c.name_zh : c.name_en]));
  $("category").append(...categories.map((c) => el("option", { value: c.code }, state.categoryNames[c.code])));
  await load();
}

function showLogin() {
  $("login").hidden = false;
  $("login-phone").focus();
}

// ---- wiring ---------------------------------------------------------------------------

translateDom(t);
document.title = `Doorstep ${t("title")}`;
document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
$("lang").textContent = lang === "zh" ? "EN" : "中文";
$("lang").addEventListener("click", () => {
  const url = new URL(location.href);
  url.searchParams.set("lang", lang === "zh" ? "en" : "zh");
  location.href = url.toString();
});
$("logout").addEventListener("click", async () => { await session.logout(); location.reload(); });
const [from, to] = defaultRange();
$("from").value = params.get("from") || from;
$("to").value = params.get("to") || to;
$("trend-metric").replaceChildren(...TREND_METRICS.map((m) => el("option", { value: m }, t(`c_${m}`))));
$("trend-metric").addEventListener("change", renderTrend);
$("apply").addEventListener("click", load);
$("city").addEventListener("change", () => { state.city = $("city").value; load(); });
$("category").addEventListener("change", load);
for (const b of document.querySelectorAll("#tabs button")) {
  b.addEventListener("click", async () => {
    state.tab = b.dataset.tab;
    for (const o of document.querySelectorAll("#tabs button")) o.classList.toggle("on", o === b);
    try { await renderTable(); } catch (e) { showError(e); }
  });
}
for (const b of document.querySelectorAll("#heat-level button")) {
  b.addEventListener("click", async () => {
    state.level = b.dataset.level;
    for (const o of document.querySelectorAll("#heat-level button")) o.classList.toggle("on", o === b);
    try { await renderHeat(); } catch (e) { showError(e); }
  });
}
$("export-csv").addEventListener("click", () => download("csv"));
$("export-xlsx").addEventListener("click", () => download("xlsx"));
$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const user = await session.login($("login-phone").value.trim(), $("login-password").value);
    if (!(await analyticsScopes())) {
      await session.logout();
      $("login-error").textContent = t("not_operator");
      return;
    }
    $("login").hidden = true;
    await start();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

if (session.get()) start().catch(showError);
else showLogin();
