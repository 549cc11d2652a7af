// Siaga112 demo console: three Telegram-like panes over the demo's JSON API (/api/...).
// Plain JS, no framework, no network beyond this page's own server. Every text from the
// bot or a person is put in the page as text (entities become elements), never as HTML.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const state = { etag: null, data: null, thread: null, picking: false, map: null, pin: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

async function api(path, body) {
  const options = body instanceof FormData
    ? { method: "POST", body }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) };
  try {
    const response = await fetch(path, options);
    const answer = await response.json();
    if (!answer.ok) showError(answer.error || "that did not work");
    poll(true);
    return answer;
  } catch (failure) {
    showError("the demo server does not answer: is `siaga112 demo` still running?");
    return { ok: false };
  }
}

// -- Telegram text with entities (UTF-16 offsets, like JS strings) ----------------------------
function wrapFor(entity) {
  switch (entity.type) {
    case "bold": return el("b");
    case "italic": return el("i");
    case "underline": return el("u");
    case "strikethrough": return el("s");
    case "code": return el("code");
    case "pre": return el("pre");
    case "blockquote": case "expandable_blockquote": return el("blockquote");
    case "spoiler": return el("span", { class: "spoiler" });
    case "text_link": {
      const url = String(entity.url || "");
      if (/^(https?:|tg:)/i.test(url)) return el("a", { href: url, target: "_blank", rel: "noopener noreferrer" });
      return el("span");
    }
    default: return null;
  }
}

function renderText(text, entities) {
  const fragment = document.createDocumentFragment();
  const cuts = new Set([0, text.length]);
  for (const e of entities) { cuts.add(e.offset); cuts.add(e.offset + e.length); }
  const points = [...cuts].filter((n) => n >= 0 && n <= text.length).sort((a, b) => a - b);
  for (let i = 0; i < points.length - 1; i += 1) {
    const start = points[i];
    const end = points[i + 1];
    let node = document.createTextNode(text.slice(start, end));
    for (const e of entities) {
      if (e.offset <= start && e.offset + e.length >= end) {
        const wrapper = wrapFor(e);
        if (wrapper) { wrapper.append(node); node = wrapper; }
      }
    }
    fragment.append(node);
  }
  return fragment;
}

