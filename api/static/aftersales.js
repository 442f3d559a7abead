// The back office, after-sales side (docs/aftersales.md): customer service's queue with SLA
// timers, a ticket with its evidence (photos, the order's timeline, the worker's trail),
// outcomes (refund, compensation, redo, the worker's quality), the dispute's ruling, the
// insurance claim, and the spot-check call-backs with their questionnaire. Used by admin.js.

import { el, localTime, money, submitting, toast, values } from "/static/client.js";

export const AFTERSALES_STRINGS = {
  n_aftersales: { zh: "售后与抽检", en: "After-sales & spot checks" },
  as_queue: { zh: "售后工单队列", en: "After-sales queue" },
  as_spot: { zh: "回访抽检", en: "Spot-check call-backs" },
  as_empty: { zh: "没有待处理的工单", en: "No ticket waiting" },
  as_id: { zh: "工单", en: "Ticket" },
  as_kind: { zh: "类型", en: "Kind" },
  as_order: { zh: "订单", en: "Order" },
  as_status: { zh: "状态", en: "Status" },
  as_level: { zh: "升级", en: "Escalation" },
  as_first: { zh: "首次响应剩余", en: "First response in" },
  as_resolve_in: { zh: "处理剩余", en: "Resolve in" },
  as_created: { zh: "创建时间", en: "Opened" },
  as_overdue: { zh: "超时 {d}", en: "overdue {d}" },
  as_back: { zh: "返回队列", en: "Back to the queue" },
  as_asked: { zh: "客户诉求", en: "Asked" },
  as_notes: { zh: "沟通记录", en: "Conversation" },
  as_evidence: { zh: "证据", en: "Evidence" },
  as_timeline: { zh: "订单时间线", en: "Order timeline" },
  as_trail: { zh: "师傅轨迹（{n} 个定位点）", en: "The worker's trail ({n} fixes)" },
  as_no_trail: { zh: "无轨迹记录", en: "No trail recorded" },
  as_crew_trail: { zh: "班组 {n} 位师傅的轨迹", en: "The crew's trails ({n} workers)" },
  as_member_lead: { zh: "领队 #{id}（{n} 个定位点）", en: "Lead #{id} ({n} fixes)" },
  as_member: { zh: "师傅 #{id}（{n} 个定位点）", en: "Worker #{id} ({n} fixes)" },
  as_outcomes: { zh: "处理结果", en: "Outcomes" },
  as_message: { zh: "回复客户", en: "Reply" },
  as_send: { zh: "发送", en: "Send" },
  as_refund: { zh: "退款（元）", en: "Refund (¥)" },
  as_comp: { zh: "赔偿（元）", en: "Compensation (¥)" },
  as_redo: { zh: "返工", en: "Redo" },
  as_redo_none: { zh: "不返工", en: "No redo" },
  as_redo_same: { zh: "原师傅返工", en: "Same worker" },
  as_redo_other: { zh: "换师傅返工", en: "Another worker" },
  as_fault: { zh: "师傅有责（计入质量分）", en: "The worker is at fault (quality score)" },
  as_warning: { zh: "给予警告", en: "Give a warning" },
  as_note: { zh: "处理说明", en: "Note" },
  as_resolve: { zh: "处理完结", en: "Resolve" },
  as_reject: { zh: "驳回", en: "Turn down" },
  as_reason: { zh: "原因", en: "Reason" },
  as_ruling: { zh: "纠纷裁决（管理员，仅一次）", en: "Ruling (admin, once)" },
  as_favour: { zh: "裁决支持", en: "In favour of" },
  as_f_customer: { zh: "客户", en: "The customer" },
  as_f_worker: { zh: "师傅", en: "The worker" },
  as_f_split: { zh: "各担部分", en: "Split" },
  as_rule: { zh: "裁决", en: "Rule" },
  as_ruled: { zh: "裁决：支持{f} — {r}", en: "Ruled for {f}: {r}" },
  as_claim: { zh: "保险理赔：{s}，保额 {c}", en: "Insurance claim: {s}, cover {c}" },
  as_assess: { zh: "定损金额（元）", en: "Assessed damage (¥)" },
  as_assess_go: { zh: "定损", en: "Assess" },
  as_pay: { zh: "理赔打款", en: "Pay the claim" },
  as_claim_reject: { zh: "拒赔", en: "Reject the claim" },
  as_done: { zh: "已处理", en: "Done" },
  as_held: { zh: "结算已冻结（工单未结）", en: "Settlement held (ticket open)" },
  as_side_customer: { zh: "客户", en: "Customer" },
  as_side_worker: { zh: "师傅", en: "Worker" },
  as_side_staff: { zh: "客服", en: "Staff" },
  as_side_system: { zh: "系统", en: "System" },
  as_statement: { zh: "陈述", en: "statement" },
  as_run: { zh: "立即抽样上一周期", en: "Sample the last period now" },
  as_sampled: { zh: "抽取 {n} 单，新建 {c} 个回访任务", en: "Sampled {n}, {c} new call-backs" },
  as_spot_empty: { zh: "没有待回访的订单", en: "No call-back waiting" },
  as_reached: { zh: "已联系到客户", en: "Customer reached" },
  as_yes: { zh: "是", en: "Yes" },
  as_no: { zh: "否", en: "No" },
  as_record: { zh: "提交回访", en: "Record" },
  as_passed: { zh: "合格", en: "Passed" },
  as_failed: { zh: "不合格", en: "Failed" },
  as_bad_amount: { zh: "请输入金额，如 100 或 99.50", en: "Enter an amount such as 100 or 99.50" },
  k_redo: { zh: "返工重做", en: "Redo" }, k_refund: { zh: "部分退款", en: "Partial refund" },
  k_compensation: { zh: "赔偿", en: "Compensation" }, k_damage: { zh: "物品损坏", en: "Damage" },
  k_complaint: { zh: "服务态度投诉", en: "Behaviour complaint" },
  t_open: { zh: "待响应", en: "Open" }, t_in_progress: { zh: "处理中", en: "In progress" },
  t_disputed: { zh: "纠纷中", en: "Disputed" }, t_resolved: { zh: "已解决", en: "Resolved" },
  t_rejected: { zh: "已驳回", en: "Turned down" }, t_withdrawn: { zh: "已撤销", en: "Withdrawn" },
  c_claimed: { zh: "待定损", en: "claimed" }, c_assessed: { zh: "已定损", en: "assessed" },
  c_paid: { zh: "已赔付", en: "paid" }, c_rejected: { zh: "已拒赔", en: "rejected" },
  o_refund: { zh: "退款", en: "Refund" }, o_compensation: { zh: "赔偿", en: "Compensation" },
  o_redo: { zh: "返工单", en: "Redo order" }, o_claim: { zh: "保险赔付", en: "Insurance paid" },
  o_quality: { zh: "质量记录", en: "Quality record" },
};

