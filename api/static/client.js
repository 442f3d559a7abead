// The one client of the three apps (/app, /worker, /admin): language, signing in, REST with
// the bearer token (refreshed once on 401), the worker socket with backlog and resume, and
// one way to show the API's {"error": {code, message, field}} next to the field it names.
// Plain ES module on top of common.js; no build step, nothing from other hosts.

import { ApiError, Session, api, el, makeT, pickLang, translateDom, wsUrl } from "/static/common.js";

export { ApiError, el, wsUrl };

// ---- language ---------------------------------------------------------------------------

export function boot(strings) {
  const lang = pickLang();
  const t = makeT(strings, lang);
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  translateDom(t);
  for (const b of document.querySelectorAll("[data-lang-switch]")) {
    b.textContent = lang === "en" ? "中文" : "EN";
    b.addEventListener("click", () => {
      const url = new URL(location.href);
      url.searchParams.set("lang", lang === "en" ? "zh" : "en");
      location.replace(url);
    });
  }
  return { lang, t };
}

// A {zh, en} pair, or an object with name_zh / name_en, in the page's language.
export function named(lang, obj, field = "name") {
  if (!obj) return "";
  return (lang === "en" ? obj[`${field}_en`] : obj[`${field}_zh`]) || obj[`${field}_zh`] || "";
}

export function money(minor, currency = "CNY") {
  const sign = currency === "CNY" ? "¥" : `${currency} `;
  return `${sign}${(minor / 100).toFixed(minor % 100 === 0 ? 0 : 2)}`;
}

export function localTime(iso, lang, withDate = false) {
  if (!iso) return "";
  const d = new Date(iso);
  const opts = { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "Asia/Shanghai" };
  if (withDate) Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return d.toLocaleString(lang === "en" ? "en-GB" : "zh-CN", opts);
}

// ---- the API ----------------------------------------------------------------------------

export class Client {
  // One signed-in person per app and tab (sessionStorage: gone when the tab closes).
  constructor(name) { this.session = new Session(name); }
  get user() { return this.session.get()?.user ?? null; }
  signedIn() { return this.session.get() !== null; }
  async login(phone, password) { return this.session.login(phone, password); }
  async logout() { await this.session.logout(); }
  async token() { return this.session.access(); }

