// The customer's coupons and points (/app#/coupons) and the coupon choice at the pay step
// (docs/growth.md). Chinese by default, English with ?lang=en.
import { el, money, localTime, toast } from "/static/client.js";

export const APP_GROWTH_STRINGS = {
  coupons_points: { zh: "优惠券 / 积分", en: "Coupons / points" },
  my_coupons: { zh: "我的优惠券", en: "My coupons" },
  claim_center: { zh: "领券中心", en: "Coupons to claim" },
  claim: { zh: "领取", en: "Claim" },
  claimed: { zh: "已领取", en: "Claimed" },
  no_coupons: { zh: "暂无优惠券", en: "No coupons yet" },
  none_to_claim: { zh: "暂无可领取的优惠券", en: "Nothing to claim now" },
  c_available: { zh: "可用", en: "Available" }, c_locked: { zh: "待支付订单占用", en: "Held by an unpaid order" },
  c_used: { zh: "已使用", en: "Used" }, c_expired: { zh: "已过期", en: "Expired" },
  off_amount: { zh: "立减 {amount}", en: "{amount} off" },
  off_percent: { zh: "{p} 折", en: "{pct}% off" },
  cap: { zh: "最多减 {amount}", en: "up to {amount}" },
  min_spend: { zh: "满 {amount} 可用", en: "on orders of {amount} or more" },
  no_min: { zh: "无门槛", en: "no minimum" },
  valid_until: { zh: "有效期至 {at}", en: "valid until {at}" },
  stock_left: { zh: "剩余 {n} 张", en: "{n} left" },
  points: { zh: "积分", en: "Points" },
  points_balance: { zh: "积分 {n}（100 积分抵 1 元）", en: "{n} points (100 points = ¥1)" },
  points_history: { zh: "积分明细", en: "Points history" },
  p_earn: { zh: "订单完成获得", en: "Earned on an order" }, p_redeem: { zh: "抵扣订单", en: "Spent on an order" },
  p_return: { zh: "退款退回", en: "Returned with a refund" }, p_reverse: { zh: "退款扣回", en: "Taken back with a refund" },
  p_restore: { zh: "退款失败恢复", en: "Refund failed: restored" },
  no_history: { zh: "暂无积分记录", en: "No points yet" },
  choose_coupon: { zh: "优惠券", en: "Coupon" },
  no_coupon: { zh: "不使用优惠券", en: "No coupon" },
  best: { zh: "推荐", en: "best" },
  use_points: { zh: "使用积分（最多 {n}）", en: "Points to use (at most {n})" },
  apply: { zh: "使用", en: "Apply" },
  price_was: { zh: "原价 {amount}", en: "Price {amount}" },
  saved: { zh: "已优惠 {amount}", en: "You save {amount}" },
  r_min_spend: { zh: "未满足使用门槛", en: "below the minimum spend" }, r_city: { zh: "不适用于该城市", en: "not for this city" },
  r_category: { zh: "不适用于该品类", en: "not for this category" }, r_service: { zh: "不适用于该服务", en: "not for this service" },
  r_expired: { zh: "已过期", en: "expired" }, r_not_yet_valid: { zh: "未到使用时间", en: "not valid yet" },
  membership: { zh: "会员", en: "Membership" },
  m_points: { zh: "近 {days} 天获得积分 {n}", en: "{n} points earned in the last {days} days" },
  m_to_next: { zh: "再获得 {n} 积分升级为{level}", en: "{n} more points to {level}" },
  m_top: { zh: "您已是最高等级", en: "You are at the top level" },
  m_benefits: { zh: "当前权益", en: "Your benefits" },
  m_multiplier: { zh: "下单积分 ×{x}", en: "×{x} points on orders" },
  m_no_multiplier: { zh: "下单积分 ×1", en: "×1 points on orders" },
  m_pack: { zh: "每月专属券：{items}", en: "Monthly coupons: {items}" },
  m_pack_item: { zh: "{n} 张满{min}减{amount}", en: "{n} × {amount} off {min}+" },
  m_no_pack: { zh: "升级银卡即享每月专属券", en: "Monthly coupons from the next level" },
  m_this_month: { zh: "本月已发放", en: "Issued this month" },
  m_levels: { zh: "等级说明", en: "Levels" },
  m_level_row: { zh: "{points} 积分起 · 积分 ×{x}", en: "from {points} points · ×{x} points" },
};

