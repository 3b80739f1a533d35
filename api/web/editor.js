// Kefu knowledge editor: find entries, edit them as drafts, try a question with a draft before
// customers see it, publish, compare versions and roll back, import FAQ files, turn the
// questions the bot could not answer into entries, and read the audit trail.
//
// Everything goes through the /api/kb REST API with the editor's bearer token, kept in
// sessionStorage (one tab, one login). Text from the server is only ever set as textContent.

const TOKEN = "kefu.editor";
const PAGE = 20;
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

let token = sessionStorage.getItem(TOKEN);
let view = "entries";
let offset = 0;
let cur = null; // the entry being edited: {key, lang, kind, base, draft, live, next, revisions, isNew, gapIds, translations}
let dirty = false;

/** An API error: the HTTP status and the server's {"error":{code,message}}. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** api calls the REST API; a 401 or 403 ends the login and shows why. */
async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", "The server cannot be reached (" + err.message + ").");
  }
  return decode(res);
}

async function decode(res) {
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { /* not JSON: described by the status below */ }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(res.status, e.code || "", e.message || res.status + " " + res.statusText);
    if (res.status === 401 || res.status === 403) signedOut(err);
    throw err;
  }
  return data;
}

/** show puts an error's message into el, unless the login screen has already shown it. */
function show(el, err) {
  if (err.status === 401 || err.status === 403) return;
  el.textContent = err.message;
}

// ---- login ----

function signedOut(err) {
  const why = err.status === 401
    ? "Your login has ended — please log in again. (" + err.message + ")"
    : "This account may not edit the knowledge base: " + err.message;
  showLogin(why);
}

function showLogin(msg) {
  sessionStorage.removeItem(TOKEN);
  token = null;
  dirty = false;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
  $("password").value = "";
  $("email").focus();
}

const isEditor = (ag) => (ag.roles || []).some((r) => r === "editor" || r === "admin");

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  let res, body = null;
  try {
    res = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: $("email").value.trim(), password: $("password").value }) });
    body = await res.json();
  } catch (err) {
    $("login-error").textContent = "The server cannot be reached (" + err.message + ").";
    return;
  }
  if (!res.ok) {
    $("login-error").textContent = (body && body.error && body.error.message) || "Login failed (" + res.status + ").";
    return;
  }
  if (!isEditor(body.agent)) {
    $("login-error").textContent = "The account " + body.agent.email + " is not a knowledge editor: ask an admin for the editor role.";
    return;
  }
  token = body.token;
  sessionStorage.setItem(TOKEN, token);
  enter(body.agent);
});

$("logout").addEventListener("click", async () => {
  if (dirty && !(await ask("You have unsaved changes. Log out anyway?"))) return;
  showLogin("You are logged out.");
});

function enter(agent) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("me").textContent = agent.name ? agent.name + " <" + agent.email + ">" : agent.email;
  $("flash").textContent = "";
  setView("entries");
  loadList();
}

// ---- views ----

function setView(name) {
  view = name;
  for (const v of ["entries", "edit", "import", "gaps", "audit"]) $("view-" + v).hidden = v !== name;
  for (const b of document.querySelectorAll(".ed-tabs button")) {
    const on = b.dataset.view === name || (name === "edit" && b.dataset.view === "entries");
    if (on) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  updateTryDraft();
}

/** leave asks before unsaved changes are dropped. */
async function leave() {
  if (view !== "edit" || !dirty) return true;
  if (!(await ask("You have unsaved changes. Leave them?"))) return false;
  dirty = false;
  return true;
}

for (const b of document.querySelectorAll(".ed-tabs button")) {
  b.addEventListener("click", async () => {
    if (!(await leave())) return;
    const v = b.dataset.view;
    setView(v);
    if (v === "entries") loadList();
    if (v === "gaps") loadGaps();
    if (v === "audit") loadAudit();
  });
}
$("back").addEventListener("click", async () => {
  if (!(await leave())) return;
  setView("entries");
  loadList();
});
window.addEventListener("beforeunload", (e) => { if (dirty) e.preventDefault(); });

/** ask shows a confirmation dialog and resolves to whether OK was chosen. */
function ask(text) {
  const d = $("confirm");
  $("confirm-text").textContent = text;
  d.returnValue = "";
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
    $("confirm-ok").focus();
  });
}