  async call(method, path, body) {
    try {
      return await api(this.session, method, path, body);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && e.code !== "bad_credentials") this.session.clear();
      throw e;
    }
  }
  get(path, query) { return this.call("GET", withQuery(path, query)); }
  post(path, body = {}) { return this.call("POST", path, body); }
  put(path, body = {}) { return this.call("PUT", path, body); }
  del(path) { return this.call("DELETE", path); }

  // Raw bytes (files/ takes the body as it is, not multipart).
  async upload(purpose, file) {
    const token = await this.token();
    const r = await fetch(`/v1/files?purpose=${encodeURIComponent(purpose)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
      body: file,
    });
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new ApiError(r.status, data?.error || { code: "http_error", message: r.statusText });
    return data;
  }

  // Does the server have this GET route? (Capabilities that land later: the inbox.)
  async has(path) {
    try { await this.get(path); return true; } catch (e) { return !(e instanceof ApiError && e.status === 404 && e.code === "no_such_route"); }
  }
}

export function withQuery(path, query) {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// ---- errors next to their field ---------------------------------------------------------

export function clearErrors(form) {
  for (const n of form.querySelectorAll(".field-error")) n.remove();
  for (const n of form.querySelectorAll(".invalid")) n.classList.remove("invalid");
  const general = form.querySelector(".form-error");
  if (general) general.textContent = "";
}

// The API's error under the input named by its `field` (name="field" or data-field="field",
// the first path segment of `checklist[0].en` counts), else in the form's .form-error.
export function showError(form, err, t) {
  clearErrors(form);
  const message = err instanceof ApiError
    ? `${err.message}${err.code ? ` (${err.code})` : ""}`
    : (t ? t("network_error") : String(err));
  const field = err instanceof ApiError && err.field ? String(err.field) : null;
  const key = field ? field.split(/[.[]/)[0] : null;
  const input = key
    ? form.querySelector(`[name="${CSS.escape(field)}"], [data-field="${CSS.escape(field)}"], [name="${CSS.escape(key)}"], [data-field="${CSS.escape(key)}"]`)
    : null;
  if (input) {
    input.classList.add("invalid");
    input.insertAdjacentElement("afterend", el("div", { class: "field-error", "data-for": field }, message));
    return;
  }
  let general = form.querySelector(".form-error");
  if (!general) { general = el("p", { class: "form-error" }); form.append(general); }
  general.textContent = message;
  if (field) general.dataset.for = field;
}

// Run an action for a form: errors shown next to their field, the button busy meanwhile.
export async function submitting(form, t, action) {
  clearErrors(form);
  const button = form.querySelector("button[type=submit]");
  const was = button?.disabled;
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (e) {
    showError(form, e, t);
    return undefined;
  } finally {
    if (button) button.disabled = was; // a button disabled for its own reason stays so
  }
}

export function values(form) {
  const out = {};
  for (const input of form.querySelectorAll("[name]")) {
    if (input.type === "checkbox") out[input.name] = input.checked;
    else out[input.name] = input.value;
  }
  return out;
}

// ---- one way to sign in -----------------------------------------------------------------

// Shows the sign-in form in `host` until someone with one of `roles` signs in (or, when
// `roles` is a function, someone for whom it resolves true: the back office asks the API
// what the account may do).
export function loginView(host, client, t, roles, onDone) {
  const form = el("form", { id: "login-form", class: "card login", novalidate: true },
    el("h2", {}, t("login_title")),
    el("label", {}, t("phone"), el("input", { name: "phone", id: "login-phone", autocomplete: "username", inputmode: "tel" })),
    el("label", {}, t("password"), el("input", { name: "password", id: "login-password", type: "password", autocomplete: "current-password" })),
    el("button", { type: "submit" }, t("login")),
    el("p", { class: "form-error" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values(form);
    await submitting(form, t, async () => {
      const user = await client.login(v.phone, v.password);
      const allowed = typeof roles === "function" ? await roles(user) : user.roles.some((r) => roles.includes(r));
      if (!allowed) {
        await client.logout();
        throw new ApiError(403, { code: "forbidden", message: t("wrong_role"), field: "phone" });
      }
      onDone(user);
    });
  });
  host.replaceChildren(form);
}

// ---- GCJ-02 (AMap / Tencent / WeChat) ---------------------------------------------------

const A = 6378245.0;
const EE = 0.00669342162296594323;

function outOfChina(lat, lng) { return lng < 72.004 || lng > 137.8347 || lat < 0.8293 || lat > 55.8271; }
function tLat(x, y) {
  let r = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
  r += ((20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2) / 3;
  r += ((20 * Math.sin(y * Math.PI) + 40 * Math.sin((y / 3) * Math.PI)) * 2) / 3;
  r += ((160 * Math.sin((y / 12) * Math.PI) + 320 * Math.sin((y * Math.PI) / 30)) * 2) / 3;
  return r;
}
function tLng(x, y) {
  let r = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
  r += ((20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2) / 3;
  r += ((20 * Math.sin(x * Math.PI) + 40 * Math.sin((x / 3) * Math.PI)) * 2) / 3;
  r += ((150 * Math.sin((x / 12) * Math.PI) + 300 * Math.sin((x / 30) * Math.PI)) * 2) / 3;
  return r;
}

// WGS-84 → GCJ-02 (what Chinese map apps expect in their deep links).
export function toGcj02(lat, lng) {
  if (outOfChina(lat, lng)) return [lat, lng];
  let dLat = tLat(lng - 105, lat - 35);
  let dLng = tLng(lng - 105, lat - 35);
  const rad = (lat / 180) * Math.PI;
  let magic = Math.sin(rad);
  magic = 1 - EE * magic * magic;
  const sq = Math.sqrt(magic);
  dLat = (dLat * 180) / (((A * (1 - EE)) / (magic * sq)) * Math.PI);
  dLng = (dLng * 180) / ((A / sq) * Math.cos(rad) * Math.PI);
  return [lat + dLat, lng + dLng];
}

// Deep links that open turn-by-turn navigation to a door (GCJ-02 coordinates).
export function navLinks(lat, lng, name) {
  const [glat, glng] = toGcj02(lat, lng);
  const n = encodeURIComponent(name || "客户");
  const la = glat.toFixed(6);
  const lo = glng.toFixed(6);
  return {
    amap: `https://uri.amap.com/navigation?to=${lo},${la},${n}&mode=car&coordinate=gaode&callnative=1`,
    baidu: `baidumap://map/direction?destination=latlng:${la},${lo}|name:${n}&coord_type=gcj02&mode=driving`,
    tencent: `qqmap://map/routeplan?type=drive&to=${n}&tocoord=${la},${lo}&referer=doorstep`,
  };
}

