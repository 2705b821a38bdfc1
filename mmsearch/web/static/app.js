// mmsearch's page: search by text or by example, results grid, players, filters, lightbox. Plain JavaScript,
// no build step, no network beyond this service. Every text from the library goes in with textContent.
"use strict";

const $ = (selector) => document.querySelector(selector);
const FIELDS = ["q", "kind", "mode", "k", "path", "ext", "since", "until"];
const DEFAULTS = { kind: "image", mode: "hybrid", k: "24" };
const state = { hits: [], upload: null, current: -1, request: 0 };

// -- the API ------------------------------------------------------------------------------------------------
async function api(path, options = {}) {
  const headers = { "X-Mmsearch-Request": "1", ...(options.headers || {}) };
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) {
    const message = (payload && payload.error) || `the service answered ${response.status}`;
    const error = new Error(response.status === 401 ? "Signed out: open the sign-in link `mmsearch serve` printed." : message);
    error.status = response.status;
    throw error;
  }
  return payload;
}

const thumbUrl = (id, size = "grid") => `/api/v1/assets/${id}/thumbnail?size=${size}`;
const mediaUrl = (id) => `/api/v1/assets/${id}/media`;

// -- the URL is the search ----------------------------------------------------------------------------------
function formParams() {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = $("#" + name).value.trim();
    if (value && value !== DEFAULTS[name]) params.set(name, value);
  }
  return params;
}

function fillForm(params) {
  for (const name of FIELDS) $("#" + name).value = params.get(name) || DEFAULTS[name] || "";
}

function apiParams(params) {
  const out = new URLSearchParams(params);
  if (!out.has("k")) out.set("k", DEFAULTS.k);
  if (out.has("ext")) {
    const parts = out.get("ext").split(/[\s,]+/).filter(Boolean);
    out.delete("ext");
    parts.forEach((part) => out.append("ext", part));
  }
  out.set("explain", "true");
  return out;
}

function navigate(params) {
  const query = params.toString();
  if (query !== location.search.replace(/^\?/, "")) history.pushState(null, "", query ? `/?${query}` : "/");
  runSearch(params);
}

// -- searching ------------------------------------------------------------------------------------------------
function setState(text, kind = "") {
  const element = $("#state");
  element.textContent = text;
  element.className = kind;
  $("#results").setAttribute("aria-busy", kind === "loading" ? "true" : "false");
}

async function runSearch(params) {
  clearUpload(false);
  if (!params.get("q") && !params.get("like")) {
    render([]);
    setState("Type what you are looking for, or drop, paste or pick a photo to find similar ones.", "welcome");
    return;
  }
  await show(() => api(`/api/v1/search?${apiParams(params)}`), params.get("like") ? `More like #${params.get("like")}` : "");
}

async function searchByImage(file) {
  if (!file || !file.type.startsWith("image/")) {
    setState("That is not an image.", "error");
    return;
  }
  clearUpload(false);
  state.upload = URL.createObjectURL(file);
  $("#query-image-preview").src = state.upload;
  $("#query-image-label").textContent = `Searching by ${file.name || "your image"}`;
  $("#query-image").hidden = false;
  const body = new FormData();
  body.append("image", file, file.name || "pasted.png");
  const params = formParams();
  params.delete("like");
  await show(() => api(`/api/v1/search/image?${apiParams(params)}`, { method: "POST", body }), "");
}

async function show(request, label) {
  const ticket = ++state.request;
  setState("Searching…", "loading");
  try {
    const result = await request();
    if (ticket !== state.request) return; // a newer search answered meanwhile
    render(result.hits);
    const count = result.hits.length;
    setState(count ? `${label ? label + ": " : ""}${count} result${count === 1 ? "" : "s"}` : "No results. Try other words or fewer filters.", count ? "done" : "empty");
  } catch (error) {
    if (ticket !== state.request) return;
    render([]);
    setState(error.message, "error");
  }
}

function clearUpload(hide = true) {
  if (state.upload) URL.revokeObjectURL(state.upload);
  state.upload = null;
  if (hide || !$("#query-image").hidden) $("#query-image").hidden = true;
}

// -- results ----------------------------------------------------------------------------------------------------
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const baseName = (path) => path.split(/[\\/]/).pop();
const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;

function render(hits) {
  state.hits = hits;
  const list = $("#results");
  list.replaceChildren(...hits.map(card));
}

