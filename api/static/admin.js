// The back office (/admin): navigation by what the account may do (GET /v1/me/permissions:
// base roles and scoped grants). Each section shows when the account holds its permission
// in some scope other than its own data, and the parts of a section that need more (the
// platform's money, the audit chain, deciding appeals) show only with that permission too.
// Admins see everything; dispatchers run dispatch, orders, workers and cities; a city
// operator the same in their cities, merchants' review, onboarding and quality; customer
// service orders, after-sales and safety alerts; a merchant (or its staff) its own back
// office: staff, services and prices, routed orders. The API's own rules decide what each
// section holds (404 outside one's scope).

import {
  ApiError, Client, boot, el, localTime, loginView, money, named, submitting, toast, values,
} from "/static/client.js";
import { REVIEW_STRINGS, disciplineSection, examsSection, reviewSection } from "/static/review.js";
import { AFTERSALES_STRINGS, aftersalesSection } from "/static/aftersales.js";
import { GROWTH_ADMIN_STRINGS, marketingSection } from "/static/admin-growth.js";

const STRINGS = {
  app_title: { zh: "Doorstep 运营后台", en: "Doorstep back office" },
  logout: { zh: "退出", en: "Sign out" },
  login_title: { zh: "后台登录", en: "Back-office sign-in" },
  phone: { zh: "手机号", en: "Phone" },
  password: { zh: "密码", en: "Password" },
  login: { zh: "登录", en: "Sign in" },
  wrong_role: { zh: "此账号不能使用后台", en: "This account may not use the back office" },
  network_error: { zh: "网络错误，请重试", en: "Network error, try again" },
  n_dispatch: { zh: "调度台", en: "Dispatch" },
  n_orders: { zh: "订单", en: "Orders" },
  n_workers: { zh: "师傅与团队", en: "Workers & teams" },
  n_catalog: { zh: "服务与价格", en: "Catalog & prices" },
  n_cities: { zh: "城市", en: "Cities" },
  n_accounts: { zh: "账号管理", en: "Accounts" },
  n_analytics: { zh: "数据分析", en: "Analytics" },
  city: { zh: "城市", en: "City" },
  status: { zh: "状态", en: "Status" },
  any: { zh: "全部", en: "All" },
  open_console: { zh: "打开调度台（新窗口）", en: "Open the console (new window)" },
  dispatch_hint: {
    zh: "调度台实时显示城市的订单、师傅和候选人评分，可改派、暂停自动派单。",
    en: "The console shows a city's orders, workers and scored candidates live; override, pause automatic dispatch.",
  },
  paused: { zh: "自动派单已暂停", en: "Automatic dispatch paused" },
  running: { zh: "自动派单运行中", en: "Automatic dispatch running" },
  pause: { zh: "暂停", en: "Pause" },
  resume: { zh: "恢复", en: "Resume" },
  reason: { zh: "原因", en: "Reason" },
  id: { zh: "编号", en: "ID" },
  service: { zh: "服务", en: "Service" },
  price: { zh: "价格", en: "Price" },
  worker: { zh: "师傅", en: "Worker" },
  created: { zh: "下单时间", en: "Created" },
  address: { zh: "地址", en: "Address" },
  name: { zh: "姓名", en: "Name" },
  phone_col: { zh: "电话", en: "Phone" },
  skills: { zh: "技能", en: "Skills" },
  rating: { zh: "评分", en: "Rating" },
  team: { zh: "团队", en: "Team" },
  teams: { zh: "团队", en: "Teams" },
  members: { zh: "人数", en: "Members" },
  workers: { zh: "师傅", en: "Workers" },
  category: { zh: "分类", en: "Category" },
  duration: { zh: "时长(分钟)", en: "Minutes" },
  price_active: { zh: "价格(元) · 上架", en: "Price (¥) · on sale" },
  save: { zh: "保存", en: "Save" },
  saved: { zh: "已保存", en: "Saved" },
  active: { zh: "上架", en: "Active" },
  roles: { zh: "角色", en: "Roles" },
  role: { zh: "角色", en: "Role" },
  user_id: { zh: "账号编号", en: "Account id" },
  freeze: { zh: "冻结", en: "Freeze" },
  unfreeze: { zh: "解冻", en: "Unfreeze" },
  st_active: { zh: "正常", en: "Active" },
  st_frozen: { zh: "已冻结", en: "Frozen" },
  st_closed: { zh: "已注销", en: "Closed" },
  timezone: { zh: "时区", en: "Time zone" },
  currency: { zh: "币种", en: "Currency" },
  search: { zh: "查询", en: "Search" },
  more: { zh: "更多", en: "More" },
  none: { zh: "无", en: "None" },
  analytics_hint: { zh: "订单、GMV、履约、满意度等报表和热力图。", en: "Orders, GMV, fulfilment, satisfaction and the demand heatmap." },
  open_analytics: { zh: "打开数据分析", en: "Open analytics" },
  n_safety: { zh: "安全与审计", en: "Safety & audit" },
  safety_alerts: { zh: "安全告警（未处理）", en: "Open safety alerts" },
  kind: { zh: "类型", en: "Kind" },
  who: { zh: "对象", en: "Person" },
  order: { zh: "订单", en: "Order" },
  raised: { zh: "发起时间", en: "Raised" },
  state: { zh: "处理状态", en: "State" },
  acked: { zh: "已确认", en: "Acknowledged" },
  waiting: { zh: "待确认", en: "Waiting" },
  ack: { zh: "确认", en: "Acknowledge" },
  resolve: { zh: "处理完毕", en: "Resolve" },
  resolution: { zh: "处理结果", en: "What was done" },
  reveals: { zh: "地址查看记录", en: "Address reveals" },
  order_id: { zh: "订单编号", en: "Order id" },
  worker_id: { zh: "师傅编号", en: "Worker id" },
  at: { zh: "时间", en: "When" },
  what: { zh: "内容", en: "What" },
  audit: { zh: "审计日志（哈希链）", en: "Audit log (hash chain)" },
  verify: { zh: "校验", en: "Verify" },
  audit_ok: { zh: "完整：{n} 条记录，链头 #{seq}", en: "Intact: {n} entries, head #{seq}" },
  audit_bad: { zh: "被篡改：第 {seq} 条（{problem}）— {message}", en: "Tampered at entry {seq} ({problem}) — {message}" },
  no_alerts: { zh: "没有未处理的安全告警", en: "No open safety alerts" },
  n_finance: { zh: "财务", en: "Finance" },
  n_wallet: { zh: "钱包与提现", en: "Wallet & withdrawals" },
  w_available: { zh: "可提现", en: "Available" },
  w_frozen: { zh: "冻结中（售后期）", en: "Frozen (after-sales window)" },
  w_withdrawing: { zh: "提现中", en: "Being withdrawn" },
  w_withdrawn: { zh: "已提现", en: "Withdrawn" },
  amount_yuan: { zh: "提现金额（元）", en: "Amount (¥)" },
  withdraw_go: { zh: "申请提现", en: "Request a withdrawal" },
  withdraw_ok: { zh: "已提交提现申请", en: "Withdrawal requested" },
  bad_amount: { zh: "请输入金额，如 100 或 99.50", en: "Enter an amount such as 100 or 99.50" },
  by_day: { zh: "近 30 日收入", en: "The last 30 days" },
  day: { zh: "日期", en: "Day" },
  orders_n: { zh: "单数", en: "Orders" },
  f_review: { zh: "提现审核", en: "Withdrawals to review" },
  f_recent: { zh: "最近提现", en: "Recent withdrawals" },
  f_settlements: { zh: "结算", en: "Settlements" },
  crew_share_of: { zh: "{n} 人班组 · 本商家份额", en: "Crew of {n} · this merchant's share" },
  f_recon: { zh: "对账", en: "Reconciliation" },
  f_rules: { zh: "佣金规则", en: "Commission rules" },
  payee: { zh: "收款方", en: "Payee" },
  amount: { zh: "金额", en: "Amount" },
  requested: { zh: "申请时间", en: "Requested" },
  approve: { zh: "通过", en: "Approve" },
  reject: { zh: "驳回", en: "Reject" },
  approved_ok: { zh: "已通过，打款中", en: "Approved: paying out" },
  rejected_ok: { zh: "已驳回，款项退回钱包", en: "Rejected: the money is back in the wallet" },
  queue_empty: { zh: "没有待审核的提现", en: "Nothing to review" },
  order: { zh: "订单", en: "Order" },
  gross: { zh: "订单额", en: "Gross" },
  commission: { zh: "佣金", en: "Commission" },
  net: { zh: "到手", en: "Net" },
  due: { zh: "结算日", en: "Due" },
  settle_now: { zh: "立即结算到期订单", en: "Settle what is due now" },
  settled_n: { zh: "已结算 {n} 单", en: "Settled {n} orders" },
  provider: { zh: "渠道", en: "Provider" },
  bill_date: { zh: "账单日期", en: "Bill date" },
  bill_file: { zh: "账单文件（微信支付 CSV，支付宝 zip）", en: "Bill file (WeChat Pay CSV, Alipay zip)" },
  run_recon: { zh: "对账", en: "Reconcile" },
  differences: { zh: "差异", en: "Differences" },
  no_diff: { zh: "账单与账本一致", en: "The bill and the ledger agree" },
  kind: { zh: "类型", en: "Kind" },
  ref: { zh: "单号", en: "Reference" },
  problem: { zh: "问题", en: "Problem" },
  bill_amount: { zh: "账单金额", en: "Bill" },
  ledger_amount: { zh: "账本金额", en: "Ledger" },
  p_missing_in_ledger: { zh: "账本缺失", en: "Missing in the ledger" },
  p_missing_in_bill: { zh: "账单缺失", en: "Missing in the bill" },
  p_amount_mismatch: { zh: "金额不符", en: "Amounts differ" },
  p_duplicate_in_bill: { zh: "账单重复", en: "Twice in the bill" },
  ran_at: { zh: "对账时间", en: "Ran at" },
  rate_pct: { zh: "费率 %", en: "Rate %" },
  fixed: { zh: "固定(元)", en: "Fixed (¥)" },
  min: { zh: "最低(元)", en: "Min (¥)" },
  max: { zh: "最高(元)", en: "Max (¥)" },
  merchant: { zh: "商户", en: "Merchant" },
  add_rule: { zh: "添加规则", en: "Add rule" },
  deactivate: { zh: "停用", en: "Switch off" },
  specificity: { zh: "优先级", en: "Specificity" },
  n_roles: { zh: "角色与授权", en: "Roles & grants" },
  n_merchants: { zh: "商家审核", en: "Merchants" },
  n_shop: { zh: "我的商家", en: "My business" },
  permissions: { zh: "权限", en: "Permissions" },
  scopes: { zh: "可授予范围", en: "Grantable scopes" },
  scope: { zh: "范围", en: "Scope" },
  scope_hint: { zh: "platform / city:城市编号 / merchant:商家编号", en: "platform / city:<city id> / merchant:<merchant id>" },
  builtin: { zh: "内置", en: "Built in" },
  grant: { zh: "授权", en: "Grant" },
  grants: { zh: "授权记录", en: "Grants" },
  revoke: { zh: "撤销", en: "Revoke" },
  granted_at: { zh: "授权时间", en: "Granted" },
  new_role: { zh: "新建角色", en: "New role" },
  role_name: { zh: "角色编号", en: "Role name" },
  title: { zh: "名称", en: "Title" },
  perms_hint: { zh: "权限，逗号分隔", en: "Permissions, comma separated" },
  create: { zh: "创建", en: "Create" },
  audit: { zh: "审计日志", en: "Audit" },
  action: { zh: "操作", en: "Action" },
  actor: { zh: "操作人", en: "By" },
  at: { zh: "时间", en: "At" },
  licence: { zh: "营业执照", en: "Business licence" },
  view_file: { zh: "查看", en: "View" },
  approve: { zh: "通过", en: "Approve" },
  reject: { zh: "驳回", en: "Reject" },
  st_pending: { zh: "待审核", en: "Pending" },
  st_approved: { zh: "已通过", en: "Approved" },
  st_rejected: { zh: "已驳回", en: "Rejected" },
  my_cities: { zh: "我负责的城市", en: "My cities" },
  staff: { zh: "员工", en: "Staff" },
  add_staff: { zh: "加入团队（师傅编号）", en: "Add to the team (worker id)" },
  add: { zh: "添加", en: "Add" },
  my_services: { zh: "服务与价格", en: "Services & prices" },
  catalog_price: { zh: "平台价(元)", en: "Catalog (¥)" },
  my_price: { zh: "我的价格(元)", en: "My price (¥)" },
  routed_orders: { zh: "派给我的订单", en: "Orders routed to us" },
  dispatch_to: { zh: "派给", en: "Assign to" },
  assign: { zh: "派单", en: "Assign" },
  overflow: { zh: "转平台", en: "Overflow" },
};

