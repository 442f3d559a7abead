// The worker's side of after-sales (docs/aftersales.md): the tickets on my jobs, what the
// customer and customer service said, and my statement when I disagree (once per ticket:
// the ticket becomes a dispute an admin rules). Used by worker.js (#/aftersales).

import { el, localTime, submitting, values } from "/static/client.js";

export const WORKER_AFTERSALES_STRINGS = {
  w_aftersales: { zh: "售后与申诉", en: "After-sales & disputes" },
  w_as_none: { zh: "暂无售后工单", en: "No after-sales ticket" },
  w_as_ticket: { zh: "工单 #{id} · 订单 #{order}", en: "Ticket #{id} · order #{order}" },
  w_as_statement: { zh: "我的陈述（提交后由平台裁决，仅一次）", en: "My statement (the platform rules; once)" },
  w_as_go: { zh: "提交陈述", en: "Submit" },
  w_as_stated: { zh: "已提交陈述", en: "Statement sent" },
  wk_redo: { zh: "返工", en: "Redo" }, wk_refund: { zh: "退款", en: "Refund" }, wk_compensation: { zh: "赔偿", en: "Compensation" },
  wk_damage: { zh: "物品损坏", en: "Damage" }, wk_complaint: { zh: "投诉", en: "Complaint" },
  wt_open: { zh: "待处理", en: "Open" }, wt_in_progress: { zh: "处理中", en: "In progress" }, wt_disputed: { zh: "裁决中", en: "Disputed" },
  wt_resolved: { zh: "已解决", en: "Resolved" }, wt_rejected: { zh: "未支持", en: "Turned down" }, wt_withdrawn: { zh: "已撤销", en: "Withdrawn" },
  ws_customer: { zh: "顾客", en: "Customer" }, ws_worker: { zh: "我", en: "Me" }, ws_staff: { zh: "客服", en: "Customer service" }, ws_system: { zh: "系统", en: "System" },
};

export async function workerTicketsView(view, client, t, lang) {
  const list = await client.get("/v1/me/aftersales");
  const details = await Promise.all(list.map((x) => client.get(`/v1/aftersales/tickets/${x.id}`)));
  const item = (d) => {
    const x = d.ticket;
    const li = el("li", { "data-ticket": x.id, "data-status": x.status },
      el("div", { class: "spread" }, el("b", {}, t("w_as_ticket", { id: x.id, order: x.order_id })), el("span", { class: "muted" }, `${t(`wk_${x.kind}`)} · ${t(`wt_${x.status}`)}`)),
      el("ul", { class: "list" }, d.notes.map((n) => el("li", {}, el("b", {}, t(`ws_${n.side}`)), " ", n.body, " ", el("span", { class: "muted" }, localTime(n.at, lang, true))))));
    const stated = d.notes.some((n) => n.kind === "statement" && n.side === "worker");
    if (["open", "in_progress", "disputed"].includes(x.status) && !stated) {
      const form = el("form", { class: "statement-form", novalidate: true, "data-ticket": x.id },
        el("label", {}, t("w_as_statement"), el("textarea", { name: "text", rows: 2, "data-field": "text" })),
        el("button", { type: "submit" }, t("w_as_go")), el("p", { class: "form-error" }));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const done = await submitting(form, t, () => client.post(`/v1/aftersales/tickets/${x.id}/statements`, { text: values(form).text }));
        if (done) li.replaceWith(item(done));
      });
      li.append(form);
    } else if (stated) {
      li.append(el("div", { class: "muted" }, t("w_as_stated")));
    }
    return li;
  };
  view.replaceChildren(el("section", { class: "card", id: "worker-aftersales" }, el("h3", {}, t("w_aftersales")),
    details.length ? el("ul", { class: "list" }, details.map(item)) : el("p", { class: "muted" }, t("w_as_none"))));
}
