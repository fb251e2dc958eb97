// fulcrum stats page: fetches /api/status every second and redraws the
// tables in place. No dependencies; every value goes in as text.
"use strict";

const tokenKey = "fulcrum-admin-token";
let timer = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

function td(content, cls) { return el("td", cls ? { class: cls } : {}, content); }

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
}

function num(n) { return n.toLocaleString("en-US"); }

function rate(r) { return r >= 100 ? Math.round(r).toString() : (Math.round(r * 10) / 10).toString(); }

function since(t, now) {
  if (!t || t.startsWith("0001-")) return "—";
  let s = Math.max(0, Math.floor((Date.parse(now) - Date.parse(t)) / 1000));
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  s %= 60;
  if (d) return d + "d" + h + "h";
  if (h) return h + "h" + m + "m";
  if (m) return m + "m" + s + "s";
  return s + "s";
}

const svgNS = "http://www.w3.org/2000/svg";

function spark(hist, size) {
  const w = 80, h = 20, n = size || 60;
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  if (!hist || hist.length === 0) return svg;
  const max = Math.max(1, ...hist);
  const step = w / (n - 1);
  const x0 = w - (hist.length - 1) * step;
  const pts = hist.map((v, i) => `${(x0 + i * step).toFixed(1)},${(h - 1 - v / max * (h - 3)).toFixed(1)}`);
  const area = document.createElementNS(svgNS, "polygon");
  area.setAttribute("points", `${x0.toFixed(1)},${h} ${pts.join(" ")} ${w},${h}`);
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(area, line);
  return svg;
}

function share(f) {
  const pct = Math.round(f * 1000) / 10;
  const fill = el("span", {});
  fill.style.width = (f * 100).toFixed(1) + "%";
  return el("span", {}, el("span", { class: "share", title: pct + "% of the backend's recent requests" }, fill), pct + "%");
}

function checkCell(c, now) {
  if (!c) return td("no check", "l dim");
  if (!c.enabled) return td("checks off", "l chk off");
  const ms = (c.last_duration_ns / 1e6).toFixed(1) + " ms";
  const cell = td("", "l chk " + (c.last_ok ? "ok" : "bad"));
  cell.append(c.status || (c.last_ok ? "OK" : "failed"));
  cell.append(el("span", { class: "dim" }, " " + ms + ", " + since(c.last_at, now) + " ago"));
  cell.title = (c.last_error || "") + ` checks ${c.checks}, failed ${c.failures}, down ${c.down_transitions}`;
  return cell;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const t = sessionStorage.getItem(tokenKey);
  if (t) h.Authorization = "Bearer " + t;
  return h;
}

async function act(backend, server, state) {
  const r = await fetch(`/api/servers/${encodeURIComponent(backend)}/${encodeURIComponent(server)}/state`,
    { method: "POST", headers: headers(), body: JSON.stringify({ state }) });
  if (!r.ok) showError((await r.json().catch(() => ({}))).error || r.statusText);
  refresh();
}

function actions(b, s) {
  const cell = td("", "");
  for (const st of ["ready", "drain", "maint"]) {
    const btn = el("button", { class: "act", type: "button", textContent: st, title: `set ${b}/${s.name} ${st}` });
    btn.disabled = st === s.admin;
    btn.addEventListener("click", () => act(b, s.name, st));
    cell.append(btn);
  }
  return cell;
}

function classes(c) { return c.status_classes.slice(1).map((n) => td(num(n))); }

function renderFrontends(st) {
  const body = document.querySelector("#frontends tbody");
  body.replaceChildren(...st.frontends.map((f) => el("tr", { class: "frontend", "data-frontend": f.name },
    td(f.name), td(f.mode, "l"), td((f.bind || []).join(" "), "l"), td(num(f.current_connections)),
    td(num(f.counters.requests)), rateCell(f.rate_history, f.rate),
    td(bytes(f.counters.bytes_in)), td(bytes(f.counters.bytes_out)), td(num(f.counters.req_errors)),
    ...classes(f.counters))));
}