// "99.50" → 9950 fen, exactly (no floating point); null if blank; NaN if not an amount.
export function yuanToFen(text) {
  const s = String(text ?? "").trim();
  if (!s) return null;
  const m = s.match(/^(\d{1,9})(?:\.(\d{1,2}))?$/);
  if (!m) return NaN;
  return Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0"));
}

export function duration(seconds, t) {
  const s = Math.abs(seconds);
  const text = s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m` : `${Math.floor(s / 60)}m`;
  return seconds < 0 ? t("as_overdue", { d: text }) : text;
}

function timer(seconds, t, id) {
  if (seconds == null) return el("span", { class: "muted" }, "—");
  return el("span", { class: seconds < 0 ? "timer overdue" : "timer", "data-timer": id, "data-left-s": seconds }, duration(seconds, t));
}

export async function aftersalesSection(view, client, t, lang) {
  const tabs = el("div", { class: "row" },
    el("a", { href: "#/aftersales", class: "btn secondary", id: "as-tab-queue" }, t("as_queue")),
    el("a", { href: "#/aftersales?spot", class: "btn secondary", id: "as-tab-spot" }, t("as_spot")));
  const body = el("div");
  view.replaceChildren(tabs, body);
  if (location.hash.includes("?spot")) return spotChecks(body, client, t, lang);
  const m = location.hash.match(/\?ticket=(\d+)/);
  if (m) return ticketDetail(body, client, t, lang, Number(m[1]));
  return queue(body, client, t, lang);
}

async function queue(host, client, t, lang) {
  const list = await client.get("/v1/aftersales/queue");
  const rows = list.map((x) => el("tr", { "data-ticket": x.id, class: x.breached ? "breached" : "" },
    el("td", {}, el("a", { href: `#/aftersales?ticket=${x.id}`, id: `ticket-${x.id}` }, `#${x.id}`)),
    el("td", {}, t(`k_${x.kind}`)),
    el("td", {}, `#${x.order_id}`),
    el("td", {}, t(`t_${x.status}`)),
    el("td", { "data-level": x.escalation_level }, x.escalation_level ? `L${x.escalation_level}` : "—"),
    el("td", {}, timer(x.first_response_left_s, t, "first")),
    el("td", {}, timer(x.resolution_left_s, t, "resolve")),
    el("td", {}, localTime(x.created_at, lang, true))));
  host.replaceChildren(el("section", { class: "card wide", id: "as-queue" },
    el("h3", {}, t("as_queue")),
    rows.length ? el("table", { class: "table" },
      el("thead", {}, el("tr", {}, ["as_id", "as_kind", "as_order", "as_status", "as_level", "as_first", "as_resolve_in", "as_created"].map((k) => el("th", {}, t(k))))),
      el("tbody", {}, rows)) : el("p", { class: "muted" }, t("as_empty"))));
}