const { lang, t } = boot({ ...STRINGS, ...REVIEW_STRINGS, ...AFTERSALES_STRINGS, ...GROWTH_ADMIN_STRINGS });
const client = new Client("admin");
const view = document.getElementById("view");
const nav = document.getElementById("nav");

// Sections and the permission each needs (held in some scope other than one's own data).
// The analytics page is served by its own route; "shop" needs a merchant of one's own.
const SECTIONS = [
  ["dispatch", "n_dispatch", "dispatch.pause"],
  ["orders", "n_orders", "orders.read"],
  ["workers", "n_workers", "workers.read"],
  ["catalog", "n_catalog", "catalog.edit"],
  ["cities", "n_cities", "dispatch.console"],
  ["accounts", "n_accounts", "users.freeze"],
  ["roles", "n_roles", "roles.read"],
  ["merchants", "n_merchants", "merchants.review"],
  ["shop", "n_shop", "merchant.orders"],
  ["analytics", "n_analytics", "analytics.read"],
  ["review", "n_review", "onboarding.review"],
  ["exams", "n_exams", "onboarding.assess"],
  ["discipline", "n_discipline", "quality.read"],
  ["safety", "n_safety", "safety.alerts"],
  ["finance", "n_finance", "finance.read"],
  ["aftersales", "n_aftersales", "aftersales.read"],
  ["marketing", "n_marketing", "growth.read"],
  // A merchant's own wallet: its own data, so by the base role ("own" scopes are not held).
  ["wallet", "n_wallet", ["merchant"]],
];
let cityCache = null;
let held = null; // permission -> scopes, from GET /v1/me/permissions
let shops = []; // the merchants whose back office the account runs

