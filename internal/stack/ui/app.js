// The fulcrum dashboard: fetches /api/state every second and redraws.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const history = {}; // requests/s per web server, the last 60 samples

function el(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function box(svg, x, y, w, name, cls, state, detail) {
  const g = el("g", { class: "box " + cls, id: "n-" + name, "data-name": name, "data-state": state, transform: `translate(${x - w / 2},${y - 30})` });
  g.append(el("rect", { width: w, height: 60 }));
  g.append(el("text", { x: w / 2, y: 20, class: "name" }, name));
  g.append(el("text", { x: w / 2, y: 37, class: "state" }, state));
  if (detail) g.append(el("text", { x: w / 2, y: 53, class: "state detail" }, detail));
  svg.append(g);
  return { x, y, w };
}

function line(svg, a, b, cls) {
  svg.append(el("line", { x1: a.x + a.w / 2, y1: a.y, x2: b.x - b.w / 2, y2: b.y, class: "link " + cls }));
}

function spread(n, top, bottom) {
  if (n === 1) return [(top + bottom) / 2];
  const out = [];
  for (let i = 0; i < n; i++) out.push(top + (bottom - top) * i / (n - 1));
  return out;
}

function lbClass(l) { return !l.running ? "down" : l.active ? "active" : "up"; }
function lbState(l) { return !l.running ? "DEAD" : l.active ? "ACTIVE (VRRP master)" : "standby"; }
function webClass(w) { return !w.running ? "down" : w.healthy ? "up" : "warn"; }
function webState(w) { return !w.running ? "DEAD" : w.healthy ? "UP" : "UNHEALTHY"; }
function nodeClass(n) {
  if (!n.running) return "down";
  if (!n.reachable) return "warn";
  if (n.role === "primary") return "active";
  if (n.role === "replica") return n.error ? "warn" : "up";
  return "warn";
}
function nodeState(n) {
  if (!n.running) return "DEAD";
  if (!n.reachable) return "unreachable";
  if (n.role === "primary") return "PRIMARY";
  if (n.role === "replica") return "replica";
  return n.read_only ? "read-only (rejoining)" : "writable?";
}
function lagText(n) {
  if (n.role !== "replica") return n.role === "primary" ? "writes here" : "";
  return n.lag_seconds >= 0 ? `lag ${n.lag_seconds}s, ${n.gtid_behind} behind` : "lag unknown";
}

function drawTopology(st) {
  const svg = document.getElementById("topology");
  const dbCount = st.db.length;
  const height = Math.max(420, 90 * dbCount + 150);
  svg.setAttribute("viewBox", `0 0 1000 ${height}`);
  svg.replaceChildren();
  const mid = (height - 70) / 2 + 20;
  [["client", 70], ["front (VIP)", 235], ["load balancers", 430], ["web / app", 640], ["MariaDB", 870]].forEach(([t, x]) =>
    svg.append(el("text", { x, y: 16, class: "col" }, t)));
  const client = box(svg, 70, mid, 110, "client", "plain", "browser", "");
  const vip = box(svg, 235, mid, 150, st.front, st.front_up ? "up" : "down", st.front_up ? "site UP" : "site DOWN",
    st.front_up ? "answered by " + st.front_served_by : "");
  line(svg, client, vip, st.front_up ? "live" : "dead");
  const lbY = spread(st.lbs.length, mid - 80, mid + 80);
  const lbs = st.lbs.map((l, i) => {
    const b = box(svg, 430, lbY[i], 170, l.name, lbClass(l), lbState(l), `priority ${l.priority}`);
    line(svg, vip, b, l.active ? "live" : l.running ? "" : "dead");
    return b;
  });
  const webY = spread(st.webs.length, 60, height - 110);
  const webs = st.webs.map((w, i) => {
    const b = box(svg, 640, webY[i], 170, w.name, webClass(w), webState(w), `${w.rps.toFixed(1)} req/s`);
    st.lbs.forEach((l, j) => {
      // The load balancer's own view of the server when its admin API
      // answers, else the server's own health.
      const seen = l.admin_up ? (l.servers || []).find(s => s.backend === "web" && s.name === w.name) : null;
      const usable = seen ? seen.state === "UP" : w.running && w.healthy;
      line(svg, lbs[j], b, !l.running || !w.running ? "dead" : l.active && usable ? "live" : "");
    });
    return b;
  });
  const dbY = spread(dbCount, 60, height - 130);
  const nodes = st.db.map((n, i) => box(svg, 870, dbY[i], 190, n.name, nodeClass(n), nodeState(n), lagText(n)));
  st.webs.forEach((w, i) => st.db.forEach((n, j) => {
    if (n.role === "primary" || n.role === "replica") line(svg, webs[i], nodes[j], n.role === "primary" && w.running ? "live" : "");
  }));
  const m = st.manager;
  box(svg, 870, height - 45, 190, "manager", !m.running ? "down" : m.reachable ? "up" : "warn",
    !m.running ? "DEAD" : m.reachable ? "watching" : "not answering", `failovers: ${m.failovers}`);
}

function drawRates(st) {
  const div = document.getElementById("rates");
  const max = Math.max(1, ...st.webs.map(w => w.rps));
  div.replaceChildren();
  for (const w of st.webs) {
    const hist = (history[w.name] = history[w.name] || []);
    hist.push(w.rps);
    if (hist.length > 60) hist.shift();
    const bar = h("div", { class: "bar" }, h("span", { style: `width:${(100 * w.rps / max).toFixed(1)}%` }));
    div.append(h("div", { class: "rate", id: "rate-" + w.name }, h("strong", {}, w.name), bar, `${w.rps.toFixed(1)} req/s`));
    const hmax = Math.max(1, ...hist);
    // Newest sample on the right, one slot per second.
    const pts = hist.map((v, i) => `${(300 - (hist.length - 1 - i) * 300 / 59).toFixed(1)},${(26 - 24 * v / hmax).toFixed(1)}`).join(" ");
    const sp = el("svg", { class: "spark", viewBox: "0 0 300 28", preserveAspectRatio: "none" });
    sp.append(el("polyline", { points: pts, fill: "none", stroke: "#1f6feb", "stroke-width": 1.5 }));
    div.append(sp);
  }
  const lb = st.lbs.find(l => l.active && l.admin_up);
  if (lb) {
    const parts = lb.servers.filter(s => s.backend === "web").map(s => `${s.name} ${s.state} ${s.rate.toFixed(1)}/s`);
    div.append(h("p", { class: "muted" }, `${lb.name} sees: ${parts.join(", ")}`));
  } else {
    div.append(h("p", { class: "muted" }, "rates from the web servers' own counters (health checks included)"));
  }
}

function links(ls) { return h("span", {}, ...ls.map(l => h("a", { href: l.url, target: "_blank" }, l.label))); }

async function chaos(action, name) {
  try {
    const r = await fetch(`/api/chaos/${action}?name=${encodeURIComponent(name)}`, { method: "POST" });
    const j = await r.json();
    document.getElementById("summary").textContent = j.message;
  } catch (e) { document.getElementById("summary").textContent = String(e); }
  refresh();
}

function chaosButtons(name, running) {
  return running ? h("button", { onclick: () => chaos("kill", name) }, "kill -9")
                 : h("button", { onclick: () => chaos("restore", name) }, "restore");
}

function badge(cls, text) { return h("span", { class: "badge b-" + cls }, text); }

function drawTables(st) {
  const db = document.querySelector("#db tbody");
  db.replaceChildren(...st.db.map(n => h("tr", {},
    h("td", {}, n.name), h("td", {}, n.addr), h("td", {}, badge(nodeClass(n), nodeState(n))),
    h("td", {}, n.lag_seconds >= 0 ? n.lag_seconds + "s" : "-"), h("td", {}, n.role === "replica" ? String(n.gtid_behind) : "-"),
    h("td", {}, n.error || (n.running ? "ok" : "mariadbd not running")))));
  const m = st.manager;
  document.getElementById("dbinfo").textContent = `primary: ${st.primary || "unknown"} · failovers: ${m.failovers}` +
    (m.last_failover_seconds ? ` (last took ${m.last_failover_seconds.toFixed(3)} s)` : "") +
    ` · LB database ports: writes ${st.db_writes}, reads ${st.db_reads}`;
  const rows = [];
  for (const l of st.lbs) rows.push([l.name, badge(lbClass(l), lbState(l).split(" ")[0]), l.pid, links(l.links), chaosButtons(l.name, l.running)]);
  for (const w of st.webs) rows.push([w.name, badge(webClass(w), webState(w)), w.pid, links(w.links), chaosButtons(w.name, w.running)]);
  rows.push(["manager", badge(m.running ? (m.reachable ? "up" : "warn") : "down", m.running ? "UP" : "DEAD"), m.pid, links(m.links), chaosButtons("manager", m.running)]);
  for (const n of st.db) rows.push([n.name, badge(nodeClass(n), nodeState(n)), "", "", chaosButtons(n.name, n.running)]);
  document.querySelector("#components tbody").replaceChildren(...rows.map(r => h("tr", {}, ...r.map(c => h("td", {}, c || "")))));
  const ev = document.getElementById("events");
  ev.replaceChildren(...st.events.slice().reverse().map(e => h("li", {},
    h("time", {}, new Date(e.time).toLocaleTimeString()), h("span", { class: "kind k-" + e.kind }, e.kind), " " + e.message)));
}

async function refresh() {
  let st;
  try {
    const r = await fetch("/api/state", { cache: "no-store" });
    st = await r.json();
  } catch (e) {
    document.getElementById("summary").textContent = "the stack does not answer (stopped?)";
    return;
  }
  const up = st.front_up ? "site UP" : "site DOWN";
  document.getElementById("summary").textContent =
    `${up} on http://${st.front} · active LB: ${st.active_lb || "none"} · primary: ${st.primary || "unknown"} · ${new Date(st.time).toLocaleTimeString()}`;
  drawTopology(st);
  drawRates(st);
  drawTables(st);
  document.body.dataset.ready = "1";
}

refresh();
setInterval(refresh, 1000);