async function photo(client, id) {
  const link = await client.get(`/v1/files/${id}/url`).catch(() => null);
  return link ? el("a", { href: link.path, target: "_blank", rel: "noopener" }, el("img", { src: link.path, alt: "", class: "thumb", "data-file-id": id })) : el("span", { class: "muted" }, `#${id}`);
}

// A small SVG of the trails: enough to see where each worker went during the job (a
// crew order: one line per member, the lead first, on one scale).
const TRAIL_COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]; // apps.css .trail-N

function trailColour(i) { return TRAIL_COLOURS[i % TRAIL_COLOURS.length]; }

function trailSvg(lines) {
  const drawn = lines.filter((m) => m.trail.length >= 2);
  if (!drawn.length) return null;
  const all = drawn.flatMap((m) => m.trail);
  const lats = all.map((p) => p.lat), lngs = all.map((p) => p.lng);
  const [a, b, c, d] = [Math.min(...lats), Math.max(...lats), Math.min(...lngs), Math.max(...lngs)];
  const w = 240, h = 160, sx = (x) => 10 + ((x - c) / ((d - c) || 1e-6)) * (w - 20), sy = (y) => h - 10 - ((y - a) / ((b - a) || 1e-6)) * (h - 20);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(h));
  svg.setAttribute("id", "as-trail-svg");
  lines.forEach((m, i) => {
    if (m.trail.length < 2) return;
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", m.trail.map((p) => `${sx(p.lng).toFixed(1)},${sy(p.lat).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", trailColour(i));
    line.setAttribute("stroke-width", "2");
    if (m.worker_id !== undefined) line.dataset.workerId = String(m.worker_id);
    svg.append(line);
  });
  return svg;
}

// The evidence's trail section: one worker's, or a crew's with a line of legend per member.
function trailSection(ev, t) {
  const crew = ev.crew_trails || [];
  if (!crew.length) {
    return [el("h4", { id: "as-trail" }, ev.trail.length ? t("as_trail", { n: ev.trail.length }) : t("as_no_trail")),
      trailSvg([{ trail: ev.trail }])];
  }
  const fixes = crew.reduce((n, m) => n + m.trail.length, 0);
  return [
    el("h4", { id: "as-trail" }, fixes ? t("as_crew_trail", { n: crew.length }) : t("as_no_trail")),
    el("ul", { class: "list", id: "as-crew-trails" }, crew.map((m, i) => el("li", { "data-worker-id": m.worker_id },
      el("span", { class: `swatch trail-${i % TRAIL_COLOURS.length}` }), " ",
      t(i === 0 ? "as_member_lead" : "as_member", { id: m.worker_id, n: m.trail.length })))),
    trailSvg(crew),
  ];
}