// ---- formatting ----

const pad = (n) => String(n).padStart(2, "0");
function when(s, seconds) {
  if (!s) return "—";
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) +
    (seconds ? ":" + pad(d.getSeconds()) : "");
}
const plural = (n, one, many) => n + " " + (n === 1 ? one : many);

function el(tag, props, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") n.className = v;
    else if (k === "data") Object.assign(n.dataset, v);
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (k in n) n[k] = v;
    else n.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

// ---- the entry list ----

let searchTimer = null;
$("q").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { offset = 0; loadList(); }, 250);
});
$("filters").addEventListener("submit", (e) => { e.preventDefault(); offset = 0; loadList(); });
for (const id of ["f-lang", "f-state", "f-kind"]) $(id).addEventListener("change", () => { offset = 0; loadList(); });
$("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadList(); });
$("next").addEventListener("click", () => { offset += PAGE; loadList(); });
$("new-entry").addEventListener("click", () => newEntry({}));

let listSeq = 0;
async function loadList() {
  const p = new URLSearchParams({ limit: PAGE, offset });
  const filters = { q: $("q").value.trim(), language: $("f-lang").value, state: $("f-state").value, kind: $("f-kind").value };
  for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
  const seq = ++listSeq;
  const body = $("entries").tBodies[0];
  $("entries").setAttribute("aria-busy", "true");
  let data;
  try {
    data = await api("GET", "/api/kb/entries?" + p);
  } catch (err) {
    show($("flash"), err);
    return;
  } finally {
    if (seq === listSeq) $("entries").removeAttribute("aria-busy");
  }
  if (seq !== listSeq) return; // a newer search has been sent
  $("flash").textContent = "";
  body.replaceChildren(...data.entries.map(entryRow));
  $("entries-empty").hidden = data.entries.length > 0;
  const from = data.total ? offset + 1 : 0;
  $("page-info").textContent = from + "–" + (offset + data.entries.length) + " of " + data.total;
  $("prev").disabled = offset === 0;
  $("next").disabled = offset + data.entries.length >= data.total;
}

function entryRow(s) {
  const open = el("button", { type: "button", class: "link open", textContent: s.key, title: "Edit " + s.key + " (" + s.language + ")",
    onclick: () => openEntry(s.key, s.language) });
  const text = el("td", { class: "ed-text" }, el("strong", { textContent: s.title || s.question || "—" }));
  if (s.question && s.question !== s.title) text.append(el("small", { textContent: s.question }));
  if (s.kind === "document") text.prepend(el("span", { class: "badge", textContent: "document" }), " ");
  const tr = el("tr", { class: "entry", data: { key: s.key, lang: s.language } },
    el("td", {}, open),
    el("td", { class: "lang", textContent: s.language }),
    text,
    el("td", { class: "live", textContent: s.live_version ? "v" + s.live_version : "—" }),
    el("td", { class: "draft" }, s.draft_version ? el("span", { class: "badge draft", textContent: "✎ draft v" + s.draft_version }) : ""),
    el("td", { class: "num hits", textContent: s.hits }),
    el("td", { class: "last-hit", textContent: when(s.last_hit) }),
    el("td", { class: "votes", textContent: "👍 " + s.up + " / 👎 " + s.down }),
    el("td", { class: "translations" }, ...(s.translations || []).map((l) =>
      el("button", { type: "button", class: "link", textContent: l, title: s.key + " in " + l, onclick: () => openEntry(s.key, l) }))),
  );
  return tr;
}

// ---- the edit form ----

const form = {
  key: $("e-key"), lang: $("e-lang"), kind: $("e-kind"), format: $("e-format"), title: $("e-title"), question: $("e-question"),
  alternates: $("e-alternates"), answer: $("e-answer"), link: $("e-link"), tags: $("e-tags"), note: $("e-note"),
};

function clearMessages() {
  $("edit-status").textContent = "";
  $("edit-error").textContent = "";
  $("reload-entry").hidden = true;
}

function fill(rev) {
  form.key.value = rev.key || "";
  form.lang.value = rev.language || "zh";
  form.kind.value = rev.kind || "faq";
  form.format.value = rev.format || "markdown";
  form.title.value = rev.title || "";
  form.question.value = rev.question || "";
  form.alternates.value = (rev.alternates || []).join("\n");
  form.answer.value = rev.answer || "";
  form.link.value = rev.link || "";
  form.tags.value = (rev.tags || []).join(", ");
  form.note.value = rev.state === "draft" ? rev.note || "" : "";
  shapeForm();
}

/** shapeForm shows the fields of the kind: documents have a format and a body, no questions. */
function shapeForm() {
  const doc = form.kind.value === "document";
  $("e-format-label").hidden = !doc;
  $("e-question-label").hidden = doc;
  $("e-alternates-label").hidden = doc;
  $("e-answer-name").textContent = doc ? "Body" : "Answer";
  form.answer.rows = doc ? 24 : 8;
  form.answer.classList.toggle("ed-body-text", doc);
  const fixed = cur && !cur.isNew;
  form.key.readOnly = !!(cur && (cur.keyFixed || fixed));
  form.lang.readOnly = !!(cur && (cur.langFixed || fixed));
  form.kind.disabled = !!fixed;
  updateButtons();
  preview();
}

function readForm() {
  const lines = (s, sep) => s.split(sep).map((x) => x.trim()).filter(Boolean);
  const kind = form.kind.value;
  return {
    key: form.key.value.trim(), language: form.lang.value.trim(), kind, format: kind === "document" ? form.format.value : "",
    title: form.title.value, question: kind === "document" ? "" : form.question.value,
    alternates: kind === "document" ? [] : lines(form.alternates.value, /\r?\n/), answer: form.answer.value,
    link: form.link.value.trim(), tags: lines(form.tags.value, /[,，]/), note: form.note.value,
  };
}

/** preview shows the answer as the chat widget would: plain text and the source line. */
function preview() {
  const d = readForm();
  const v = cur ? (cur.draft || cur.next) : 1;
  const who = el("span", { class: "who", textContent: "智能客服 Bot" });
  const src = el("span", { class: "source", textContent: "来源 Source: " + (d.title || d.question || d.key || "—") + " · v" + v });
  $("preview").replaceChildren(who, document.createTextNode(d.answer), src);
}

function updateButtons() {
  const saved = cur && !cur.isNew;
  $("publish").disabled = !cur || (!cur.draft && !dirty);
  $("discard-draft").disabled = !saved || !cur.draft;
  $("archive").disabled = !saved || !cur.live;
  const state = !cur || cur.isNew ? "new" : cur.draft ? "draft v" + cur.draft + (cur.live ? " · live v" + cur.live : "")
    : cur.live ? "live v" + cur.live : "archived";
  $("edit-state").textContent = state + (dirty ? " · unsaved changes" : "");
  $("edit-state").className = "badge" + (dirty ? " draft" : "");
  updateTryDraft();
}

for (const f of Object.values(form)) {
  f.addEventListener("input", () => { if (!dirty) { dirty = true; updateButtons(); } preview(); });
}
form.kind.addEventListener("change", shapeForm);

/** newEntry opens an empty form; init may fix the key and language (a translation) or
 * prefill it (from a knowledge gap, whose questions are closed once the draft is saved). */
async function newEntry(init) {
  if (!(await leave())) return;
  cur = { key: init.key || "", lang: init.language || "zh", kind: init.kind || "faq", base: 0, draft: 0, live: 0, next: 1,
    revisions: [], isNew: true, gapIds: init.gapIds || null, keyFixed: !!init.key && !!init.translation,
    langFixed: false, translations: init.translations || [] };
  dirty = false;
  clearMessages();
  fill({ key: cur.key, language: cur.lang, kind: cur.kind, title: init.title, question: init.question, alternates: init.alternates,
    link: init.link, tags: init.tags, state: "draft", note: init.note });
  $("edit-title").textContent = init.translation ? "Translate " + cur.key : init.gapIds ? "New entry from a knowledge gap" : "New entry";
  renderTranslations();
  $("versions-panel").hidden = true;
  $("diff").replaceChildren();
  setView("edit");
  (cur.keyFixed ? form.lang : form.key).focus();
  if (init.gapIds) $("edit-status").textContent = "Give the entry a key and an answer; the gap's questions are closed when the draft is saved.";
}

async function openEntry(key, lang) {
  if (!(await leave())) return;
  clearMessages();
  let data, langs;
  try {
    [data, langs] = await Promise.all([
      api("GET", "/api/kb/entries/" + enc(key) + "/" + enc(lang)),
      api("GET", "/api/kb/entries?" + new URLSearchParams({ q: key, limit: 500 })).then((d) =>
        d.entries.filter((s) => s.key === key).map((s) => s.language)),
    ]);
  } catch (err) {
    show($("flash"), err);
    return;
  }
  const revs = data.revisions;
  const rev = revs.find((r) => r.state !== "discarded");
  const next = Math.max(0, ...revs.map((r) => r.version)) + 1;
  cur = { key, lang, kind: (rev || revs[0]).kind, base: rev ? rev.version : 0, draft: rev && rev.state === "draft" ? rev.version : 0,
    live: (revs.find((r) => r.live) || {}).version || 0, next, revisions: revs, isNew: !rev, gapIds: null,
    keyFixed: true, langFixed: true, translations: langs.filter((l) => l !== lang) };
  dirty = false;
  fill(rev || { key, language: lang, kind: revs[0].kind, state: "draft" });
  $("edit-title").textContent = key + " (" + lang + ")";
  renderTranslations();
  renderVersions();
  $("versions-panel").hidden = false;
  $("diff").replaceChildren();
  setView("edit");
}

function renderTranslations() {
  const p = $("translations");
  p.replaceChildren();
  if (!cur.key || (cur.isNew && !cur.keyFixed)) return;
  p.append("Translations: ");
  if (!cur.translations.length) p.append(el("span", { class: "hint", textContent: "none" }), " ");
  for (const l of cur.translations) {
    p.append(el("button", { type: "button", class: "link translation", data: { lang: l }, textContent: l,
      onclick: () => openEntry(cur.key, l) }), " ");
  }
  if (!cur.isNew) {
    const other = ["zh", "en"].find((l) => l !== cur.lang && !cur.translations.includes(l)) || "";
    const lang = el("input", { id: "translation-lang", value: other, size: 6, maxLength: 16, "aria-label": "Language of the translation" });
    lang.setAttribute("list", "langs");
    p.append(" · Add a translation in ", lang, " ", el("button", { type: "button", id: "add-translation", class: "secondary small",
      textContent: "Add translation", onclick: () => addTranslation(lang.value.trim()) }));
  }
}

function addTranslation(lang) {
  if (!lang) { $("edit-error").textContent = "Give the language of the translation, e.g. en."; return; }
  if (lang === cur.lang || cur.translations.includes(lang)) { openEntry(cur.key, lang); return; }
  const d = readForm();
  newEntry({ key: cur.key, language: lang, kind: cur.kind, translation: true, link: d.link, tags: d.tags,
    translations: [cur.lang, ...cur.translations] });
}

$("entry-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  await saveDraft();
});