async function loadPermissions() {
  const mineNow = await client.get("/v1/me/permissions");
  held = new Map(mineNow.permissions.map((h) => [h.permission, h.scopes.filter((s) => s !== "own")]));
  shops = [];
  const ids = (held.get("merchant.orders") || []).filter((s) => s.startsWith("merchant:")).map((s) => Number(s.slice(9)));
  if (ids.length && can("merchants.read")) {  // a merchant role without an application has none
    shops = (await client.get("/v1/merchants")).filter((m) => ids.includes(m.id));
  }
}
const can = (perm) => (held?.get(perm) || []).length > 0;
// The cities a permission is held in: null for platform-wide (every city).
const citiesOf = (perm) => {
  const scopes = held?.get(perm) || [];
  return scopes.includes("platform") ? null : scopes.filter((s) => s.startsWith("city:")).map((s) => s.slice(5));
};
const myCities = () => citiesOf(held?.get("dispatch.console") ? "dispatch.console" : "orders.read");
const mine = () => SECTIONS.filter(([id, , perm]) => (id === "shop" ? shops.length > 0
  : Array.isArray(perm) ? perm.some((r) => client.user?.roles.includes(r)) : can(perm)));
async function backOffice() { await loadPermissions(); return mine().length > 0; }
async function cities(perm = null) {
  const only = perm ? citiesOf(perm) : myCities();
  cityCache ??= await client.get("/v1/cities");
  return only ? cityCache.filter((c) => only.includes(c.id)) : cityCache;
}
function citySelect(name = "city_id", withAny = true, perm = null) {
  const s = el("select", { name, id: `${name}-select` });
  cities(perm).then((list) => {
    if (withAny) s.append(el("option", { value: "" }, t("any")));
    for (const c of list) s.append(el("option", { value: c.id }, `${named(lang, c)} (${c.id})`));
  });
  return s;
}
const table = (id, heads, rows) => el("table", { id }, el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, t(h))))), el("tbody", {}, rows));

// ---- sections ---------------------------------------------------------------------------------

async function dispatch() {
  const list = await cities();
  view.replaceChildren(el("h2", {}, t("n_dispatch")), el("p", { class: "muted" }, t("dispatch_hint")),
    table("dispatch-cities", ["city", "reason", ""], list.filter((c) => c.active).map((c) => {
      const reason = el("input", { name: "reason", placeholder: t("reason") });
      const form = el("form", { class: "row", novalidate: true, "data-city": c.id }, reason);
      const send = (paused) => submitting(form, t, async () => {
        await client.put(`/v1/cities/${encodeURIComponent(c.id)}/dispatch`, { paused, reason: reason.value });
        toast(paused ? t("paused") : t("running"));
        return true;
      });
      form.append(
        el("button", { type: "button", class: "btn secondary pause", onclick: () => send(true) }, t("pause")),
        el("button", { type: "button", class: "btn secondary resume", onclick: () => send(false) }, t("resume")),
        el("p", { class: "form-error" }));
      form.addEventListener("submit", (ev) => ev.preventDefault());
      return el("tr", { "data-city": c.id },
        el("td", {}, el("a", { href: `/console?city=${encodeURIComponent(c.id)}&lang=${lang}`, target: "_blank", rel: "noopener" }, `${named(lang, c)} — ${t("open_console")}`)),
        el("td", { colspan: 2 }, form));
    })));
}

async function orders() {
  const form = el("form", { class: "toolbar", id: "orders-filter", novalidate: true },
    el("label", {}, t("city"), citySelect()),
    el("label", {}, t("status"), el("select", { name: "status" }, el("option", { value: "" }, t("any")),
      ["dispatching", "offered", "assigned", "en_route", "arrived", "in_service", "completed", "cancelled", "failed", "confirmed"].map((s) => el("option", { value: s }, s)))),
    el("button", { type: "submit" }, t("search")), el("p", { class: "form-error" }));
  const out = el("div");
  view.replaceChildren(el("h2", {}, t("n_orders")), form, out);
  const run = async () => {
    const v = values(form);
    const list = await submitting(form, t, () => client.get("/v1/orders", { city_id: v.city_id, status: v.status, limit: 100 }));
    if (!list) return;
    out.replaceChildren(table("orders", ["id", "city", "service", "status", "worker", "price", "address", "created"], list.map((o) => el("tr", { "data-order-id": o.id },
      el("td", {}, el("a", { href: `/track/${o.id}?lang=${lang}`, target: "_blank", rel: "noopener" }, `#${o.id}`)),
      el("td", {}, o.city_id), el("td", {}, o.service_code), el("td", {}, el("span", { class: "status" }, o.status)),
      el("td", {}, o.worker_id ?? ""), el("td", {}, money(o.price_minor, o.currency)), el("td", {}, o.address_detail),
      el("td", {}, localTime(o.created_at, lang, true))))));
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  await run();
}

async function workers() {
  const [teams, list] = await Promise.all([client.get("/v1/teams"), client.get("/v1/workers", { limit: 500 })]);
  const teamName = new Map(teams.map((tm) => [tm.id, tm.name]));
  view.replaceChildren(el("h2", {}, t("n_workers")),
    el("h3", {}, t("teams")),
    table("teams", ["id", "team", "city", "members"], teams.map((tm) => el("tr", { "data-team-id": tm.id },
      el("td", {}, tm.id), el("td", {}, tm.name), el("td", {}, tm.city_id), el("td", {}, tm.members)))),
    el("h3", {}, `${t("workers")} (${list.length})`),
    table("workers", ["id", "name", "phone_col", "city", "team", "skills", "rating"], list.map((w) => el("tr", { "data-worker-id": w.user_id, "data-team-id": w.team_id ?? "" },
      el("td", {}, w.user_id), el("td", {}, w.name), el("td", {}, w.phone), el("td", {}, w.city_id),
      el("td", {}, w.team_id ? (teamName.get(w.team_id) ?? w.team_id) : t("none")), el("td", {}, w.skills.join(", ")),
      el("td", {}, w.rating == null ? "—" : `${w.rating.toFixed(2)} (${w.rating_count})`)))));
}

async function catalog() {
  const [cats, list] = await Promise.all([client.get("/v1/categories"), client.get("/v1/services")]);
  const catName = new Map(cats.map((c) => [c.code, named(lang, c)]));
  view.replaceChildren(el("h2", {}, t("n_catalog")),
    table("services", ["service", "category", "duration", "price_active"], list.map((s) => {
      const form = el("form", { class: "row", novalidate: true, "data-service": s.code },
        el("input", { name: "price_minor", value: (s.price_minor / 100).toFixed(2), class: "narrow" }),
        el("input", { type: "checkbox", name: "active", checked: s.active }),
        el("button", { type: "submit" }, t("save")), el("p", { class: "form-error" }));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const v = values(form);
        const yuan = Number(v.price_minor);
        const body = {
          category: s.category, name_zh: s.name_zh, name_en: s.name_en, description_zh: s.description_zh, description_en: s.description_en,
          price_minor: Number.isFinite(yuan) ? Math.round(yuan * 100) : v.price_minor, currency: s.currency, duration_min: s.duration_min,
          required_skills: s.required_skills, required_certificates: s.required_certificates, checklist: s.checklist,
          instant: s.instant, scheduled: s.scheduled, active: v.active,
        };
        const r = await submitting(form, t, () => client.put(`/v1/services/${s.code}`, body));
        if (r) toast(t("saved"));
      });
      return el("tr", {}, el("td", {}, `${named(lang, s)} `, el("span", { class: "muted" }, s.code)), el("td", {}, catName.get(s.category) || s.category),
        el("td", {}, s.duration_min), el("td", {}, form));
    })));
}