function outcomeFields(t, withRuling) {
  return [
    withRuling ? el("label", {}, t("as_favour"), el("select", { name: "in_favour" },
      ["customer", "split", "worker"].map((f) => el("option", { value: f }, t(`as_f_${f}`))))) : null,
    el("div", { class: "grid2" },
      el("label", {}, t("as_refund"), el("input", { name: "refund", inputmode: "decimal" })),
      el("label", {}, t("as_comp"), el("input", { name: "compensation", inputmode: "decimal" }))),
    el("label", {}, t("as_redo"), el("select", { name: "redo" },
      el("option", { value: "" }, t("as_redo_none")), el("option", { value: "same" }, t("as_redo_same")), el("option", { value: "other" }, t("as_redo_other")))),
    el("label", { class: "inline" }, el("input", { type: "checkbox", name: "worker_at_fault" }), t("as_fault")),
    el("label", { class: "inline" }, el("input", { type: "checkbox", name: "warning" }), t("as_warning")),
    el("label", {}, withRuling ? t("as_reason") : t("as_note"), el("input", { name: withRuling ? "reason" : "note" })),
  ];
}

function outcomeBody(form, t) {
  const v = values(form);
  const refund = yuanToFen(v.refund), comp = yuanToFen(v.compensation);
  if (Number.isNaN(refund) || Number.isNaN(comp)) throw new Error(t("as_bad_amount"));
  const body = { worker_at_fault: v.worker_at_fault, warning: v.warning };
  if (refund) body.refund_fen = refund;
  if (comp) body.compensation_fen = comp;
  if (v.redo) body.redo = v.redo;
  if (v.note !== undefined) body.note = v.note;
  if (v.reason !== undefined) { body.reason = v.reason; body.in_favour = v.in_favour; }
  return body;
}