/** saveDraft saves the form as the open draft; it returns whether it did. */
async function saveDraft() {
  clearMessages();
  const d = readForm();
  if (!d.key || !d.language) { $("edit-error").textContent = "Give the entry a key and a language."; return false; }
  if (cur.isNew) {
    cur.key = d.key;
    cur.lang = d.language;
  }
  d.base_version = cur.base;
  let rev;
  try {
    rev = await api("PUT", "/api/kb/entries/" + enc(cur.key) + "/" + enc(cur.lang) + "/draft", d);
  } catch (err) {
    show($("edit-error"), err);
    if (err.status === 409 && !cur.isNew) $("reload-entry").hidden = false;
    return false;
  }
  const wasNew = cur.isNew;
  Object.assign(cur, { base: rev.version, draft: rev.version, isNew: false, keyFixed: true, langFixed: true });
  dirty = false;
  let msg = "Draft saved as version " + rev.version + ". Customers still get " + (cur.live ? "version " + cur.live : "nothing from this entry") + " until it is published.";
  if (cur.gapIds) {
    try {
      await api("POST", "/api/kb/gaps/close", { ids: cur.gapIds, action: "draft" });
      msg += " The knowledge gap is closed.";
      cur.gapIds = null;
    } catch (err) {
      show($("edit-error"), err);
    }
  }
  if (wasNew) $("edit-title").textContent = cur.key + " (" + cur.lang + ")";
  await refreshHistory();
  $("edit-status").textContent = msg;
  return true;
}