async function citiesView() {
  cityCache = null;
  const list = await cities();
  view.replaceChildren(el("h2", {}, myCities() ? t("my_cities") : t("n_cities")),
    table("cities", ["id", "name", "timezone", "currency", "status"], list.map((c) => el("tr", { "data-city": c.id },
      el("td", {}, c.id), el("td", {}, named(lang, c)), el("td", {}, c.timezone), el("td", {}, c.currency),
      el("td", {}, c.active ? t("st_active") : "—")))));
}

async function accounts() {
  const form = el("form", { class: "toolbar", id: "accounts-filter", novalidate: true },
    el("label", {}, t("role"), el("select", { name: "role" }, el("option", { value: "" }, t("any")),
      ["customer", "worker", "merchant", "dispatcher", "admin", "finance"].map((r) => el("option", { value: r }, r)))),
    el("label", {}, t("user_id"), el("input", { name: "user_id", id: "user-id", inputmode: "numeric", class: "narrow" })),
    el("button", { type: "submit" }, t("search")), el("p", { class: "form-error" }));
  const out = el("div");
  view.replaceChildren(el("h2", {}, t("n_accounts")), form, out);
  let last = [];
  const run = async (after) => {
    const v = values(form);
    const list = await submitting(form, t, async () => (v.user_id.trim()
      ? [await client.get(`/v1/users/${encodeURIComponent(v.user_id.trim())}`)]
      : client.get("/v1/users", { role: v.role, after_id: after, limit: 100 })));
    if (!list) return;
    last = after ? last.concat(list) : list;
    out.replaceChildren(table("accounts", ["id", "name", "phone_col", "roles", "status", ""], last.map((u) => {
      const frozen = u.status === "frozen";
      const button = el("button", { type: "button", class: `btn ${frozen ? "secondary" : "danger"} freeze`, "data-user-id": u.id, hidden: u.status === "closed" || u.id === client.user.id,
        onclick: async () => {
          try {
            await client.put(`/v1/users/${u.id}/status`, { status: frozen ? "active" : "frozen" });
            u.status = frozen ? "active" : "frozen";
            toast(t("saved"));
            run();
          } catch (e) { toast(e.message, "error"); }
        } }, frozen ? t("unfreeze") : t("freeze"));
      return el("tr", { "data-user-id": u.id, "data-status": u.status },
        el("td", {}, u.id), el("td", {}, u.name), el("td", {}, u.phone), el("td", {}, u.roles.join(", ")),
        el("td", {}, el("span", { class: `pill ${u.status}` }, t(`st_${u.status}`))), el("td", {}, button));
    })));
    if (list.length === 100) out.append(el("button", { type: "button", class: "btn secondary", onclick: () => run(list[list.length - 1].id) }, t("more")));
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  await run();
}

async function analytics() {
  view.replaceChildren(el("h2", {}, t("n_analytics")), el("p", { class: "muted" }, t("analytics_hint")),
    el("a", { class: "btn", href: `/admin/analytics?lang=${lang}`, id: "analytics-link" }, t("open_analytics")));
}

// Safety alerts to acknowledge and resolve (dispatchers and admins); for admins, the
// address reveals and the audit chain's verification (docs/safety.md).
async function safety() {
  const city = citySelect("city_id", false, "safety.alerts");
  const alertsOut = el("div", { id: "safety-alerts" });
  const handles = can("safety.alerts.handle");
  const loadAlerts = async () => {
    if (!city.value) { const list = await cities("safety.alerts"); city.value = list[0]?.id ?? ""; }
    const list = await client.get("/v1/safety/alerts", { city_id: city.value });
    alertsOut.replaceChildren(list.length ? table("safety-table", ["id", "kind", "who", "order", "raised", "state", ""], list.map((a) => {
      const note = el("input", { name: "resolution", placeholder: t("resolution") });
      const act = async (what) => {
        try {
          await client.post(`/v1/safety/alerts/${a.id}/${what}`, what === "resolve" ? { resolution: note.value } : undefined);
          toast(t("saved"));
          loadAlerts();
        } catch (e) { toast(e.message, "error"); }
      };
      return el("tr", { "data-alert-id": a.id, "data-kind": a.kind },
        el("td", {}, a.id), el("td", {}, a.kind), el("td", {}, `${a.subject_role} #${a.subject_id}`), el("td", {}, a.order_id ?? ""),
        el("td", {}, localTime(a.raised_at, lang, true)), el("td", {}, a.acknowledged_at ? t("acked") : t("waiting")),
        el("td", {}, !handles ? null : [a.acknowledged_at ? null : el("button", { type: "button", class: "btn secondary ack", onclick: () => act("ack") }, t("ack")),
          note, el("button", { type: "button", class: "btn resolve", onclick: () => act("resolve") }, t("resolve"))]));
    })) : el("p", { class: "muted" }, t("no_alerts")));
  };
  city.addEventListener("change", loadAlerts);
  const parts = [el("h2", {}, t("n_safety")), el("h3", {}, t("safety_alerts")), el("div", { class: "toolbar" }, city), alertsOut];
  if (can("safety.read")) {  // address reveals and the audit chain: platform-wide staff only
    const form = el("form", { class: "toolbar", id: "reveals-filter", novalidate: true },
      el("label", {}, t("order_id"), el("input", { name: "order_id", inputmode: "numeric", class: "narrow" })),
      el("label", {}, t("worker_id"), el("input", { name: "worker_id", inputmode: "numeric", class: "narrow" })),
      el("button", { type: "submit" }, t("search")), el("p", { class: "form-error" }));
    const revealsOut = el("div");
    const runReveals = async () => {
      const v = values(form);
      const list = await submitting(form, t, () => client.get("/v1/admin/reveals", {
        order_id: v.order_id.trim() || undefined, worker_id: v.worker_id.trim() || undefined, limit: 100,
      }));
      if (!list) return;
      revealsOut.replaceChildren(table("reveals", ["id", "order", "worker", "at", "what"], list.map((r) => el("tr", { "data-reveal-id": r.id },
        el("td", {}, r.id), el("td", {}, r.order_id), el("td", {}, `${r.worker_name ?? ""} #${r.worker_id}`),
        el("td", {}, localTime(r.at, lang, true)), el("td", {}, r.what)))));
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); runReveals(); });
    const auditOut = el("p", { id: "audit-status", class: "muted" });
    const verify = async () => {
      const r = await client.get("/v1/admin/audit/verify");
      auditOut.dataset.ok = r.ok ? "1" : "0";
      auditOut.textContent = r.ok ? t("audit_ok", { n: r.checked, seq: r.last_seq }) : t("audit_bad", { seq: r.seq, problem: r.problem, message: r.message });
    };
    parts.push(el("h3", {}, t("reveals")), form, revealsOut,
      el("h3", {}, t("audit")), el("div", { class: "toolbar" }, el("button", { type: "button", class: "btn secondary", id: "audit-verify", onclick: verify }, t("verify"))), auditOut);
    view.replaceChildren(...parts);
    await Promise.all([loadAlerts(), runReveals(), verify()]);
    return;
  }
  view.replaceChildren(...parts);
  await loadAlerts();
}

