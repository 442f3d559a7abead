// Shared by the live pages: language, tokens, API calls, a reconnecting socket, the basemap.
// Plain ES module, no build step. Everything is loaded from this server (no CDN).

/* global L */

// ---- language -------------------------------------------------------------------------

export function pickLang() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "zh" || asked === "en") {
    localStorage.setItem("doorstep.lang", asked);
    return asked;
  }
  const kept = localStorage.getItem("doorstep.lang");
  return kept === "en" ? "en" : "zh"; // Chinese by default
}

export function makeT(strings, lang) {
  return (key, vars = {}) => {
    const entry = strings[key];
    let text = entry ? (entry[lang] ?? entry.zh) : key;
    for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
    return text;
  };
}

// Fill every element with data-t="key" (text) in the document.
export function translateDom(t, root = document) {
  for (const el of root.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of root.querySelectorAll("[data-t-placeholder]")) el.placeholder = t(el.dataset.tPlaceholder);
}

// ---- DOM ------------------------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- time -----------------------------------------------------------------------------

// The server's clock as seen from here: snapshot times are the server's, the device's
// clock may be off by minutes. offsetMs = server - local.
export const clock = {
  offsetMs: 0,
  now() { return Date.now() + this.offsetMs; },
  sync(serverMs) { if (Number.isFinite(serverMs)) this.offsetMs = serverMs - Date.now(); },
};

// A duration as mm:ss, or h:mm:ss from an hour on (27:51:12, not 1671:12).
export function mmss(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600);
  const m = Math.floor(s / 60) % 60;
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

export function hhmm(ms, timeZone) {
  return new Date(ms).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", timeZone });
}

export function ago(seconds, t) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 5) return t("just_now");
  if (s < 60) return t("ago_s", { n: s });
  if (s < 3600) return t("ago_m", { n: Math.floor(s / 60) });
  return t("ago_h", { n: Math.floor(s / 3600) });
}

// ---- tokens and API -------------------------------------------------------------------

// Tokens live in sessionStorage: they end with the tab, and no other site can read them.
export class Session {
  constructor(name) { this.key = `doorstep.${name}.session`; }
  get() {
    try { return JSON.parse(sessionStorage.getItem(this.key) || "null"); } catch { return null; }
  }
  set(value) { sessionStorage.setItem(this.key, JSON.stringify(value)); }
  clear() { sessionStorage.removeItem(this.key); }

  async login(phone, password) {
    const r = await fetch("/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ phone, password }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new ApiError(r.status, body.error || { code: "http_error", message: r.statusText });
    this.set({
      access: body.access_token,
      refresh: body.refresh_token,
      expires_at_ms: Date.now() + body.expires_in * 1000,
      user: body.user,
    });
    return body.user;
  }

  async refresh() {
    const s = this.get();
    if (!s?.refresh) return false;
    const r = await fetch("/v1/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: s.refresh }),
    });
    if (!r.ok) { this.clear(); return false; }
    const body = await r.json();
    this.set({
      ...s,
      access: body.access_token,
      refresh: body.refresh_token,
      expires_at_ms: Date.now() + body.expires_in * 1000,
    });
    return true;
  }

  // A token good for at least another 30 s (refreshed if needed), or null.
  async access() {
    const s = this.get();
    if (!s) return null;
    if (s.expires_at_ms - Date.now() > 30_000) return s.access;
    return (await this.refresh()) ? this.get().access : null;
  }

