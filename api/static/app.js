// The customer's app (/app): find a service, book it, follow it, rate it. Hash routes:
// #/ home and search, #/service/{code}, #/book/{code}, #/addresses, #/orders,
// #/order/{id}, #/worker/{id}, #/inbox, #/me.

/* global L */
import {
  ApiError, Client, SOS_STRINGS, boot, contactsForm, el, localTime, loginView, money, named, showError, sosButton, stars, submitting,
  toast, values,
} from "/static/client.js";
import { basemap } from "/static/common.js";
import { APP_AFTERSALES_STRINGS, aftersalesCard, ticketView } from "/static/app-aftersales.js";
import { APP_GROWTH_STRINGS, checkoutBox, couponsView, membershipView } from "/static/app-growth.js";
import { cancelDeletionForm, privacyCard } from "/static/privacy.js";

const STRINGS = {
  ...SOS_STRINGS,
  ...APP_AFTERSALES_STRINGS,
  ...APP_GROWTH_STRINGS,
  app_title: { zh: "到家服务", en: "Doorstep" },
  tab_home: { zh: "首页", en: "Home" },
  tab_orders: { zh: "订单", en: "Orders" },
  tab_addresses: { zh: "地址", en: "Addresses" },
  tab_inbox: { zh: "消息", en: "Inbox" },
  tab_me: { zh: "我的", en: "Me" },
  search_ph: { zh: "搜索服务，如“保洁”", en: "Search, e.g. cleaning" },
  search: { zh: "搜索", en: "Search" },
  all: { zh: "全部", en: "All" },
  min_price: { zh: "最低价 (元)", en: "Min price (¥)" },
  max_price: { zh: "最高价 (元)", en: "Max price (¥)" },
  city: { zh: "城市", en: "City" },
  any_city: { zh: "不限城市", en: "Any city" },
  near_me: { zh: "我附近", en: "Near me" },
  recommended: { zh: "推荐服务", en: "Recommended" },
  results: { zh: "搜索结果 ({n})", en: "Results ({n})" },
  no_results: { zh: "没有符合条件的服务", en: "No service matches" },
  minutes: { zh: "{n} 分钟", en: "{n} min" },
  checklist: { zh: "服务标准", en: "What is included" },
  reviews: { zh: "用户评价", en: "Reviews" },
  no_reviews: { zh: "暂无评价", en: "No reviews yet" },
  book: { zh: "立即预约", en: "Book" },
  book_title: { zh: "预约：{name}", en: "Book: {name}" },
  address: { zh: "服务地址", en: "Address" },
  add_address: { zh: "新增地址", en: "Add an address" },
  when: { zh: "上门时间", en: "When" },
  now: { zh: "尽快上门", en: "As soon as possible" },
  slot: { zh: "预约时段", en: "A time slot" },
  date: { zh: "日期", en: "Date" },
  no_slots: { zh: "这一天没有可预约的时段", en: "No free slots that day" },
  notes: { zh: "备注", en: "Notes" },
  submit_booking: { zh: "提交订单", en: "Place the order" },
  insure: { zh: "加购服务保险 {premium}（最高赔付 {cover}）", en: "Add service insurance for {premium} (covers up to {cover})" },
  booked: { zh: "下单成功", en: "Booked" },
  login_title: { zh: "登录", en: "Sign in" },
  phone: { zh: "手机号", en: "Phone" },
  password: { zh: "密码", en: "Password" },
  login: { zh: "登录", en: "Sign in" },
  logout: { zh: "退出登录", en: "Sign out" },
  register: { zh: "注册新账号", en: "Create an account" },
  name: { zh: "称呼", en: "Name" },
  registered: { zh: "已提交注册，请登录", en: "Registered: now sign in" },
  wrong_role: { zh: "请使用顾客账号登录", en: "Sign in with a customer account" },
  network_error: { zh: "网络错误，请重试", en: "Network error, try again" },
  label: { zh: "标签（家、公司）", en: "Label (home, office)" },
  detail: { zh: "门牌号", en: "Door, floor, flat" },
  contact_name: { zh: "联系人", en: "Contact" },
  pin_hint: { zh: "点击地图放置定位针", en: "Tap the map to place the pin" },
  use_position: { zh: "使用当前位置", en: "Use my position" },
  save: { zh: "保存", en: "Save" },
  delete: { zh: "删除", en: "Delete" },
  no_addresses: { zh: "还没有地址", en: "No addresses yet" },
  no_orders: { zh: "还没有订单", en: "No orders yet" },
  order_n: { zh: "订单 #{id}", en: "Order #{id}" },
  track: { zh: "实时跟踪", en: "Track live" },
  contact_worker: { zh: "联系师傅", en: "Call the worker" },
  contact_hint: { zh: "隐私号，服务结束后失效", en: "A masked number, valid until the job ends" },
  cancel: { zh: "取消订单", en: "Cancel the order" },
  cancelled_ok: { zh: "已取消", en: "Cancelled" },
  start_code: { zh: "核销码（师傅到达后告知）", en: "Start code (tell the worker on arrival)" },
  worker: { zh: "服务师傅", en: "Your worker" },
  rate: { zh: "评价本次服务", en: "Rate this job" },
  rate_text: { zh: "说说服务体验", en: "How was it?" },
  send_rating: { zh: "提交评价", en: "Send" },
  rated: { zh: "感谢评价！", en: "Thanks for rating!" },
  dim_quality: { zh: "服务质量", en: "Quality" },
  dim_attitude: { zh: "服务态度", en: "Attitude" },
  dim_punctuality: { zh: "准时守约", en: "Punctuality" },
  review_tags: { zh: "印象标签", en: "Tags" },
  review_photos: { zh: "照片", en: "Photos" },
  photos_after_login: { zh: "{n} 张照片，登录后查看", en: "{n} photo(s): sign in to see them" },
  add_photo: { zh: "添加照片", en: "Add a photo" },
  edit_rating: { zh: "修改评价", en: "Edit" },
  edit_until: { zh: "{t} 前可修改", en: "Editable until {t}" },
  worker_reply: { zh: "师傅回复", en: "Worker's reply" },
  hidden_review: { zh: "此评价已被隐藏：{r}", en: "This review is hidden: {r}" },
  years_exp: { zh: "从业 {n} 年", en: "{n} years in the trade" },
  badges: { zh: "认证资质", en: "Certified" },
  summary_n: { zh: "{r} 分 · {n} 条评价", en: "{r} · {n} reviews" },
  jobs_done: { zh: "已完成 {n} 单", en: "{n} jobs done" },
  new_worker: { zh: "新师傅", en: "New worker" },
  rating_n: { zh: "{r} 分 · {n} 条评价", en: "{r} · {n} ratings" },
  inbox_empty: { zh: "暂无消息", en: "No messages" },
  s_created: { zh: "已创建", en: "Created" }, s_confirmed: { zh: "已确认", en: "Confirmed" },
  s_dispatching: { zh: "派单中", en: "Finding a worker" }, s_offered: { zh: "派单中", en: "Finding a worker" },
  s_assigned: { zh: "已接单", en: "Worker assigned" }, s_en_route: { zh: "师傅在路上", en: "On the way" },
  s_arrived: { zh: "师傅已到达", en: "Arrived" }, s_in_service: { zh: "服务中", en: "In service" },
  s_completed: { zh: "已完成", en: "Completed" }, s_cancelled: { zh: "已取消", en: "Cancelled" },
  s_failed: { zh: "未能派单", en: "Not served" },
  s_awaiting_payment: { zh: "待支付", en: "Awaiting payment" },
  payment: { zh: "支付与明细", en: "Payment and receipt" },
  due: { zh: "待支付 {amount}", en: "To pay: {amount}" },
  pay_wechat: { zh: "微信支付", en: "Pay with WeChat" },
  pay_code: { zh: "请用微信扫码支付", en: "Scan with WeChat to pay" },
  pay_alipay: { zh: "支付宝", en: "Pay with Alipay" },
  pay_code_alipay: { zh: "请用支付宝扫码支付", en: "Scan with Alipay to pay" },
  pay_open: { zh: "打开支付页", en: "Open the payment page" },
  pay_check: { zh: "我已支付，刷新", en: "I have paid: refresh" },
  paid_total: { zh: "已支付 {amount}", en: "Paid {amount}" },
  refunded_total: { zh: "已退款 {amount}", en: "Refunded {amount}" },
  refund_line: { zh: "退款 {amount} · {status}", en: "Refund {amount} · {status}" },
  r_requested: { zh: "处理中", en: "processing" }, r_processing: { zh: "处理中", en: "processing" },
  r_succeeded: { zh: "已到账", en: "refunded" }, r_closed: { zh: "退款关闭", en: "closed" },
  r_abnormal: { zh: "异常", en: "needs attention" },
  extra_quote: { zh: "师傅报价", en: "The worker's quote" },
  extra_addon: { zh: "加项", en: "Add-on items" },
  approve: { zh: "同意", en: "Approve" },
  decline: { zh: "拒绝", en: "Decline" },
  x_approved: { zh: "已同意", en: "approved" }, x_declined: { zh: "已拒绝", en: "declined" },
  x_proposed: { zh: "待确认", en: "to decide" },
};

