// The customer's after-sales (docs/aftersales.md): from a completed order, open a ticket
// (kind, what happened, what you ask, photos) and follow it: the conversation, the outcome,
// a dispute's statement, withdrawing. Used by app.js (#/order/{id} and #/aftersales/{id}).

import { el, localTime, money, submitting, toast, values } from "/static/client.js";

export const APP_AFTERSALES_STRINGS = {
  asc_title: { zh: "售后服务", en: "After-sales" },
  asc_new: { zh: "申请售后", en: "Ask for after-sales" },
  asc_kind: { zh: "问题类型", en: "What kind" },
  asc_desc: { zh: "问题描述", en: "What happened" },
  asc_asked: { zh: "期望金额（元，可不填）", en: "Amount you ask (¥, optional)" },
  asc_photos: { zh: "照片凭证", en: "Photos" },
  asc_add_photo: { zh: "添加照片", en: "Add a photo" },
  asc_submit: { zh: "提交申请", en: "Submit" },
  asc_none: { zh: "如对服务不满意，可在服务完成后 7 天内申请售后。", en: "Not happy? Ask for after-sales within 7 days of completion." },
  asc_ticket: { zh: "售后工单 #{id}", en: "After-sales ticket #{id}" },
  asc_reply_by: { zh: "客服将在 {t} 前回复", en: "Customer service answers by {t}" },
  asc_resolve_by: { zh: "预计 {t} 前处理完毕", en: "Resolved by {t}" },
  asc_conversation: { zh: "处理进度", en: "Progress" },
  asc_message: { zh: "补充说明", en: "Add a message" },
  asc_send: { zh: "发送", en: "Send" },
  asc_statement: { zh: "对处理有异议？申请平台裁决", en: "Disagree? Ask the platform to rule" },
  asc_statement_ph: { zh: "陈述您的理由", en: "State your case" },
  asc_statement_go: { zh: "提交陈述", en: "Submit my statement" },
  asc_withdraw: { zh: "撤销申请", en: "Withdraw" },
  asc_outcome: { zh: "处理结果", en: "Outcome" },
  asc_ruling: { zh: "平台裁决：{r}", en: "The platform's ruling: {r}" },
  asc_claim: { zh: "保险理赔：{s}", en: "Insurance claim: {s}" },
  asc_opened: { zh: "已提交，客服会尽快联系您", en: "Sent: customer service will contact you soon" },
  asc_bad_amount: { zh: "请输入金额，如 100 或 99.50", en: "Enter an amount such as 100 or 99.50" },
  asc_back: { zh: "返回订单", en: "Back to the order" },
  ak_redo: { zh: "返工重做", en: "Redo the service" }, ak_refund: { zh: "部分退款", en: "Partial refund" },
  ak_compensation: { zh: "赔偿", en: "Compensation" }, ak_damage: { zh: "物品损坏", en: "Something was damaged" },
  ak_complaint: { zh: "服务态度投诉", en: "Complaint about behaviour" },
  at_open: { zh: "待客服响应", en: "Waiting for customer service" }, at_in_progress: { zh: "处理中", en: "In progress" },
  at_disputed: { zh: "平台裁决中", en: "Being ruled" }, at_resolved: { zh: "已解决", en: "Resolved" },
  at_rejected: { zh: "未支持", en: "Turned down" }, at_withdrawn: { zh: "已撤销", en: "Withdrawn" },
  ao_refund: { zh: "退款 {a}", en: "Refund {a}" }, ao_compensation: { zh: "赔偿 {a}（已记入您的账户）", en: "Compensation {a} (credited to your account)" },
  ao_redo: { zh: "已安排免费返工（订单 #{id}）", en: "A free redo is booked (order #{id})" },
  ao_claim: { zh: "保险赔付 {a}", en: "Insurance paid {a}" }, ao_quality: { zh: "已记入师傅服务质量", en: "Recorded on the worker's quality" },
  ac_claimed: { zh: "待定损", en: "to be assessed" }, ac_assessed: { zh: "已定损", en: "assessed" },
  ac_paid: { zh: "已赔付", en: "paid" }, ac_rejected: { zh: "已拒赔", en: "rejected" },
  as_side_customer: { zh: "我", en: "Me" }, as_side_worker: { zh: "师傅", en: "Worker" },
  as_side_staff: { zh: "客服", en: "Customer service" }, as_side_system: { zh: "系统", en: "System" },
};