// -- messages -----------------------------------------------------------------------------------
function clock(date) {
  if (!date) return "";
  return new Date(date * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function messageNode(message, pane, mineIds) {
  const mine = !message.bot && mineIds.includes(message.sender);
  const note = !message.bot && message.text.startsWith("!");
  const node = el("div", { class: `msg${mine ? " mine" : ""}${note ? " note" : ""}`, "data-id": String(message.id) });
  if (!mine || pane !== "citizen") node.append(el("div", { class: "who" }, message.bot ? "Siaga112 bot" : message.from));
  if (message.kind === "photo" && message.file) {
    node.append(el("img", { src: `/api/file/${encodeURIComponent(message.file)}`, alt: "photo" }));
  } else if (message.file && message.kind !== "photo") {
    node.append(el("div", {}, `📎 ${message.kind}`));
  }
  if (message.location) {
    const { lat, lon } = message.location;
    const title = message.venue ? `${message.venue.title || ""} — ${message.venue.address || ""}` : "";
    const place = el("div", { class: "place", title: "show on the map" }, `📍 ${title || `${lat.toFixed(5)}, ${lon.toFixed(5)}`}`);
    place.addEventListener("click", () => showPin(lat, lon));
    node.append(place);
  }
  if (message.contact) node.append(el("div", {}, `📞 ${message.contact}`));
  if (message.text) node.append(el("div", { class: "text" }, renderText(message.text, message.entities || [])));
  if (message.buttons && message.buttons.length) {
    const box = el("div", { class: "buttons" });
    for (const row of message.buttons) {
      const line = el("div", { class: "row" });
      for (const button of row) {
        const key = el("button", { type: "button", "data-data": button.data || "" }, button.text);
        if (button.url) key.addEventListener("click", () => window.open(button.url, "_blank", "noopener"));
        else key.addEventListener("click", () => press(pane, message.id, button.data));
        line.append(key);
      }
      box.append(line);
    }
    node.append(box);
  }
  const flags = `${message.pinned ? "📌 " : ""}${message.edited ? "edited " : ""}`;
  node.append(el("div", { class: "meta" }, `${flags}${clock(message.date)}`));
  return node;
}

function fill(container, nodes) {
  const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
  container.replaceChildren(...nodes);
  if (atBottom || !fill.seen.has(container)) container.scrollTop = container.scrollHeight;
  fill.seen.add(container);
}
fill.seen = new Set();

function press(pane, messageId, data) {
  const body = { message_id: messageId, data };
  if (pane === "operators") body.operator = Number($("operator-person").value);
  return api(`/api/${pane === "operators" ? "operator" : pane}/press`, body);
}

// -- panes ----------------------------------------------------------------------------------------
function renderCitizen(citizen) {
  $("citizen-name").textContent = citizen.name;
  if (document.activeElement !== $("citizen-language")) $("citizen-language").value = citizen.language;
  fill($("citizen-messages"), citizen.messages.map((m) => messageNode(m, "citizen", [citizen.id])));
  const keyboard = $("citizen-keyboard");
  keyboard.replaceChildren();
  for (const row of (citizen.keyboard && citizen.keyboard.keyboard) || []) {
    const line = el("div", { class: "row" });
    for (const raw of row) {
      const key = typeof raw === "string" ? { text: raw } : raw;
      const button = el("button", { type: "button" }, key.text);
      button.addEventListener("click", () => {
        if (key.request_contact) api("/api/citizen/contact");
        else if (key.request_location) startPicking();
        else api("/api/citizen/press", { text: key.text });
      });
      line.append(button);
    }
    keyboard.append(line);
  }
}

function topicName(topics, thread) {
  const topic = topics.find((t) => t.thread === thread);
  return topic ? topic.name : "General";
}

function renderOperators(operators) {
  $("operators-title").textContent = operators.title;
  const people = $("operator-person");
  if (!people.options.length) {
    for (const person of operators.people) people.append(el("option", { value: String(person.id) }, person.name));
  }
  const nav = $("operators-topics");
  const general = el("a", { class: state.thread === null ? "active" : "", "data-thread": "" }, "# General");
  general.addEventListener("click", () => selectThread(null));
  const links = [general];
  for (const topic of [...operators.topics].reverse()) {
    const link = el("a", {
      class: `${state.thread === topic.thread ? "active" : ""}${topic.closed ? " closed" : ""}`,
      "data-thread": String(topic.thread),
    }, el("span", { class: "swatch" }), topic.name);
    link.querySelector(".swatch").style.background = `#${topic.color.toString(16).padStart(6, "0")}`;
    link.addEventListener("click", () => selectThread(topic.thread));
    links.push(link);
  }
  nav.replaceChildren(...links);
  const pinned = operators.messages.filter((m) => m.pinned && m.thread === null).pop();
  const bar = $("operators-pinned");
  bar.hidden = !pinned;
  if (pinned) bar.replaceChildren(el("b", {}, "📌 "), renderText(pinned.text, pinned.entities || []));
  const ids = operators.people.map((p) => p.id);
  const shown = operators.messages.filter((m) => m.thread === state.thread);
  fill($("operators-messages"), shown.map((m) => messageNode(m, "operators", ids)));
  $("operators-input").placeholder = state.thread === null
    ? "General: /queue, /timeline …"
    : `Reply in ${topicName(operators.topics, state.thread)} (note: operators only)`;
}

function selectThread(thread) {
  state.thread = thread;
  fill.seen.delete($("operators-messages"));
  if (state.data) renderOperators(state.data.operators);
}

function renderAgency(agency) {
  $("agency-title").textContent = agency.title;
  const ids = agency.people.map((p) => p.id);
  fill($("agency-messages"), agency.messages.map((m) => messageNode(m, "agency", ids)));
}

function renderTickets(tickets) {
  const list = $("tickets");
  list.replaceChildren(...tickets.map((t) => {
    const item = el("li", {}, el("span", { class: `dot p${Math.min(t.priority, 3)}` }), ` ${t.ref} · ${t.category || "?"} · ${t.kecamatan || "—"} · ${t.status}${t.claimed_by ? ` · ${t.claimed_by}` : ""}`);
    item.addEventListener("click", () => { if (t.thread) selectThread(t.thread); });
    return item;
  }));
  drawTickets(tickets);
}

function toast(pane, text) {
  const box = $(`${pane}-toast`);
  if (!box) return;
  box.textContent = text;
  box.hidden = false;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.hidden = true; }, 3500);
}

function renderScenario(progress) {
  const label = $("scenario-progress");
  if (!progress || !progress.name) { label.textContent = ""; return; }
  const failed = progress.failed ? `, ${progress.failed} stuck` : "";
  label.textContent = `scenario ${progress.name}: ${progress.sent || 0}/${progress.total || "…"} reports sent${failed}${progress.running ? "" : " (finished)"}`;
}

function render(data) {
  if (state.data && state.data.generation !== data.generation) { state.thread = null; state.pin = null; }
  state.data = data;
  renderCitizen(data.citizen);
  renderOperators(data.operators);
  renderAgency(data.agency);
  renderTickets(data.tickets);
  renderScenario(data.scenario);
  for (const t of data.toasts || []) toast(t.pane, t.text);
}

async function poll(now) {
  if (now) { clearTimeout(poll.timer); }
  try {
    const query = state.etag ? `?since=${encodeURIComponent(state.etag)}` : "";
    const response = await fetch(`/api/state${query}`);
    const data = await response.json();
    if (data.ok && !data.unchanged) { state.etag = data.etag; render(data); }
  } catch (failure) {
    // the server restarts (reset) or has stopped: try again
  }
  clearTimeout(poll.timer);
  poll.timer = setTimeout(() => poll(false), 700);
}

// -- the map ----------------------------------------------------------------------------------------
function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function project(lon, lat) {
  const p = state.map.projection;
  return [p.margin + (lon - p.west) * p.scale * p.aspect, p.margin + (p.north - lat) * p.scale];
}

