// The worker's app, onboarding side: apply by phone and SMS code, the application
// (profile and documents), training courses and timed exams. Used by worker.js: hash
// routes #/apply and #/exams; an applicant (worker role, no worker profile yet) is sent
// to #/apply.

import { ApiError, el, submitting, toast, values } from "/static/client.js";

export const ONBOARD_STRINGS = {
  tab_apply: { zh: "入职申请", en: "Apply" },
  tab_exams: { zh: "培训考试", en: "Training" },
  apply_title: { zh: "申请成为师傅", en: "Apply to work with us" },
  apply_hint: { zh: "用手机号和短信验证码申请，无需密码。", en: "Apply with your phone and an SMS code: no password needed." },
  your_name: { zh: "称呼", en: "Your name" },
  get_code: { zh: "获取验证码", en: "Send me a code" },
  code: { zh: "短信验证码", en: "SMS code" },
  code_sent: { zh: "验证码已发送", en: "Code sent" },
  sign_in_code: { zh: "验证并继续", en: "Verify and go on" },
  app_status: { zh: "申请状态", en: "Application" },
  st_draft: { zh: "填写中", en: "Draft" },
  st_submitted: { zh: "审核中", en: "Under review" },
  st_changes_requested: { zh: "需修改", en: "Changes requested" },
  st_approved: { zh: "已通过", en: "Approved" },
  st_rejected: { zh: "未通过", en: "Rejected" },
  reviewer_says: { zh: "审核意见：", en: "Reviewer: " },
  profile: { zh: "个人资料", en: "Profile" },
  real_name: { zh: "真实姓名", en: "Legal name" },
  id_number: { zh: "身份证号", en: "ID number" },
  city_id: { zh: "服务城市", en: "City" },
  skills_claimed: { zh: "技能", en: "Skills" },
  home_lat: { zh: "常住地纬度", en: "Home latitude" },
  home_lng: { zh: "常住地经度", en: "Home longitude" },
  save_profile: { zh: "保存资料", en: "Save profile" },
  saved: { zh: "已保存", en: "Saved" },
  documents: { zh: "证件材料", en: "Documents" },
  d_id_front: { zh: "身份证人像面", en: "ID card, photo side" },
  d_id_back: { zh: "身份证国徽面", en: "ID card, emblem side" },
  d_face: { zh: "本人正脸照", en: "A photo of your face" },
  d_health: { zh: "健康证", en: "Health certificate" },
  d_no_criminal_record: { zh: "无犯罪记录证明", en: "No-criminal-record certificate" },
  d_skill_certificate: { zh: "技能证书", en: "Skill certificate" },
  missing: { zh: "待上传", en: "To upload" },
  doc_pending: { zh: "待审核", en: "Pending" },
  doc_approved: { zh: "已通过", en: "Approved" },
  doc_rejected: { zh: "未通过", en: "Rejected" },
  number: { zh: "证书编号", en: "Number" },
  issued_on: { zh: "发证日期", en: "Issued" },
  expires_on: { zh: "有效期至", en: "Valid until" },
  file: { zh: "文件", en: "File" },
  upload: { zh: "上传", en: "Upload" },
  uploaded: { zh: "已上传", en: "Uploaded" },
  submit_app: { zh: "提交审核", en: "Submit for review" },
  submitted_ok: { zh: "已提交，请等待审核", en: "Submitted: we will review it" },
  identity: { zh: "实名核验", en: "Identity check" },
  background: { zh: "背景调查", en: "Background check" },
  c_unchecked: { zh: "未核验", en: "Not checked" },
  c_verified: { zh: "已通过", en: "Verified" },
  c_mismatch: { zh: "信息不一致", en: "Does not match" },
  c_unavailable: { zh: "暂不可用，稍后重试", en: "Unavailable, retried later" },
  c_clear: { zh: "无记录", en: "Clear" },
  c_record: { zh: "有记录", en: "Record found" },
  courses: { zh: "培训课程", en: "Courses" },
  exams: { zh: "上岗考试", en: "Exams" },
  no_exams: { zh: "您的技能暂无考试", en: "No exam for your skills yet" },
  exam_meta: { zh: "{n} 题 · {m} 分钟 · {p}% 及格 · 已考 {u}/{a} 次", en: "{n} questions · {m} min · pass {p}% · tries {u}/{a}" },
  passed: { zh: "已通过", en: "Passed" },
  start_exam: { zh: "开始考试", en: "Start" },
  hand_in: { zh: "交卷", en: "Hand in" },
  time_left: { zh: "剩余时间", en: "Time left" },
  result_pass: { zh: "通过！得分 {s}/{m}", en: "Passed! {s}/{m}" },
  result_fail: { zh: "未通过：得分 {s}/{m}", en: "Not passed: {s}/{m}" },
  q_single: { zh: "单选", en: "Single choice" },
  q_multiple: { zh: "多选", en: "Multiple choice" },
  q_true_false: { zh: "判断", en: "True or false" },
};