$("reload-entry").addEventListener("click", () => { dirty = false; openEntry(cur.key, cur.lang); });

$("publish").addEventListener("click", async () => {
  if (dirty && !(await saveDraft())) return;
  clearMessages();
  if (!cur.draft) { $("edit-error").textContent = "There is no draft to publish: change something and save it first."; return; }
  try {
    const rev = await api("POST", "/api/kb/entries/" + enc(cur.key) + "/" + enc(cur.lang) + "/publish");
    await refreshHistory();
    $("edit-status").textContent = "Published version " + rev.version + ": customers get it from now on.";
  } catch (err) {
    show($("edit-error"), err);
  }
});

$("discard-draft").addEventListener("click", async () => {
  if (!(await ask("Discard the draft (version " + cur.draft + ") of " + cur.key + " (" + cur.lang + ")? Its changes are lost."))) return;
  clearMessages();
  try {
    await api("DELETE", "/api/kb/entries/" + enc(cur.key) + "/" + enc(cur.lang) + "/draft");
  } catch (err) {
    show($("edit-error"), err);
    return;
  }
  dirty = false;
  await openEntry(cur.key, cur.lang);
  $("edit-status").textContent = "The draft is discarded.";
});

$("archive").addEventListener("click", async () => {
  if (!(await ask("Archive " + cur.key + " (" + cur.lang + ")? Customers stop getting this answer; its history stays and rolling back publishes it again."))) return;
  clearMessages();
  try {
    await api("POST", "/api/kb/entries/" + enc(cur.key) + "/" + enc(cur.lang) + "/archive");
  } catch (err) {
    show($("edit-error"), err);
    return;
  }
  await refreshHistory();
  $("edit-status").textContent = "Archived: customers no longer get this entry.";
});

