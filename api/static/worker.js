// The worker's app (/worker): shift, position over the worker socket, offers and the grab
// pool, the job flow (navigate, arrive, start code, checklist, photos, complete), today's
// plan, earnings, my reviews (a reply box). Hash routes: #/ (work), #/plan, #/earnings, #/me,
// #/reviews.

import {
  ApiError, Client, SOS_STRINGS, WorkerLink, boot, contactsForm, el, localTime, loginView, money, named, navLinks, sosButton, submitting,
  toast, values,
} from "/static/client.js";
import { ONBOARD_STRINGS, applicantState, applicationView, applyCard, examsView } from "/static/onboard.js";
import { WORKER_AFTERSALES_STRINGS, workerTicketsView } from "/static/worker-aftersales.js";
import { privacyCard } from "/static/privacy.js";

const STRINGS = {
  ...SOS_STRINGS,
  ...WORKER_AFTERSALES_STRINGS,
  my_reviews: { zh: "我的评价", en: "My reviews" },
  no_reviews: { zh: "暂无评价", en: "No reviews yet" },
  reply_ph: { zh: "回复顾客（仅一次）", en: "Reply to the customer (once)" },
  send_reply: { zh: "回复", en: "Reply" },
  my_reply: { zh: "我的回复", en: "My reply" },
  review_hidden: { zh: "已隐藏：{r}", en: "Hidden: {r}" },
  app_title: { zh: "师傅端", en: "Worker" },
  tab_work: { zh: "工作台", en: "Work" },
  tab_plan: { zh: "今日计划", en: "Today" },
  tab_earnings: { zh: "收入", en: "Earnings" },
  tab_me: { zh: "我的", en: "Me" },
  login_title: { zh: "师傅登录", en: "Worker sign-in" },
  phone: { zh: "手机号", en: "Phone" },
  password: { zh: "密码", en: "Password" },
  login: { zh: "登录", en: "Sign in" },
  logout: { zh: "退出登录", en: "Sign out" },
  wrong_role: { zh: "请使用师傅账号登录", en: "Sign in with a worker account" },
  network_error: { zh: "网络错误，请重试", en: "Network error, try again" },
  on_shift: { zh: "上班中", en: "On shift" },
  off_shift: { zh: "已下班", en: "Off shift" },
  go_on: { zh: "上班接单", en: "Start shift" },
  go_off: { zh: "下班", en: "End shift" },
  c_live: { zh: "已连接", en: "Online" },
  c_connecting: { zh: "连接中…", en: "Connecting…" },
  c_waiting: { zh: "网络断开，{s} 秒后重连（待传 {n} 个定位）", en: "Offline: retrying in {s} s ({n} fixes kept)" },
  c_closed: { zh: "已在其他设备登录", en: "Signed in elsewhere" },
  c_off: { zh: "未连接", en: "Not connected" },
  position: { zh: "定位", en: "Position" },
  no_position: { zh: "等待定位…（请允许位置权限）", en: "Waiting for a position… (allow location)" },
  geo_denied: { zh: "无法获取位置：{m}", en: "No position: {m}" },
  offers: { zh: "派单", en: "Offers" },
  grab_pool: { zh: "抢单池", en: "Grab pool" },
  no_offers: { zh: "暂无新订单", en: "No offers right now" },
  accept: { zh: "接单", en: "Accept" },
  grab: { zh: "抢单", en: "Grab" },
  decline: { zh: "拒绝", en: "Decline" },
  decline_reason: { zh: "拒绝原因", en: "Why" },
  r_far: { zh: "距离太远", en: "Too far" },
  r_busy: { zh: "时间冲突", en: "Busy then" },
  r_skill: { zh: "不擅长此服务", en: "Not my skill" },
  r_other: { zh: "其他", en: "Other" },
  expires_in: { zh: "剩余", en: "Left" },
  eta_min: { zh: "约 {n} 分钟到达", en: "~{n} min away" },
  current_job: { zh: "当前工单", en: "Current job" },
  next_job: { zh: "下一单：#{id}（本单完成后出发）", en: "Next: #{id} (set off when this one is done)" },
  chained_offer: { zh: "接力单：订单 #{id} 完成后出发", en: "Chained: set off when order #{id} is done" },
  job_time_left: { zh: "预计还需（分钟）", en: "About how many minutes left" },
  time_left_send: { zh: "告知预计完成", en: "Tell the finish time" },
  time_left_ok: { zh: "已更新预计完成时间", en: "Finish time updated" },
  expected_end: { zh: "预计 {t} 完成", en: "Expected to finish at {t}" },
  crew_job: { zh: "{n} 人班组", en: "Crew of {n}" },
  crew_mates: { zh: "同组师傅：", en: "Crew-mates: " },
  crew_wait: { zh: "全组到齐后才能开始服务", en: "The service starts when the whole crew is here" },
  no_job: { zh: "暂无进行中的工单", en: "No job under way" },
  navigate: { zh: "导航", en: "Navigate" },
  amap: { zh: "高德地图", en: "AMap" },
  baidu: { zh: "百度地图", en: "Baidu Maps" },
  tencent: { zh: "腾讯地图", en: "Tencent Maps" },
  depart: { zh: "出发", en: "On my way" },
  arrive: { zh: "我已到达", en: "I have arrived" },
  start_code: { zh: "输入顾客的核销码", en: "Enter the customer's start code" },
  contact_customer: { zh: "联系顾客（隐私号）", en: "Call the customer (masked number)" },
  start: { zh: "开始服务", en: "Start the job" },
  checklist: { zh: "服务清单", en: "Checklist" },
  photos: { zh: "服务照片", en: "Photos" },
  add_photo: { zh: "拍照/上传", en: "Add a photo" },
  complete: { zh: "完成服务", en: "Complete" },
  completed_ok: { zh: "服务已完成", en: "Job completed" },
  accepted_ok: { zh: "接单成功", en: "Job accepted" },
  declined_ok: { zh: "已拒绝", en: "Declined" },
  withdrawn: { zh: "订单已被撤回", en: "The job was withdrawn" },
  customer_phone: { zh: "顾客电话", en: "Customer phone" },
  plan_empty: { zh: "今天没有排班的工单", en: "Nothing planned today" },
  plan_travel: { zh: "路程 {m} 分钟 · {km} 公里", en: "Travel {m} min · {km} km" },
  break: { zh: "休息", en: "Break" },
  earn_today: { zh: "今日收入", en: "Today" },
  earn_total: { zh: "累计收入", en: "Total" },
  earn_jobs: { zh: "{n} 单", en: "{n} jobs" },
  earn_note: {
    zh: "以上为已完成订单的价格合计（未扣平台佣金；班组订单计我的份额）；实际到账以下方钱包为准。",
    en: "The sum of completed jobs' prices (before the platform's commission; of a crew job, your share); what you are paid is the wallet below.",
  },
  earn_for_merchant: { zh: "为商家「{m}」完成", en: "Done for {m}" },
  earn_note_merchant: {
    zh: "以上为你为商家「{m}」完成的订单价格合计（未扣平台佣金；班组订单计你的份额）。这些收入结算到商家的钱包，由商家与你结算，不进入下方你的钱包。",
    en: "The sum of the jobs you did for {m} (before the platform's commission; of a crew job, your share). Their earnings are paid into the merchant's wallet, who pays you: not into your wallet below.",
  },
  wallet: { zh: "我的钱包", en: "My wallet" },
  w_available: { zh: "可提现", en: "Available" },
  w_frozen: { zh: "冻结中（售后期）", en: "Frozen (after-sales window)" },
  w_withdrawing: { zh: "提现中", en: "Being withdrawn" },
  w_withdrawn: { zh: "已提现", en: "Withdrawn" },
  w_owed: { zh: "待抵扣罚款（从后续收入扣除）", en: "Fines owed (taken from your next earnings)" },
  w_fines: { zh: "累计罚款", en: "Fines so far" },
  w_bonuses: { zh: "累计奖励", en: "Bonuses so far" },
  withdraw: { zh: "提现到微信零钱", en: "Withdraw to WeChat balance" },
  amount_yuan: { zh: "金额（元）", en: "Amount (¥)" },
  withdraw_go: { zh: "申请提现", en: "Request" },
  withdraw_rules: {
    zh: "单笔不少于 {min}；每日最多 {n} 笔、合计 {limit}；财务审核后到账。",
    en: "At least {min}; at most {n} a day and {limit} in all; paid after finance's review.",
  },
  withdraw_ok: { zh: "已提交提现申请", en: "Withdrawal requested" },
  bad_amount: { zh: "请输入金额，如 100 或 99.50", en: "Enter an amount such as 100 or 99.50" },
  by_day: { zh: "近 7 日收入", en: "The last 7 days" },
  by_order: { zh: "订单收入明细", en: "Earnings by order" },
  gross: { zh: "订单额", en: "Gross" },
  commission: { zh: "佣金", en: "Commission" },
  net: { zh: "到手", en: "Net" },
  frozen_until: { zh: "{d} 解冻", en: "available {d}" },
  crew_share: { zh: "{n} 人班组，我的份额", en: "My share (crew of {n})" },
  settled: { zh: "已结算", en: "Settled" },
  withdrawals: { zh: "提现记录", en: "Withdrawals" },
  none_yet: { zh: "暂无", en: "None yet" },
  wd_requested: { zh: "待审核", en: "In review" },
  wd_rejected: { zh: "已驳回", en: "Rejected" },
  wd_paying: { zh: "打款中", en: "Paying" },
  wd_paid: { zh: "已到账", en: "Paid" },
  wd_failed: { zh: "打款失败，已退回钱包", en: "Failed: back in your wallet" },
  s_assigned: { zh: "待出发", en: "Assigned" }, s_en_route: { zh: "在路上", en: "On the way" },
  s_arrived: { zh: "已到达", en: "Arrived" }, s_in_service: { zh: "服务中", en: "In service" },
  s_completed: { zh: "已完成", en: "Completed" }, s_confirmed: { zh: "已确认", en: "Confirmed" },
};