// ---- the worker socket: fixes with a backlog, resumed after a drop -----------------------

// Sends positions as `fixes` frames, keeps every fix until an ack covers it (in memory and
// localStorage, so a reload keeps the backlog), and after a reconnect drops what the
// `hello`'s resume_seq covers and sends the rest, oldest first (docs/protocol.md).
export class WorkerLink {
  constructor(client, { onFrame, onState }) {
    Object.assign(this, { client, onFrame, onState });
    this.key = `doorstep.worker.backlog.${client.user?.id ?? "x"}`;
    this.backlog = JSON.parse(localStorage.getItem(this.key) || "[]");
    this.lastSeq = Number(localStorage.getItem(`${this.key}.seq`) || 0);
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.ready = false;
    this.inFlight = 0;
    window.addEventListener("online", () => { if (!this.ws && !this.stopped) this.connect(); });
  }

  nextSeq() {
    this.lastSeq = Math.max(this.lastSeq + 1, Date.now()); // never repeats for this worker
    localStorage.setItem(`${this.key}.seq`, String(this.lastSeq));
    return this.lastSeq;
  }

  save() { localStorage.setItem(this.key, JSON.stringify(this.backlog.slice(-2000))); }

  fix(coords, tsMs) {
    const f = {
      seq: this.nextSeq(),
      ts_ms: Math.round(tsMs),
      lat: coords.latitude,
      lng: coords.longitude,
      accuracy_m: Math.max(0, coords.accuracy ?? 10),
    };
    if (Number.isFinite(coords.speed) && coords.speed >= 0) f.speed_mps = coords.speed;
    if (Number.isFinite(coords.heading) && coords.heading >= 0 && coords.heading <= 360) f.heading_deg = coords.heading;
    this.backlog.push(f);
    this.save();
    this.flush();
  }

  flush() {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() < (this.holdUntil || 0)) return; // the server asked us to wait
    const unsent = this.backlog.filter((f) => f.seq > this.sentUpTo);
    for (let i = 0; i < unsent.length; i += 500) {
      const batch = unsent.slice(i, i + 500);
      this.ws.send(JSON.stringify({ type: "fixes", fixes: batch }));
      this.sentUpTo = batch[batch.length - 1].seq;
    }
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(frame)); return true; }
    return false;
  }

  async connect() {
    clearTimeout(this.timer);
    if (this.stopped || this.ws) return;
    const token = await this.client.token();
    if (!token) { this.onState("signed_out"); return; }
    this.onState("connecting");
    const ws = new WebSocket(wsUrl(`/v1/ws/worker?access_token=${encodeURIComponent(token)}`));
    this.ws = ws;
    this.ready = false;
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (msg.type === "hello") {
        this.attempt = 0;
        this.ready = true;
        this.backlog = this.backlog.filter((f) => f.seq > msg.resume_seq); // resume
        this.sentUpTo = 0;
        this.save();
        this.onState("live", msg);
        this.flush();
      } else if (msg.type === "ack") {
        this.backlog = this.backlog.filter((f) => f.seq > msg.seq);
        this.save();
      } else if (msg.type === "error" && msg.code === "unavailable") {
        this.sentUpTo = 0; // resend everything not acked, oldest first
        setTimeout(() => this.flush(), 2000);
      } else if (msg.type === "error" && msg.code === "overloaded") {
        // The server is behind: send nothing until retry_after_ms (plus jitter, so a
        // city of phones does not come back at once), then everything not acked.
        const wait = (msg.retry_after_ms || 2000) * (1 + Math.random() * 0.5);
        this.sentUpTo = 0;
        this.holdUntil = Date.now() + wait;
        clearTimeout(this.holdTimer);
        this.holdTimer = setTimeout(() => this.flush(), wait);
      }
      this.onFrame(msg);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      if (this.stopped || event.code === 4001 || event.code === 4403 || event.code === 4404) {
        this.onState("closed", { code: event.code });
        return;
      }
      const delay = Math.min(30_000, 1000 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
      this.attempt = Math.min(this.attempt + 1, 5);
      this.onState("waiting", { delayMs: delay, code: event.code, backlog: this.backlog.length });
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
  }
}

// ---- small view helpers -----------------------------------------------------------------

