// The back office's 营销 (Marketing) section: coupon templates (make, switch off, grant to
// customers) and their stats (issued, used, cost). docs/growth.md.
import { el, money, submitting, toast, values } from "/static/client.js";

export const GROWTH_ADMIN_STRINGS = {
  n_marketing: { zh: "营销", en: "Marketing" },
  templates: { zh: "优惠券模板", en: "Coupon templates" },
  new_template: { zh: "新建优惠券", en: "New coupon" },
  g_name_zh: { zh: "名称（中文）", en: "Name (Chinese)" }, g_name_en: { zh: "名称（英文）", en: "Name (English)" },
  g_kind: { zh: "类型", en: "Kind" }, k_amount: { zh: "立减", en: "Amount off" }, k_percent: { zh: "折扣", en: "Percent off" },
  g_amount: { zh: "减免金额（元）", en: "Amount off (yuan)" }, g_percent: { zh: "折扣 %（如 15 = 85折）", en: "Percent off" },
  g_cap: { zh: "最多减（元，可空）", en: "Cap (yuan, optional)" }, g_min: { zh: "门槛（元）", en: "Minimum spend (yuan)" },
  g_days: { zh: "领取后有效天数", en: "Valid days after issue" }, g_stock: { zh: "总库存", en: "Stock" },
  g_limit: { zh: "每人限领", en: "Per customer" }, g_cities: { zh: "限城市（逗号分隔，可空）", en: "Cities (comma-separated, optional)" },
  g_categories: { zh: "限品类（可空）", en: "Categories (optional)" },
  g_welcome: { zh: "新用户注册自动发放", en: "Issued on registration" },
  create: { zh: "创建", en: "Create" }, created: { zh: "已创建", en: "Created" },
  h_name: { zh: "名称", en: "Name" }, h_terms: { zh: "优惠", en: "Terms" }, h_stock: { zh: "库存", en: "Stock" },
  h_issued: { zh: "已发", en: "Issued" }, h_used: { zh: "已用", en: "Used" }, h_cost: { zh: "补贴成本", en: "Cost" },
  h_state: { zh: "状态", en: "State" }, on: { zh: "进行中", en: "On" }, off: { zh: "已停用", en: "Off" },
  switch_off: { zh: "停用", en: "Switch off" }, grant: { zh: "发放给用户", en: "Grant" },
  grant_ids: { zh: "用户 ID（逗号分隔）", en: "User ids (comma-separated)" },
  granted: { zh: "已发放 {n} 张", en: "{n} granted" },
};

const yuan = (v) => Math.round(Number(v || 0) * 100);
const list = (v) => String(v || "").split(",").map((x) => x.trim()).filter(Boolean);