  async logout() {
    const s = this.get();
    this.clear();
    if (s) {
      await fetch("/v1/auth/logout", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${s.access}` },
        body: JSON.stringify({ refresh_token: s.refresh }),
      }).catch(() => {});
    }
  }
}

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.field = error.field;
  }
}

// fetch JSON with the session's token; one refresh-and-retry on 401.
export async function api(session, method, path, body) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const token = session ? await session.access() : null;
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && attempt === 0 && session && (await session.refresh())) continue;
    if (r.status === 204) return null;
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new ApiError(r.status, data?.error || { code: "http_error", message: r.statusText });
    return data;
  }
  throw new ApiError(401, { code: "unauthenticated", message: "signed out" });
}

// ---- a socket that comes back ---------------------------------------------------------

// Close codes after which reconnecting cannot help (docs/protocol.md).
const FINAL = new Set([4403, 4404]);

// Reconnects with exponential backoff and jitter (1 s doubling to 30 s), at once when the
// network comes back or the tab becomes visible. `url()` is called for every attempt
// (it may refresh a token); it returns null to give up. Each new connection starts with
// the server's snapshot, so nothing is lost across a drop: the snapshot is the present.
export class LiveSocket {
  constructor({ url, onMessage, onState, onFinal }) {
    Object.assign(this, { url, onMessage, onState, onFinal });
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.lastMessageMs = 0;
    window.addEventListener("online", () => this.soon());
    document.addEventListener("visibilitychange", () => { if (!document.hidden) this.soon(); });
  }

  async connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || this.ws) return;
    const url = await this.url(this.lastClose);
    if (url === null) { this.stop(); return; }
    this.onState("connecting", { attempt: this.attempt });
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (event) => {
      this.lastMessageMs = Date.now();
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (msg.type === "pong") return;
      if (msg.type === "snapshot") { this.attempt = 0; this.onState("live", {}); }
      this.onMessage(msg);
    };
    ws.onopen = () => this.heartbeat(ws);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lastClose = event.code;
      if (FINAL.has(event.code) || this.stopped) {
        this.stopped = true;
        this.onFinal(event.code, event.reason);
        return;
      }
      this.schedule();
    };
  }

  // A connection can die without a close (a phone changing networks): after 15 s without
  // any message the page pings (the server answers {"type": "pong"}, docs/protocol.md),
  // and when 10 s more pass in silence it drops that socket and connects again.
  heartbeat(ws) {
    const tick = () => {
      if (this.ws !== ws) return;
      const quietMs = Date.now() - this.lastMessageMs;
      if (quietMs > 25_000) {
        this.ws = null;
        ws.onclose = null;
        ws.close(4000, "no answer to ping");
        this.lastClose = 4000;
        this.schedule();
        return;
      }
      if (quietMs > 15_000 && ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
      setTimeout(tick, 5_000);
    };
    this.lastMessageMs = Date.now();
    setTimeout(tick, 5_000);
  }

  schedule() {
    const base = Math.min(30_000, 1000 * 2 ** this.attempt);
    const delay = base * (0.8 + Math.random() * 0.4);
    this.attempt = Math.min(this.attempt + 1, 5);
    this.onState("waiting", { delayMs: delay, code: this.lastClose });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  soon() {
    if (!this.stopped && !this.ws && this.timer) { this.attempt = 0; this.connect(); }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
  }
}

export function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

// ---- the basemap ----------------------------------------------------------------------

const ROAD_STYLE = {
  major: { color: "#f5c26b", weight: 5 },
  medium: { color: "#ffffff", weight: 4 },
  minor: { color: "#ffffff", weight: 2.5 },
  path: { color: "#e2ddd3", weight: 1.2 },
};

// A Leaflet map drawn from the server's own GeoJSON: districts, the service area, roads.
// No tiles. Returns {map, ready} where ready resolves when both layers are drawn.
export function basemap(elementId, cityId, options = {}) {
  const map = L.map(elementId, {
    preferCanvas: true,
    zoomControl: options.zoomControl ?? true,
    attributionControl: true,
    minZoom: 11,
    maxZoom: 19,
  });
  map.attributionControl.setPrefix("");
  map.attributionControl.addAttribution("© OpenStreetMap contributors (ODbL)");
  map.createPane("areas").style.zIndex = 200;
  map.createPane("roads").style.zIndex = 250;
  const areas = fetch(`/v1/cities/${encodeURIComponent(cityId)}/map/areas.geojson`)
    .then((r) => (r.ok ? r.json() : { features: [] }))
    .then((data) => {
      L.geoJSON(data, {
        pane: "areas",
        interactive: false,
        style: (f) => f.properties.kind === "service_area"
          ? { color: "#3b82f6", weight: 2, dashArray: "6 4", fillColor: "#3b82f6", fillOpacity: 0.04 }
          : { color: "#a89f8c", weight: 1.5, dashArray: "8 3 2 3", fill: false }, // district borders
      }).addTo(map);
      return data;
    });
  const roads = fetch(`/v1/cities/${encodeURIComponent(cityId)}/map/roads.geojson`)
    .then((r) => (r.ok ? r.json() : { features: [] }))
    .then((data) => {
      const layer = L.geoJSON(data, {
        pane: "roads",
        interactive: false,
        style: (f) => ({ ...(ROAD_STYLE[f.properties.class] || ROAD_STYLE.minor), opacity: 1, lineCap: "round" }),
      }).addTo(map);
      const scale = () => {
        const k = Math.max(0.4, Math.min(2.2, 2 ** ((map.getZoom() - 15) / 2)));
        layer.setStyle((f) => {
          const s = ROAD_STYLE[f.properties.class] || ROAD_STYLE.minor;
          return { weight: s.weight * k };
        });
      };
      map.on("zoomend", scale);
      scale();
      return data;
    });
  return { map, ready: Promise.all([areas, roads]) };
}
