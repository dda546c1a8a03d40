// voxwatch dashboard: plain JS, no build step. The API token lives in sessionStorage (this tab only) and goes in
// the Authorization header of every request, including the live feed (fetch + a small SSE parser instead of
// EventSource, which cannot send headers) and the alert audio (fetched as a blob, played from an object URL).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const KEY = "voxwatch-token";
let token = sessionStorage.getItem(KEY) || "";
let feedAbort = null;
const alertRows = new Map();
let transcribing = true;  // the service transcribes alerted turns (serve --no-transcripts: it does not)
const COLORS = ["#c62828", "#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457", "#4e342e"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

const secs = (s) => (s === null || s === undefined ? "" : `${Number(s).toFixed(1)} s`);
function clock(s) {
  s = Math.max(0, Number(s) || 0);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = (s % 60).toFixed(1).padStart(4, "0");
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${r}`;
}
const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");
const short = (source) => (source || "").split(/[\\/]/).pop() || source;
const names = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token}`, ...(options.headers || {}) };
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) { signOut("Your token was refused."); throw new ApiError(401, "unauthorized"); }
  if (!res.ok) {
    let detail = res.statusText;
    try { const body = await res.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (e) { /* not JSON */ }
    throw new ApiError(res.status, `${res.status}: ${detail}`);
  }
  if (res.status === 204) return null;
  return (res.headers.get("content-type") || "").includes("json") ? res.json() : res.blob();
}

// -- sign in --------------------------------------------------------------------------------------------------

function signOut(message) {
  token = "";
  sessionStorage.removeItem(KEY);
  if (feedAbort) feedAbort.abort();
  $("#login-error").textContent = message || "";
  if (!$("#login").open) $("#login").showModal();
}

async function signIn(candidate) {
  token = candidate.trim();
  try {
    const status = await api("/api/status");
    sessionStorage.setItem(KEY, token);
    $("#who").textContent = `${status.actor.replace(/^token:/, "")} (${status.role})`;
    transcribing = status.transcripts !== null;
    $("#login").close();
    start();
  } catch (e) {
    if (e.status !== 401) $("#login-error").textContent = e.message;
  }
}

// -- live feed --------------------------------------------------------------------------------------------------

function setFeed(on) {
  $("#feed").className = `feed ${on ? "on" : "off"}`;
  $("#feed").textContent = on ? "live" : "offline";
}