const { lang, t } = boot({ ...STRINGS, ...ONBOARD_STRINGS });
const client = new Client("worker");
const view = document.getElementById("view");
const $ = (sel) => document.querySelector(sel);
const ACTIVE = ["assigned", "en_route", "arrived", "in_service"];

const S = {
  onShift: localStorage.getItem("doorstep.worker.shift") === "on",
  link: null,
  watch: null,
  position: null,
  offers: new Map(), // offer_id → offer frame
  job: null, // the order under way
  next: null, // a chained job: held, set off when the current one is done
  service: null,
  checked: new Set(),
  photos: [],
};

// ---- shift, position and the socket ---------------------------------------------------------

function connState(state, info = {}) {
  const c = $("#conn");
  c.dataset.state = state;
  const text = {
    live: t("c_live"), connecting: t("c_connecting"), closed: t("c_closed"), signed_out: t("c_off"),
    waiting: t("c_waiting", { s: Math.round((info.delayMs || 0) / 1000), n: info.backlog ?? 0 }),
  }[state] || t("c_off");
  c.replaceChildren(el("span", { class: `dot ${state}` }), text);
  if (state === "live") {
    if (S.onShift && S.link) S.link.send({ type: "state", state: "available" });
    loadOffers();
    loadJob();
  }
  if (state === "signed_out") { client.session.clear(); route(); }
}