const { lang, t } = boot(STRINGS);
const client = new Client("customer"); // the same session as /track: its link needs no new sign-in
const view = document.getElementById("view");
const cache = { categories: null, cities: null, services: new Map() };
const filters = { q: "", category: "", min: "", max: "", city: "", near: null };

const $ = (sel, root = view) => root.querySelector(sel);
const svcName = (s) => named(lang, s);

async function categories() { return (cache.categories ??= await client.get("/v1/categories")); }
async function cities() { return (cache.cities ??= (await client.get("/v1/cities")).filter((c) => c.active)); }
async function serviceOf(code) {
  if (!cache.services.has(code)) cache.services.set(code, await client.get(`/v1/services/${encodeURIComponent(code)}`));
  return cache.services.get(code);
}

// ---- routing ------------------------------------------------------------------------------

const ROUTES = [
  [/^#?\/?$/, home, "home"],
  [/^#\/service\/([^/]+)$/, serviceView, "home"],
  [/^#\/book\/([^/]+)$/, bookView, "home", true],
  [/^#\/addresses(?:\?.*)?$/, addressesView, "addresses", true],
  [/^#\/orders$/, ordersView, "orders", true],
  [/^#\/order\/(\d+)$/, orderView, "orders", true],
  [/^#\/aftersales\/(\d+)$/, aftersalesView, "orders", true],
  [/^#\/worker\/(\d+)$/, workerView, "home"],
  [/^#\/inbox$/, inboxView, "inbox", true],
  [/^#\/me$/, meView, "me"],
  [/^#\/coupons$/, growthView, "me", true],
  [/^#\/membership$/, memberView, "me", true],
];

async function route() {
  const hash = location.hash || "#/";
  for (const [re, fn, tab, needsLogin] of ROUTES) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("on", a.dataset.tab === tab);
    document.body.dataset.view = fn.name;
    if (needsLogin && !client.signedIn()) {
      loginView(view, client, t, ["customer"], () => { afterLogin(); route(); });
      return;
    }
    view.replaceChildren(el("p", { class: "muted" }, "…"));
    try {
      await fn(...m.slice(1));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) { client.session.clear(); route(); return; }
      view.replaceChildren(el("p", { class: "form-error" }, e.message || String(e)));
    }
    document.body.dataset.ready = fn.name;
    return;
  }
  location.hash = "#/";
}

async function afterLogin() {
  // The inbox is another capability's route: show its tab only where the server has it.
  const tab = document.querySelector('#tabs a[data-tab="inbox"]');
  tab.hidden = !(client.signedIn() && (await client.has("/v1/me/inbox")));
}

// ---- home and search ----------------------------------------------------------------------

function serviceCard(s) {
  return el("a", { class: "card svc", href: `#/service/${s.code}`, "data-service": s.code },
    el("div", { class: "name" }, svcName(s)),
    el("div", { class: "muted" }, t("minutes", { n: s.duration_min })),
    el("div", { class: "price" }, money(s.price_minor, s.currency)));
}

async function home() {
  const [cats, cityList] = await Promise.all([categories(), cities()]);
  const form = el("form", { id: "search-form", class: "card", novalidate: true },
    el("div", { class: "row" },
      el("input", { name: "q", id: "q", type: "search", value: filters.q, placeholder: t("search_ph"), class: "grow" }),
      el("button", { type: "submit" }, t("search"))),
    el("div", { class: "grid2" },
      el("label", {}, t("min_price"), el("input", { name: "min_price", id: "min-price", inputmode: "numeric", value: filters.min })),
      el("label", {}, t("max_price"), el("input", { name: "max_price", id: "max-price", inputmode: "numeric", value: filters.max }))),
    el("div", { class: "row" },
      el("select", { name: "city_id", id: "city", class: "grow" },
        el("option", { value: "" }, t("any_city")),
        cityList.map((c) => el("option", { value: c.id, selected: c.id === filters.city }, named(lang, c)))),
      el("button", { type: "button", class: `chip ${filters.near ? "on" : ""}`, id: "near-me", onclick: nearMe }, t("near_me"))),
    el("p", { class: "form-error" }));
  const chips = el("div", { class: "chips", id: "categories" },
    el("button", { type: "button", class: `chip ${filters.category ? "" : "on"}`, "data-category": "", onclick: () => pick("") }, t("all")),
    cats.map((c) => el("button", { type: "button", class: `chip ${filters.category === c.code ? "on" : ""}`, "data-category": c.code, onclick: () => pick(c.code) }, named(lang, c))));
  const results = el("section", { id: "results" });
  view.replaceChildren(form, chips, results);

  function pick(code) { filters.category = code; run(); for (const b of chips.children) b.classList.toggle("on", b.dataset.category === code); }
  async function nearMe() {
    if (filters.near) { filters.near = null; $("#near-me").classList.remove("on"); run(); return; }
    navigator.geolocation.getCurrentPosition((p) => {
      filters.near = { lat: p.coords.latitude, lng: p.coords.longitude };
      $("#near-me").classList.add("on");
      run();
    }, () => toast(t("network_error"), "error"));
  }
  async function run() {
    const v = values(form);
    Object.assign(filters, { q: v.q.trim(), min: v.min_price.trim(), max: v.max_price.trim(), city: v.city_id });
    const yuan = (x) => (x === "" ? undefined : (Number.isFinite(Number(x)) ? Math.round(Number(x) * 100) : x));
    const query = {
      q: filters.q, category: filters.category, min_price: yuan(filters.min), max_price: yuan(filters.max),
      city_id: filters.near ? undefined : filters.city,
      lat: filters.near?.lat, lng: filters.near?.lng,
    };
    const searching = Object.entries(query).some(([k, v]) => v !== undefined && v !== "" && k !== "category") || filters.category;
    const list = await submitting(form, t, () => client.get("/v1/services", query));
    if (!list) return;
    for (const s of list) cache.services.set(s.code, s);
    const shown = searching ? list : list.slice(0, 6);
    results.replaceChildren(
      el("h3", {}, searching ? t("results", { n: list.length }) : t("recommended")),
      shown.length ? el("div", { class: "grid2" }, shown.map(serviceCard)) : el("p", { class: "muted", id: "no-results" }, t("no_results")));
    results.dataset.count = String(list.length);
  }
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  await run();
}

// ---- a service, a worker -------------------------------------------------------------------

const DIMS = ["quality", "attitude", "punctuality"];

function dimLine(r) {
  const got = DIMS.filter((d) => r[d] != null);
  return got.length ? el("div", { class: "muted dims" }, got.map((d) => `${t(`dim_${d}`)} ${stars(r[d])}`).join(" · ")) : null;
}

function tagChips(tags, attrs = {}) {
  return el("div", { class: "chips", ...attrs }, tags.map(([tag, n]) => el("span", { class: "chip", "data-tag": tag }, n == null ? tag : `${tag} ${n}`)));
}

function reviewList(reviews) {
  if (!reviews.length) return el("p", { class: "muted" }, t("no_reviews"));
  return el("ul", { class: "list" }, reviews.map((r) => el("li", { class: "review" },
    el("div", { class: "spread" }, el("span", { class: "stars" }, stars(r.stars)), el("span", { class: "muted" }, `${r.customer_name} · ${localTime(r.created_at, lang, true)}`)),
    dimLine(r),
    r.tags && r.tags.length ? tagChips(r.tags.map((x) => [x, null])) : null,
    r.text ? el("div", {}, r.text) : null,
    r.photos && r.photos.length ? reviewPhotos(r.photos) : null,
    r.reply ? el("div", { class: "reply muted" }, `${t("worker_reply")}：${r.reply}`) : null,
    el("a", { class: "muted", href: `#/worker/${r.worker_id}` }, r.worker_name))));
}

// A review's photos: signed links fetched for the signed-in (readable once on a visible review).
function reviewPhotos(ids) {
  const box = el("div", { class: "thumbs review-thumbs" });
  // A visitor who is not signed in is told how many there are (the links need a sign-in).
  if (!client.signedIn()) return el("div", { class: "muted review-thumbs" }, t("photos_after_login", { n: ids.length }));
  for (const id of ids) {
    client.get(`/v1/files/${id}/url`).then((link) => box.append(el("img", { src: link.path, alt: "", "data-file-id": id }))).catch(() => {});
  }
  return box;
}

// Aggregates (a service's summary, or the dimension averages and tags of a worker's card).
function aggregates(id, dims, tags) {
  const shown = DIMS.filter((d) => dims && dims[d] != null);
  return el("div", { id },
    shown.length ? el("div", { class: "dims" }, shown.map((d) => el("span", { class: "dim", "data-dim": d }, `${t(`dim_${d}`)} ${dims[d].toFixed(1)} `))) : null,
    tags && Object.keys(tags).length ? tagChips(Object.entries(tags)) : null);
}

async function serviceView(code) {
  const enc = encodeURIComponent(code);
  const [s, reviews, sum] = await Promise.all([serviceOf(code), client.get(`/v1/services/${enc}/reviews`), client.get(`/v1/services/${enc}/reviews/summary`).catch(() => null)]);
  view.replaceChildren(
    el("section", { class: "card", id: "service" },
      el("h2", {}, svcName(s)),
      el("div", { class: "spread" }, el("span", { class: "price big" }, money(s.price_minor, s.currency)), el("span", { class: "muted" }, t("minutes", { n: s.duration_min }))),
      el("p", {}, named(lang, s, "description"))),
    el("section", { class: "card" }, el("h3", {}, t("checklist")),
      el("ol", { id: "checklist" }, s.checklist.map((i) => el("li", {}, lang === "en" ? i.en : i.zh)))),
    el("section", { class: "card", id: "reviews" }, el("h3", {}, t("reviews")),
      sum && sum.count ? el("div", { id: "review-summary" }, el("span", { class: "stars" }, "★ "), t("summary_n", { r: sum.average.toFixed(2), n: sum.count }), aggregates("service-aggregates", sum.dimensions, sum.tags)) : null,
      reviewList(reviews)),
    el("a", { class: "btn wide block", id: "book", href: `#/book/${code}` }, t("book")));
}

async function workerView(id) {
  const w = await client.get(`/v1/workers/${id}/card`);
  // The photo: a signed link for the signed-in (avatars are readable once on a profile).
  const photo = w.photo_file_id && client.signedIn() ? await client.get(`/v1/files/${w.photo_file_id}/url`).catch(() => null) : null;
  view.replaceChildren(
    el("section", { class: "card", id: "worker-card" },
      photo ? el("img", { class: "avatar", id: "worker-photo", src: photo.path, alt: w.name }) : null,
      el("h2", {}, w.name),
      w.years_experience != null ? el("div", { id: "worker-years" }, t("years_exp", { n: w.years_experience })) : null,
      w.badges && w.badges.length ? el("div", { id: "badges" }, el("span", { class: "muted" }, t("badges"), " "),
        w.badges.map((b) => el("span", { class: "chip inline badge", "data-kind": b.kind }, "✔ ", lang === "en" ? b.name_en : b.name_zh))) : null,
      el("div", {}, w.rating == null ? t("new_worker") : el("span", {}, el("span", { class: "stars" }, "★ "), t("rating_n", { r: w.rating.toFixed(2), n: w.rating_count }))),
      aggregates("worker-aggregates", w.dimensions, w.tags),
      el("div", { class: "muted" }, t("jobs_done", { n: w.completed_jobs }))),
    el("section", { class: "card" }, el("h3", {}, t("reviews")), reviewList(w.reviews)));
}

// ---- booking -------------------------------------------------------------------------------

function today() { return new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10); } // Asia/Shanghai

async function bookView(code) {
  const [s, addresses, cover] = await Promise.all([serviceOf(code), client.get("/v1/me/addresses"),
    client.get(`/v1/services/${encodeURIComponent(code)}/insurance`).catch(() => null)]);
  if (!addresses.length) { location.hash = `#/addresses?then=${code}`; return; }
  const form = el("form", { id: "book-form", class: "card wide", novalidate: true },
    el("h2", {}, t("book_title", { name: svcName(s) })),
    el("div", { class: "price big" }, money(s.price_minor, s.currency)),
    el("label", {}, t("address"),
      el("select", { name: "address_id", id: "address" }, addresses.map((a) => el("option", { value: a.id }, `${a.label} · ${a.detail}`)))),
    el("a", { href: `#/addresses`, class: "muted" }, t("add_address")),
    el("fieldset", { class: "plain" },
      el("legend", { class: "muted" }, t("when")),
      s.instant ? el("label", { class: "row" }, el("input", { type: "radio", name: "when", value: "now", checked: true }), t("now")) : null,
      s.scheduled ? el("label", { class: "row" }, el("input", { type: "radio", name: "when", value: "slot", checked: !s.instant }), t("slot")) : null),
    el("div", { id: "slot-pick", hidden: true },
      el("label", {}, t("date"), el("input", { type: "date", name: "date", id: "slot-date", value: today() })),
      el("div", { id: "slots", class: "chips", "data-field": "window_start" })),
    el("label", {}, t("notes"), el("textarea", { name: "notes", rows: 2 })),
    cover && cover.active ? el("label", { class: "row", id: "insured-row" },
      el("input", { type: "checkbox", name: "insured", id: "insured" }),
      t("insure", { premium: money(cover.premium_fen, s.currency), cover: money(cover.coverage_fen, s.currency) })) : null,
    el("button", { type: "submit", id: "submit-booking" }, t("submit_booking")),
    el("p", { class: "form-error" }));
  view.replaceChildren(form);
  let chosen = null;
  const whenNow = () => form.querySelector('input[name="when"]:checked')?.value !== "slot";
  async function loadSlots() {
    $("#slot-pick").hidden = whenNow();
    if (whenNow()) return;
    chosen = null;
    const box = $("#slots");
    try {
      const r = await client.get("/v1/slots", { service_code: code, date: $("#slot-date").value, address_id: $("#address").value });
      box.replaceChildren(...(r.slots.length ? r.slots.map((sl) => el("button", {
        type: "button", class: "chip", "data-start": sl.window_start,
        onclick: (ev) => { chosen = sl; for (const b of box.children) b.classList.toggle("on", b === ev.currentTarget); },
      }, `${localTime(sl.window_start, lang)}–${localTime(sl.window_end, lang)}`)) : [el("span", { class: "muted" }, t("no_slots"))]));
    } catch (e) { showError(form, e, t); }
  }
  for (const r of form.querySelectorAll('input[name="when"]')) r.addEventListener("change", loadSlots);
  $("#slot-date").addEventListener("change", loadSlots);
  $("#address").addEventListener("change", loadSlots);
  loadSlots();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(form);
    const body = { service_code: code, address_id: Number(v.address_id), notes: v.notes };
    if (form.elements.insured?.checked) body.insured = true;
    if (!whenNow()) {
      if (!chosen) { showError(form, new ApiError(422, { code: "missing_field", message: t("slot"), field: "window_start" }), t); return; }
      Object.assign(body, { window_start: chosen.window_start, window_end: chosen.window_end });
    }
    const order = await submitting(form, t, () => client.post("/v1/orders", body));
    if (order) { toast(t("booked")); location.hash = `#/order/${order.id}`; }
  });
}

// ---- addresses -----------------------------------------------------------------------------

async function addressesView() {
  const [list, cityList] = await Promise.all([client.get("/v1/me/addresses"), cities()]);
  const then = new URLSearchParams(location.hash.split("?")[1] || "").get("then");
  // The map starts on the city the customer searched in (else the first city).
  const firstCity = cityList.some((c) => c.id === filters.city) ? filters.city : cityList[0]?.id;
  const form = el("form", { id: "address-form", class: "card wide", novalidate: true },
    el("h3", {}, t("add_address")),
    el("label", {}, t("city"), el("select", { id: "address-city" }, cityList.map((c) => el("option", { value: c.id, selected: c.id === firstCity }, named(lang, c))))),
    el("div", { class: "pinmap", id: "pinmap", "data-field": "lat" }),
    el("div", { class: "spread" }, el("span", { class: "muted", id: "pin-at" }, t("pin_hint")),
      el("button", { type: "button", class: "chip", id: "use-position" }, t("use_position"))),
    el("input", { type: "hidden", name: "lat" }), el("input", { type: "hidden", name: "lng" }),
    el("label", {}, t("label"), el("input", { name: "label", id: "address-label", value: list.length ? "" : "家" })),
    el("label", {}, t("detail"), el("input", { name: "detail", id: "address-detail" })),
    el("label", {}, t("contact_name"), el("input", { name: "contact_name" })),
    el("button", { type: "submit", id: "save-address" }, t("save")),
    el("p", { class: "form-error" }));
  const items = el("ul", { class: "list", id: "addresses" }, list.map((a) => el("li", { "data-address-id": a.id, class: "spread" },
    el("div", {}, el("b", {}, a.label), " ", a.detail),
    el("button", { type: "button", class: "btn secondary", onclick: async () => { await client.del(`/v1/me/addresses/${a.id}`); route(); } }, t("delete")))));
  view.replaceChildren(el("section", { class: "card" }, list.length ? items : el("p", { class: "muted" }, t("no_addresses"))), form);

  let map = null;
  let marker = null;
  const setPin = (lat, lng) => {
    form.elements.lat.value = lat.toFixed(6);
    form.elements.lng.value = lng.toFixed(6);
    $("#pin-at").textContent = `${lat.toFixed(5)}, ${lng.toFixed(5)}`;
    const icon = L.divIcon({ className: "", html: '<div class="pin"></div>', iconSize: [22, 22], iconAnchor: [4, 22] });
    if (marker) marker.setLatLng([lat, lng]); else marker = L.marker([lat, lng], { icon, draggable: true }).addTo(map);
    marker.off("dragend").on("dragend", () => { const p = marker.getLatLng(); setPin(p.lat, p.lng); });
  };
  const showCity = (id) => {
    if (map) { map.remove(); marker = null; }
    const city = cityList.find((c) => c.id === id);
    if (!city) return;
    map = basemap("pinmap", city.id, { zoomControl: true }).map;
    const [a, b, c, d] = city.bbox;
    map.fitBounds([[a, b], [c, d]]);
    setPin((a + c) / 2, (b + d) / 2); // the pin starts in the middle of the city
    map.on("click", (ev) => setPin(ev.latlng.lat, ev.latlng.lng));
  };
  $("#address-city").addEventListener("change", (ev) => showCity(ev.target.value));
  showCity(firstCity);
  // The browser's Geolocation API gives WGS-84, like the map; AMap/WeChat SDK positions
  // (GCJ-02) would be sent with crs: "gcj02" and converted by the server.
  $("#use-position").addEventListener("click", () => navigator.geolocation.getCurrentPosition(
    (p) => { setPin(p.coords.latitude, p.coords.longitude); map.setView([p.coords.latitude, p.coords.longitude], 16); },
    () => toast(t("network_error"), "error")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(form);
    const saved = await submitting(form, t, () => client.post("/v1/me/addresses", {
      label: v.label, detail: v.detail, contact_name: v.contact_name, lat: Number(v.lat), lng: Number(v.lng), crs: "wgs84",
    }));
    if (saved) location.hash = then ? `#/book/${then}` : "#/addresses";
    if (saved && !then) route();
  });
}

// ---- orders --------------------------------------------------------------------------------

function statusPill(status) { return el("span", { class: `status ${status}`, "data-status": status }, t(`s_${status}`)); }

async function ordersView() {
  const list = await client.get("/v1/orders", { limit: 50 });
  const names = await Promise.all(list.map((o) => serviceOf(o.service_code).catch(() => null)));
  view.replaceChildren(el("section", { class: "card" }, list.length
    ? el("ul", { class: "list", id: "orders" }, list.map((o, i) => el("li", { "data-order-id": o.id },
      el("a", { href: `#/order/${o.id}`, class: "spread plainlink" },
        el("div", {}, el("div", {}, names[i] ? svcName(names[i]) : o.service_code), el("div", { class: "muted" }, `${t("order_n", { id: o.id })} · ${localTime(o.window_start || o.created_at, lang, true)}`)),
        el("div", { class: "right" }, statusPill(o.status), el("div", { class: "price" }, money(o.price_minor, o.currency)))))))
    : el("p", { class: "muted" }, t("no_orders"))));
}

async function orderView(id) {
  const o = await client.get(`/v1/orders/${id}`);
  const s = await serviceOf(o.service_code).catch(() => null);
  const live = !["completed", "cancelled", "failed", "created"].includes(o.status);
  const parts = [
    el("section", { class: "card", id: "order" },
      el("div", { class: "spread" }, el("h2", {}, s ? svcName(s) : o.service_code), statusPill(o.status)),
      el("div", { class: "muted" }, t("order_n", { id: o.id })),
      el("div", {}, o.address_detail),
      o.window_start ? el("div", {}, `${localTime(o.window_start, lang, true)}–${localTime(o.window_end, lang)}`) : null,
      el("div", { class: "price big" }, money(o.price_minor, o.currency))),
  ];
  if (o.start_code && ["assigned", "en_route", "arrived"].includes(o.status)) {
    parts.push(el("section", { class: "card" }, el("div", { class: "muted" }, t("start_code")), el("div", { class: "big", id: "start-code" }, o.start_code)));
  }
  if (o.worker_id) {
    const w = await client.get(`/v1/workers/${o.worker_id}/card`).catch(() => null);
    if (w) parts.push(el("a", { class: "card svc", href: `#/worker/${w.id}`, id: "order-worker" }, el("div", { class: "muted" }, t("worker")), el("b", {}, w.name), " ",
      w.rating == null ? t("new_worker") : t("rating_n", { r: w.rating.toFixed(2), n: w.rating_count })));
  }
  const actions = el("div", { class: "row" });
  if (live) actions.append(el("a", { class: "btn", id: "track", href: `/track/${o.id}?lang=${lang}` }, t("track")));
  if (o.worker_id && ["assigned", "en_route", "arrived", "in_service"].includes(o.status)) {
    // The masked number (docs/privacy.md): fetched when asked for, shown as a tel: link.
    const slot = el("span", { id: "contact" });
    actions.append(el("button", { type: "button", class: "btn secondary", id: "contact-worker", onclick: async () => {
      try {
        const c = await client.get(`/v1/orders/${o.id}/contact`);
        slot.replaceChildren(el("a", { href: `tel:${c.number}`, id: "contact-number" }, c.number), " ", el("span", { class: "muted" }, t("contact_hint")));
      } catch (e) { toast(e.message, "error"); }
    } }, t("contact_worker")), slot);
  }
  if (!["in_service", "completed", "cancelled", "failed"].includes(o.status)) {
    actions.append(el("button", { type: "button", class: "btn secondary", id: "cancel", onclick: async () => {
      try { await client.post(`/v1/orders/${o.id}/cancel`, { reason: "customer" }); toast(t("cancelled_ok")); route(); } catch (e) { toast(e.message, "error"); }
    } }, t("cancel")));
  }
  parts.push(actions);
  const pay = await paymentCard(o).catch(() => null);
  if (pay) parts.push(pay);
  // While a worker is on the way or in the home: SOS (the dispatchers, the emergency contacts).
  if (o.worker_id && ["assigned", "en_route", "arrived", "in_service"].includes(o.status)) {
    parts.push(sosButton(t, () => client.post("/v1/sos", { order_id: o.id })));
  }
  if (o.status === "completed") {
    const mine = await client.get(`/v1/orders/${o.id}/rating`).catch(() => null);
    const tags = await client.get("/v1/reviews/tags").catch(() => ({ positive: [], negative: [] }));
    parts.push(mine ? ratedCard(o, mine, tags) : ratingForm(o, tags, null));
    parts.push(await aftersalesCard(client, t, lang, o));
  }
  view.replaceChildren(...parts);
}

// An after-sales ticket (app-aftersales.js).
async function aftersalesView(id) { await ticketView(client, t, lang, view, id); }

// The order's money (GET /v1/orders/{id}/payment): the price lines, what is due now
// (pay with WeChat or Alipay: the QR code's content and the payment page), the worker's quote or
// add-ons to approve, what was paid and refunded (the receipt).
async function paymentCard(o) {
  const m = await client.get(`/v1/orders/${o.id}/payment`);
  const card = el("section", { class: "card", id: "payment" }, el("h3", {}, t("payment")));
  for (const line of m.breakdown?.lines ?? []) {
    card.append(el("div", { class: "spread" }, el("span", {}, line.label), el("span", {}, money(line.amount_fen))));
  }
  for (const x of m.extras) {
    const box = el("div", { class: "card", "data-extra": x.id },
      el("div", { class: "spread" }, el("b", {}, t(`extra_${x.kind}`)), el("span", { class: "muted" }, t(`x_${x.status}`))),
      ...x.items.map((i) => el("div", { class: "spread" }, el("span", {}, i.name), el("span", {}, money(i.amount_fen)))),
      el("div", { class: "spread" }, el("span", {}, ""), el("b", {}, money(x.total_fen))));
    if (x.status === "proposed") {
      for (const [verb, cls] of [["approve", "btn"], ["decline", "btn secondary"]]) {
        box.append(el("button", { type: "button", class: cls, id: `${verb}-${x.id}`, onclick: async () => {
          try { await client.post(`/v1/orders/${o.id}/extras/${x.id}/${verb}`); route(); } catch (e) { toast(e.message, "error"); }
        } }, t(verb)));
      }
    }
    card.append(box);
  }
  if (m.paid_fen) card.append(el("div", { id: "paid" }, t("paid_total", { amount: money(m.paid_fen) })));
  for (const r of m.refunds) {
    card.append(el("div", { class: "refund", "data-status": r.status }, t("refund_line", { amount: money(r.amount_fen), status: t(`r_${r.status}`) })));
  }
  if (m.refunded_fen) card.append(el("div", { id: "refunded" }, t("refunded_total", { amount: money(m.refunded_fen) })));
  if (m.due_fen > 0) {
    const due = el("div", { class: "price big", id: "due" }, t("due", { amount: money(m.due_fen) }));
    const where = el("div", { id: "pay-where" });
    // A prepaid order awaiting payment, or a pay-after-service order's final payment: the
    // coupon (the best preselected) and points.
    const co = o.status === "awaiting_payment" || m.due_purpose === "final" ? await checkoutBox(client, t, lang, o.id, () => route()).catch(() => null) : null;
    if (co) card.append(co.box);
    // WeChat Native or Alipay precreate: a QR code's content; Alipay's is itself the page
    // to open (on a phone it opens the Alipay app; on the sandbox, its payment page).
    const payWith = (provider, channel, id, cls, label, scan) => el("button", { type: "button", class: cls, id, onclick: async () => {
      try {
        if (co && !(await co.ensure())) {  // the choice was applied now: the due changed
          const now = await client.get(`/v1/orders/${o.id}/payment`);
          due.textContent = t("due", { amount: money(now.due_fen) });
        }
        const trade = await client.post(`/v1/orders/${o.id}/pay`, { provider, channel });
        const open = trade.prepay.pay_url ?? (provider === "alipay" ? trade.prepay.code_url : null);
        where.replaceChildren(
          el("div", { class: "muted" }, t(scan)),
          el("code", { id: "code-url" }, trade.prepay.code_url ?? ""),
          open ? el("a", { class: "btn", id: "pay-page", href: open, target: "_blank", rel: "noopener" }, t("pay_open")) : "",
          el("button", { type: "button", class: "btn secondary", id: "pay-check", onclick: () => route() }, t("pay_check")));
      } catch (e) { toast(e.message, "error"); }
    } }, t(label));
    card.append(due, el("div", { class: "row" },
      payWith("wechat", "native", "pay", "btn", "pay_wechat", "pay_code"),
      payWith("alipay", "precreate", "pay-alipay", "btn secondary", "pay_alipay", "pay_code_alipay")),
      where);
  }
  return card;
}

function starPicker(id, initial, onpick) {
  const pick = el("div", { class: "star-pick", id, "data-field": id }, [1, 2, 3, 4, 5].map((n) => el("button", {
    type: "button", "data-stars": n, class: n <= initial ? "on" : "",
    onclick: () => { onpick(n); for (const b of pick.children) b.classList.toggle("on", Number(b.dataset.stars) <= n); },
  }, "★")));
  return pick;
}

// The review: overall stars, three dimensions, tags from the fixed list, text, photos.
// ``old`` (a rating within its edit window) fills it in and sends a PUT.
function ratingForm(o, tags, old) {
  const S = { stars: old ? old.stars : 5, tags: new Set(old ? old.tags : []), photos: old ? [...old.photos] : [] };
  for (const d of DIMS) S[d] = old ? old[d] : null;
  const dims = DIMS.map((d) => el("div", { class: "spread dim-pick" }, el("span", {}, t(`dim_${d}`)), starPicker(`dim-${d}`, S[d] || 0, (n) => { S[d] = n; })));
  const chip = (tag, bad) => el("button", { type: "button", class: `chip${S.tags.has(tag) ? " on" : ""}${bad ? " bad" : ""}`, "data-tag": tag, onclick: (ev) => {
    if (S.tags.has(tag)) S.tags.delete(tag); else S.tags.add(tag);
    ev.target.classList.toggle("on", S.tags.has(tag));
  } }, tag);
  const chips = el("div", { class: "chips wrap", id: "tag-pick", "data-field": "tags" }, tags.positive.map((x) => chip(x, false)), tags.negative.map((x) => chip(x, true)));
  const thumbs = el("div", { class: "thumbs", id: "review-photos", "data-field": "photos" });
  const file = el("input", { type: "file", accept: "image/*", id: "review-photo-input", name: "body", onchange: async (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    const ok = await submitting(form, t, async () => {
      const meta = await client.upload("review_photo", f);
      const link = await client.get(`/v1/files/${meta.id}/url`);
      S.photos.push(meta.id);
      thumbs.append(el("img", { src: link.path, alt: "", "data-file-id": meta.id }));
      return true;
    });
    if (ok) ev.target.value = "";
  } });
  const text = el("textarea", { name: "text", rows: 3, placeholder: t("rate_text") });
  if (old) text.value = old.text;
  const form = el("form", { class: "card wide", id: "rating-form", novalidate: true },
    el("h3", {}, t("rate")), starPicker("stars", S.stars, (n) => { S.stars = n; }),
    ...dims,
    el("h4", {}, t("review_tags")), chips,
    text,
    el("h4", {}, t("review_photos")), thumbs, el("label", { class: "chip inline" }, t("add_photo"), file),
    el("button", { type: "submit" }, old ? t("edit_rating") : t("send_rating")), el("p", { class: "form-error" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { stars: S.stars, text: values(form).text, tags: [...S.tags], photos: S.photos };
    for (const d of DIMS) if (S[d]) body[d] = S[d];
    const url = `/v1/orders/${o.id}/rating`;
    const r = await submitting(form, t, () => (old ? client.put(url, body) : client.post(url, body)));
    if (r) form.replaceWith(ratedCard(o, r, tags));
  });
  return form;
}

// A rating already sent: what it says, the worker's reply, and an edit button while allowed.
function ratedCard(o, r, tags) {
  const editable = !r.hidden && !r.reply && r.editable_until && new Date(r.editable_until) > new Date();
  const card = el("section", { class: "card wide", id: "my-rating" },
    el("p", { id: "rated" }, t("rated"), " ", el("span", { class: "stars" }, stars(r.stars))),
    dimLine(r),
    r.tags.length ? tagChips(r.tags.map((x) => [x, null])) : null,
    r.text ? el("div", {}, r.text) : null,
    r.reply ? el("div", { class: "reply muted", id: "my-rating-reply" }, `${t("worker_reply")}：${r.reply}`) : null,
    r.hidden ? el("div", { class: "muted" }, t("hidden_review", { r: r.hidden_reason })) : null,
    editable ? el("div", { class: "row" },
      el("button", { type: "button", class: "btn secondary", id: "edit-rating", onclick: () => card.replaceWith(ratingForm(o, tags, r)) }, t("edit_rating")),
      el("span", { class: "muted" }, t("edit_until", { t: localTime(r.editable_until, lang, true) }))) : null);
  return card;
}

// ---- inbox and me --------------------------------------------------------------------------

async function inboxView() {
  const items = await client.get("/v1/me/inbox");
  const list = Array.isArray(items) ? items : (items.items || []);
  view.replaceChildren(el("section", { class: "card" }, list.length
    ? el("ul", { class: "list", id: "inbox" }, list.map((m) => el("li", { "data-id": m.id, class: m.read_at ? "" : "unread" },
      el("b", {}, m.title || m.kind || ""), el("div", {}, m.body || m.text || ""),
      el("div", { class: "muted" }, localTime(m.created_at, lang, true), " ",
        m.order_id ? el("a", { href: `#/order/${m.order_id}` }, t("order_n", { id: m.order_id })) : null))))
    : el("p", { class: "muted" }, t("inbox_empty"))));
}

async function growthView() { await couponsView(client, t, lang, view, route); }
async function memberView() { await membershipView(client, t, lang, view); }

async function meView() {
  if (client.signedIn()) {
    const me = await client.get("/v1/me");
    view.replaceChildren(el("section", { class: "card", id: "me" }, el("h2", {}, me.name), el("div", { class: "muted" }, me.phone),
      el("a", { class: "btn", id: "member-link", href: "#/membership" }, t("membership")), " ",
      el("a", { class: "btn", id: "coupons-link", href: "#/coupons" }, t("coupons_points")), " ",
      el("button", { type: "button", class: "btn secondary", id: "logout", onclick: async () => { await client.logout(); afterLogin(); route(); } }, t("logout"))),
      contactsForm(client, t), privacyCard(client, lang, () => afterLogin()));
    return;
  }
  const login = el("div");
  loginView(login, client, t, ["customer"], () => { afterLogin(); location.hash = "#/"; });
  const reg = el("form", { class: "card wide", id: "register-form", novalidate: true },
    el("h3", {}, t("register")),
    el("label", {}, t("phone"), el("input", { name: "phone", inputmode: "tel" })),
    el("label", {}, t("name"), el("input", { name: "name" })),
    el("label", {}, t("password"), el("input", { name: "password", type: "password", autocomplete: "new-password" })),
    el("button", { type: "submit" }, t("register")), el("p", { class: "form-error" }));
  reg.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await submitting(reg, t, () => client.post("/v1/auth/register", values(reg)));
    if (r) toast(t("registered"));
  });
  view.replaceChildren(login, reg, cancelDeletionForm(client, lang));
}

window.addEventListener("hashchange", route);
afterLogin();
route();