// ---- applying: phone + SMS code ------------------------------------------------------------

// A card under the sign-in form: a phone (and name) gets a code; the code signs in.
export function applyCard(client, t, onDone) {
  const form = el("form", { id: "apply-form", class: "card", novalidate: true },
    el("h2", {}, t("apply_title")),
    el("p", { class: "muted" }, t("apply_hint")),
    el("label", {}, t("phone"), el("input", { name: "phone", id: "apply-phone", inputmode: "tel" })),
    el("label", {}, t("your_name"), el("input", { name: "name", id: "apply-name" })),
    el("button", { type: "button", class: "btn secondary", id: "apply-code" }, t("get_code")),
    el("label", {}, t("code"), el("input", { name: "code", id: "apply-sms", inputmode: "numeric", autocomplete: "one-time-code" })),
    el("button", { type: "submit", id: "apply-login" }, t("sign_in_code")),
    el("p", { class: "form-error" }));
  const post = async (path, body) => {
    const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new ApiError(r.status, data.error || { code: "http_error", message: r.statusText });
    return data;
  };
  form.querySelector("#apply-code").addEventListener("click", () => submitting(form, t, async () => {
    const v = values(form);
    await post("/v1/onboarding/sign-up", { phone: v.phone, name: v.name });
    toast(t("code_sent"));
  }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(form, t, async () => {
      const v = values(form);
      const body = await post("/v1/auth/sms-login", { phone: v.phone, code: v.code });
      client.session.set({
        access: body.access_token,
        refresh: body.refresh_token,
        expires_at_ms: Date.now() + body.expires_in * 1000,
        user: body.user,
      });
      onDone(body.user);
    });
  });
  return form;
}

// Whether the signed-in worker account is still an applicant (no worker profile yet).
export async function applicantState(client) {
  const standing = await client.get("/v1/onboarding/standing");
  return standing.applicant ? standing : null;
}

// ---- the application -----------------------------------------------------------------------

const DOC_PURPOSE = { id_front: "id_card", id_back: "id_card", face: "id_card" };
const DATED = new Set(["health", "skill_certificate"]);