/** refreshHistory reloads the versions of the open entry without touching the form. */
async function refreshHistory() {
  try {
    const data = await api("GET", "/api/kb/entries/" + enc(cur.key) + "/" + enc(cur.lang));
    const revs = data.revisions;
    const rev = revs.find((r) => r.state !== "discarded");
    Object.assign(cur, { revisions: revs, base: rev ? rev.version : 0, draft: rev && rev.state === "draft" ? rev.version : 0,
      live: (revs.find((r) => r.live) || {}).version || 0, next: Math.max(0, ...revs.map((r) => r.version)) + 1 });
  } catch (err) {
    show($("edit-error"), err);
  }
  $("versions-panel").hidden = false;
  renderTranslations();
  renderVersions();
  updateButtons();
  preview();
}

// ---- versions, diff, rollback ----

let picked = []; // the versions ticked for comparison, oldest tick first

function renderVersions() {
  picked = picked.filter((v) => cur.revisions.some((r) => r.version === v));
  $("versions").tBodies[0].replaceChildren(...cur.revisions.map((r) => {
    const box = el("input", { type: "checkbox", class: "cmp", value: r.version, checked: picked.includes(r.version),
      "aria-label": "Compare version " + r.version, onchange: (e) => pick(r.version, e.target.checked) });
    const back = r.state === "published" && !r.live
      ? el("button", { type: "button", class: "secondary small rollback", textContent: "Roll back to v" + r.version,
        onclick: () => rollback(r.version) })
      : "";
    return el("tr", { class: "version " + r.state + (r.live ? " is-live" : ""), data: { version: r.version } },
      el("td", {}, box),
      el("td", { textContent: "v" + r.version }),
      el("td", { class: "state", textContent: r.state }),
      el("td", { class: "live" }, r.live ? el("span", { class: "badge live", textContent: "● live" }) : ""),
      el("td", { textContent: r.state === "published" && r.published_by ? r.published_by : r.author }),
      el("td", { textContent: when(r.published_at || r.updated_at) }),
      el("td", { class: "note", textContent: r.note }),
      el("td", {}, back));
  }));
}