function onFrame(msg) {
  if (msg.type === "sos_result" && S.sosWaiter) { S.sosWaiter(msg); S.sosWaiter = null; return; }
  if (msg.type === "offer") { S.offers.set(msg.offer_id, msg); renderWork(); }
  else if (msg.type === "offer_withdrawn") { S.offers.delete(msg.offer_id); renderWork(); }
  else if (msg.type === "offer_result") {
    S.offers.delete(msg.offer_id);
    toast(msg.ok ? t("accepted_ok") : (msg.message || msg.code || ""), msg.ok ? "ok" : "error");
    loadJob();
  } else if (msg.type === "resync") { // the server was away from Redis: pushes may be lost
    loadOffers();
    loadJob();
  } else if (msg.type === "job") {
    if (msg.status === "withdrawn") toast(t("withdrawn"), "error");
    loadJob();
  } else if (msg.type === "plan" && document.body.dataset.view === "planView") renderPlan(msg);
  else if (msg.type === "error" && msg.code === "account_frozen") { client.session.clear(); route(); }
}

function startShift() {
  S.onShift = true;
  localStorage.setItem("doorstep.worker.shift", "on");
  if (!S.link) S.link = new WorkerLink(client, { onFrame, onState: connState });
  S.link.stopped = false;
  S.link.connect(); // "available" is sent on each hello (connState)
  if (S.watch === null && navigator.geolocation) {
    S.watch = navigator.geolocation.watchPosition((p) => {
      S.position = p.coords;
      S.link.fix(p.coords, p.timestamp || Date.now());
      const pos = $("#position");
      if (pos) pos.textContent = `${p.coords.latitude.toFixed(5)}, ${p.coords.longitude.toFixed(5)} ±${Math.round(p.coords.accuracy)} m`;
    }, (err) => {
      const pos = $("#position");
      if (pos) pos.textContent = t("geo_denied", { m: err.message });
    }, { enableHighAccuracy: true, maximumAge: 5000, timeout: 20000 });
  }
  renderWork();
}

function endShift() {
  S.onShift = false;
  localStorage.setItem("doorstep.worker.shift", "off");
  if (S.watch !== null) { navigator.geolocation.clearWatch(S.watch); S.watch = null; }
  if (S.link) {
    S.link.send({ type: "state", state: "unavailable" });
    const link = S.link;
    S.link = null;
    setTimeout(() => link.stop(), 300);
  }
  connState("signed_out_quiet");
  renderWork();
}

// ---- data -----------------------------------------------------------------------------------

async function loadOffers() {
  try {
    const list = await client.get("/v1/me/offers");
    for (const o of list) {
      if (!S.offers.has(o.id)) {
        S.offers.set(o.id, {
          offer_id: o.id, order_id: o.order_id, mode: o.mode, expires_at_ms: Date.parse(o.expires_at),
          eta_s: o.eta_s, distance_m: o.distance_m,
        });
      }
    }
    renderWork();
  } catch { /* shown on the next try */ }
}

