// 个人信息 (PIPL) in the customer's "me" page: download everything kept about you
// (GET /v1/me/export, a JSON file), ask for your account's deletion (POST /v1/me/deletion:
// frozen now, anonymised after the cooling-off) and cancel it with the code it gave
// (POST /v1/deletion/cancel). docs/privacy.md.

import { el, showError, submitting, toast } from "/static/client.js";
import { makeT } from "/static/common.js";

const STRINGS = {
  privacy_title: { zh: "个人信息", en: "Your personal data" },
  privacy_hint: {
    zh: "依据《个人信息保护法》，你可以下载我们保存的你的全部信息，或申请注销账号。",
    en: "Under China's Personal Information Protection Law you can download everything we keep about you, or ask for your account to be deleted.",
  },
  export: { zh: "导出我的数据", en: "Export my data" },
  exported: { zh: "已下载 {name}", en: "Downloaded {name}" },
  delete_title: { zh: "注销账号", en: "Delete my account" },
  delete_hint: {
    zh: "申请后账号立即冻结、所有登录失效；{days} 天冷静期后删除或匿名化你的个人信息。订单、支付和账务记录依法保留，但其中的个人信息会被清除。",
    en: "Your account is frozen and signed out everywhere at once; after a {days}-day cooling-off your personal data is deleted or anonymised. Orders, payments and ledger records are kept as the law requires, without your personal data.",
  },
  delete_confirm: { zh: "我已了解，确认注销", en: "I understand: delete my account" },
  delete_ask: { zh: "申请注销", en: "Ask for deletion" },
  delete_sure: { zh: "确定要注销账号吗？", en: "Delete your account?" },
  delete_done: {
    zh: "已申请注销，将于 {due} 执行。若要撤销，请保存撤销码：",
    en: "Deletion asked for: it happens on {due}. To cancel it, keep this code:",
  },
  cancel_title: { zh: "撤销注销申请", en: "Cancel a deletion" },
  cancel_code: { zh: "撤销码", en: "Cancel code" },
  cancel_go: { zh: "撤销注销", en: "Cancel the deletion" },
  cancelled: { zh: "已撤销注销，请重新登录", en: "Deletion cancelled: sign in again" },
  network_error: { zh: "网络错误，请重试", en: "Network error, try again" },
};

function fmtDate(iso, lang) {
  return new Date(iso).toLocaleString(lang === "en" ? "en-GB" : "zh-CN", { timeZone: "Asia/Shanghai" });
}

// The card for a signed-in user; ``onFrozen`` runs once the account is frozen (the
// session is over: its tokens are revoked).
export function privacyCard(client, lang, onFrozen) {
  const t = makeT(STRINGS, lang);
  const card = el("section", { class: "card wide", id: "privacy" },
    el("h3", {}, t("privacy_title")), el("p", { class: "muted" }, t("privacy_hint")));
  const exportForm = el("form", { id: "export-form", novalidate: true },
    el("button", { type: "submit", id: "export" }, t("export")), el("p", { class: "form-error" }));
  exportForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = await submitting(exportForm, t, () => client.get("/v1/me/export"));
    if (!data) return;
    const name = `doorstep-export-${data.account.id}.json`;
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
    const a = el("a", { href: url, download: name, id: "export-link" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    card.dataset.exported = String(Object.keys(data).length);
    toast(t("exported", { name }));
  });
  const confirm = el("input", { type: "checkbox", name: "confirm", id: "delete-confirm", "data-field": "confirm" });
  const deleteForm = el("form", { id: "delete-form", novalidate: true },
    el("h4", {}, t("delete_title")), el("p", { class: "muted" }, t("delete_hint", { days: 7 })),
    el("label", { class: "check" }, confirm, " ", t("delete_confirm")),
    el("button", { type: "submit", class: "btn danger", id: "delete-account" }, t("delete_ask")),
    el("p", { class: "form-error" }));
  deleteForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (confirm.checked && !window.confirm(t("delete_sure"))) return;
    const done = await submitting(deleteForm, t, () => client.post("/v1/me/deletion", { confirm: confirm.checked }));
    if (!done) return;
    client.session.clear();
    exportForm.remove(); // signed out: nothing more to export
    deleteForm.replaceChildren(el("p", { id: "deletion-pending" }, t("delete_done", { due: fmtDate(done.due_at, lang) })),
      el("code", { id: "cancel-code" }, done.cancel_code));
    onFrozen?.();
  });
  card.append(exportForm, deleteForm);
  return card;
}

// The form that cancels a pending deletion (no sign-in: the account is frozen).
export function cancelDeletionForm(client, lang) {
  const t = makeT(STRINGS, lang);
  const form = el("form", { class: "card wide", id: "cancel-deletion-form", novalidate: true },
    el("h3", {}, t("cancel_title")),
    el("label", {}, t("cancel_code"), el("input", { name: "code", "data-field": "code", maxlength: 64, autocomplete: "off" })),
    el("button", { type: "submit" }, t("cancel_go")), el("p", { class: "form-error" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const code = form.querySelector("[name=code]").value.trim();
    try {
      const r = await submitting(form, t, () => client.post("/v1/deletion/cancel", { code }));
      if (r) { toast(t("cancelled")); form.reset(); form.dataset.done = "1"; }
    } catch (e) { showError(form, e, t); }
  });
  return form;
}