function packText(level, t) {
  if (!level.pack.length) return null;
  return t("m_pack", { items: level.pack.map((p) => t("m_pack_item", { n: p.count, min: money(p.min_spend_fen), amount: money(p.amount_fen) })).join("、") });
}

// The membership page (/app#/membership): level, progress to the next, benefits, this
// month's pack, the levels.
export async function membershipView(client, t, lang, view) {
  const m = await client.get("/v1/me/membership");
  const name = (lv) => (lang === "en" ? lv.name_en : lv.name_zh);
  const x = (bps) => (bps / 10000).toString();
  const card = el("section", { class: "card", id: "membership", "data-level": m.level.code },
    el("h2", { id: "member-level" }, name(m.level)),
    el("div", { id: "member-points" }, t("m_points", { n: m.points, days: m.window_days })),
    el("progress", { id: "member-progress", max: "10000", value: String(m.progress_bps), class: "meter" }),
    el("div", { class: "muted", id: "member-next" }, m.next_level
      ? t("m_to_next", { n: m.points_to_next, level: name(m.next_level) }) : t("m_top")));
  const benefits = el("section", { class: "card", id: "member-benefits" }, el("h3", {}, t("m_benefits")),
    el("div", {}, m.level.multiplier_bps > 10000 ? t("m_multiplier", { x: x(m.level.multiplier_bps) }) : t("m_no_multiplier")),
    el("div", {}, packText(m.level, t) || t("m_no_pack")),
    m.pack_coupons.length ? el("div", { class: "muted", id: "member-pack" },
      `${t("m_this_month")}: ${m.pack_coupons.map((c) => `${money(c.amount_fen)} (${t(`c_${c.status}`)})`).join("、")}`) : null);
  const ladder = el("section", { class: "card", id: "member-levels" }, el("h3", {}, t("m_levels")),
    m.levels.map((lv) => el("div", { class: "spread", "data-level": lv.code },
      el("b", {}, name(lv)), el("span", { class: "muted" }, t("m_level_row", { points: lv.min_points, x: x(lv.multiplier_bps) })))));
  view.replaceChildren(card, benefits, ladder);
}

export function couponTerms(c, t) {
  const off = c.kind === "amount" ? t("off_amount", { amount: money(c.amount_fen) })
    : t("off_percent", { p: ((100 - c.percent_off) / 10).toString(), pct: c.percent_off }) + (c.cap_fen ? ` · ${t("cap", { amount: money(c.cap_fen) })}` : "");
  const min = c.min_spend_fen ? t("min_spend", { amount: money(c.min_spend_fen) }) : t("no_min");
  return `${off} · ${min}`;
}

function couponCard(c, t, lang, extra = []) {
  return el("div", { class: "card coupon", "data-coupon": c.id, "data-status": c.status ?? "" },
    el("div", { class: "spread" }, el("b", {}, lang === "en" ? c.name_en : c.name_zh),
      c.status ? el("span", { class: "muted" }, t(`c_${c.status}`)) : null),
    el("div", {}, couponTerms(c, t)),
    c.valid_until ? el("div", { class: "muted" }, t("valid_until", { at: localTime(c.valid_until, lang, true) })) : null,
    ...extra);
}