// ---- finance ----------------------------------------------------------------------------------

// "12.5" → 1250 fen exactly; "" → undefined (left out); anything else is sent as it is and
// the API names the field.
function fen(text) {
  const v = String(text ?? "").trim();
  if (!v) return undefined;
  const m = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(v);
  return m ? Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0")) : v;
}

function diffTable(run) {
  if (!run.items.length) return el("p", { class: "muted", id: "recon-clean" }, t("no_diff"));
  return table("recon-diffs", ["kind", "ref", "problem", "bill_amount", "ledger_amount"], run.items.map((d) => el("tr", { "data-problem": d.problem, "data-ref": d.ref },
    el("td", {}, d.kind), el("td", {}, d.ref), el("td", {}, el("span", { class: "pill frozen" }, t(`p_${d.problem}`))),
    el("td", {}, d.bill_fen == null ? "—" : money(d.bill_fen)), el("td", {}, d.ledger_fen == null ? "—" : money(d.ledger_fen)))));
}

async function finance() {
  // A city's finance sees its cities' withdrawals and settlements; the platform's money
  // (settlement runs, reconciliation, commission rules) needs finance.platform.
  const platform = can("finance.platform");
  const reviews = can("finance.withdrawals.review");
  const none = Promise.resolve({ items: [] });
  const [queue, recent, settled, runs, rules] = await Promise.all([
    client.get("/v1/finance/withdrawals", { status: "requested", limit: 100 }),
    client.get("/v1/finance/withdrawals", { limit: 30 }),
    client.get("/v1/finance/settlements", { limit: 30 }),
    platform ? client.get("/v1/finance/reconciliations", { limit: 10 }) : none,
    platform ? client.get("/v1/admin/commission-rules") : none,
  ]);
  const review = (w, approve, reason) => async () => {
    try {
      await client.post(`/v1/finance/withdrawals/${w.id}/${approve ? "approve" : "reject"}`, { reason: reason.value });
      toast(approve ? t("approved_ok") : t("rejected_ok"));
      await finance();
    } catch (e) { toast(e.message, "error"); reason.classList.add("invalid"); }
  };
  const settleButton = el("button", { type: "button", class: "btn secondary", id: "settle-now", onclick: async () => {
    try { const r = await client.post("/v1/finance/settlements/run"); toast(t("settled_n", { n: r.settled })); await finance(); } catch (e) { toast(e.message, "error"); }
  } }, t("settle_now"));
  const yesterday = new Date(Date.now() + 8 * 3600e3 - 86400e3).toISOString().slice(0, 10);
  const recon = el("form", { class: "toolbar", id: "recon-form", novalidate: true },
    el("label", {}, t("provider"), el("select", { name: "provider" }, el("option", { value: "wechat" }, "微信支付 WeChat Pay"), el("option", { value: "alipay" }, "支付宝 Alipay"))),
    el("label", {}, t("bill_date"), el("input", { name: "bill_date", type: "date", value: yesterday })),
    el("label", {}, t("bill_file"), el("input", { name: "bill", type: "file", id: "bill-file", accept: ".csv,.zip,text/csv,application/zip" })),
    el("button", { type: "submit" }, t("run_recon")), el("p", { class: "form-error" }));
  const reconOut = el("div", { id: "recon-out" });
  recon.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(recon);
    const file = recon.querySelector("#bill-file").files[0];
    // WeChat's bill is UTF-8 text; Alipay's is a zip of GBK files: sent as its bytes, in base64.
    const asBase64 = async (f) => {
      const bytes = new Uint8Array(await f.arrayBuffer());
      let s = "";
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const sent = !file ? {} : v.provider === "wechat" && !/\.zip$/i.test(file.name) ? { bill: await file.text() } : { bill_base64: await asBase64(file) };
    const run = await submitting(recon, t, async () => client.post("/v1/finance/reconciliations",
      { provider: v.provider, bill_date: v.bill_date, ...sent }));
    if (run) reconOut.replaceChildren(el("h4", { "data-provider": run.provider }, `${run.provider} · ${run.bill_date} · ${t("differences")}: ${run.differences}`), diffTable(run));
  });
  const ruleForm = el("form", { class: "toolbar", id: "rule-form", novalidate: true },
    el("label", {}, t("rate_pct"), el("input", { name: "rate_bps", class: "narrow", inputmode: "decimal" })),
    el("label", {}, t("fixed"), el("input", { name: "fixed_fen", class: "narrow" })),
    el("label", {}, t("min"), el("input", { name: "min_fen", class: "narrow" })),
    el("label", {}, t("max"), el("input", { name: "max_fen", class: "narrow" })),
    el("label", {}, t("city"), citySelect()),
    el("label", {}, t("category"), el("input", { name: "category", class: "narrow" })),
    el("label", {}, t("service"), el("input", { name: "service_code", class: "narrow" })),
    el("label", {}, t("merchant"), el("input", { name: "merchant_id", class: "narrow", inputmode: "numeric" })),
    el("button", { type: "submit" }, t("add_rule")), el("p", { class: "form-error" }));
  ruleForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(ruleForm);
    const pct = /^\d{1,3}(\.\d{1,2})?$/.exec(v.rate_bps.trim()) ? Math.round(Number(v.rate_bps) * 100) : v.rate_bps;
    const body = { rate_bps: pct, fixed_fen: fen(v.fixed_fen), min_fen: fen(v.min_fen), max_fen: fen(v.max_fen),
      city_id: v.city_id || undefined, category: v.category.trim() || undefined, service_code: v.service_code.trim() || undefined,
      merchant_id: v.merchant_id.trim() ? (/^\d+$/.test(v.merchant_id.trim()) ? Number(v.merchant_id) : v.merchant_id) : undefined };
    const made = await submitting(ruleForm, t, () => client.post("/v1/admin/commission-rules", body));
    if (made) { toast(t("saved")); await finance(); }
  });
  view.replaceChildren(el("h2", {}, t("n_finance")),
    el("h3", {}, t("f_review")),
    queue.items.length ? table("withdrawal-queue", ["id", "payee", "amount", "requested", "reason", ""], queue.items.map((w) => {
      const reason = el("input", { name: "reason", placeholder: t("reason"), class: "narrow" });
      return el("tr", { "data-withdrawal-id": w.id },
        el("td", {}, w.id), el("td", {}, `${w.payee_kind} #${w.payee_id}`), el("td", {}, money(w.amount_fen)),
        el("td", {}, localTime(w.requested_at, lang, true)), el("td", {}, reviews ? reason : null),
        el("td", {}, !reviews ? null : [el("button", { type: "button", class: "btn approve", onclick: review(w, true, reason) }, t("approve")), " ",
          el("button", { type: "button", class: "btn danger reject", onclick: review(w, false, reason) }, t("reject"))]));
    })) : el("p", { class: "muted", id: "queue-empty" }, t("queue_empty")),
    el("h3", {}, t("f_recent")),
    table("withdrawals", ["id", "payee", "amount", "status", "requested", "reason"], recent.items.map((w) => el("tr", { "data-withdrawal-id": w.id, "data-status": w.status },
      el("td", {}, w.id), el("td", {}, `${w.payee_kind} #${w.payee_id}`), el("td", {}, money(w.amount_fen)),
      el("td", {}, el("span", { class: "status" }, w.status)), el("td", {}, localTime(w.requested_at, lang, true)), el("td", {}, w.fail_reason || w.reason)))),
    el("h3", {}, t("f_settlements"), " ", platform ? settleButton : null),
    table("settlements", ["order", "payee", "status", "gross", "commission", "net", "due"], settled.items.map((x) => el("tr", { "data-order-id": x.order_id, "data-status": x.status },
      el("td", {}, `#${x.order_id}`), el("td", {}, `${x.payee_kind} #${x.payee_id}`), el("td", {}, el("span", { class: "status" }, x.status)),
      el("td", {}, money(x.gross_fen)), el("td", {}, money(x.commission_fen)), el("td", {}, money(x.net_fen)), el("td", {}, localTime(x.due_at, lang, true))))),
    ...(platform ? platformMoney(recon, reconOut, runs, ruleForm, rules) : []));
}

