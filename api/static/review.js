// The back office, onboarding side: the reviewers' queue (applications, their documents
// with the scans, per-document verdicts, the decision, the audit trail) and the exams
// (banks, pass marks, attempts; practical assessments). Used by admin.js.

import { el, localTime, submitting, toast, values } from "/static/client.js";

export const REVIEW_STRINGS = {
  n_review: { zh: "入职审核", en: "Onboarding review" },
  n_exams: { zh: "培训考试", en: "Training & exams" },
  queue_empty: { zh: "没有待审核的申请", en: "No application waiting" },
  q_status: { zh: "状态", en: "Status" },
  applicant: { zh: "申请人", en: "Applicant" },
  id_masked: { zh: "身份证", en: "ID" },
  docs_pending: { zh: "待审材料", en: "Documents to judge" },
  checks: { zh: "核验", en: "Checks" },
  submitted_at: { zh: "提交时间", en: "Submitted" },
  open: { zh: "审核", en: "Review" },
  back: { zh: "返回列表", en: "Back to the queue" },
  approve: { zh: "通过", en: "Approve" },
  reject: { zh: "驳回", en: "Reject" },
  request_changes: { zh: "退回修改", en: "Send back" },
  recheck: { zh: "重新核验", en: "Check again" },
  decided: { zh: "已处理", en: "Done" },
  steps: { zh: "审核记录", en: "Audit trail" },
  view_file: { zh: "查看", en: "View" },
  exam_title: { zh: "考试", en: "Exam" },
  bank: { zh: "题库", en: "Bank" },
  pass_mark: { zh: "及格线", en: "Pass mark" },
  time_limit: { zh: "时限", en: "Time limit" },
  attempts: { zh: "次数", en: "Attempts" },
  practical: { zh: "实操考核", en: "Practical assessment" },
  user_id: { zh: "账号编号", en: "Account id" },
  skill: { zh: "技能", en: "Skill" },
  score: { zh: "得分", en: "Score" },
  notes: { zh: "备注", en: "Notes" },
  passed_q: { zh: "通过", en: "Passed" },
  record: { zh: "记录", en: "Record" },
  recorded: { zh: "已记录", en: "Recorded" },
  d_id_front: { zh: "身份证人像面", en: "ID card, photo side" },
  d_id_back: { zh: "身份证国徽面", en: "ID card, emblem side" },
  d_face: { zh: "正脸照", en: "Face photo" },
  d_health: { zh: "健康证", en: "Health certificate" },
  d_no_criminal_record: { zh: "无犯罪记录证明", en: "No-criminal-record certificate" },
  d_skill_certificate: { zh: "技能证书", en: "Skill certificate" },
  n_discipline: { zh: "质量与奖惩", en: "Quality & discipline" },
  rankings: { zh: "质量排名", en: "Rankings" },
  rank: { zh: "名次", en: "Rank" },
  q_score: { zh: "质量分", en: "Score" },
  jobs: { zh: "单量", en: "Jobs" },
  badges: { zh: "徽章", en: "Badges" },
  actions: { zh: "奖惩", en: "Actions" },
  appeal: { zh: "申诉", en: "Appeal" },
  uphold: { zh: "维持", en: "Uphold" },
  overturn: { zh: "撤销", en: "Overturn" },
  pick_city: { zh: "选择城市", en: "Pick a city" },
  reason_required: { zh: "原因（驳回、退回时必填）", en: "Reason (required to reject or send back)" },
};

async function fileLink(client, fileId) {
  try { return (await client.get(`/v1/files/${fileId}/url`)).path; } catch { return null; }
}