export function stars(n) { return "★".repeat(n) + "☆".repeat(5 - n); }

export function toast(text, kind = "ok") {
  let box = document.getElementById("toast");
  if (!box) { box = el("div", { id: "toast" }); document.body.append(box); }
  box.className = kind;
  box.textContent = text;
  box.hidden = false;
  clearTimeout(box._timer);
  box._timer = setTimeout(() => { box.hidden = true; }, 3000);
}

// ---- SOS ------------------------------------------------------------------------------

// The SOS strings, merged into each app's own (Chinese first).
export const SOS_STRINGS = {
  sos: { zh: "紧急求助 SOS", en: "SOS" },
  sos_confirm: { zh: "再按一次，立即通知平台", en: "Tap again to alert the platform" },
  sos_sent: { zh: "已通知平台调度员（警报 #{id}），请保持电话畅通", en: "The dispatchers are alerted (alert #{id}); keep your phone on" },
  sos_again: { zh: "已再次通知调度员（第 {n} 次）", en: "The dispatchers were alerted again ({n} times)" },
  sos_contacts: { zh: "已短信通知 {n} 位紧急联系人", en: "{n} emergency contact(s) told by SMS" },
  contacts_title: { zh: "紧急联系人", en: "Emergency contacts" },
  contacts_hint: { zh: "发起紧急求助时，他们会收到短信和实时位置链接（最多 3 位）", en: "On an SOS they get an SMS with a live location link (up to 3)" },
  contact_name: { zh: "姓名", en: "Name" },
  contact_phone: { zh: "手机号", en: "Mobile" },
  contacts_save: { zh: "保存紧急联系人", en: "Save contacts" },
  contacts_saved: { zh: "已保存", en: "Saved" },
};

// A red SOS button: the first tap arms it for 5 s, the second calls `send()` (which
// resolves to {alert_id, repeat, repeats, contacts_told}). Repeats are never refused.
export function sosButton(t, send) {
  const status = el("div", { id: "sos-status", class: "muted" });
  const button = el("button", { type: "button", id: "sos", class: "btn danger wide sos" }, t("sos"));
  let armedAt = 0;
  button.addEventListener("click", async () => {
    if (Date.now() - armedAt > 5000) {
      armedAt = Date.now();
      button.dataset.armed = "1";
      button.textContent = t("sos_confirm");
      return;
    }
    armedAt = 0;
    button.dataset.armed = "";
    button.textContent = t("sos");
    status.className = "muted";
    try {
      const r = await send();
      status.dataset.alertId = String(r.alert_id);
      status.textContent = (r.repeat ? t("sos_again", { n: r.repeats + 1 }) : t("sos_sent", { id: r.alert_id }))
        + (r.contacts_told ? ` · ${t("sos_contacts", { n: r.contacts_told })}` : "");
    } catch (e) {
      status.className = "form-error";
      status.textContent = e.message || String(e);
    }
  });
  return el("section", { class: "card sos-card", id: "sos-card" }, button, status);
}

// The signed-in person's emergency contacts (GET/PUT /v1/me/emergency-contacts): three
// rows of name and phone; an empty row is left out; errors next to their field.
export function contactsForm(client, t) {
  const form = el("form", { class: "card wide", id: "contacts-form", novalidate: true },
    el("h3", {}, t("contacts_title")), el("p", { class: "muted" }, t("contacts_hint")));
  const rows = [0, 1, 2].map((i) => {
    const name = el("input", { "data-field": `contacts[${i}].name`, placeholder: t("contact_name"), maxlength: 40 });
    const phone = el("input", { "data-field": `contacts[${i}].phone`, placeholder: t("contact_phone"), inputmode: "tel", maxlength: 20 });
    form.append(el("div", { class: "row contact-row" }, name, phone));
    return [name, phone];
  });
  form.append(el("button", { type: "submit" }, t("contacts_save")), el("p", { class: "form-error" }));
  client.get("/v1/me/emergency-contacts").then((list) => {
    list.forEach((c, i) => { if (rows[i]) { rows[i][0].value = c.name; rows[i][1].value = c.phone; } });
  }).catch(() => {});
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const contacts = rows.map(([n, p]) => ({ name: n.value.trim(), phone: p.value.trim() })).filter((c) => c.name || c.phone);
    const saved = await submitting(form, t, () => client.put("/v1/me/emergency-contacts", { contacts }));
    if (saved) toast(t("contacts_saved"));
  });
  return form;
}