let jobLoads = 0;
async function loadJob() {
  const mine = ++jobLoads; // only the newest answer is shown
  try {
    const list = await client.get("/v1/orders", { limit: 20 });
    // With a chained job (docs/dispatch.md#chained-orders) two are held: the one furthest
    // along is the current one, the other is next (set off when the current one is done).
    const held = list.filter((o) => ACTIVE.includes(o.status))
      .sort((a, b) => ACTIVE.indexOf(b.status) - ACTIVE.indexOf(a.status) || a.id - b.id);
    const job = held[0] || null;
    S.next = held[1] || null;
    const service = job ? await client.get(`/v1/services/${encodeURIComponent(job.service_code)}`) : null;
    const crew = job && job.crew && job.crew.length > 1 ? await client.get(`/v1/orders/${job.id}/crew`) : null;
    if (mine !== jobLoads) return;
    S.crew = crew;
    if (job && S.job?.id !== job.id) { S.checked = new Set(); S.photos = []; }
    S.job = job;
    S.service = service;
    renderWork();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) route();
  }
}

// ---- the work tab ---------------------------------------------------------------------------

function offerCard(o) {
  const left = () => Math.max(0, Math.round((o.expires_at_ms - Date.now()) / 1000));
  const count = el("span", { class: "countdown", "data-expires": o.expires_at_ms }, `${left()}s`);
  const reason = el("select", { name: "reason", "data-field": "reason" }, ["r_far", "r_busy", "r_skill", "r_other"].map((k) => el("option", { value: t(k) }, t(k))));
  const form = el("form", { class: "card", "data-offer-id": o.offer_id, novalidate: true },
    el("div", { class: "spread" }, el("b", {}, o.service_name || `#${o.order_id}`), el("span", {}, t("expires_in"), " ", count)),
    el("div", { class: "spread" },
      el("span", { class: "price big" }, o.price_minor != null ? money(o.price_minor) : ""),
      el("span", { class: "muted" }, o.eta_s != null ? t("eta_min", { n: Math.max(1, Math.round(o.eta_s / 60)) }) : "")),
    o.crew_size > 1 ? el("div", { class: "chip crew" }, t("crew_job", { n: o.crew_size })) : null,
    o.after_order_id ? el("div", { class: "chip chained" }, t("chained_offer", { id: o.after_order_id })) : null,
    o.window_start ? el("div", { class: "muted" }, `${localTime(o.window_start, lang, true)}–${localTime(o.window_end, lang)}`) : null,
    o.lat != null ? el("div", { class: "muted" }, `${o.lat.toFixed(3)}, ${o.lng.toFixed(3)}`) : null,
    el("div", { class: "row" },
      el("button", { type: "submit", class: "accept" }, o.mode === "grab" ? t("grab") : t("accept")),
      reason,
      el("button", { type: "button", class: "btn secondary decline", onclick: () => decline(form, o, reason.value) }, t("decline"))),
    el("p", { class: "form-error" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await submitting(form, t, () => client.post(`/v1/offers/${o.offer_id}/accept`));
    if (r) { S.offers.delete(o.offer_id); toast(t("accepted_ok")); loadJob(); }
  });
  return form;
}

async function decline(form, o, reason) {
  const r = await submitting(form, t, async () => { await client.post(`/v1/offers/${o.offer_id}/reject`, { reason }); return true; });
  if (r) { S.offers.delete(o.offer_id); toast(t("declined_ok")); renderWork(); }
}

function jobCard(job) {
  const step = ACTIVE.indexOf(job.status);
  const card = el("section", { class: "card", id: "job", "data-status": job.status, "data-order-id": job.id },
    el("div", { class: "spread" }, el("h3", {}, t("current_job")), el("span", { class: "status" }, t(`s_${job.status}`))),
    el("div", { class: "steps" }, ACTIVE.map((_, i) => el("span", { class: i <= step ? "done" : "" }))),
    el("b", {}, S.service ? named(lang, S.service) : job.service_code),
    el("div", {}, job.address_detail || `${job.lat.toFixed(5)}, ${job.lng.toFixed(5)}`),
    S.next ? el("div", { class: "muted", id: "job-next", "data-order-id": S.next.id }, t("next_job", { id: S.next.id })) : null,
    job.contact_phone ? el("div", { class: "muted", id: "job-phone" }, `${t("customer_phone")}: ${job.contact_phone}`) : null,
    // A crew job: every member (★ the lead, ✓ arrived); the start waits for all of them.
    S.crew ? el("div", { class: "muted", id: "job-crew" }, t("crew_mates"),
      S.crew.map((m) => `${m.name}${m.seat === 0 ? " ★" : ""}${m.arrived_at ? " ✓" : ""}`).join("、"),
      el("div", {}, t("crew_wait"))) : null);
  const contact = el("span", { id: "contact" });
  card.append(el("div", { class: "row" }, el("button", { type: "button", class: "chip", id: "contact-customer", onclick: async () => {
    try {
      const c = await client.get(`/v1/orders/${job.id}/contact`);
      contact.replaceChildren(el("a", { href: `tel:${c.number}`, id: "contact-number" }, c.number));
    } catch (e) { toast(e.message, "error"); }
  } }, t("contact_customer")), contact));
  if (job.status === "assigned" || job.status === "en_route") {
    const links = navLinks(job.lat, job.lng, job.address_detail);
    card.append(el("div", { class: "row", id: "nav-links" }, el("span", { class: "muted" }, t("navigate")),
      el("a", { class: "chip", id: "nav-amap", href: links.amap, target: "_blank", rel: "noreferrer" }, t("amap")),
      el("a", { class: "chip", href: links.baidu }, t("baidu")),
      el("a", { class: "chip", href: links.tencent }, t("tencent"))));
    const row = el("div", { class: "row gap-top" });
    if (job.status === "assigned") row.append(el("button", { type: "button", class: "btn secondary", id: "depart", onclick: () => act("depart") }, t("depart")));
    row.append(el("button", { type: "button", class: "btn", id: "arrive", onclick: () => act("arrive") }, t("arrive")));
    card.append(row);
  }
  // On site, a one-worker job: "about N minutes left" (docs/dispatch.md#chained-orders);
  // the next job (接力单) may be offered when the end is near.
  if ((job.status === "arrived" || job.status === "in_service") && !(job.crew && job.crew.length > 1)) {
    const form = el("form", { id: "time-left-form", class: "wide", novalidate: true },
      job.expected_end_at ? el("div", { class: "muted", id: "expected-end", "data-at": job.expected_end_at }, t("expected_end", { t: localTime(job.expected_end_at, lang) })) : null,
      el("label", {}, t("job_time_left"), el("input", { name: "minutes_left", id: "time-left", type: "number", min: "1", max: "600", step: "1", inputmode: "numeric" })),
      el("button", { type: "submit", class: "btn secondary" }, t("time_left_send")), el("p", { class: "form-error" }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const raw = values(form).minutes_left.trim();
      const r = await submitting(form, t, () => client.post(`/v1/orders/${job.id}/time-left`, { minutes_left: raw === "" ? null : Number(raw) }));
      if (r) { toast(t("time_left_ok")); loadJob(); }
    });
    card.append(form);
  }
  if (job.status === "arrived") {
    const form = el("form", { id: "start-form", class: "wide", novalidate: true },
      el("label", {}, t("start_code"), el("input", { name: "start_code", id: "start-code", class: "code-input", inputmode: "numeric", autocomplete: "one-time-code" })),
      el("button", { type: "submit" }, t("start")), el("p", { class: "form-error" }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const r = await submitting(form, t, () => client.post(`/v1/orders/${job.id}/start`, { start_code: values(form).start_code.trim() }));
      if (r) loadJob();
    });
    card.append(form);
  }
  if (job.status === "in_service") {
    const items = S.service?.checklist || [];
    const done = () => items.every((_, i) => S.checked.has(i));
    const complete = el("button", { type: "submit", id: "complete", disabled: !done() }, t("complete"));
    const list = el("div", { id: "checklist" }, items.map((item, i) => el("label", { class: "check" },
      el("input", { type: "checkbox", "data-i": i, checked: S.checked.has(i), onchange: (ev) => {
        if (ev.target.checked) S.checked.add(i); else S.checked.delete(i);
        complete.disabled = !done();
      } }), lang === "en" ? item.en : item.zh)));
    const thumbs = el("div", { class: "thumbs", id: "photos" }, S.photos.map((p) => el("img", { src: p.url, alt: "", "data-file-id": p.id })));
    const file = el("input", { type: "file", accept: "image/*", capture: "environment", id: "photo-input", name: "body", onchange: async (ev) => {
      const f = ev.target.files[0];
      if (!f) return;
      const ok = await submitting(form, t, async () => {
        const meta = await client.upload("job_photo", f);
        const link = await client.get(`/v1/files/${meta.id}/url`);
        S.photos.push({ id: meta.id, url: link.path });
        // The card may have been drawn again (a job push) while the upload ran: add the
        // thumbnail to the one on the page, unless that drawing already had it.
        const live = document.getElementById("photos") || thumbs;
        if (!live.querySelector(`img[data-file-id="${meta.id}"]`)) {
          live.append(el("img", { src: link.path, alt: "", "data-file-id": meta.id }));
        }
        return true;
      });
      if (ok) ev.target.value = "";
    } });
    const form = el("form", { id: "complete-form", class: "wide", novalidate: true },
      items.length ? el("h3", {}, t("checklist")) : null, list,
      el("h3", {}, t("photos")), thumbs, el("label", { class: "chip inline" }, t("add_photo"), file),
      complete, el("p", { class: "form-error" }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const note = `checklist ${S.checked.size}/${items.length}`;
      const r = await submitting(form, t, () => client.post(`/v1/orders/${job.id}/complete`, { reason: note, photos: S.photos.map((p) => p.id) }));
      if (r) { toast(t("completed_ok")); S.job = null; renderWork(); loadJob(); }
    });
    card.append(form);
  }
  return card;
}

async function act(action) {
  try {
    await client.post(`/v1/orders/${S.job.id}/${action}`, { version: S.job.version });
  } catch (e) {
    toast(e.message, "error");
  }
  loadJob();
}

// An SOS over the worker socket when it is live (answered by sos_result), else over HTTP.
async function sendSos() {
  const at = S.position ? { lat: S.position.latitude, lng: S.position.longitude } : {};
  if (S.link && S.link.ready && S.link.send({ type: "sos", ...at })) {
    const answer = await new Promise((resolve) => {
      S.sosWaiter = resolve;
      setTimeout(() => resolve(null), 8000);
    });
    if (answer && answer.ok) return answer;
  }
  return client.post("/v1/sos", at);
}

function renderWork() {
  if (document.body.dataset.view !== "workView") return;
  S.sosCard ??= sosButton(t, sendSos); // kept across redraws: its status stays
  const offers = [...S.offers.values()].filter((o) => o.expires_at_ms > Date.now());
  const direct = offers.filter((o) => o.mode !== "grab");
  const pool = offers.filter((o) => o.mode === "grab");
  view.replaceChildren(
    S.sosCard,
    el("section", { class: "card shift", id: "shift", "data-on": S.onShift ? "1" : "0" },
      el("div", {}, el("b", {}, S.onShift ? t("on_shift") : t("off_shift")),
        el("div", { class: "muted", id: "position" }, S.position ? `${S.position.latitude.toFixed(5)}, ${S.position.longitude.toFixed(5)}` : (S.onShift ? t("no_position") : ""))),
      el("button", { type: "button", id: "shift-toggle", class: `switch ${S.onShift ? "on" : ""}`, onclick: () => (S.onShift ? endShift() : startShift()) },
        S.onShift ? t("go_off") : t("go_on"))),
    S.job ? jobCard(S.job) : el("section", { class: "card muted", id: "no-job" }, t("no_job")),
    el("h3", {}, t("offers")),
    el("div", { id: "offers" }, direct.length ? direct.map(offerCard) : el("p", { class: "muted" }, t("no_offers"))),
    el("h3", {}, t("grab_pool")),
    el("div", { id: "grab-pool" }, pool.length ? pool.map(offerCard) : el("p", { class: "muted" }, t("no_offers"))));
}

setInterval(() => {
  for (const c of document.querySelectorAll(".countdown[data-expires]")) {
    const left = Math.max(0, Math.round((Number(c.dataset.expires) - Date.now()) / 1000));
    c.textContent = `${left}s`;
    if (left === 0) c.closest("form")?.remove();
  }
}, 1000);

async function workView() {
  renderWork();
  if (S.onShift && !S.link) startShift();
  await loadJob();
}

// ---- plan, earnings, me ---------------------------------------------------------------------

function renderPlan(plan) {
  const stops = plan.stops || [];
  view.replaceChildren(el("section", { class: "card", id: "plan", "data-version": plan.version ?? "" },
    el("h3", {}, `${t("tab_plan")} ${plan.date}`),
    stops.length ? el("ol", { class: "list", id: "plan-stops" }, stops.map((s) => el("li", { "data-order-id": s.order_id },
      el("div", { class: "spread" }, el("b", {}, `${localTime(s.arrival_at, lang)} · ${s.service_code}`), el("span", { class: "status" }, t(`s_${s.status}`) || s.status)),
      el("div", { class: "muted" }, `${localTime(s.window_start, lang)}–${localTime(s.window_end, lang)} · ${s.duration_min} min`),
      s.address_detail ? el("div", {}, s.address_detail) : null)))
      : el("p", { class: "muted", id: "plan-empty" }, t("plan_empty")),
    (plan.breaks || []).map((b) => el("div", { class: "muted" }, `${t("break")} ${localTime(b.start_at, lang)} · ${Math.round(b.duration_s / 60)} min`)),
    el("div", { class: "muted" }, t("plan_travel", { m: Math.round((plan.travel_s || 0) / 60), km: ((plan.distance_m || 0) / 1000).toFixed(1) }))));
}

async function planView() { renderPlan(await client.get("/v1/me/plan")); }

// "12.5" → 1250 fen, exactly (no floats); null if it is not an amount.
function toFen(text) {
  const m = /^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(text);
  return m ? Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0")) : null;
}

function withdrawForm(wallet) {
  const form = el("form", { id: "withdraw-form", class: "card", novalidate: true },
    el("h3", {}, t("withdraw")),
    el("label", {}, t("amount_yuan"), el("input", { name: "amount_fen", id: "withdraw-amount", inputmode: "decimal", placeholder: "0.00", autocomplete: "off" })),
    el("p", { class: "muted" }, t("withdraw_rules", { min: money(wallet.min_withdrawal_fen), n: wallet.daily_count, limit: money(wallet.daily_limit_fen) })),
    el("button", { type: "submit", class: "btn" }, t("withdraw_go")),
    el("p", { class: "form-error" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const done = await submitting(form, t, async () => {
      const fen = toFen(values(form).amount_fen);
      if (fen === null) throw new ApiError(422, { code: "invalid_field", field: "amount_fen", message: t("bad_amount") });
      return client.post("/v1/me/withdrawals", { amount_fen: fen });
    });
    if (done) { toast(t("withdraw_ok")); await earningsView(); }
  });
  return form;
}

async function earningsView() {
  const [jobs, wallet, days, orders, wds] = await Promise.all([
    client.get("/v1/me/earnings/jobs"),
    client.get("/v1/me/wallet"),
    client.get("/v1/me/earnings", { period: "day", buckets: 7 }),
    client.get("/v1/me/earnings/orders", { limit: 30 }),
    client.get("/v1/me/withdrawals", { limit: 20 }),
  ]);
  const line = (key, fen, id) => el("div", { class: "spread" }, el("span", {}, t(key)), el("span", { class: "price", id }, money(fen)));
  view.replaceChildren(
    el("section", { class: "card", id: "wallet", "data-available": wallet.available_fen },
      el("h3", {}, t("wallet")),
      el("div", { class: "spread" }, el("span", {}, t("w_available")), el("span", { class: "price big", id: "wallet-available" }, money(wallet.available_fen))),
      line("w_frozen", wallet.frozen_fen, "wallet-frozen"),
      line("w_withdrawing", wallet.withdrawing_fen, "wallet-withdrawing"),
      line("w_withdrawn", wallet.withdrawn_fen, "wallet-withdrawn"),
      wallet.owed_fen ? line("w_owed", wallet.owed_fen, "wallet-owed") : null,
      wallet.fines_fen ? line("w_fines", wallet.fines_fen, "wallet-fines") : null,
      wallet.bonuses_fen ? line("w_bonuses", wallet.bonuses_fen, "wallet-bonuses") : null),
    withdrawForm(wallet),
    el("section", { class: "card", id: "withdrawals" }, el("h3", {}, t("withdrawals")),
      wds.items.length ? el("ul", { class: "list" }, wds.items.map((w) => el("li", { "data-withdrawal-id": w.id, "data-status": w.status },
        el("div", { class: "spread" }, el("span", {}, `${localTime(w.requested_at, lang, true)}`), el("span", { class: "price" }, money(w.amount_fen))),
        el("div", { class: "muted" }, t(`wd_${w.status}`), w.reason && w.status === "rejected" ? ` · ${w.reason}` : "", w.fail_reason ? ` · ${w.fail_reason}` : ""))))
        : el("p", { class: "muted" }, t("none_yet"))),
    // Today and in all (GET /v1/me/earnings/jobs): a crew job counts my share; a merchant's
    // staff member's jobs are paid to the merchant, so the card says so.
    el("section", { class: "card", id: "earnings", "data-merchant-id": jobs.merchant_id ?? "" },
      jobs.merchant_id ? el("div", { class: "chip", id: "earn-merchant" }, t("earn_for_merchant", { m: jobs.merchant_name })) : null,
      el("div", { class: "spread" }, el("span", {}, t("earn_today")), el("span", { class: "price big", id: "earn-today" }, money(jobs.today_fen))),
      el("div", { class: "muted", id: "earn-today-jobs" }, t("earn_jobs", { n: jobs.today_jobs })),
      el("div", { class: "spread" }, el("span", {}, t("earn_total")), el("span", { class: "price", id: "earn-total" }, money(jobs.total_fen))),
      el("div", { class: "muted" }, t("earn_jobs", { n: jobs.total_jobs })),
      el("p", { class: "muted", id: "earn-note" }, jobs.merchant_id ? t("earn_note_merchant", { m: jobs.merchant_name }) : t("earn_note"))),
    el("section", { class: "card", id: "earn-days" }, el("h3", {}, t("by_day")),
      days.buckets.length ? el("ul", { class: "list" }, days.buckets.map((b) => el("li", { class: "spread", "data-day": b.start },
        el("span", {}, `${b.start} · ${t("earn_jobs", { n: b.orders })}`), el("span", { class: "price" }, money(b.net_fen)))))
        : el("p", { class: "muted" }, t("none_yet"))),
    el("section", { class: "card", id: "earn-orders" }, el("h3", {}, t("by_order")),
      orders.items.length ? el("ul", { class: "list" }, orders.items.map((s) => el("li", { "data-order-id": s.order_id, "data-status": s.status, "data-crew-size": s.crew_size },
        el("div", { class: "spread" }, el("span", {}, `#${s.order_id} · ${s.service_code}`), el("span", { class: "price" }, money(s.net_fen))),
        s.crew_size > 1 ? el("div", { class: "chip crew" }, t("crew_share", { n: s.crew_size })) : null,
        el("div", { class: "muted" }, `${t("gross")} ${money(s.gross_fen)} · ${t("commission")} ${money(s.commission_fen)} · `,
          s.status === "settled" ? t("settled") : t("frozen_until", { d: localTime(s.due_at, lang, true) })))))
        : el("p", { class: "muted" }, t("none_yet"))));
}

async function meView() {
  const me = await client.get("/v1/me");
  view.replaceChildren(el("section", { class: "card", id: "me" }, el("h2", {}, me.name), el("div", { class: "muted" }, me.phone),
    el("a", { href: `/app#/worker/${me.id}` }, "★"), " ", el("a", { href: "#/reviews", id: "my-reviews-link" }, t("my_reviews")), " ",
    el("a", { href: "#/aftersales", id: "my-aftersales-link" }, t("w_aftersales")),
    el("button", { type: "button", class: "btn secondary", id: "logout", onclick: async () => { endShift(); S.applicant = undefined; await client.logout(); route(); } }, t("logout"))),
  contactsForm(client, t), privacyCard(client, lang, () => { endShift(); S.applicant = undefined; }));
}

// My reviews (docs/reviews.md): each with the customer's scores and text; a reply box under
// those not yet answered (one reply per review).
async function reviewsView() {
  const list = await client.get("/v1/me/reviews");
  const item = (r) => {
    const li = el("li", { class: "review", "data-order": r.order_id },
      el("div", { class: "spread" }, el("span", { class: "stars" }, "★".repeat(r.stars)), el("span", { class: "muted" }, `#${r.order_id} · ${localTime(r.created_at, lang, true)}`)),
      r.tags.length ? el("div", { class: "muted" }, r.tags.join(" · ")) : null,
      r.text ? el("div", {}, r.text) : null,
      r.hidden ? el("div", { class: "muted" }, t("review_hidden", { r: r.hidden_reason })) : null);
    if (r.reply) {
      li.append(el("div", { class: "reply muted" }, `${t("my_reply")}：${r.reply}`));
    } else {
      const form = el("form", { class: "reply-form", novalidate: true, "data-order": r.order_id },
        el("textarea", { name: "text", rows: 2, maxlength: 500, placeholder: t("reply_ph"), "data-field": "text" }),
        el("button", { type: "submit" }, t("send_reply")), el("p", { class: "form-error" }));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const done = await submitting(form, t, () => client.post(`/v1/orders/${r.order_id}/rating/reply`, { text: values(form).text }));
        if (done) li.replaceWith(item(done));
      });
      li.append(form);
    }
    return li;
  };
  view.replaceChildren(el("section", { class: "card", id: "reviews" }, el("h3", {}, t("my_reviews")),
    list.length ? el("ul", { class: "list" }, list.map(item)) : el("p", { class: "muted" }, t("no_reviews"))));
}