async function ticketDetail(host, client, t, lang, id) {
  const d = await client.get(`/v1/aftersales/tickets/${id}`);
  const x = d.ticket;
  const ev = await client.get(`/v1/aftersales/tickets/${id}/evidence`).catch(() => null);
  const again = () => ticketDetail(host, client, t, lang, id);
  const act = async (form, path, body) => {
    const r = await submitting(form, t, async () => client.post(path, typeof body === "function" ? body() : body));
    if (r) { toast(t("as_done")); again(); }
  };
  const notes = await Promise.all(d.notes.map(async (n) => el("li", { "data-note": n.id, "data-kind": n.kind },
    el("b", {}, t(`as_side_${n.side}`)), n.kind === "statement" ? el("span", { class: "chip" }, t("as_statement")) : null, " ",
    el("span", {}, n.body), " ", el("span", { class: "muted" }, localTime(n.at, lang, true)),
    n.photos.length ? el("div", { class: "thumbs" }, await Promise.all(n.photos.map((p) => photo(client, p)))) : null)));
  const parts = [
    el("a", { href: "#/aftersales", id: "as-back" }, t("as_back")),
    el("section", { class: "card wide", id: "as-ticket", "data-status": x.status },
      el("h3", {}, `${t("as_id")} #${x.id} · ${t(`k_${x.kind}`)} · ${t(`t_${x.status}`)}`),
      el("div", {}, `${t("as_order")} #${x.order_id}`, x.asked_fen ? ` · ${t("as_asked")} ${money(x.asked_fen)}` : ""),
      el("div", {}, t("as_first"), " ", timer(x.first_response_left_s, t, "first"), " · ", t("as_resolve_in"), " ", timer(x.resolution_left_s, t, "resolve"),
        x.escalation_level ? el("b", { class: "overdue" }, ` L${x.escalation_level}`) : null),
      d.settlement_held ? el("div", { class: "muted", id: "as-held" }, t("as_held")) : null,
      el("h4", {}, t("as_notes")), el("ul", { class: "list", id: "as-notes" }, notes)),
  ];
  if (ev) {
    parts.push(el("section", { class: "card wide", id: "as-evidence" },
      el("h3", {}, t("as_evidence")),
      el("h4", {}, t("as_timeline")),
      el("ul", { class: "list", id: "as-timeline" }, ev.timeline.map((s) => el("li", {}, `${localTime(s.at, lang, true)} · ${s.action} → ${s.to_status}${s.reason ? ` (${s.reason})` : ""}`))),
      ...trailSection(ev, t)));
  }
  if (d.outcomes.length || d.ruling) {
    parts.push(el("section", { class: "card wide", id: "as-outcomes" }, el("h3", {}, t("as_outcomes")),
      d.ruling ? el("p", { id: "as-ruling" }, t("as_ruled", { f: t(`as_f_${d.ruling.in_favour}`), r: d.ruling.reason })) : null,
      el("ul", { class: "list" }, d.outcomes.map((o) => el("li", { "data-outcome": o.kind },
        t(`o_${o.kind}`), o.amount_fen ? ` ${money(o.amount_fen)}` : "", o.out_refund_no ? ` · ${o.out_refund_no}` : "",
        o.redo_order_id ? ` · #${o.redo_order_id}` : "")))));
  }
  if (d.claim) {
    const c = d.claim;
    const box = el("section", { class: "card wide", id: "as-claim", "data-claim": c.status },
      el("h3", {}, t("as_claim", { s: t(`c_${c.status}`), c: money(c.coverage_fen) })),
      c.assessed_fen ? el("div", {}, `${t("as_assess")}: ${money(c.assessed_fen)}`) : null);
    if (c.status === "claimed") {
      const f = el("form", { class: "row", id: "as-assess", novalidate: true },
        el("input", { name: "assessed", inputmode: "decimal", placeholder: t("as_assess") }),
        el("button", { type: "submit" }, t("as_assess_go")), el("p", { class: "form-error" }));
      f.addEventListener("submit", (e) => { e.preventDefault(); act(f, `/v1/aftersales/tickets/${id}/claim/assess`, () => ({ assessed_fen: yuanToFen(values(f).assessed) })); });
      box.append(f);
    }
    if (c.status === "assessed") {
      const f = el("form", { class: "row", id: "as-decide", novalidate: true },
        el("input", { name: "reason", placeholder: t("as_reason") }),
        el("button", { type: "submit", id: "as-pay" }, t("as_pay")),
        el("button", { type: "button", class: "btn secondary", id: "as-claim-reject", onclick: () => act(f, `/v1/aftersales/tickets/${id}/claim/decide`, () => ({ pay: false, reason: values(f).reason })) }, t("as_claim_reject")),
        el("p", { class: "form-error" }));
      f.addEventListener("submit", (e) => { e.preventDefault(); act(f, `/v1/aftersales/tickets/${id}/claim/decide`, { pay: true }); });
      box.append(f);
    }
    parts.push(box);
  }
  if (["open", "in_progress", "disputed"].includes(x.status)) {
    const msg = el("form", { class: "card wide", id: "as-message", novalidate: true },
      el("h4", {}, t("as_message")), el("textarea", { name: "body", rows: 2 }),
      el("button", { type: "submit" }, t("as_send")), el("p", { class: "form-error" }));
    msg.addEventListener("submit", (e) => { e.preventDefault(); act(msg, `/v1/aftersales/tickets/${id}/messages`, () => ({ body: values(msg).body })); });
    parts.push(msg);
    if (x.status === "disputed") {
      if (client.user?.roles.includes("admin")) {
        const f = el("form", { class: "card wide", id: "as-ruling-form", novalidate: true },
          el("h4", {}, t("as_ruling")), ...outcomeFields(t, true),
          el("button", { type: "submit" }, t("as_rule")), el("p", { class: "form-error" }));
        f.addEventListener("submit", (e) => { e.preventDefault(); act(f, `/v1/aftersales/tickets/${id}/ruling`, () => outcomeBody(f, t)); });
        parts.push(f);
      }
    } else {
      const f = el("form", { class: "card wide", id: "as-resolve", novalidate: true },
        el("h4", {}, t("as_resolve")), ...outcomeFields(t, false),
        el("button", { type: "submit" }, t("as_resolve")), el("p", { class: "form-error" }));
      f.addEventListener("submit", (e) => { e.preventDefault(); act(f, `/v1/aftersales/tickets/${id}/resolve`, () => outcomeBody(f, t)); });
      const r = el("form", { class: "row", id: "as-reject", novalidate: true },
        el("input", { name: "reason", placeholder: t("as_reason") }),
        el("button", { type: "submit", class: "btn secondary" }, t("as_reject")), el("p", { class: "form-error" }));
      r.addEventListener("submit", (e) => { e.preventDefault(); act(r, `/v1/aftersales/tickets/${id}/reject`, () => ({ reason: values(r).reason })); });
      parts.push(f, r);
    }
  }
  host.replaceChildren(...parts);
}