// The platform's money, for finance.platform holders: reconciliation runs and commission rules.
function platformMoney(recon, reconOut, runs, ruleForm, rules) {
  return [
    el("h3", {}, t("f_recon")), recon, reconOut,
    table("recon-runs", ["id", "provider", "bill_date", "ran_at", "differences"], runs.items.map((r) => el("tr", { "data-run-id": r.id },
      el("td", {}, el("a", { href: "#/finance", onclick: async (ev) => { ev.preventDefault(); const full = await client.get(`/v1/finance/reconciliations/${r.id}`); reconOut.replaceChildren(el("h4", {}, `${r.bill_date} · ${t("differences")}: ${full.differences}`), diffTable(full)); } }, `#${r.id}`)),
      el("td", {}, r.provider), el("td", {}, r.bill_date), el("td", {}, localTime(r.ran_at, lang, true)), el("td", {}, r.differences)))),
    el("h3", {}, t("f_rules")), ruleForm,
    table("rules", ["id", "city", "category", "service", "merchant", "rate_pct", "fixed", "min", "max", "specificity", ""], rules.items.map((r) => el("tr", { "data-rule-id": r.id },
      el("td", {}, r.id), el("td", {}, r.city_id ?? "*"), el("td", {}, r.category ?? "*"), el("td", {}, r.service_code ?? "*"), el("td", {}, r.merchant_id ?? "*"),
      el("td", {}, `${(r.rate_bps / 100).toFixed(2)}%`), el("td", {}, money(r.fixed_fen)), el("td", {}, money(r.min_fen)), el("td", {}, r.max_fen == null ? "—" : money(r.max_fen)),
      el("td", {}, r.specificity),
      el("td", {}, el("button", { type: "button", class: "btn secondary", onclick: async () => { try { await client.post(`/v1/admin/commission-rules/${r.id}/deactivate`); await finance(); } catch (e) { toast(e.message, "error"); } } }, t("deactivate"))))))];
}