function pick(version, on) {
  picked = picked.filter((v) => v !== version);
  if (on) picked.push(version);
  while (picked.length > 2) picked.shift();
  for (const b of document.querySelectorAll("#versions input.cmp")) b.checked = picked.includes(Number(b.value));
  if (picked.length === 2) showDiff(Math.min(...picked), Math.max(...picked));
  else $("diff").replaceChildren();
}

async function showDiff(from, to) {
  let data;
  try {
    data = await api("GET", "/api/kb/entries/" + enc(cur.key) + "/" + enc(cur.lang) + "/diff?" + new URLSearchParams({ from, to }));
  } catch (err) {
    show($("edit-error"), err);
    return;
  }
  const out = [el("h4", { textContent: "Changes from v" + from + " to v" + to })];
  if (!data.fields.length) out.push(el("p", { class: "hint ed-left", textContent: "The two versions have the same content." }));
  for (const f of data.fields) {
    const text = el("div", { class: "diff-text" });
    for (const op of f.ops || []) {
      if (op.op === "+") text.append(el("ins", { textContent: op.text }));
      else if (op.op === "-") text.append(el("del", { textContent: op.text }));
      else text.append(op.text);
    }
    out.push(el("div", { class: "diff-field", data: { field: f.field } }, el("h5", { textContent: f.field }), text));
  }
  $("diff").replaceChildren(...out);
}

async function rollback(version) {
  if (dirty) { $("edit-error").textContent = "Save or discard your changes before rolling back."; return; }
  if (!(await ask("Roll " + cur.key + " (" + cur.lang + ") back to version " + version + "? It is published again as a new version, at once."))) return;
  clearMessages();
  let rev;
  try {
    rev = await api("POST", "/api/kb/entries/" + enc(cur.key) + "/" + enc(cur.lang) + "/rollback", { version });
  } catch (err) {
    show($("edit-error"), err);
    return;
  }
  dirty = false;
  await refreshHistory();
  fill(rev);
  $("edit-status").textContent = "Rolled back: version " + rev.version + " (the content of version " + version + ") is live.";
}

// ---- try a question ----

function updateTryDraft() {
  const ok = view === "edit" && cur && !cur.isNew && cur.draft > 0;
  const box = $("try-draft");
  box.disabled = !ok;
  if (!ok) box.checked = false;
  $("try-draft-label").textContent = ok ? "with this draft (" + cur.key + " v" + cur.draft + ")" : "with this draft (open an entry with a draft)";
}

$("try-draft").addEventListener("change", (e) => { if (e.target.checked && cur) setTryLang(cur.lang); });

function setTryLang(lang) {
  const sel = $("try-lang");
  if (![...sel.options].some((o) => o.value === lang)) sel.append(el("option", { value: lang, textContent: lang }));
  sel.value = lang;
}