// The page: my coupons, coupons to claim, points and their history.
export async function couponsView(client, t, lang, view, again) {
  const [mine, offers, pts] = await Promise.all([
    client.get("/v1/me/coupons"), client.get("/v1/coupons/claimable"), client.get("/v1/me/points"),
  ]);
  const claimBox = el("section", { class: "card", id: "claimable" }, el("h3", {}, t("claim_center")),
    offers.length ? offers.map((o) => couponCard({ ...o, status: null }, t, lang, [
      el("div", { class: "spread" }, el("span", { class: "muted" }, t("stock_left", { n: o.stock_left })),
        el("button", { type: "button", class: "btn", id: `claim-${o.id}`, onclick: async (ev) => {
          ev.target.disabled = true;
          try { await client.post("/v1/coupons/claim", { template_id: o.id }); toast(t("claimed")); again(); }
          catch (e) { ev.target.disabled = false; toast(e.message, "error"); }
        } }, t("claim"))),
    ])) : el("p", { class: "muted" }, t("none_to_claim")));
  const mineBox = el("section", { class: "card", id: "my-coupons" }, el("h3", {}, t("my_coupons")),
    mine.length ? mine.map((c) => couponCard(c, t, lang)) : el("p", { class: "muted" }, t("no_coupons")));
  const pointsBox = el("section", { class: "card", id: "points" }, el("h3", {}, t("points")),
    el("div", { class: "big", id: "points-balance" }, t("points_balance", { n: pts.balance })),
    el("h4", {}, t("points_history")),
    pts.history.length ? pts.history.map((h) => el("div", { class: "spread", "data-points": h.kind },
      el("span", {}, t(`p_${h.kind}`), h.order_id ? el("span", { class: "muted" }, ` #${h.order_id}`) : null),
      el("span", {}, `${h.points > 0 ? "+" : ""}${h.points}`))) : el("p", { class: "muted" }, t("no_history")));
  view.replaceChildren(mineBox, claimBox, pointsBox);
}

// At the pay step: the coupons against the order (the best preselected), points, and the
// discount applied. Returns { box, ensure } where ensure() applies the choice if it
// changed (called before paying, so the suggestion is used unless the customer changed it).
export async function checkoutBox(client, t, lang, orderId, onApplied) {
  const c = await client.get(`/v1/orders/${orderId}/checkout`);
  if (!c.open) return null;
  const applied = c.applied;
  const chosen = applied ? applied.coupon_id : c.suggested_coupon_id;
  const select = el("select", { id: "coupon-select", name: "coupon_id", "data-field": "coupon_id" },
    el("option", { value: "" }, t("no_coupon")),
    c.coupons.map((o) => el("option", { value: o.id, disabled: !o.applicable, selected: o.id === chosen },
      `${lang === "en" ? o.name_en : o.name_zh} · ${o.applicable ? `-${money(o.discount_fen)}` : t(`r_${o.reason}`)}${o.id === c.suggested_coupon_id ? ` (${t("best")})` : ""}`)));
  const maxFor = () => {
    const o = c.coupons.find((x) => String(x.id) === select.value);
    return o ? o.max_points : c.points.max_points;
  };
  const pointsIn = el("input", { id: "points-input", name: "points", inputmode: "numeric", value: applied ? applied.points : 0 });
  const pointsLabel = el("label", {}, t("use_points", { n: maxFor() }), pointsIn);
  select.addEventListener("change", () => { pointsLabel.firstChild.textContent = t("use_points", { n: maxFor() }); });
  const want = () => ({ coupon_id: select.value ? Number(select.value) : null, points: Number(pointsIn.value || 0) });
  const same = (w) => applied && w.coupon_id === applied.coupon_id && w.points === applied.points;
  async function ensure() {
    const w = want();
    if (same(w) || (!applied && w.coupon_id === null && w.points === 0)) return true;
    await client.put(`/v1/orders/${orderId}/checkout`, w);
    return false;
  }
  const box = el("div", { class: "card", id: "checkout" },
    el("div", { class: "muted" }, t("price_was", { amount: money(c.price_fen) })),
    el("label", {}, t("choose_coupon"), select),
    c.points.available > 0 ? pointsLabel : null,
    el("button", { type: "button", class: "btn secondary", id: "apply-discount", onclick: async () => {
      try { await ensure(); onApplied(); } catch (e) { toast(e.message, "error"); }
    } }, t("apply")),
    applied && applied.payable_fen < c.price_fen ? el("div", { id: "saved" }, t("saved", { amount: money(c.price_fen - applied.payable_fen) })) : null);
  return { box, ensure };
}