// A merchant's wallet: what their teams' completed orders earned, settled after the
// after-sales window, and withdrawals (the same API as the worker's app, as=merchant).
async function wallet() {
  const as = { as: "merchant" };
  const [w, days, orders, wds] = await Promise.all([
    client.get("/v1/me/wallet", as),
    client.get("/v1/me/earnings", { ...as, period: "day", buckets: 30 }),
    client.get("/v1/me/earnings/orders", { ...as, limit: 50 }),
    client.get("/v1/me/withdrawals", { ...as, limit: 30 }),
  ]);
  const form = el("form", { class: "toolbar", id: "withdraw-form", novalidate: true },
    el("label", {}, t("amount_yuan"), el("input", { name: "amount_fen", id: "withdraw-amount", inputmode: "decimal", class: "narrow" })),
    el("button", { type: "submit" }, t("withdraw_go")), el("p", { class: "form-error" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const amount = fen(values(form).amount_fen);
    const done = await submitting(form, t, async () => {
      if (typeof amount !== "number") throw new ApiError(422, { code: "invalid_field", field: "amount_fen", message: t("bad_amount") });
      return client.post("/v1/me/withdrawals", { amount_fen: amount, payee: "merchant" });
    });
    if (done) { toast(t("withdraw_ok")); await wallet(); }
  });
  view.replaceChildren(el("h2", {}, t("n_wallet")),
    table("wallet", ["w_available", "w_frozen", "w_withdrawing", "w_withdrawn"], [el("tr", {},
      el("td", { id: "wallet-available" }, money(w.available_fen)), el("td", {}, money(w.frozen_fen)),
      el("td", {}, money(w.withdrawing_fen)), el("td", {}, money(w.withdrawn_fen)))]),
    form,
    el("h3", {}, t("f_recent")),
    table("withdrawals", ["id", "amount", "status", "requested", "reason"], wds.items.map((x) => el("tr", { "data-withdrawal-id": x.id, "data-status": x.status },
      el("td", {}, x.id), el("td", {}, money(x.amount_fen)), el("td", {}, el("span", { class: "status" }, x.status)),
      el("td", {}, localTime(x.requested_at, lang, true)), el("td", {}, x.fail_reason || x.reason)))),
    el("h3", {}, t("by_day")),
    table("earn-days", ["day", "orders_n", "gross", "commission", "net"], days.buckets.map((b) => el("tr", { "data-day": b.start },
      el("td", {}, b.start), el("td", {}, b.orders), el("td", {}, money(b.gross_fen)), el("td", {}, money(b.commission_fen)), el("td", {}, money(b.net_fen))))),
    el("h3", {}, t("f_settlements")),
    // A crew order: labelled, its amounts this merchant's shares, every member of ours on it.
    table("earn-orders", ["order", "worker", "status", "gross", "commission", "net", "due"], orders.items.map((x) => el("tr", { "data-order-id": x.order_id, "data-status": x.status, "data-crew-size": x.crew_size },
      el("td", {}, `#${x.order_id}`, x.crew_size > 1 ? el("div", { class: "chip inline crew" }, t("crew_share_of", { n: x.crew_size })) : null),
      el("td", { class: "members" }, x.members.length ? x.members.map((m) => `${m.name} (${m.worker_id}) ${money(m.net_fen)}`).join("、") : x.worker_id),
      el("td", {}, el("span", { class: "status" }, x.status)),
      el("td", {}, money(x.gross_fen)), el("td", {}, money(x.commission_fen)), el("td", {}, money(x.net_fen)), el("td", {}, localTime(x.due_at, lang, true))))));
}

async function roles() {
  const [list, grants, audit] = await Promise.all([
    client.get("/v1/roles"), client.get("/v1/grants"), client.get("/v1/permission-audit", { limit: 20 }),
  ]);
  // Base roles are an account's, not granted; "dispatcher" is both: its template is kept.
  const grantable = [...new Map(list.filter((r) => !["admin", "customer", "worker", "merchant"].includes(r.name)).map((r) => [r.name, r])).values()];
  const grantForm = el("form", { class: "toolbar", id: "grant-form", novalidate: true },
    el("label", {}, t("user_id"), el("input", { name: "user_id", class: "narrow", inputmode: "numeric" })),
    el("label", {}, t("role"), el("select", { name: "role" }, grantable.map((r) => el("option", { value: r.name }, `${r.title} (${r.name})`)))),
    el("label", {}, t("scope"), el("input", { name: "scope", placeholder: t("scope_hint") })),
    el("button", { type: "submit" }, t("grant")), el("p", { class: "form-error" }));
  grantForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(grantForm);
    const uid = Number(v.user_id);
    const done = await submitting(grantForm, t, () => client.post("/v1/grants", { user_id: Number.isInteger(uid) && uid > 0 ? uid : v.user_id, role: v.role, scope: v.scope.trim() }));
    if (done) { toast(t("saved")); roles(); }
  });
  const roleForm = el("form", { class: "toolbar", id: "role-form", novalidate: true },
    el("label", {}, t("role_name"), el("input", { name: "name", class: "narrow" })),
    el("label", {}, t("title"), el("input", { name: "title", class: "narrow" })),
    el("label", {}, t("permissions"), el("input", { name: "permissions", placeholder: t("perms_hint") })),
    ...["platform", "city", "merchant"].map((k) => el("label", {}, el("input", { type: "checkbox", name: `scope_${k}`, checked: k === "city" }), k)),
    el("span", { "data-field": "scopes" }),
    el("button", { type: "submit" }, t("create")), el("p", { class: "form-error" }));
  roleForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(roleForm);
    const body = {
      name: v.name.trim(), title: v.title.trim(),
      permissions: v.permissions.split(",").map((p) => p.trim()).filter(Boolean),
      scopes: ["platform", "city", "merchant"].filter((k) => v[`scope_${k}`]),
    };
    const done = await submitting(roleForm, t, () => client.post("/v1/roles", body));
    if (done) { toast(t("saved")); roles(); }
  });
  view.replaceChildren(el("h2", {}, t("n_roles")),
    el("h3", {}, t("grant")), grantForm,
    table("grants", ["id", "user_id", "role", "scope", "granted_at", ""], grants.map((g) => el("tr", { "data-grant-id": g.id, "data-user-id": g.user_id },
      el("td", {}, g.id), el("td", {}, g.user_id), el("td", {}, g.role), el("td", {}, g.scope), el("td", {}, localTime(g.granted_at, lang, true)),
      el("td", {}, el("button", { type: "button", class: "btn danger revoke", "data-grant-id": g.id, onclick: async () => {
        try { await client.del(`/v1/grants/${g.id}`); toast(t("saved")); roles(); } catch (e) { toast(e.message, "error"); }
      } }, t("revoke")))))),
    el("h3", {}, t("roles")),
    table("roles", ["role", "title", "permissions", "scopes"], list.map((r) => el("tr", { "data-role": r.name },
      el("td", {}, r.name, r.builtin ? el("span", { class: "muted" }, ` · ${t("builtin")}`) : ""), el("td", {}, r.title),
      el("td", { class: "muted" }, r.permissions.join(", ")), el("td", {}, r.scopes.join(", "))))),
    el("h3", {}, t("new_role")), roleForm,
    el("h3", {}, t("audit")),
    table("audit", ["at", "action", "actor", "user_id", "role", "scope"], audit.map((a) => el("tr", {},
      el("td", {}, localTime(a.at, lang, true)), el("td", {}, a.action), el("td", {}, a.actor_id ?? ""), el("td", {}, a.user_id ?? ""),
      el("td", {}, a.role ?? ""), el("td", {}, a.scope ?? "")))));
}