// After-sales tickets on my jobs, with my statement (worker-aftersales.js).
async function aftersalesView() { await workerTicketsView(view, client, t, lang); }

// ---- routing --------------------------------------------------------------------------------

async function applyView() { await applicationView(view, client, t, lang); }
async function trainingView() { await examsView(view, client, t, lang); }

const ROUTES = [[/^#?\/?$/, workView, "work"], [/^#\/plan$/, planView, "plan"], [/^#\/earnings$/, earningsView, "earnings"], [/^#\/me$/, meView, "me"],
  [/^#\/apply$/, applyView, "apply"], [/^#\/exams$/, trainingView, "exams"], [/^#\/reviews$/, reviewsView, "me"],
  [/^#\/aftersales$/, aftersalesView, "me"]];
// An applicant (worker role, no profile yet) sees only the application and training.
const APPLICANT_ROUTES = ["apply", "exams", "me"];

async function route() {
  if (!client.signedIn()) {
    document.body.dataset.view = "login";
    loginView(view, client, t, ["worker"], () => route());
    view.append(applyCard(client, t, () => route()));
    return;
  }
  if (S.applicant === undefined) {
    try { S.applicant = await applicantState(client); } catch { S.applicant = null; }
  }
  document.body.dataset.applicant = S.applicant ? "1" : "0";
  for (const a of document.querySelectorAll("#tabs a")) a.hidden = S.applicant ? !APPLICANT_ROUTES.includes(a.dataset.tab) : a.dataset.tab === "apply";
  const hash = location.hash || (S.applicant ? "#/apply" : "#/");
  let found = ROUTES.find(([re]) => re.test(hash)) || ROUTES[0];
  if (S.applicant && !APPLICANT_ROUTES.includes(found[2])) found = ROUTES.find(([, , tab]) => tab === "apply");
  const [, fn, tab] = found;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("on", a.dataset.tab === tab);
  document.body.dataset.view = fn.name;
  try {
    await fn();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { client.session.clear(); S.applicant = undefined; route(); return; }
    view.replaceChildren(el("p", { class: "form-error" }, e.message || String(e)));
  }
}

window.addEventListener("hashchange", route);
connState(S.onShift ? "connecting" : "signed_out_quiet");
route();