function unproject(x, y) {
  const p = state.map.projection;
  return [p.west + (x - p.margin) / (p.scale * p.aspect), p.north - (y - p.margin) / p.scale];
}

async function loadMap() {
  state.map = await (await fetch("/api/map")).json();
  const root = svg("svg", { viewBox: `0 0 ${state.map.width} ${state.map.height}`, id: "citymap", preserveAspectRatio: "xMidYMid meet" });
  const areas = svg("g", { id: "areas" });
  const labels = svg("g");
  // Kelurahan filled by their kecamatan (the kecamatan polygons are coarser: not drawn).
  const palette = ["#f3e9c6", "#dfeccb", "#f6dccb", "#d8e6f0", "#eadcf0", "#f0e0d8", "#d9efe6", "#efe9d8"];
  for (const area of state.map.areas) {
    if (area.level === "kelurahan") {
      const kecamatan = Number(area.code.split(".")[2]);
      const path = svg("path", { d: area.d, class: "kel", "data-code": area.code, fill: palette[kecamatan % palette.length] });
      const title = svg("title");
      title.textContent = area.name;
      path.append(title);
      areas.append(path);
    } else {
      const label = svg("text", { x: area.label[0], y: area.label[1], class: "label" });
      label.textContent = area.name;
      labels.append(label);
    }
  }
  root.append(areas, labels, svg("g", { id: "pins" }), svg("g", { id: "ticket-points" }));
  root.addEventListener("click", onMapClick);
  $("map").replaceChildren(root);
  if (state.data) drawTickets(state.data.tickets);
}

function drawTickets(tickets) {
  const layer = document.getElementById("ticket-points");
  if (!layer || !state.map) return;
  layer.replaceChildren(...tickets.map((t) => {
    const [x, y] = project(t.lon, t.lat);
    const dot = svg("circle", { cx: x, cy: y, r: t.priority === 1 ? 9 : 7, class: `ticket p${Math.min(t.priority, 3)}`, "data-ref": t.ref || "" });
    const title = svg("title");
    title.textContent = `${t.ref} · P${t.priority} · ${t.category || "?"} · ${t.status}`;
    dot.append(title);
    dot.addEventListener("click", (event) => { event.stopPropagation(); if (t.thread) selectThread(t.thread); });
    return dot;
  }));
}

function showPin(lat, lon) {
  const layer = document.getElementById("pins");
  if (!layer) return;
  const [x, y] = project(lon, lat);
  layer.replaceChildren(svg("circle", { cx: x, cy: y, r: 12, class: "pin" }));
}

function startPicking() {
  state.picking = !state.picking;
  $("citizen-location").classList.toggle("active", state.picking);
  const map = document.getElementById("citymap");
  if (map) map.classList.toggle("picking", state.picking);
  $("map-hint").textContent = state.picking
    ? "Click on the map where the citizen is: their phone shares that point."
    : "";
  if (!state.picking && state.data) renderMapHint();
}

function renderMapHint() {
  $("map-hint").replaceChildren("open tickets by priority: ", el("span", { class: "dot p1" }), " P1 ",
    el("span", { class: "dot p2" }), " P2 ", el("span", { class: "dot p3" }), " P3");
}

function onMapClick(event) {
  if (!state.picking) return;
  const root = event.currentTarget;
  const point = root.createSVGPoint();
  point.x = event.clientX;
  point.y = event.clientY;
  const local = point.matrixTransform(root.getScreenCTM().inverse());
  const [lon, lat] = unproject(local.x, local.y);
  showPin(lat, lon);
  startPicking();
  api("/api/citizen/location", { lat, lon, accuracy: 10 });
}

// -- wiring -------------------------------------------------------------------------------------------
function onSubmit(form, input, send) {
  $(form).addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $(input).value.trim();
    if (!text) return;
    $(input).value = "";
    send(text);
  });
}

onSubmit("citizen-form", "citizen-input", (text) => api("/api/citizen/send", { text }));
onSubmit("operators-form", "operators-input", (text) => api("/api/operator/send", {
  text, thread: state.thread, note: $("operators-note").checked, operator: Number($("operator-person").value),
}));
onSubmit("agency-form", "agency-input", (text) => api("/api/agency/send", { text }));
$("citizen-phone").addEventListener("click", () => api("/api/citizen/contact"));
$("citizen-location").addEventListener("click", startPicking);
$("citizen-language").addEventListener("change", (event) => api("/api/citizen/language", { language: event.target.value }));
$("citizen-photo").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("photo", file);
  const caption = $("citizen-input").value.trim();
  if (caption) { form.append("caption", caption); $("citizen-input").value = ""; }
  event.target.value = "";
  api("/api/citizen/photo", form);
});
$("reset").addEventListener("click", async () => {
  if (!window.confirm("Delete every demo ticket and start over?")) return;
  $("reset").disabled = true;
  await api("/api/reset");
  $("reset").disabled = false;
});
$("scenario-flood").addEventListener("click", () => api("/api/scenario", { name: "flood" }));

loadMap();
poll(true);