function rateCell(hist, r) {
  return td(el("span", {}, spark(hist), el("span", { class: "num" }, rate(r))));
}

function pair(a, b) { return td(el("span", {}, a, el("span", { class: "dim" }, " / "), b)); }

function totalCell(c) {
  const cell = td(num(c.requests));
  const h = c.status_classes;
  cell.title = `1xx ${h[1]}, 2xx ${h[2]}, 3xx ${h[3]}, 4xx ${h[4]}, 5xx ${h[5]}, other ${h[0]}`;
  return cell;
}

const serverColumns = ["Server", "State", "Weight", "Sessions", "Total", "Rate /s", "Share",
  "Bytes in / out", "Errors conn/resp", "Retry/redisp", "Check", "Changed", ""];

function renderBackend(b, now) {
  const head = el("tr", {}, ...serverColumns.map((t) => el("th", t === "Check" ? { class: "l" } : {}, t)));
  const rows = b.servers.map((s) => el("tr", { class: "server " + s.state, "data-backend": b.name, "data-server": s.name, "data-state": s.state },
    td(el("span", {}, s.name, el("span", { class: "addr" }, s.address))),
    td(el("i", { class: "st " + s.state }, s.state)),
    td(s.weight === s.config_weight ? String(s.weight) : `${s.weight} (${s.config_weight})`),
    td(num(s.current_sessions)), totalCell(s.counters),
    rateCell(s.rate_history, s.rate), td(share(s.share)),
    pair(bytes(s.counters.bytes_in), bytes(s.counters.bytes_out)),
    pair(num(s.counters.conn_errors), num(s.counters.resp_errors)),
    pair(num(s.counters.retries), num(s.counters.redispatches)),
    checkCell(s.check, now), td(since(s.last_change, now)), actions(b.name, s)));
  const c = b.counters;
  const total = el("tr", { class: "total" }, td("backend"), td(`${b.servers_up}/${b.servers.length} up`), td(""),
    td(num(b.current_sessions)), totalCell(c), rateCell(b.rate_history, b.rate), td(""),
    pair(bytes(c.bytes_in), bytes(c.bytes_out)), pair(num(c.conn_errors), num(c.resp_errors)),
    pair(num(c.retries), num(c.redispatches)), td(""), td(""), td(""));
  return el("div", { class: "backend", "data-backend": b.name },
    el("h2", {}, b.name, el("span", { class: "sub" }, `${b.mode} · ${b.balance} · ${b.servers_up} of ${b.servers.length} servers up · ${rate(b.rate)} req/s`)),
    el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, ...rows, total)));
}

function showError(msg) {
  const e = document.getElementById("error");
  e.textContent = msg;
  e.hidden = !msg;
}

async function refresh() {
  let r;
  try {
    r = await fetch("/api/status", { headers: headers(), cache: "no-store" });
  } catch (e) {
    showError("cannot reach the load balancer: " + e.message);
    return;
  }
  if (r.status === 401) {
    document.getElementById("login").hidden = false;
    showError("");
    return;
  }
  if (!r.ok) {
    showError((await r.json().catch(() => ({}))).error || r.statusText);
    return;
  }
  const st = await r.json();
  showError("");
  document.getElementById("login").hidden = true;
  renderFrontends(st);
  document.getElementById("backends").replaceChildren(...st.backends.map((b) => renderBackend(b, st.time)));
  document.getElementById("updated").textContent = "updated " + new Date(st.time).toLocaleTimeString();
  document.body.dataset.loaded = "1";
}

function schedule() {
  clearInterval(timer);
  if (document.getElementById("live").checked) timer = setInterval(refresh, 1000);
}

document.getElementById("live").addEventListener("change", schedule);
document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(tokenKey, document.getElementById("token").value.trim());
  refresh();
});
refresh();
schedule();