$("try-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("try-error").textContent = "";
  const withDraft = $("try-draft").checked && cur && cur.draft;
  if (withDraft && dirty) $("try-error").textContent = "Unsaved changes are not tried: save the draft to try them.";
  const body = { question: $("try-question").value, language: $("try-lang").value, draft_key: withDraft ? cur.key : "" };
  $("try-go").disabled = true;
  $("try-result").hidden = true;
  let t;
  try {
    t = await api("POST", "/api/kb/try", body);
  } catch (err) {
    show($("try-error"), err);
    return;
  } finally {
    $("try-go").disabled = false;
  }
  const a = t.answer, box = $("try-answer");
  box.classList.toggle("not-sure", !a.found);
  if (a.found) {
    box.replaceChildren(el("span", { class: "who", textContent: "智能客服 Bot" + (t.draft ? " · with draft v" + t.draft : "") }),
      document.createTextNode(a.text),
      el("span", { class: "source", textContent: "来源 Source: " + a.source.title + " · v" + a.source.version + " · score " + a.score.toFixed(3) }));
  } else {
    box.replaceChildren(el("span", { class: "who", textContent: "Not sure" }),
      "The bot is not sure (best score " + (a.score || 0).toFixed(3) + ") and would offer a person" + ((a.related || []).length ? " and these questions:" : "."));
    if ((a.related || []).length) box.append(el("ul", { class: "related" }, ...a.related.map((q) => el("li", { textContent: q }))));
  }
  $("try-passages").tBodies[0].replaceChildren(...(t.passages || []).map((p) =>
    el("tr", { class: "passage" + (p.answers ? " answers" : ""), data: { key: p.key } },
      el("td", { textContent: p.rank }),
      el("td", { textContent: p.key + " v" + p.version }),
      el("td", { class: "ed-text", textContent: p.title || p.question, title: p.text.length > 300 ? p.text.slice(0, 300) + "…" : p.text }),
      el("td", { class: "num", textContent: p.cosine.toFixed(3) }),
      el("td", { class: "marker" }, ...(p.answers ? ["✔", el("span", { class: "sr-only", textContent: " answers" })] : [])))));
  $("try-result").hidden = false;
});

// ---- import ----

$("import-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("import-file").files[0];
  const report = $("import-report"), errors = $("import-errors"), bar = $("import-progress");
  report.replaceChildren();
  report.className = "ed-report";
  errors.replaceChildren();
  if (!file) { report.textContent = "Choose a file first."; return; }
  bar.max = 1;
  bar.value = 0;
  $("import-go").disabled = true;
  const fail = (msg) => { report.className = "ed-report bad"; report.textContent = msg; };
  try {
    const res = await fetch("/api/kb/import?" + new URLSearchParams({ language: $("import-lang").value, filename: file.name }),
      { method: "POST", headers: { Authorization: "Bearer " + token, "Content-Type": "application/octet-stream" }, body: file });
    if (!res.ok) { await decode(res); return; } // throws the error
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = "", done = false, final = null;
    const line = (s) => {
      if (!s.trim()) return;
      const m = JSON.parse(s);
      if (m.stage) {
        bar.max = Math.max(1, m.total);
        bar.value = m.done;
        report.textContent = "Storing " + m.done + " of " + m.total + "…";
      } else {
        final = m;
      }
    };
    while (!done) {
      const r = await reader.read();
      done = r.done;
      buf += dec.decode(r.value || new Uint8Array(), { stream: !done });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) { line(buf.slice(0, i)); buf = buf.slice(i + 1); }
    }
    line(buf);
    if (!final) return fail("The import stopped before it finished: nothing may have been imported. Check the entries list.");
    if (final.error) return fail("Nothing was imported: " + final.error.message);
    if (final.errors && final.errors.length) {
      fail("Nothing was imported: " + final.errors.length + " row" + (final.errors.length > 1 ? "s were" : " was") + " rejected. Fix " +
        (final.errors.length > 1 ? "them" : "it") + " and import the file again.");
      errors.replaceChildren(...final.errors.map((r) => el("li", { class: "row-error", data: { line: r.line } },
        el("strong", { textContent: "Line " + r.line + ": " }), r.message)));
      return;
    }
    bar.value = bar.max;
    report.className = "ed-report good";
    report.textContent = "Imported " + final.imported + " entr" + (final.imported === 1 ? "y" : "ies") + ". They are live.";
  } catch (err) {
    if (err instanceof ApiError) show(report, err); else fail("The import failed: " + err.message);
    if (!(err instanceof ApiError && (err.status === 401 || err.status === 403))) report.className = "ed-report bad";
  } finally {
    $("import-go").disabled = false;
  }
});