async function applicationDetail(view, client, t, lang, id, back) {
  const app = await client.get(`/v1/onboarding/applications/${id}`);
  const again = () => applicationDetail(view, client, t, lang, id, back);
  const docs = app.documents.filter((d) => d.status !== "replaced");
  const links = await Promise.all(docs.map((d) => fileLink(client, d.file_id)));
  const docRows = docs.map((d, i) => {
    const reason = el("input", { name: "reason", placeholder: t("reason") });
    const form = el("form", { class: "row doc-verdict", "data-doc": d.id, "data-kind": d.kind, "data-status": d.status, novalidate: true },
      el("b", {}, t(`d_${d.kind}`) + (d.kind === "skill_certificate" ? ` · ${d.certificate_kind}` : "")),
      d.number ? el("span", { class: "muted" }, `${d.number} ${d.issued_on || ""}–${d.expires_on || ""}`) : null,
      links[i] ? el("a", { href: links[i], target: "_blank", rel: "noopener" },
        !["id_front", "id_back", "face"].includes(d.kind) ? t("view_file") : el("img", { src: links[i], alt: d.kind, class: "doc-thumb", height: 60 })) : null,
      el("span", { class: `pill ${d.status}` }, d.status), reason,
      el("button", { type: "button", class: "btn ok", "data-verdict": "approve" }, t("approve")),
      el("button", { type: "button", class: "btn danger", "data-verdict": "reject" }, t("reject")),
      el("p", { class: "form-error" }));
    for (const b of form.querySelectorAll("button[data-verdict]")) {
      b.addEventListener("click", () => submitting(form, t, async () => {
        await client.put(`/v1/onboarding/applications/${id}/documents/${d.id}/verdict`, { verdict: b.dataset.verdict, reason: reason.value });
        again();
      }));
    }
    form.addEventListener("submit", (ev) => ev.preventDefault());
    return form;
  });
  const decision = el("form", { id: "decision-form", class: "card", novalidate: true },
    el("label", {}, t("reason_required"), el("input", { name: "reason", id: "decision-reason" })),
    el("div", { class: "row" },
      ["approve", "request_changes", "reject"].map((d) => el("button", { type: "button", class: `btn ${d === "approve" ? "ok" : d === "reject" ? "danger" : "secondary"}`, "data-decision": d }, t(d))),
      el("button", { type: "button", class: "btn secondary", id: "recheck" }, t("recheck"))),
    el("p", { class: "form-error" }));
  for (const b of decision.querySelectorAll("button[data-decision]")) {
    b.addEventListener("click", () => submitting(decision, t, async () => {
      await client.post(`/v1/onboarding/applications/${id}/decision`, { decision: b.dataset.decision, reason: values(decision).reason });
      toast(t("decided"));
      again();
    }));
  }
  decision.querySelector("#recheck").addEventListener("click", () => submitting(decision, t, async () => {
    await client.post(`/v1/onboarding/applications/${id}/checks`);
    again();
  }));
  decision.addEventListener("submit", (ev) => ev.preventDefault());
  view.replaceChildren(
    el("button", { type: "button", class: "btn secondary", id: "back-to-queue", onclick: back }, t("back")),
    el("section", { class: "card", id: "application", "data-id": app.id, "data-status": app.status },
      el("h2", {}, `${app.real_name} · ${app.id_number || ""}`),
      el("div", { class: "muted" }, `${app.phone} · ${app.city_id || ""} · ${app.skills.join(", ")}`),
      el("div", { class: "row" }, el("span", { class: "pill", id: "app-status" }, app.status),
        el("span", { id: "identity", "data-status": app.identity_status }, `${t("checks")}: ${app.identity_status} / ${app.background_status}`)),
      el("div", { class: "muted" }, app.identity_detail),
      app.reason ? el("p", {}, app.reason) : null),
    el("section", { class: "card", id: "documents" }, docRows),
    app.status === "submitted" ? decision : null,
    el("section", { class: "card", id: "steps" }, el("h3", {}, t("steps")),
      el("ol", { class: "list" }, app.steps.map((s) => el("li", { "data-step": s.step },
        `${localTime(s.at, lang, true)} · ${s.step}${s.actor_id ? ` · #${s.actor_id}` : ""}${s.reason ? ` · ${s.reason}` : ""}`)))));
}

export async function reviewSection(view, client, t, lang) {
  const status = new URLSearchParams(location.hash.split("?")[1] || "").get("status") || "submitted";
  const list = await client.get("/v1/onboarding/applications", { status });
  const back = () => reviewSection(view, client, t, lang);
  const filter = el("form", { class: "toolbar", id: "queue-filter", novalidate: true },
    el("select", { name: "status" }, ["submitted", "changes_requested", "approved", "rejected", "draft"].map((s) => el("option", { value: s, selected: s === status }, s))));
  filter.querySelector("select").addEventListener("change", (ev) => { location.hash = `#/review?status=${ev.target.value}`; });
  view.replaceChildren(el("h2", {}, t("n_review")), filter,
    list.length ? el("table", { id: "review-queue" },
      el("thead", {}, el("tr", {}, ["id", "applicant", "id_masked", "skills", "checks", "docs_pending", "submitted_at", ""].map((h) => el("th", {}, t(h))))),
      el("tbody", {}, list.map((a) => el("tr", { "data-application": a.id },
        el("td", {}, a.id), el("td", {}, a.real_name), el("td", {}, a.id_number_masked), el("td", {}, a.skills.join(", ")),
        el("td", {}, `${a.identity_status} / ${a.background_status}`), el("td", {}, a.documents_pending),
        el("td", {}, a.submitted_at ? localTime(a.submitted_at, lang, true) : ""),
        el("td", {}, el("button", { type: "button", class: "btn", onclick: () => applicationDetail(view, client, t, lang, a.id, back) }, t("open")))))))
      : el("p", { class: "muted", id: "queue-empty" }, t("queue_empty")));
}

// The exams (set up by admins; onboarding.read) and the practical assessment form
// (onboarding.assess: a city's assessor records them for their cities' workers).
export async function examsSection(view, client, t, lang, { listExams = true } = {}) {
  const [exams, skills] = await Promise.all([listExams ? client.get("/v1/training/exams") : [], client.get("/v1/skills")]);
  const practical = el("form", { id: "practical-form", class: "card", novalidate: true },
    el("h3", {}, t("practical")),
    el("div", { class: "row" },
      el("input", { name: "user_id", placeholder: t("user_id"), size: 8 }),
      el("select", { name: "skill" }, skills.map((s) => el("option", { value: s.code }, lang === "en" ? s.name_en : s.name_zh))),
      el("input", { name: "score", placeholder: t("score"), size: 4 }),
      el("label", { class: "row" }, el("input", { type: "checkbox", name: "passed" }), t("passed_q")),
      el("input", { name: "notes", placeholder: t("notes") }),
      el("button", { type: "submit" }, t("record"))),
    el("p", { class: "form-error" }));
  practical.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(practical, t, async () => {
      const v = values(practical);
      await client.post("/v1/training/practicals", { user_id: Number(v.user_id), skill: v.skill, score: Number(v.score), passed: v.passed, notes: v.notes });
      toast(t("recorded"));
    });
  });
  view.replaceChildren(el("h2", {}, t("n_exams")),
    !listExams ? null : el("table", { id: "exams-table" },
      el("thead", {}, el("tr", {}, ["skill", "exam_title", "bank", "pass_mark", "time_limit", "attempts"].map((h) => el("th", {}, t(h))))),
      el("tbody", {}, exams.map((e) => el("tr", { "data-exam": e.id },
        el("td", {}, e.skill), el("td", {}, lang === "en" ? e.title_en : e.title_zh),
        el("td", {}, `${e.question_count}/${e.bank_size}`), el("td", {}, `${e.pass_percent}%`),
        el("td", {}, `${Math.round(e.time_limit_s / 60)} min`), el("td", {}, e.max_attempts))))),
    practical);
}

async function workerActions(host, client, t, lang, workerId, decides) {
  const list = await client.get("/v1/discipline/actions", { worker_id: workerId });
  host.replaceChildren(el("ul", { class: "list", id: "actions", "data-worker": workerId }, list.map((a) => {
    const form = el("form", { class: "row appeal-decision", "data-action": a.id, "data-status": a.status, novalidate: true },
      el("b", {}, a.kind), a.amount_fen ? el("span", {}, `¥${(a.amount_fen / 100).toFixed(2)} (${a.ledger_status})`) : null,
      el("span", { class: `pill ${a.status}` }, a.status), el("span", { class: "muted" }, a.reason),
      a.appeal_text ? el("span", {}, `${t("appeal")}: ${a.appeal_text}`) : null, el("p", { class: "form-error" }));
    if (a.status === "appealed" && decides) {
      const reason = el("input", { name: "reason", placeholder: t("reason") });
      form.append(reason,
        el("button", { type: "button", class: "btn secondary", "data-decision": "uphold" }, t("uphold")),
        el("button", { type: "button", class: "btn ok", "data-decision": "overturn" }, t("overturn")));
      for (const b of form.querySelectorAll("button[data-decision]")) {
        b.addEventListener("click", () => submitting(form, t, async () => {
          await client.post(`/v1/discipline/actions/${a.id}/decision`, { decision: b.dataset.decision, reason: reason.value });
          toast(t("decided"));
          workerActions(host, client, t, lang, workerId, decides);
        }));
      }
    }
    form.addEventListener("submit", (ev) => ev.preventDefault());
    return el("li", {}, form);
  })));
}

// Rankings of the cities where quality.read is held (``cities``: null for every city);
// appeals are decided with quality.write (``decides``).
export async function disciplineSection(view, client, t, lang, { cities: only = null, decides = true } = {}) {
  const cities = (await client.get("/v1/cities")).filter((c) => !only || only.includes(c.id));
  const wanted = new URLSearchParams(location.hash.split("?")[1] || "").get("city") || cities[0]?.id;
  const select = el("select", { name: "city_id", id: "discipline-city" },
    cities.map((c) => el("option", { value: c.id, selected: c.id === wanted }, lang === "en" ? c.name_en : c.name_zh)));
  select.addEventListener("change", () => { location.hash = `#/discipline?city=${select.value}`; });
  const detail = el("section", { class: "card", id: "worker-actions" });
  const ranks = wanted ? await client.get("/v1/quality/rankings", { city_id: wanted, limit: 100 }) : [];
  view.replaceChildren(el("h2", {}, t("n_discipline")), el("div", { class: "toolbar" }, select),
    el("table", { id: "rankings" },
      el("thead", {}, el("tr", {}, ["rank", "name", "q_score", "rating", "jobs", "badges", ""].map((h) => el("th", {}, t(h))))),
      el("tbody", {}, ranks.map((r) => el("tr", { "data-worker": r.worker_id },
        el("td", {}, r.rank), el("td", {}, r.name), el("td", {}, r.score), el("td", {}, r.rating.toFixed(2)),
        el("td", {}, r.jobs), el("td", {}, r.badges),
        el("td", {}, el("button", { type: "button", class: "btn secondary", onclick: () => workerActions(detail, client, t, lang, r.worker_id, decides) }, t("actions"))))))),
    detail);
}
