// An emergency contact's live page: /sos/{alert_id}?t=<token> (the SMS's link).
// Polls GET /v1/safety/alerts/{id}/live every 3 s: the person's last position and trail.

/* global L */
import { ago, basemap, makeT, pickLang, translateDom } from "/static/common.js";

const STR = {
  loading: { zh: "正在加载…", en: "Loading…" },
  title: { zh: "紧急求助", en: "Emergency (SOS)" },
  who: { zh: "{name} 发起了紧急求助", en: "{name} raised an SOS" },
  open: { zh: "平台调度员正在处理", en: "The platform's dispatchers are on it" },
  acknowledged: { zh: "调度员已确认，正在处理", en: "A dispatcher acknowledged it and is handling it" },
  closed: { zh: "此求助已处理完毕", en: "This SOS has been handled" },
  fresh: { zh: "位置更新于 {ago}", en: "Position from {ago}" },
  no_position: { zh: "暂无位置", en: "No position yet" },
  advice: { zh: "请尽快电话联系本人；如遇危险请拨打 110。", en: "Call them now; in danger, call 110." },
  just_now: { zh: "刚刚", en: "just now" },
  ago_s: { zh: "{n} 秒前", en: "{n} s ago" },
  ago_m: { zh: "{n} 分钟前", en: "{n} min ago" },
  ago_h: { zh: "{n} 小时前", en: "{n} h ago" },
  final_401: { zh: "此链接已失效。", en: "This link is no longer valid." },
  worker: { zh: "上门师傅", en: "The worker" },
};

const lang = pickLang();
const t = makeT(STR, lang);
document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
translateDom(t);
document.getElementById("lang").textContent = lang === "en" ? "中文" : "EN";
document.getElementById("lang").addEventListener("click", () => {
  const url = new URL(location.href);
  url.searchParams.set("lang", lang === "en" ? "zh" : "en");
  location.replace(url);
});

const alertId = location.pathname.split("/").pop();
const token = new URLSearchParams(location.search).get("t") || "";
let map = null;
let marker = null;
let line = null;
let workerMarker = null;

async function poll() {
  const r = await fetch(`/v1/safety/alerts/${alertId}/live?t=${encodeURIComponent(token)}`);
  if (r.status === 401 || r.status === 404) {
    document.getElementById("final-text").textContent = t("final_401");
    document.getElementById("final").hidden = false;
    return false;
  }
  if (!r.ok) return true;
  const v = await r.json();
  document.getElementById("sos-title").textContent = t("title");
  document.getElementById("sos-who").textContent = t("who", { name: v.name });
  document.getElementById("sos-state").textContent = !v.open ? t("closed") : v.acknowledged ? t("acknowledged") : t("open");
  document.body.dataset.state = v.open ? (v.acknowledged ? "acknowledged" : "open") : "closed";
  if (!map) map = basemap("map", v.city_id, { zoomControl: true }).map;
  const p = v.position;
  if (p) {
    const at = [p.lat, p.lng];
    if (!marker) {
      marker = L.circleMarker(at, { radius: 10, color: "#dc2626", fillColor: "#ef4444", fillOpacity: 0.9 }).addTo(map);
      map.setView(at, 16);
    } else marker.setLatLng(at);
    const seconds = p.ts_ms ? Math.max(0, (Date.now() - p.ts_ms) / 1000) : null;
    document.getElementById("sos-fresh").textContent = seconds === null ? "" : t("fresh", { ago: ago(seconds, t) });
  } else {
    document.getElementById("sos-fresh").textContent = t("no_position");
  }
  const pts = (v.trail || []).map(([lat, lng]) => [lat, lng]);
  if (pts.length > 1) {
    if (!line) line = L.polyline(pts, { color: "#dc2626", weight: 3, opacity: 0.7 }).addTo(map);
    else line.setLatLngs(pts);
  }
  if (v.worker_position) {
    const w = [v.worker_position.lat, v.worker_position.lng];
    if (!workerMarker) workerMarker = L.circleMarker(w, { radius: 7, color: "#2563eb" }).bindTooltip(t("worker")).addTo(map);
    else workerMarker.setLatLng(w);
  }
  if (!map.getCenter && !p) map.setView([22.54, 114.05], 13);
  return v.open;
}

async function loop() {
  let again = true;
  try {
    again = await poll();
  } catch {
    again = true; // a network hiccup: try again
  }
  if (again) setTimeout(loop, 3000);
}
loop();