function card(hit, index) {
  const item = element("li", "card");
  item.tabIndex = 0;
  item.dataset.id = hit.id;
  item.dataset.index = index;
  item.dataset.kind = hit.kind;
  if (hit.kind === "image") {
    const button = element("button", "thumb");
    button.type = "button";
    button.title = "Preview";
    const image = element("img");
    image.loading = "lazy";
    image.alt = baseName(hit.path);
    image.src = thumbUrl(hit.id);
    button.append(image);
    button.addEventListener("click", () => openLightbox(index));
    item.append(button);
  } else {
    const art = element("div", "audio-art", "♪");
    art.addEventListener("click", (event) => { if (event.target === art) openLightbox(index); });
    const audio = element("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = mediaUrl(hit.id);
    if (hit.start != null) {
      const play = element("button", "play-segment", `▶ ${clock(hit.start)}`);
      play.type = "button";
      play.title = "Play from the matching segment";
      play.addEventListener("click", () => playFrom(audio, hit.start));
      art.append(play);
    }
    item.append(art, audio);
  }
  const meta = element("div", "meta");
  meta.append(element("span", "name", baseName(hit.path)));
  meta.lastChild.title = hit.path;
  const times = hit.start != null ? ` · ${clock(hit.start)}–${clock(hit.end ?? hit.start)}` : "";
  meta.append(element("span", "score", `${hit.score.toFixed(3)} · ${hit.match}${times}`));
  if (hit.text) meta.append(element("p", "match-text", `“${hit.text}”`));
  const actions = element("div", "actions");
  const more = element("button", "more-like quiet", "More like this");
  more.type = "button";
  more.addEventListener("click", () => moreLike(hit.id));
  const details = element("button", "details quiet", "Details");
  details.type = "button";
  details.addEventListener("click", () => openLightbox(index));
  actions.append(more, details);
  meta.append(actions);
  item.append(meta);
  return item;
}

function playFrom(audio, seconds) {
  // play() rejects when a pause comes first (the user stopped it): nothing to report then
  const start = () => { audio.currentTime = seconds; audio.play().catch(() => {}); };
  if (audio.readyState >= 1) { start(); return; }
  audio.preload = "metadata";
  audio.addEventListener("loadedmetadata", start, { once: true });
  audio.load();
}

function moreLike(id) {
  const params = formParams();
  params.delete("q");
  params.set("like", String(id));
  fillForm(params);
  closeLightbox();
  navigate(params);
}

// -- lightbox ----------------------------------------------------------------------------------------------------
async function openLightbox(index) {
  const hit = state.hits[index];
  if (!hit) return;
  state.current = index;
  const box = $("#lightbox");
  box.hidden = false;
  $("#lightbox-title").textContent = baseName(hit.path);
  const media = $("#lightbox-media");
  if (hit.kind === "image") {
    const image = element("img");
    image.alt = baseName(hit.path);
    image.src = thumbUrl(hit.id, "preview");
    media.replaceChildren(image);
  } else {
    const audio = element("audio");
    audio.controls = true;
    audio.src = mediaUrl(hit.id);
    media.replaceChildren(audio);
    if (hit.start != null) playFrom(audio, hit.start);
  }
  $("#lightbox-evidence").replaceChildren(evidenceTable(hit));
  $("#lightbox-facts").replaceChildren();
  $("#lightbox-texts").replaceChildren();
  $("#lightbox-close").focus();
  try {
    const asset = await api(`/api/v1/assets/${hit.id}`);
    if (state.current === index) describe(asset, media.querySelector("audio"));
  } catch (error) {
    $("#lightbox-texts").replaceChildren(element("p", "error", error.message));
  }
}

function describe(asset, audio) {
  const facts = $("#lightbox-facts");
  const add = (name, value) => { if (value) facts.append(element("dt", "", name), element("dd", "", value)); };
  add("Path", asset.path);
  add("Kind", asset.kind);
  if (asset.width) add("Size", `${asset.width} × ${asset.height} px, ${(asset.size / 1024).toFixed(0)} KiB`);
  add("Taken", asset.taken ? new Date(asset.taken * 1000).toLocaleString() : "");
  add("Modified", new Date(asset.modified * 1000).toLocaleString());
  const texts = $("#lightbox-texts");
  for (const kind of ["caption", "transcript"]) {
    const items = asset.texts.filter((text) => text.kind === kind);
    if (!items.length) continue;
    texts.append(element("h3", "", kind === "caption" ? "Captions" : "Transcript"));
    const list = element("ul");
    for (const text of items) {
      const entry = element("li", text.start != null ? "segment" : "", (text.start != null ? `${clock(text.start)} ` : "") + text.text);
      if (text.start != null && audio) entry.addEventListener("click", () => playFrom(audio, text.start));
      list.append(entry);
    }
    texts.append(list);
  }
}

function evidenceTable(hit) {
  const wrapper = element("div");
  const evidence = hit.evidence;
  if (!evidence || !evidence.contributions) return wrapper;
  wrapper.append(element("h3", "", "Why it ranked"));
  wrapper.append(element("p", "", `Fused score ${fmt(evidence.score)} (${evidence.method}), rank ${evidence.rank}.`));
  const table = element("table");
  const head = element("tr");
  ["evidence", "score", "rank", "weight", "share"].forEach((name) => head.append(element("th", "", name)));
  table.append(head);
  for (const [name, part] of Object.entries(evidence.contributions)) {
    const row = element("tr");
    [name, fmt(part.raw_score), part.rank == null ? "–" : String(part.rank), fmt(part.weight), fmt(part.contribution)]
      .forEach((value) => row.append(element("td", "", value)));
    table.append(row);
  }
  wrapper.append(table);
  return wrapper;
}

const fmt = (value) => (typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toFixed(3)) : value == null ? "" : String(value));