function docForm(client, t, kind, certKind, onSaved) {
  const key = certKind ? `${kind}:${certKind}` : kind;
  const form = el("form", { class: "doc-upload row", "data-kind": key, novalidate: true },
    el("input", { type: "file", name: "file_id", accept: DOC_PURPOSE[kind] ? "image/*" : "image/*,application/pdf" }));
  if (DATED.has(kind)) {
    form.append(
      el("input", { name: "number", placeholder: t("number"), size: 10 }),
      el("input", { name: "issued_on", type: "date", title: t("issued_on") }),
      el("input", { name: "expires_on", type: "date", title: t("expires_on") }));
  }
  form.append(el("button", { type: "submit", class: "btn" }, t("upload")), el("p", { class: "form-error" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(form, t, async () => {
      const picked = form.querySelector("input[type=file]").files[0];
      if (!picked) throw new ApiError(422, { code: "invalid_field", message: t("file"), field: "file_id" });
      const stored = await client.upload(DOC_PURPOSE[kind] || "certificate", picked);
      const v = values(form);
      const body = { kind, file_id: stored.id };
      if (certKind && kind === "skill_certificate") body.certificate_kind = certKind;
      if (DATED.has(kind)) Object.assign(body, { number: v.number, issued_on: v.issued_on || null, expires_on: v.expires_on || null });
      const app = await client.post("/v1/onboarding/application/documents", body);
      toast(t("uploaded"));
      onSaved(app);
    });
  });
  return form;
}

export async function applicationView(view, client, t, lang, app) {
  app = app || await client.get("/v1/onboarding/application");
  const [skills, cities] = await Promise.all([client.get("/v1/skills"), client.get("/v1/cities")]);
  const editable = app.status === "draft" || app.status === "changes_requested";
  const rerender = (next) => applicationView(view, client, t, lang, next);
  const profile = el("form", { id: "profile-form", class: "card", novalidate: true, "data-saved-id": app.id_number || "" },
    el("h3", {}, t("profile")),
    el("label", {}, t("real_name"), el("input", { name: "real_name", value: app.real_name || "" })),
    el("label", {}, t("id_number"), el("input", { name: "id_number", value: app.id_number || "", maxlength: 18 })),
    el("label", {}, t("city_id"), el("select", { name: "city_id" },
      cities.map((c) => el("option", { value: c.id, selected: c.id === app.city_id }, lang === "en" ? c.name_en : c.name_zh)))),
    el("fieldset", { "data-field": "skills" }, el("legend", {}, t("skills_claimed")),
      skills.map((s) => el("label", { class: "row" }, el("input", { type: "checkbox", class: "skill", value: s.code, checked: app.skills.includes(s.code) }), lang === "en" ? s.name_en : s.name_zh))),
    el("label", {}, t("home_lat"), el("input", { name: "home_lat", value: app.home_lat ?? 22.54, inputmode: "decimal", "data-field": "home" })),
    el("label", {}, t("home_lng"), el("input", { name: "home_lng", value: app.home_lng ?? 114.05, inputmode: "decimal" })),
    editable ? el("button", { type: "submit" }, t("save_profile")) : null,
    el("p", { class: "form-error" }));
  profile.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(profile, t, async () => {
      const v = values(profile);
      const body = {
        real_name: v.real_name, city_id: v.city_id,
        skills: [...profile.querySelectorAll("input.skill:checked")].map((i) => i.value),
        home: { lat: Number(v.home_lat), lng: Number(v.home_lng) },
      };
      if (v.id_number && v.id_number !== app.id_number) body.id_number = v.id_number;
      const next = await client.call("PATCH", "/v1/onboarding/application", body);
      toast(t("saved"));
      rerender(next);
    });
  });
  const current = app.documents.filter((d) => d.status !== "replaced");
  const docs = el("section", { class: "card", id: "documents" }, el("h3", {}, t("documents")),
    el("ul", { class: "list" },
      current.map((d) => el("li", { "data-doc": d.certificate_kind && d.kind === "skill_certificate" ? `${d.kind}:${d.certificate_kind}` : d.kind, "data-status": d.status },
        el("div", { class: "spread" }, el("b", {}, t(`d_${d.kind}`) + (d.kind === "skill_certificate" ? ` · ${d.certificate_kind}` : "")),
          el("span", { class: `pill ${d.status}` }, t(`doc_${d.status}`))),
        d.reason ? el("div", { class: "muted" }, t("reviewer_says") + d.reason) : null,
        editable && d.status === "rejected" ? docForm(client, t, d.kind, d.certificate_kind, rerender) : null)),
      app.missing.map((m) => {
        const [kind, certKind] = m.split(":");
        return el("li", { "data-missing": m }, el("div", { class: "spread" },
          el("b", {}, t(`d_${kind}`) + (certKind ? ` · ${certKind}` : "")), el("span", { class: "pill frozen" }, t("missing"))),
        editable ? docForm(client, t, kind, certKind || null, rerender) : null);
      })));
  const submit = el("form", { id: "submit-form", class: "card", novalidate: true },
    el("div", { class: "spread" }, el("span", {}, t("identity")), el("span", { id: "identity-status", "data-status": app.identity_status }, t(`c_${app.identity_status}`))),
    el("div", { class: "spread" }, el("span", {}, t("background")), el("span", { id: "background-status", "data-status": app.background_status }, t(`c_${app.background_status}`))),
    editable ? el("button", { type: "submit", id: "submit-app" }, t("submit_app")) : null,
    el("p", { class: "form-error" }));
  submit.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(submit, t, async () => {
      const next = await client.post("/v1/onboarding/application/submit");
      toast(t("submitted_ok"));
      rerender(next);
    });
  });
  view.replaceChildren(
    el("section", { class: "card", id: "app-status", "data-status": app.status },
      el("div", { class: "spread" }, el("h2", {}, t("app_status")), el("span", { class: "pill" }, t(`st_${app.status}`))),
      app.reason ? el("p", { id: "app-reason" }, t("reviewer_says") + app.reason) : null),
    profile, docs, submit);
}