// ---- knowledge gaps ----

$("gaps-reload").addEventListener("click", loadGaps);
$("gaps-days").addEventListener("change", loadGaps);

async function loadGaps() {
  let data;
  $("gaps").setAttribute("aria-busy", "true");
  try {
    data = await api("GET", "/api/kb/gaps?" + new URLSearchParams({ days: $("gaps-days").value }));
  } catch (err) {
    show($("flash"), err);
    return;
  } finally {
    $("gaps").removeAttribute("aria-busy");
  }
  $("gaps").replaceChildren(...data.gaps.map((g) => el("li", { class: "gap", data: { question: g.question } },
    el("div", { class: "gap-head" },
      el("strong", { class: "gap-question", textContent: g.question }),
      el("span", { class: "badge", textContent: "asked " + g.count + "×" }),
      el("span", { class: "hint", textContent: (g.languages || []).join(", ") + " · last asked " + when(g.last_asked) })),
    (g.examples || []).length ? el("ul", { class: "gap-examples", "aria-label": "Other wordings" },
      ...g.examples.map((x) => el("li", { textContent: x }))) : null,
    el("div", { class: "ed-actions" },
      el("button", { type: "button", class: "create-draft", textContent: "Create draft",
        onclick: () => newEntry({ question: g.question, alternates: g.examples || [], language: (g.languages || [])[0] || "zh", gapIds: g.ids }) }),
      el("button", { type: "button", class: "secondary dismiss", textContent: "Dismiss", onclick: () => dismissGap(g) })))));
  $("gaps-empty").hidden = data.gaps.length > 0;
}

async function dismissGap(g) {
  try {
    await api("POST", "/api/kb/gaps/close", { ids: g.ids, action: "dismiss" });
    $("flash").textContent = "Dismissed “" + g.question + "”.";
  } catch (err) {
    show($("flash"), err);
  }
  loadGaps();
}

// ---- audit ----

$("audit-reload").addEventListener("click", loadAudit);
let auditTimer = null;
$("audit-key").addEventListener("input", () => { clearTimeout(auditTimer); auditTimer = setTimeout(loadAudit, 250); });

async function loadAudit() {
  let data;
  try {
    data = await api("GET", "/api/kb/audit?" + new URLSearchParams({ limit: 200, key: $("audit-key").value.trim() }));
  } catch (err) {
    show($("flash"), err);
    return;
  }
  $("audit").tBodies[0].replaceChildren(...data.audit.map((a) => el("tr", { class: "audit", data: { action: a.action, key: a.key } },
    el("td", { textContent: when(a.at, true) }),
    el("td", { textContent: a.actor }),
    el("td", { class: "action", textContent: a.action + detail(a) }),
    el("td", { textContent: a.key || "—" }),
    el("td", { textContent: a.language || "—" }),
    el("td", { textContent: a.version ? "v" + a.version : "—" }))));
}

function detail(a) {
  const d = a.detail || {};
  if (d.to_version) return " → v" + d.to_version;
  if (d.entries) return " (" + plural(d.entries, "entry", "entries") + ")";
  if (d.questions) return " (" + plural(d.questions, "question", "questions") + ")";
  return "";
}

// ---- start ----

(async () => {
  if (!token) { showLogin(""); return; }
  try {
    const ag = await api("GET", "/api/agent/me");
    if (!isEditor(ag)) { showLogin("The account " + ag.email + " is not a knowledge editor."); return; }
    enter(ag);
  } catch (err) {
    if (err.status !== 401 && err.status !== 403) showLogin(err.message);
  }
})();