const KINDS = ["refund", "redo", "compensation", "damage", "complaint"];

function yuanToFen(text) {
  const s = String(text ?? "").trim();
  if (!s) return null;
  const m = s.match(/^(\d{1,9})(?:\.(\d{1,2}))?$/);
  return m ? Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0")) : NaN;
}

function statusPill(t, status) { return el("span", { class: `status ${status}`, "data-ticket-status": status }, t(`at_${status}`)); }

// On a completed order's page: its tickets, and the form to open one.
export async function aftersalesCard(client, t, lang, o) {
  const tickets = await client.get(`/v1/orders/${o.id}/aftersales`).catch(() => []);
  const card = el("section", { class: "card wide", id: "aftersales" }, el("h3", {}, t("asc_title")));
  if (tickets.length) {
    card.append(el("ul", { class: "list", id: "order-tickets" }, tickets.map((x) => el("li", { "data-ticket": x.id },
      el("a", { href: `#/aftersales/${x.id}`, class: "spread plainlink" }, el("span", {}, t("asc_ticket", { id: x.id }), " · ", t(`ak_${x.kind}`)), statusPill(t, x.status))))));
  } else {
    card.append(el("p", { class: "muted" }, t("asc_none")));
  }
  const photos = [];
  const thumbs = el("div", { class: "thumbs", id: "asc-photos", "data-field": "photos" });
  const form = el("form", { id: "aftersales-form", novalidate: true, hidden: true },
    el("label", {}, t("asc_kind"), el("select", { name: "kind", id: "asc-kind", "data-field": "kind" }, KINDS.map((k) => el("option", { value: k }, t(`ak_${k}`))))),
    el("label", {}, t("asc_desc"), el("textarea", { name: "description", id: "asc-desc", rows: 3 })),
    el("label", {}, t("asc_asked"), el("input", { name: "asked", id: "asc-asked", inputmode: "decimal" })),
    el("h4", {}, t("asc_photos")), thumbs,
    el("label", { class: "chip inline" }, t("asc_add_photo"), el("input", { type: "file", accept: "image/*", id: "asc-photo-input", onchange: async (ev) => {
      const f = ev.target.files[0];
      if (!f) return;
      const ok = await submitting(form, t, async () => {
        const meta = await client.upload("aftersales_evidence", f);
        const link = await client.get(`/v1/files/${meta.id}/url`);
        photos.push(meta.id);
        thumbs.append(el("img", { src: link.path, alt: "", "data-file-id": meta.id }));
        return true;
      });
      if (ok) ev.target.value = "";
    } })),
    el("button", { type: "submit", id: "asc-submit" }, t("asc_submit")), el("p", { class: "form-error" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(form);
    const asked = yuanToFen(v.asked);
    const r = await submitting(form, t, async () => {
      if (Number.isNaN(asked)) throw new Error(t("asc_bad_amount"));
      const body = { kind: v.kind, description: v.description, photos };
      if (asked) body.asked_fen = asked;
      return client.post(`/v1/orders/${o.id}/aftersales`, body);
    });
    if (r) { toast(t("asc_opened")); location.hash = `#/aftersales/${r.ticket.id}`; }
  });
  card.append(el("button", { type: "button", class: "btn secondary", id: "asc-new", onclick: (ev) => { form.hidden = false; ev.target.hidden = true; } }, t("asc_new")), form);
  return card;
}

async function photo(client, id) {
  const link = await client.get(`/v1/files/${id}/url`).catch(() => null);
  return link ? el("img", { src: link.path, alt: "", class: "thumb", "data-file-id": id }) : null;
}

// #/aftersales/{id}: the ticket as the customer follows it.
export async function ticketView(client, t, lang, view, id) {
  const d = await client.get(`/v1/aftersales/tickets/${id}`);
  const x = d.ticket;
  const open = ["open", "in_progress", "disputed"].includes(x.status);
  const again = () => ticketView(client, t, lang, view, id);
  const post = async (form, path, body) => {
    const r = await submitting(form, t, () => client.post(path, body));
    if (r) again();
  };
  const notes = await Promise.all(d.notes.map(async (n) => el("li", { "data-note": n.id, "data-side": n.side },
    el("b", {}, t(`as_side_${n.side}`)), " ", n.body, " ", el("span", { class: "muted" }, localTime(n.at, lang, true)),
    n.photos.length ? el("div", { class: "thumbs" }, await Promise.all(n.photos.map((p) => photo(client, p)))) : null)));
  const parts = [
    el("a", { href: `#/order/${x.order_id}`, id: "asc-back" }, t("asc_back")),
    el("section", { class: "card wide", id: "ticket", "data-status": x.status },
      el("div", { class: "spread" }, el("h2", {}, t("asc_ticket", { id: x.id })), statusPill(t, x.status)),
      el("div", {}, t(`ak_${x.kind}`), x.asked_fen ? ` · ${money(x.asked_fen)}` : ""),
      open && !x.first_response_at ? el("div", { class: "muted", id: "asc-reply-by" }, t("asc_reply_by", { t: localTime(x.first_response_due, lang, true) })) : null,
      open ? el("div", { class: "muted" }, t("asc_resolve_by", { t: localTime(x.resolution_due, lang, true) })) : null,
      el("h3", {}, t("asc_conversation")), el("ul", { class: "list", id: "ticket-notes" }, notes)),
  ];
  if (d.outcomes.length || d.ruling || d.claim) {
    parts.push(el("section", { class: "card wide", id: "ticket-outcome" }, el("h3", {}, t("asc_outcome")),
      d.ruling ? el("p", {}, t("asc_ruling", { r: d.ruling.reason })) : null,
      d.claim ? el("p", { id: "ticket-claim" }, t("asc_claim", { s: t(`ac_${d.claim.status}`) })) : null,
      el("ul", { class: "list" }, d.outcomes.map((o) => el("li", { "data-outcome": o.kind },
        t(`ao_${o.kind}`, { a: o.amount_fen ? money(o.amount_fen) : "", id: o.redo_order_id ?? "" }))))));
  }
  if (open) {
    const msg = el("form", { class: "card wide", id: "ticket-message", novalidate: true },
      el("h4", {}, t("asc_message")), el("textarea", { name: "body", rows: 2 }),
      el("button", { type: "submit" }, t("asc_send")), el("p", { class: "form-error" }));
    msg.addEventListener("submit", (ev) => { ev.preventDefault(); post(msg, `/v1/aftersales/tickets/${id}/messages`, { body: values(msg).body }); });
    parts.push(msg);
    if (!d.notes.some((n) => n.kind === "statement" && n.side === "customer")) {
      const st = el("form", { class: "card wide", id: "ticket-statement", novalidate: true },
        el("h4", {}, t("asc_statement")), el("textarea", { name: "text", rows: 2, placeholder: t("asc_statement_ph") }),
        el("button", { type: "submit", class: "btn secondary" }, t("asc_statement_go")), el("p", { class: "form-error" }));
      st.addEventListener("submit", (ev) => { ev.preventDefault(); post(st, `/v1/aftersales/tickets/${id}/statements`, { text: values(st).text }); });
      parts.push(st);
    }
    if (x.status !== "disputed") {
      parts.push(el("button", { type: "button", class: "btn secondary", id: "ticket-withdraw", onclick: async () => {
        try { await client.post(`/v1/aftersales/tickets/${id}/withdraw`); again(); } catch (e) { toast(e.message, "error"); }
      } }, t("asc_withdraw")));
    }
  }
  view.replaceChildren(...parts);
}