// ---- training and exams --------------------------------------------------------------------

function countdown(deadline, onZero) {
  const node = el("b", { id: "exam-clock" });
  const tick = () => {
    const left = Math.max(0, Math.round((Date.parse(deadline) - Date.now()) / 1000));
    node.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    if (!node.isConnected && node.dataset.started) { clearInterval(timer); return; }
    node.dataset.started = "1";
    if (left === 0) { clearInterval(timer); onZero?.(); }
  };
  const timer = setInterval(tick, 1000);
  tick();
  return node;
}

function attemptView(view, client, t, lang, attempt, back) {
  const form = el("form", { id: "exam-form", class: "card", novalidate: true, "data-attempt": attempt.id },
    el("div", { class: "spread" }, el("span", {}, t("time_left")), countdown(attempt.deadline_at)),
    el("ol", { class: "list" }, attempt.questions.map((q) => el("li", { "data-question": q.id, "data-kind": q.kind },
      el("div", {}, el("span", { class: "pill" }, t(`q_${q.kind}`)), " ", lang === "en" ? q.text_en : q.text_zh),
      q.choices.map((c) => el("label", { class: "row" },
        el("input", { type: q.kind === "multiple" ? "checkbox" : "radio", name: `q${q.id}`, value: c.index, "data-en": c.en }),
        lang === "en" ? c.en : c.zh))))),
    el("button", { type: "submit", id: "hand-in" }, t("hand_in")),
    el("p", { class: "form-error", "data-field": "answers" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitting(form, t, async () => {
      const answers = attempt.questions.map((q) => ({
        question_id: q.id,
        choices: [...form.querySelectorAll(`input[name="q${q.id}"]:checked`)].map((i) => Number(i.value)),
      }));
      const done = await client.post(`/v1/training/attempts/${attempt.id}/answers`, { answers });
      toast(t(done.passed ? "result_pass" : "result_fail", { s: done.score, m: done.max_score }), done.passed ? "ok" : "error");
      back();
    });
  });
  view.replaceChildren(form);
}

export async function examsView(view, client, t, lang) {
  const [courses, exams] = await Promise.all([client.get("/v1/training/courses"), client.get("/v1/training/exams")]);
  const again = () => examsView(view, client, t, lang);
  view.replaceChildren(
    el("section", { class: "card", id: "courses" }, el("h3", {}, t("courses")),
      el("ul", { class: "list" }, courses.map((c) => el("li", { "data-course": c.id },
        el("details", {}, el("summary", {}, lang === "en" ? c.title_en : c.title_zh),
          c.materials.map((m) => el("div", {}, el("b", {}, m.title), el("p", { class: "muted" }, m.body || m.url)))))))),
    el("section", { class: "card", id: "exams" }, el("h3", {}, t("exams")),
      exams.length ? el("ul", { class: "list" }, exams.map((e) => {
        const form = el("form", { class: "spread", "data-exam": e.id, "data-passed": e.passed ? "1" : "0", novalidate: true },
          el("div", {}, el("b", {}, lang === "en" ? e.title_en : e.title_zh),
            el("div", { class: "muted" }, t("exam_meta", { n: e.question_count, m: Math.round(e.time_limit_s / 60), p: e.pass_percent, u: e.attempts_used, a: e.max_attempts }))),
          e.passed ? el("span", { class: "pill" }, t("passed")) : el("button", { type: "submit", class: "btn" }, t("start_exam")),
          el("p", { class: "form-error" }));
        form.addEventListener("submit", (ev) => {
          ev.preventDefault();
          submitting(form, t, async () => {
            const attempt = await client.post(`/v1/training/exams/${e.id}/attempts`);
            attemptView(view, client, t, lang, attempt, again);
          });
        });
        return el("li", {}, form);
      })) : el("p", { class: "muted", id: "no-exams" }, t("no_exams"))));
}
