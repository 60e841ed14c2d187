// zoo serve: plain JS, no build step. Talks to /api/indexes, /api/search, /api/models.
"use strict";
const $ = (id) => document.getElementById(id);
let indexes = [];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) (k === "class" ? (e.className = v) : e.setAttribute(k, v));
  for (const c of children) e.append(c);
  return e;
}

function setStatus(text, error = false) { $("status").textContent = text; $("status").className = "status" + (error ? " error" : ""); }

function fillSelect(sel, values, labels) {
  sel.replaceChildren(...values.map((v, i) => el("option", { value: v }, labels ? labels[i] : v)));
}

function onIndexChange() {
  const ix = indexes[$("index").value];
  if (!ix) return;
  fillSelect($("modality"), ix.query_modalities);
  if (ix.query_modalities.includes("text")) $("modality").value = "text";
  const fields = Object.keys(ix.indexed);
  fillSelect($("field"), ["", ...fields], ["(another modality)", ...fields.map((f) => `${f} (${ix.fields[f]})`)]);
  const recall = Object.entries(ix.indexed).map(([f, e]) => `${f}: ${e.factory}, recall@10 ${Number(e["recall@10"]).toFixed(2)}`).join(" · ");
  const model = (ix.model || "an in-memory model").replace(/^local-dir:.*[\\/]/, "run ");
  $("info").textContent = `${ix.count} items of ${ix.dataset} [${ix.split}] embedded by ${model} — ${recall}`;
}

function media(hit) {
  const m = hit.media || {};
  if (m.text !== undefined) return el("div", { class: "text" }, m.text);
  if (!m.url) return el("div", { class: "text" }, m.error || JSON.stringify(hit.pointer));
  if (m.mime.startsWith("audio/")) return el("audio", { controls: "", preload: "none", src: m.url });
  const img = el("img", { src: m.url, alt: `${hit.field} ${hit.id}` });
  img.addEventListener("load", () => { if (img.naturalWidth <= 32) img.classList.add("pixel"); });
  return img;
}

function labelChips(labels) {
  // {class: 7, class_name: "seven"} → one chip "class 7 · seven"
  return Object.entries(labels).filter(([k]) => !k.endsWith("_name")).map(([k, v]) => {
    const name = labels[`${k}_name`];
    return el("span", { class: "chip" }, `${k} ${v}` + (name !== undefined ? ` · ${name}` : ""));
  });
}

function showHits(res) {
  const cards = res.hits.map((h) => el("div", { class: "hit", "data-row": h.row },
    el("div", { class: "media" }, media(h)),
    el("div", { class: "meta" }, el("span", {}, `#${h.rank} · id ${h.id}`), el("span", { class: "score" }, h.score.toFixed(3))),
    el("div", { class: "labels" }, ...labelChips(h.labels))));
  $("hits").replaceChildren(...cards);
  setStatus(`${res.hits.length} nearest ${res.modality} items (field “${res.field}”)`);
}

async function answer(resp) {
  const body = await resp.json().catch(() => ({ detail: resp.statusText }));
  if (!resp.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
  return body;
}

async function search(ev) {
  if (ev) ev.preventDefault();
  const q = $("q").value.trim();
  if (!q) { setStatus("Type a query or drop a file.", true); return; }
  const p = new URLSearchParams({ index: $("index").value, modality: $("modality").value, q, k: $("k").value });
  if ($("field").value) p.set("field", $("field").value);
  setStatus("Searching…");
  try { showHits(await answer(await fetch("/api/search?" + p))); } catch (e) { $("hits").replaceChildren(); setStatus(e.message, true); }
}

const GUESS = [[/^image\//, "image"], [/^audio\//, "audio"], [/^video\//, "video"], [/\.(sdf|mol)$/i, "molecule"]];

async function upload(file) {
  const ix = indexes[$("index").value];
  const guess = GUESS.find(([re]) => re.test(file.type) || re.test(file.name));
  if (guess && ix.query_modalities.includes(guess[1])) $("modality").value = guess[1];
  const form = new FormData();
  form.append("file", file);
  form.append("modality", $("modality").value);
  form.append("index", $("index").value);
  form.append("k", $("k").value);
  if ($("field").value) form.append("field", $("field").value);
  setStatus(`Searching with ${file.name}…`);
  try { showHits(await answer(await fetch("/api/search", { method: "POST", body: form }))); } catch (e) { $("hits").replaceChildren(); setStatus(e.message, true); }
}

async function loadModels() {
  const models = await answer(await fetch("/api/models"));
  if (!models.length) { $("models").replaceChildren(el("p", { class: "status" }, "No run directories were given (zoo serve --models DIR).")); return; }
  $("models").replaceChildren(...models.map((m) => el("div", { class: "model" },
    el("h2", {}, m.name),
    el("table", {}, ...Object.entries(m.metrics).filter(([, v]) => typeof v === "number")
      .map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, Number.isInteger(v) ? String(v) : v.toFixed(4))))),
    el("div", { class: "plots" }, ...m.plots.map((p) => el("img", { src: `/api/models/${m.id}/plots/${encodeURIComponent(p)}`, alt: p, title: p }))),
    el("details", {}, el("summary", {}, "model card"), el("pre", {}, m.card)))));
}

function tab(name) {
  for (const t of ["search", "models"]) { $(`tab-${t}`).classList.toggle("active", t === name); $(`${t}-view`).hidden = t !== name; }
  if (name === "models") loadModels().catch((e) => $("models").replaceChildren(el("p", { class: "status error" }, e.message)));
}

async function init() {
  $("tab-search").onclick = () => tab("search");
  $("tab-models").onclick = () => tab("models");
  $("search-form").addEventListener("submit", search);
  $("index").addEventListener("change", onIndexChange);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]); });
  indexes = await answer(await fetch("/api/indexes"));
  if (!indexes.length) { setStatus("No index was given: zoo serve --index DIR.", true); tab("models"); return; }
  fillSelect($("index"), indexes.map((ix) => String(ix.id)), indexes.map((ix) => ix.name));
  onIndexChange();
  setStatus("Ready.");
  document.body.dataset.ready = "1";
}

init().catch((e) => setStatus(e.message, true));