async function spotChecks(host, client, t, lang) {
  const [list, questions] = await Promise.all([
    client.get("/v1/aftersales/spot-checks", { status: "pending" }),
    client.get("/v1/aftersales/questionnaire"),
  ]);
  const out = el("span", { class: "muted", id: "as-sampled" });
  const run = el("button", { type: "button", class: "btn secondary", id: "as-run-spot", onclick: async () => {
    try {
      const r = await client.post("/v1/aftersales/spot-checks/run", {});
      out.textContent = t("as_sampled", { n: r.sampled, c: r.created });
      spotChecks(host, client, t, lang);
    } catch (e) { toast(e.message, "error"); }
  } }, t("as_run"));
  const cards = list.map((s) => {
    const f = el("form", { class: "card", "data-spot": s.id, novalidate: true },
      el("b", {}, `${t("as_order")} #${s.order_id}`), el("span", { class: "muted" }, ` · ${localTime(s.created_at, lang, true)}`),
      el("label", { class: "inline" }, el("input", { type: "checkbox", name: "reached", checked: true }), t("as_reached")),
      ...questions.map((q) => el("label", {}, lang === "en" ? q.en : q.zh, q.kind === "stars"
        ? el("select", { name: q.key }, [5, 4, 3, 2, 1].map((n) => el("option", { value: n }, "★".repeat(n))))
        : el("select", { name: q.key }, el("option", { value: q.key === "extra_charges" ? "false" : "true" }, q.key === "extra_charges" ? t("as_no") : t("as_yes")),
          el("option", { value: q.key === "extra_charges" ? "true" : "false" }, q.key === "extra_charges" ? t("as_yes") : t("as_no"))))),
      el("input", { name: "note", placeholder: t("as_note") }),
      el("button", { type: "submit" }, t("as_record")), el("p", { class: "form-error" }));
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const v = values(f);
      const answers = {};
      for (const q of questions) answers[q.key] = q.kind === "stars" ? Number(v[q.key]) : v[q.key] === "true";
      const r = await submitting(f, t, () => client.post(`/v1/aftersales/spot-checks/${s.id}`, { reached: v.reached, answers: v.reached ? answers : {}, note: v.note }));
      if (r) f.replaceWith(el("div", { class: "card", "data-spot-done": s.id }, `#${s.order_id} · ${r.status === "done" ? (r.passed ? t("as_passed") : t("as_failed")) : r.status}`));
    });
    return f;
  });
  host.replaceChildren(el("section", { class: "card wide", id: "as-spot" },
    el("h3", {}, t("as_spot")), el("div", { class: "row" }, run, out),
    cards.length ? el("div", { class: "grid2" }, cards) : el("p", { class: "muted" }, t("as_spot_empty"))));
}