export async function marketingSection(view, client, t, lang, write) {
  const [templates, stats] = await Promise.all([client.get("/v1/admin/coupon-templates"), client.get("/v1/admin/growth/stats")]);
  const by = new Map(stats.map((s) => [s.template_id, s]));
  const rows = templates.map((tp) => {
    const s = by.get(tp.id) || { used: 0, cost_fen: 0 };
    const terms = tp.kind === "amount" ? `-${money(tp.amount_fen)}` : `-${tp.percent_off}%${tp.cap_fen ? ` ≤${money(tp.cap_fen)}` : ""}`;
    const grantBox = el("span");
    return el("tr", { "data-template": tp.id },
      el("td", {}, lang === "en" ? tp.name_en : tp.name_zh),
      el("td", {}, `${terms}${tp.min_spend_fen ? ` / ${money(tp.min_spend_fen)}` : ""}`),
      el("td", {}, String(tp.total_stock)), el("td", { class: "issued" }, String(tp.issued)),
      el("td", { class: "used" }, String(s.used)), el("td", { class: "cost" }, money(s.cost_fen)),
      el("td", {}, tp.active ? t("on") : t("off")),
      el("td", {}, tp.active ? el("button", { type: "button", class: "btn secondary", onclick: async () => {
        try { await client.del(`/v1/admin/coupon-templates/${tp.id}`); marketingSection(view, client, t, lang, write); } catch (e) { toast(e.message, "error"); }
      } }, t("switch_off")) : "",
      tp.active ? el("button", { type: "button", class: "btn secondary", onclick: () => {
        const input = el("input", { placeholder: t("grant_ids"), name: "user_ids" });
        grantBox.replaceChildren(input, el("button", { type: "button", class: "btn", onclick: async () => {
          try {
            const r = await client.post(`/v1/admin/coupon-templates/${tp.id}/grants`, { user_ids: list(input.value).map(Number) });
            toast(t("granted", { n: r.issued })); marketingSection(view, client, t, lang, write);
          } catch (e) { toast(e.message, "error"); }
        } }, t("grant")));
      } }, t("grant")) : "", grantBox));
  });
  const tableEl = el("table", { id: "coupon-templates" },
    el("thead", {}, el("tr", {}, ["h_name", "h_terms", "h_stock", "h_issued", "h_used", "h_cost", "h_state", ""].map((h) => el("th", {}, h ? t(h) : "")))),
    el("tbody", {}, rows));
  const form = el("form", { class: "card", id: "template-form", novalidate: true },
    el("h3", {}, t("new_template")),
    el("div", { class: "row" },
      el("label", {}, t("g_name_zh"), el("input", { name: "name_zh", value: "新人立减券" })),
      el("label", {}, t("g_name_en"), el("input", { name: "name_en", value: "Welcome coupon" })),
      el("label", {}, t("g_kind"), el("select", { name: "kind" }, el("option", { value: "amount" }, t("k_amount")), el("option", { value: "percent" }, t("k_percent"))))),
    el("div", { class: "row" },
      el("label", {}, t("g_amount"), el("input", { name: "amount_fen", inputmode: "decimal", value: "20" })),
      el("label", {}, t("g_percent"), el("input", { name: "percent_off", inputmode: "numeric", value: "" })),
      el("label", {}, t("g_cap"), el("input", { name: "cap_fen", inputmode: "decimal" })),
      el("label", {}, t("g_min"), el("input", { name: "min_spend_fen", inputmode: "decimal", value: "100" }))),
    el("div", { class: "row" },
      el("label", {}, t("g_days"), el("input", { name: "valid_days", inputmode: "numeric", value: "30" })),
      el("label", {}, t("g_stock"), el("input", { name: "total_stock", inputmode: "numeric", value: "1000" })),
      el("label", {}, t("g_limit"), el("input", { name: "per_user_limit", inputmode: "numeric", value: "1" })),
      el("label", {}, t("g_cities"), el("input", { name: "cities" })),
      el("label", {}, t("g_categories"), el("input", { name: "categories" }))),
    el("label", { class: "row" }, el("input", { type: "checkbox", name: "welcome" }), t("g_welcome")),
    el("button", { type: "submit", id: "create-template" }, t("create")), el("p", { class: "form-error" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(form);
    const percent = v.kind === "percent";
    const body = {
      name_zh: v.name_zh, name_en: v.name_en, kind: v.kind,
      amount_fen: percent ? 0 : yuan(v.amount_fen), percent_off: percent ? Number(v.percent_off || 0) : 0,
      cap_fen: percent && v.cap_fen ? yuan(v.cap_fen) : null, min_spend_fen: yuan(v.min_spend_fen),
      valid_days: Number(v.valid_days), total_stock: Number(v.total_stock), per_user_limit: Number(v.per_user_limit),
      cities: list(v.cities), categories: list(v.categories),
      auto_event: form.querySelector("[name=welcome]").checked ? "account.created" : null,
    };
    const made = await submitting(form, t, () => client.post("/v1/admin/coupon-templates", body));
    if (made) { toast(t("created")); marketingSection(view, client, t, lang, write); }
  });
  view.replaceChildren(el("section", { class: "card" }, el("h2", {}, t("templates")), tableEl), write ? form : "");
}