function closeLightbox() {
  const box = $("#lightbox");
  if (box.hidden) return;
  box.querySelectorAll("audio").forEach((audio) => audio.pause());
  box.hidden = true;
  const focused = $(`#results .card[data-index="${state.current}"]`);
  if (focused) focused.focus();
}

function step(delta) {
  const next = state.current + delta;
  if (next >= 0 && next < state.hits.length) openLightbox(next);
}

// -- keyboard ------------------------------------------------------------------------------------------------------
function columns() {
  const cards = [...document.querySelectorAll("#results .card")];
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  const count = cards.findIndex((item) => item.offsetTop !== top);
  return count === -1 ? cards.length : count;
}

function onKey(event) {
  if (!$("#lightbox").hidden) {
    if (event.key === "Escape") closeLightbox();
    else if (event.key === "ArrowRight") step(1);
    else if (event.key === "ArrowLeft") step(-1);
    else return;
    event.preventDefault();
    return;
  }
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) { $("#q").focus(); event.preventDefault(); return; }
  const current = document.activeElement.closest && document.activeElement.closest(".card");
  if (!current || typing) return;
  const index = Number(current.dataset.index);
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
  if (event.key in moves) {
    const target = $(`#results .card[data-index="${index + moves[event.key]}"]`);
    if (target) target.focus();
    event.preventDefault();
  } else if (event.key === "Enter" && event.target === current) {
    openLightbox(index);
    event.preventDefault();
  } else if (event.key === "m") {
    moreLike(state.hits[index].id);
  }
}

// -- wiring ----------------------------------------------------------------------------------------------------------
function imageOf(list) {
  return [...(list || [])].find((file) => file.type && file.type.startsWith("image/"));
}

function start() {
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const params = formParams();
    params.delete("like");
    navigate(params);
  });
  $("#apply-filters").addEventListener("click", () => navigate(formParams()));
  $("#clear-filters").addEventListener("click", () => {
    ["path", "ext", "since", "until"].forEach((name) => { $("#" + name).value = ""; });
    ["kind", "mode", "k"].forEach((name) => { $("#" + name).value = DEFAULTS[name]; });
    navigate(formParams());
  });
  ["kind", "mode"].forEach((name) => $("#" + name).addEventListener("change", () => {
    const params = formParams();
    const like = new URLSearchParams(location.search).get("like");
    if (like) params.set("like", like);
    navigate(params);
  }));
  $("#image-input").addEventListener("change", (event) => {
    searchByImage(event.target.files[0]);
    event.target.value = "";
  });
  $("#clear-image").addEventListener("click", () => { clearUpload(); render([]); setState(""); });
  document.addEventListener("paste", (event) => {
    const file = imageOf(event.clipboardData && event.clipboardData.files);
    if (file) { event.preventDefault(); searchByImage(file); }
  });
  let dragDepth = 0;
  document.addEventListener("dragenter", (event) => { event.preventDefault(); dragDepth++; $("#drop-zone").hidden = false; });
  document.addEventListener("dragleave", () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) $("#drop-zone").hidden = true; });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    $("#drop-zone").hidden = true;
    searchByImage(imageOf(event.dataTransfer && event.dataTransfer.files));
  });
  document.addEventListener("keydown", onKey);
  $("#lightbox-close").addEventListener("click", closeLightbox);
  $("#lightbox-prev").addEventListener("click", () => step(-1));
  $("#lightbox-next").addEventListener("click", () => step(1));
  $("#lightbox-more").addEventListener("click", () => moreLike(state.hits[state.current].id));
  $("#lightbox").addEventListener("click", (event) => { if (event.target.id === "lightbox") closeLightbox(); });
  window.addEventListener("popstate", () => {
    const params = new URLSearchParams(location.search);
    fillForm(params);
    runSearch(params);
  });
  const params = new URLSearchParams(location.search);
  fillForm(params);
  if ([...params.keys()].some((key) => !["q", "like", "kind", "mode", "k"].includes(key))) $("#filters").open = true;
  runSearch(params);
}

start();