async function merchants() {
  const form = el("form", { class: "toolbar", id: "merchants-filter", novalidate: true },
    el("label", {}, t("status"), el("select", { name: "status" }, ["pending", "approved", "rejected", ""].map((s) => el("option", { value: s }, s ? t(`st_${s}`) : t("any"))))),
    el("button", { type: "submit" }, t("search")), el("p", { class: "form-error" }));
  const out = el("div");
  view.replaceChildren(el("h2", {}, t("n_merchants")), form, out);
  const run = async () => {
    const v = values(form);
    const list = await submitting(form, t, () => client.get("/v1/merchants", { status: v.status }));
    if (!list) return;
    out.replaceChildren(table("merchants", ["id", "name", "city", "licence", "status", ""], list.map((m) => {
      const reason = el("input", { name: "reason", placeholder: t("reason") });
      const verdict = el("form", { class: "row", novalidate: true, "data-merchant-id": m.id }, reason);
      const send = (approve) => submitting(verdict, t, async () => {
        await client.post(`/v1/merchants/${m.id}/review`, { approve, reason: reason.value });
        toast(t("saved"));
        run();
        return true;
      });
      verdict.append(
        el("button", { type: "button", class: "btn ok approve", onclick: () => send(true) }, t("approve")),
        el("button", { type: "button", class: "btn danger reject", onclick: () => send(false) }, t("reject")),
        el("p", { class: "form-error" }));
      verdict.addEventListener("submit", (ev) => ev.preventDefault());
      const file = m.licence_file_id ? el("button", { type: "button", class: "btn secondary licence", onclick: async () => {
        try { const link = await client.get(`/v1/files/${m.licence_file_id}/url`); window.open(link.path, "_blank", "noopener"); } catch (e) { toast(e.message, "error"); }
      } }, t("view_file")) : "—";
      return el("tr", { "data-merchant-id": m.id, "data-status": m.status },
        el("td", {}, m.id), el("td", {}, m.name), el("td", {}, m.city_id),
        el("td", {}, m.licence_number, " ", file),
        el("td", {}, el("span", { class: `pill ${m.status}` }, t(`st_${m.status}`)), m.reason ? el("span", { class: "muted" }, ` ${m.reason}`) : ""),
        el("td", {}, m.status === "pending" ? verdict : ""));
    })));
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  await run();
}

async function shop() {
  const m = shops[0];
  const base = `/v1/merchants/${m.id}`;
  const canStaff = can("merchant.staff");
  const canPrices = can("merchant.services");
  const [staff, orders, services, catalogList] = await Promise.all([
    canStaff ? client.get(`${base}/staff`) : client.get("/v1/workers", { limit: 500 }),
    client.get(`${base}/orders`),
    canPrices ? client.get(`${base}/services`) : Promise.resolve([]),
    canPrices ? client.get("/v1/services") : Promise.resolve([]),
  ]);
  const parts = [el("h2", {}, `${m.name} · ${t(`st_${m.status}`)}`)];
  parts.push(el("h3", {}, `${t("staff")} (${staff.length})`),
    table("shop-staff", ["id", "name", "phone_col", "skills", "rating"], staff.map((w) => el("tr", { "data-worker-id": w.user_id },
      el("td", {}, w.user_id), el("td", {}, w.name), el("td", {}, w.phone), el("td", {}, w.skills.join(", ")),
      el("td", {}, w.rating == null ? "—" : w.rating.toFixed(2))))));
  if (canStaff) {
    const add = el("form", { class: "toolbar", id: "add-staff", novalidate: true },
      el("label", {}, t("add_staff"), el("input", { name: "worker_id", class: "narrow", inputmode: "numeric" })),
      el("button", { type: "submit" }, t("add")), el("p", { class: "form-error" }));
    add.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const id = Number(values(add).worker_id);
      const done = await submitting(add, t, () => client.post(`${base}/staff`, { worker_id: Number.isInteger(id) && id > 0 ? id : values(add).worker_id }));
      if (done) { toast(t("saved")); shop(); }
    });
    parts.push(add);
  }
  if (canPrices) {
    const priced = new Map(services.map((s) => [s.service_code, s]));
    parts.push(el("h3", {}, t("my_services")),
      table("shop-services", ["service", "catalog_price", "my_price"], catalogList.map((s) => {
        const mineNow = priced.get(s.code);
        const form = el("form", { class: "row", novalidate: true, "data-service": s.code },
          el("input", { name: "price_minor", class: "narrow", value: mineNow ? (mineNow.price_minor / 100).toFixed(2) : "" }),
          el("input", { type: "checkbox", name: "active", checked: mineNow ? mineNow.active : true }),
          el("button", { type: "submit" }, t("save")), el("p", { class: "form-error" }));
        form.addEventListener("submit", async (ev) => {
          ev.preventDefault();
          const v = values(form);
          const yuan = Number(v.price_minor);
          const done = await submitting(form, t, () => client.put(`${base}/services/${s.code}`, {
            price_minor: v.price_minor.trim() && Number.isFinite(yuan) ? Math.round(yuan * 100) : v.price_minor, active: v.active,
          }));
          if (done) toast(t("saved"));
        });
        return el("tr", { "data-service": s.code }, el("td", {}, named(lang, s)), el("td", {}, (s.price_minor / 100).toFixed(2)), el("td", {}, form));
      })));
  }
  parts.push(el("h3", {}, t("routed_orders")),
    table("shop-orders", ["id", "service", "status", "worker", "price", "address", ""], orders.map((o) => {
      const pick = el("select", { name: "worker_id" }, staff.map((w) => el("option", { value: w.user_id }, `${w.name} (${w.user_id})`)));
      const form = el("form", { class: "row", novalidate: true, "data-order-id": o.id }, pick,
        el("button", { type: "submit", class: "assign" }, t("assign")),
        el("button", { type: "button", class: "btn secondary overflow", onclick: () => submitting(form, t, async () => {
          await client.post(`${base}/orders/${o.id}/overflow`); toast(t("saved")); shop(); return true;
        }) }, t("overflow")), el("p", { class: "form-error" }));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const done = await submitting(form, t, () => client.post(`${base}/orders/${o.id}/assign`, { worker_id: Number(pick.value), force: true }));
        if (done) { toast(t("saved")); shop(); }
      });
      const waiting = !o.worker_id && ["confirmed", "dispatching"].includes(o.status);
      return el("tr", { "data-order-id": o.id, "data-status": o.status, "data-worker-id": o.worker_id ?? "" },
        el("td", {}, `#${o.id}`), el("td", {}, o.service_code), el("td", {}, el("span", { class: "status" }, o.status)),
        el("td", {}, o.worker_id ?? ""), el("td", {}, money(o.price_minor, o.currency)), el("td", {}, o.address_detail),
        el("td", {}, waiting ? form : ""));
    })));
  view.replaceChildren(...parts);
}

const VIEWS = {
  dispatch, orders, workers, catalog, cities: citiesView, accounts, roles, merchants, shop, analytics,
  safety, finance, wallet,
  review: () => reviewSection(view, client, t, lang),
  exams: () => examsSection(view, client, t, lang, { listExams: can("onboarding.read") }),
  discipline: () => disciplineSection(view, client, t, lang, { cities: citiesOf("quality.read"), decides: can("quality.write") }),
  aftersales: () => aftersalesSection(view, client, t, lang),
  marketing: () => marketingSection(view, client, t, lang, can("growth.write")),
};

// ---- shell ------------------------------------------------------------------------------------

async function route() {
  if (!client.signedIn()) {
    nav.replaceChildren();
    document.getElementById("who").textContent = "";
    document.getElementById("logout").hidden = true;
    loginView(view, client, t, backOffice, () => route());
    return;
  }
  if (held === null) {
    try { await loadPermissions(); } catch (e) {
      if (e instanceof ApiError && e.status === 401) { client.session.clear(); held = null; route(); return; }
      throw e;
    }
  }
  const sections = mine();
  const wanted = (location.hash || "").replace(/^#\/?/, "").split("?")[0];
  if (!sections.length) { await client.logout(); held = null; route(); return; }
  const current = sections.find(([id]) => id === wanted) || sections[0];
  nav.replaceChildren(...sections.map(([id, key]) => el("a", {
    href: id === "analytics" ? `/admin/analytics?lang=${lang}` : `#/${id}`, "data-section": id, class: id === current[0] ? "on" : "",
  }, t(key))));
  document.getElementById("who").textContent = `${client.user.name} · ${client.user.roles.join(", ")}`;
  document.getElementById("logout").hidden = false;
  document.body.dataset.section = current[0];
  try {
    await VIEWS[current[0]]();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { client.session.clear(); route(); return; }
    view.replaceChildren(el("p", { class: "form-error" }, e.message || String(e)));
  }
  document.body.dataset.ready = current[0];
}

document.getElementById("logout").addEventListener("click", async () => { await client.logout(); held = null; route(); });
window.addEventListener("hashchange", route);
route();