async function listen() {
  if (feedAbort) feedAbort.abort();
  const abort = (feedAbort = new AbortController());
  while (token && !abort.signal.aborted) {
    try {
      const res = await fetch("/api/events", { headers: { Authorization: `Bearer ${token}` }, signal: abort.signal });
      if (res.status === 401) { signOut("Your token was refused."); return; }
      if (!res.ok) throw new Error(`feed: ${res.status}`);
      setFeed(true);
      loadAlerts(); // catch up on anything that happened while disconnected
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (e) {
      if (abort.signal.aborted) return;
    }
    setFeed(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function dispatch(block) {
  let kind = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;
  const payload = JSON.parse(data);
  if (kind === "alert") addAlert(payload, true);
  else if (kind === "transcript") showTranscript(payload.alert_id, payload);
  else if (kind === "ack") markAcked(payload.alert_id, payload.acknowledged_at, payload.acknowledged_by);
  else if (kind === "streams") renderStreams(payload);
  else if (kind === "speakers") { loadVoices(); loadAlerts(); }
  else if (kind === "search") onSearchProgress(payload);
}

// -- streams ------------------------------------------------------------------------------------------------------

function renderStreams(streams) {
  const body = $("#streams tbody");
  body.replaceChildren(...streams.map((s) => el("tr", { dataset: { streamId: s.id } },
    el("td", { title: s.source }, short(s.source)),
    el("td", { class: `state-${s.state}` }, s.state + (s.state === "running" && !s.connected ? " (waiting for audio)" : "") + (s.behind ? " (falling behind)" : ""),
      s.error ? el("div", { class: "error" }, s.error) : ""),
    el("td", { class: "num" }, clock(s.audio_s)),
    el("td", { class: "num" }, secs(s.speech_s)),
    el("td", { class: "num" }, secs(s.lag_s)),
    el("td", {}, when(s.last_audio_at)),
    el("td", { class: "num" }, String(s.drops)),
    el("td", {}, s.speakers ? s.speakers.join(", ") : "all"),
    el("td", { class: s.worker ? "" : "muted" }, s.worker || "this process"),
    el("td", {}, el("button", { class: "danger", type: "button", onclick: () => stopStream(s.id) }, s.state === "running" ? "Stop" : "Remove")),
  )));
  if (!streams.length) body.append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "No streams. Add a URL or a file above.")));
}

async function stopStream(id) {
  try { await api(`/api/streams/${id}`, { method: "DELETE" }); renderStreams(await api("/api/streams")); }
  catch (e) { $("#stream-error").textContent = e.message; }
}

async function addStream(event) {
  event.preventDefault();
  $("#stream-error").textContent = "";
  const speakers = names($("#stream-speakers").value);
  try {
    await api("/api/streams", { method: "POST", json: {
      source: $("#stream-source").value.trim(), speakers: speakers.length ? speakers : null,
      reconnects: Number($("#stream-reconnects").value) || 0, realtime: $("#stream-realtime").checked } });
    $("#stream-source").value = "";
    renderStreams(await api("/api/streams"));
  } catch (e) { $("#stream-error").textContent = e.message; }
}

// -- alerts -------------------------------------------------------------------------------------------------------

function alertFilter() {
  const q = new URLSearchParams();
  if ($("#filter-speaker").value.trim()) q.set("speaker", $("#filter-speaker").value.trim());
  if ($("#filter-stream").value.trim()) q.set("stream", $("#filter-stream").value.trim());
  if ($("#filter-since").value) q.set("since", new Date($("#filter-since").value).toISOString());
  if ($("#filter-text").value.trim()) q.set("text", $("#filter-text").value.trim());
  if ($("#filter-language").value.trim()) q.set("language", $("#filter-language").value.trim().toLowerCase());
  return q;
}

async function loadAlerts() {
  const alerts = await api(`/api/alerts?${alertFilter()}`);
  alertRows.clear();
  $("#alerts tbody").replaceChildren();
  for (const a of alerts.reverse()) addAlert(a, false);
}

function matchesFilter(a) {
  const sp = $("#filter-speaker").value.trim(), st = $("#filter-stream").value.trim();
  // a live alert has no transcript yet: with a words or language filter, only a reload finds it
  const byTranscript = $("#filter-text").value.trim() || $("#filter-language").value.trim();
  return (!sp || a.speaker === sp) && (!st || a.source === st || a.stream === st) && (!byTranscript || !!a.transcript);
}

function addAlert(a, live) {
  if (alertRows.has(a.alert_id) || !matchesFilter(a)) return;
  const row = el("tr", { class: live ? "new" : "", dataset: { alertId: a.alert_id } },
    el("td", {}, when(a.wall_time)),
    el("td", { class: "speaker" }, a.speaker),
    el("td", { title: a.source }, short(a.source)),
    el("td", { class: "num" }, clock(a.stream_time_s)),
    el("td", { class: "num" }, secs(a.time_to_alert_s)),
    el("td", { class: "num" }, Number(a.score).toFixed(3)),
    el("td", { class: "num" }, Number(a.llr).toFixed(1)),
    el("td", { class: "audio" }, el("button", { class: "play secondary", type: "button", onclick: (e) => play(a.alert_id, e.target) }, "▶ Play")),
    el("td", { class: "said" }, el("span", { class: "pending" }, transcribing ? "transcribing…" : "")),
    el("td", { class: "ack" }),
  );
  alertRows.set(a.alert_id, row);
  if (a.transcript) showTranscript(a.alert_id, a.transcript);
  $("#alerts tbody").prepend(row);
  if (a.acknowledged_at) markAcked(a.alert_id, a.acknowledged_at, a.acknowledged_by);
  else $(".ack", row).append(el("button", { class: "ack-button", type: "button", onclick: () => acknowledge(a.alert_id) }, "Acknowledge"));
  $("#alert-count").textContent = `(${alertRows.size})`;
}

function showTranscript(id, t) {
  const row = alertRows.get(id);
  if (!row) return;
  const cell = $(".said", row);
  if (t.status !== "done") { cell.replaceChildren(el("span", { class: "pending", title: t.reason }, `no transcript: ${t.reason}`)); return; }
  cell.replaceChildren(
    el("span", { class: "language", title: `language probability ${Number(t.language_probability).toFixed(2)}` }, t.language),
    " ", el("span", { class: "text" }, t.text || "(no words)"));
}

function markAcked(id, at, by) {
  const row = alertRows.get(id);
  if (!row) return;
  row.classList.add("acked");
  $(".ack", row).replaceChildren(el("span", { class: "acked-by" }, `✓ ${when(at)} by ${(by || "").replace(/^token:/, "")}`));
}

async function acknowledge(id) {
  try { const a = await api(`/api/alerts/${id}/ack`, { method: "POST" }); markAcked(id, a.acknowledged_at, a.acknowledged_by); }
  catch (e) { alert(e.message); }
}

async function play(id, button) {
  const cell = button.parentElement;
  button.disabled = true;
  try {
    const blob = await api(`/api/alerts/${id}/audio`);
    const player = el("audio", { controls: true, src: URL.createObjectURL(blob), class: "snippet" });
    player.addEventListener("playing", () => { cell.dataset.played = "1"; });
    cell.replaceChildren(player);
    await player.play().catch(() => { /* no audio device (e.g. headless): the controls remain */ });
  } catch (e) {
    button.disabled = false;
    cell.append(el("div", { class: "error" }, e.status === 404 ? "no audio kept" : e.message));
  }
}

// -- voices -------------------------------------------------------------------------------------------------------

async function loadVoices() {
  const voices = await api("/api/speakers");
  const body = $("#voices tbody");
  body.replaceChildren(...voices.map((v) => el("tr", { dataset: { voice: v.name } },
    el("td", { class: "speaker" }, v.name),
    el("td", { class: "num" }, String(v.enrollments)),
    el("td", { class: "num" }, secs(v.quality.speech_s)),
    el("td", {}, el("span", { class: `grade grade-${v.quality.grade}` }, v.quality.grade)),
    el("td", { class: "num" }, `${v.quality.min_snr_db} dB`),
    el("td", { class: "num" }, Number(v.quality.consistency).toFixed(2)),
    el("td", { class: "muted" }, (v.notes || []).join("; ")),
    el("td", {}, el("button", { class: "danger", type: "button", onclick: () => forget(v.name) }, "Forget")),
  )));
  if (!voices.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No voices enrolled yet.")));
}

async function enroll(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("name", $("#enroll-name").value.trim());
  form.append("note", $("#enroll-note").value.trim());
  for (const f of $("#enroll-files").files) form.append("files", f, f.name);
  $("#enroll-status").className = "";
  $("#enroll-status").textContent = "Enrolling…";
  try {
    const v = await api("/api/speakers", { method: "POST", body: form });
    $("#enroll-status").textContent = `Enrolled ${v.name}: ${v.added.length} recording(s), quality ${v.quality.grade}.`;
    $("#enroll-form").reset();
    loadVoices();
  } catch (e) {
    $("#enroll-status").className = "error";
    $("#enroll-status").textContent = e.message;
  }
}

async function forget(name) {
  if (!confirm(`Forget ${name}? Voiceprints, enrollments, detections, alerts and their audio are deleted.`)) return;
  try { await api(`/api/speakers/${encodeURIComponent(name)}`, { method: "DELETE" }); loadVoices(); loadAlerts(); }
  catch (e) { alert(e.message); }
}

// -- search -------------------------------------------------------------------------------------------------------

let currentJob = null;

async function search(event) {
  event.preventDefault();
  const paths = $("#search-paths").value.split("\n").map((s) => s.trim()).filter(Boolean);
  const speakers = names($("#search-speakers").value);
  try {
    const job = await api("/api/search", { method: "POST", json: { paths, speakers: speakers.length ? speakers : null } });
    currentJob = job.id;
    showJob(job);
    pollJob(job.id);
  } catch (e) { $("#search-status").textContent = e.message; }
}

async function pollJob(id) {
  while (currentJob === id) {
    const job = await api(`/api/search/${id}`);
    showJob(job);
    if (job.status !== "running") { loadJobs(); return; }
    await new Promise((r) => setTimeout(r, 700));
  }
}

function onSearchProgress(p) {
  if (p.id === currentJob) $("#search-status").textContent = `Searching… ${p.done}/${p.total} recordings`;
}

function showJob(job) {
  const status = job.status === "running" ? `Searching… ${job.done}/${job.total} recordings`
    : `${job.status}: ${job.recordings.length} recording(s)` + (job.errors.length ? ` — ${job.errors.join("; ")}` : "");
  $("#search-status").textContent = status;
  renderTimeline(job);
}

function renderTimeline(job) {
  const root = $("#timeline");
  root.replaceChildren();
  const speakers = [...new Set(job.recordings.flatMap((r) => r.detections.map((d) => d.speaker)))].sort();
  const color = (name) => COLORS[speakers.indexOf(name) % COLORS.length];
  for (const rec of job.recordings) {
    const total = Math.max(rec.duration_s, 0.001);
    const pct = (t) => `${(100 * t / total).toFixed(3)}%`;
    const box = el("div", { class: "recording", dataset: { path: rec.path } }, el("h4", {}, `${rec.path} — ${clock(rec.duration_s)}, ${secs(rec.speech_s)} speech`));
    const speech = el("div", { class: "track" });
    for (const [s, e] of rec.segments) speech.append(el("div", { class: "seg speech", style: `left:${pct(s)};width:${pct(e - s)}`, title: `speech ${clock(s)}–${clock(e)}` }));
    box.append(el("div", { class: "lane" }, el("span", { class: "who muted" }, "any speech"), speech));
    for (const name of speakers) {
      const hits = rec.detections.filter((d) => d.speaker === name);
      if (!hits.length) continue;
      const track = el("div", { class: "track" });
      for (const d of hits) {
        track.append(el("div", { class: "seg hit", style: `left:${pct(d.start_s)};width:${pct(Math.max(d.end_s - d.start_s, total / 400))};background:${color(name)}`,
          title: `${name} ${clock(d.start_s)}–${clock(d.end_s)} LLR ${Number(d.llr).toFixed(1)}` }));
      }
      box.append(el("div", { class: "lane" }, el("span", { class: "who speaker", style: `color:${color(name)}` }, name), track));
    }
    const axis = el("div", { class: "axis" });
    for (let i = 0; i <= 4; i++) axis.append(el("span", { style: `left:${i * 25}%` }, clock(total * i / 4)));
    box.append(el("div", { class: "lane" }, el("span"), axis));
    if (!rec.detections.length) box.append(el("p", { class: "muted" }, "No enrolled voice found."));
    root.append(box);
  }
}

async function loadJobs() {
  const jobs = await api("/api/search");
  $("#jobs").replaceChildren(...jobs.map((j) => el("li", { onclick: async () => { currentJob = j.id; showJob(await api(`/api/search/${j.id}`)); } },
    `${when(j.created_at)} — ${j.status}, ${j.total} recording(s) — by ${j.actor.replace(/^token:/, "")}`)));
}

// -- webhooks -----------------------------------------------------------------------------------------------------

async function loadWebhooks() {
  const hooks = await api("/api/webhooks");
  $("#webhooks tbody").replaceChildren(...hooks.map((w) => el("tr", {},
    el("td", {}, w.url),
    el("td", {}, w.speakers ? w.speakers.join(", ") || "(none)" : "all"),
    el("td", {}, w.signed ? "yes" : "no"),
    el("td", { class: "num" }, String(w.deliveries.delivered || 0)),
    el("td", { class: "num" }, String(w.deliveries.pending || 0)),
    el("td", { class: "error" }, w.deliveries.last_error || ""),
    el("td", {}, el("button", { class: "danger", type: "button", onclick: async () => { await api(`/api/webhooks/${w.id}`, { method: "DELETE" }); loadWebhooks(); } }, "Remove")),
  )));
}

async function addWebhook(event) {
  event.preventDefault();
  $("#webhook-error").textContent = "";
  const speakers = names($("#webhook-speakers").value);
  try {
    await api("/api/webhooks", { method: "POST", json: { url: $("#webhook-url").value.trim(), secret: $("#webhook-secret").value || null,
      speakers: speakers.length ? speakers : null } });
    $("#webhook-form").reset();
    loadWebhooks();
  } catch (e) { $("#webhook-error").textContent = e.message; }
}

// -- tabs and start-up ----------------------------------------------------------------------------------------------

function showTab() {
  const tab = (location.hash || "#live").slice(1);
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${tab}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === tab);
  if (!token) return;
  if (tab === "voices") loadVoices();
  if (tab === "search") loadJobs();
  if (tab === "webhooks") loadWebhooks().catch((e) => { $("#webhook-error").textContent = e.message; });
}

function start() {
  showTab();
  api("/api/streams").then(renderStreams).catch(() => {});
  loadVoices().catch(() => {});
  listen();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("#token").value); });
  $("#logout").addEventListener("click", () => signOut(""));
  $("#stream-form").addEventListener("submit", addStream);
  $("#alert-filter").addEventListener("submit", (e) => { e.preventDefault(); loadAlerts(); });
  $("#enroll-form").addEventListener("submit", enroll);
  $("#search-form").addEventListener("submit", search);
  $("#webhook-form").addEventListener("submit", addWebhook);
  window.addEventListener("hashchange", showTab);
  showTab();
  if (token) signIn(token); else $("#login").showModal();
});
