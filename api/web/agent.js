// Kefu agent console: log in, set presence, hear and see new conversations, accept them in
// time, read everything the bot knew (reason, profile, intents, slots, knowledge cited,
// transfer note), reply with canned replies and knowledge answers, keep internal notes,
// transfer, and close with a disposition.
//
// Protocol: /ws/agent (hello, heartbeat → sync, presence, accept, typing, reply, note, transfer,
// close) and the REST routes under /api/agent (see api/desk.go).

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
};
const BASE_TITLE = document.title;

// Labels, Chinese and English side by side as on the rest of the page.
const REASONS = {
  customer_asked: "客户要求人工 · customer asked for a person",
  low_confidence: "机器人答不上来 · the bot could not answer",
  negative_sentiment: "客户情绪不佳 · negative sentiment",
  vip: "VIP 客户 · VIP customer",
  webhook_failed: "业务系统调用失败 · a service call failed",
  invalid_answers: "多次输入无效 · answers kept failing",
  slot_retries: "多次输入无效 · answers kept failing",
  flow: "流程转人工 · a flow handed over",
};
const reasonLabel = (r) => REASONS[r] || r || "—";
const STATUS = { online: "在线 online", away: "离开 away", offline: "离线 offline" };
const WHO = { customer: "客户 Customer", bot: "机器人 Bot", agent: "客服 Agent", system: "" };
const sentimentLabel = (s) => (s <= -0.7 ? "愤怒 angry" : s <= -0.3 ? "负面 negative" : s >= 0.3 ? "正面 positive" : "中性 neutral");

// State.
const convs = new Map(); // session_id → {assignment, session, messages, notes, unread, typing}
let token = sessionStorage.getItem("kefu.agent");
let me = null, ws = null, current = null, backoff = 1000, skew = 0, heartbeatMs = 30000;
let mode = "reply", canned = [], cannedAt = 0, menu = { items: [], index: 0 };
let audio = null, flashTimer = null, syncTimer = null, heartbeatTimer = null;
let typingSent = 0, typingStop = null, pendingTransfer = null;
const outbox = new Map(); // client_id → {session_id, text}

const now = () => Date.now() + skew; // the server's clock
const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
const send = (f) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(f)); };
const clock = (serverTime) => { if (serverTime) skew = Date.parse(serverTime) - Date.now(); };

function notice(text, kind) {
  const n = $("notice");
  n.textContent = text;
  n.className = "ac-notice " + (kind || "");
  n.hidden = !text;
  clearTimeout(notice.timer);
  if (text) notice.timer = setTimeout(() => { n.hidden = true; }, 8000);
}

async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: { Authorization: "Bearer " + token, ...(opts.headers || {}) } });
  const body = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (res.status === 401) { showLogin(body.error ? body.error.message : ""); throw new Error("unauthorized"); }
  if (!res.ok) throw new Error(body.error ? body.error.message : res.statusText);
  return body;
}

// ---- Login and connection ----

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  unlockAlerts(); // a user gesture: sound and notifications may be allowed now
  const res = await fetch("/api/agent/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: $("email").value, password: $("password").value }) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { $("login-error").textContent = body.error ? body.error.message : res.statusText; return; }
  token = body.token;
  sessionStorage.setItem("kefu.agent", token);
  connect();
});

$("logout").addEventListener("click", () => showLogin(""));

function showLogin(msg) {
  sessionStorage.removeItem("kefu.agent");
  token = null;
  clearInterval(heartbeatTimer);
  if (ws) ws.close();
  convs.clear();
  current = null;
  me = null;
  $("desk").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
}

function connect() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
  ws.onopen = () => send({ type: "hello", token });
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    clearInterval(heartbeatTimer);
    if (!token) return;
    setStatus("reconnecting…");
    if (ev.code < 4500) setTimeout(connect, backoff);
    else if (ev.code === 4503) showLogin(ev.reason);
    backoff = Math.min(backoff * 2, 30000);
  };
}

function setStatus(status) {
  $("status").textContent = STATUS[status] || status;
  $("status").className = "status " + (status === "online" ? "online" : status === "away" ? "away" : "");
  if (STATUS[status]) $("presence").value = status;
}

// ---- Frames ----

function handle(f) {
  switch (f.type) {
    case "welcome":
      backoff = 1000;
      clock(f.server_time);
      me = f.agent;
      if (f.heartbeat_seconds) heartbeatMs = f.heartbeat_seconds * 1000;
      $("login").hidden = true;
      $("desk").hidden = false;
      $("me").textContent = me.name || me.email;
      setStatus(f.agent.status);
      dispositions(f.dispositions);
      // What the agent holds now; anything else went while the console was away.
      for (const id of [...convs.keys()]) if (!f.assignments.some((a) => a.session.id === id)) drop(id);
      f.assignments.forEach((a) => assigned(a, false));
      clearInterval(heartbeatTimer);
      heartbeatTimer = setInterval(() => send({ type: "heartbeat" }), heartbeatMs);
      loadCanned();
      render();
      break;
    case "assigned": assigned(f, true); break;
    case "sync": sync(f); break;
    case "lapsed": requestSync(0); break; // the server says an offer lapsed: reconcile now
    case "accepted": {
      const c = convs.get(f.session_id);
      if (c) { c.assignment.accepted = true; render(); }
      break;
    }
    case "message": {
      const c = convs.get(f.message.session_id);
      if (!c || c.messages.some((m) => m.seq === f.message.seq)) break;
      c.messages.push(f.message);
      c.messages.sort((a, b) => a.seq - b.seq);
      if (f.message.role === "agent") c.assignment.accepted = true; // a reply accepts
      if (f.message.role === "customer") c.typing = false;
      if (current === c.session.id) renderChat(); else c.unread++;
      renderList();
      break;
    }
    case "note": {
      const c = convs.get(f.session_id);
      if (!c || c.notes.some((n) => n.id === f.note.id)) break;
      c.notes.push(f.note);
      if (current === c.session.id) renderChat();
      break;
    }
    case "typing": {
      const c = convs.get(f.session_id);
      if (!c || f.role !== "customer") break;
      c.typing = f.typing !== false;
      clearTimeout(c.typingTimer);
      if (c.typing) c.typingTimer = setTimeout(() => { c.typing = false; renderTyping(); }, 6000);
      renderTyping();
      break;
    }
    case "ack": {
      outbox.delete(f.client_id);
      const c = convs.get(f.session_id);
      if (c && !c.assignment.accepted) { c.assignment.accepted = true; render(); }
      break;
    }
    case "transferred":
      if (pendingTransfer === f.session_id) { pendingTransfer = null; $("transfer-dialog").close(); }
      drop(f.session_id, "会话 #" + f.session_id + " 已转接 · Conversation transferred");
      break;
    case "closed":
      drop(f.session_id, f.transferred
        ? "会话 #" + f.session_id + " 已由主管转走 · A supervisor moved conversation #" + f.session_id
        : "会话 #" + f.session_id + " 已结束 · Conversation closed");
      break;
    case "presence": setStatus(f.status); break;
    case "pong": break;
    case "error": failed(f); break;
  }
}

function failed(f) {
  if (!f.session_id && (f.code === "unauthorized" || !me)) { showLogin(f.message); return; } // the login, or its hello
  if (f.frame === "typing") return; // the next keystroke will tell
  if (f.frame === "transfer" && pendingTransfer === f.session_id) {
    pendingTransfer = null;
    $("transfer-error").textContent = f.message;
    $("transfer-submit").disabled = false;
    return;
  }
  if (f.frame === "reply" && f.client_id && outbox.has(f.client_id)) {
    const o = outbox.get(f.client_id);
    outbox.delete(f.client_id);
    if (current === o.session_id && !$("text").value) $("text").value = o.text;
  }
  if (f.code === "not_found" && f.session_id && convs.has(f.session_id)) {
    // Not ours any more: an offer that lapsed, or a supervisor moved it.
    drop(f.session_id, "会话 #" + f.session_id + " 已不在你这里 · Conversation #" + f.session_id + " is no longer yours");
    requestSync(0);
    return;
  }
  notice(f.message, "bad");
}

// assigned adds (or refreshes) a conversation from an "assigned" frame, or from the welcome.
function assigned(f, fresh) {
  clock(f.server_time);
  const id = f.session.id;
  const prev = convs.get(id);
  convs.set(id, { assignment: merged(prev && prev.assignment, f.assignment), session: f.session, messages: f.messages || [], notes: prev ? prev.notes : [],
    unread: prev ? prev.unread : (fresh ? 1 : 0), typing: false });
  if (current === null) current = id;
  loadContext(id); // notes, which the frame does not carry
  if (fresh) alertNew(convs.get(id));
  render();
}

async function loadContext(id) {
  try {
    const ctx = await api("/api/agent/sessions/" + id + "/context");
    clock(ctx.server_time);
    const c = convs.get(id);
    if (!ctx.mine || !ctx.assignment) return;
    if (!c) {
      convs.set(id, { assignment: ctx.assignment, session: ctx.session, messages: ctx.messages, notes: ctx.notes, unread: 1, typing: false });
      if (current === null) current = id;
      alertNew(convs.get(id)); // one the console missed (it was reconnecting)
    } else {
      c.assignment = merged(c.assignment, ctx.assignment);
      c.session = ctx.session;
      const seqs = new Set(c.messages.map((m) => m.seq));
      c.messages.push(...ctx.messages.filter((m) => !seqs.has(m.seq)));
      c.messages.sort((a, b) => a.seq - b.seq);
      const ids = new Set(c.notes.map((n) => n.id));
      c.notes.push(...ctx.notes.filter((n) => !ids.has(n.id)));
    }
    render();
  } catch (err) {
    if (err.message !== "unauthorized") notice(err.message, "bad");
  }
}

// merged is the newer view of an assignment. Frames and fetches race (a context fetched, or a
// heartbeat answered, just before the agent accepted can arrive just after): an offer, once
// accepted, stays accepted; only a new offer of the same conversation starts over.
function merged(prev, next) {
  if (prev && prev.accepted && !next.accepted && prev.request_id === next.request_id &&
      Math.abs(Date.parse(prev.assigned_at) - Date.parse(next.assigned_at)) < 2) { // one offer (µs in the database, ns in Go)
    return { ...next, accepted: true };
  }
  return next;
}

// sync reconciles with what the server says the agent holds (the answer to every heartbeat):
// an offer that lapsed went to someone else, and the router made the agent away.
function sync(f) {
  clock(f.server_time);
  setStatus(f.status);
  const held = new Map(f.assignments.map((a) => [a.session_id, a]));
  for (const [id, c] of convs) {
    if (held.has(id)) { c.assignment = merged(c.assignment, { ...c.assignment, ...held.get(id) }); continue; }
    const lapsed = !c.assignment.accepted;
    drop(id, lapsed
      ? "会话 #" + id + " 未及时接受，已转给其他同事" + (f.status === "away" ? "；你的状态已改为离开" : "") +
        " · The offer of #" + id + " lapsed and went to a colleague" + (f.status === "away" ? "; you are away now" : "")
      : "会话 #" + id + " 已不在你这里 · Conversation #" + id + " is no longer yours", lapsed ? "bad" : "");
  }
  for (const id of held.keys()) if (!convs.has(id)) loadContext(id);
  render();
}

function requestSync(delay) {
  clearTimeout(syncTimer);
  syncTimer = setTimeout(() => send({ type: "heartbeat" }), delay);
}

function drop(id, why, kind) {
  if (!convs.has(id)) return;
  convs.delete(id);
  if (current === id) {
    current = convs.size ? convs.keys().next().value : null;
    $("text").value = current === null ? "" : convs.get(current).draft || "";
    closeMenu();
  }
  if (why) notice(why, kind);
  render();
}

// ---- New conversation: sound, notification, title and badge ----

function unlockAlerts() {
  try { if (!audio) audio = new AudioContext(); if (audio.state === "suspended") audio.resume(); } catch (_) { /* no audio */ }
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission().catch(() => {});
}
document.addEventListener("click", unlockAlerts, { once: true });

function alertNew(c) {
  try {
    if (!audio) audio = new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.15, audio.currentTime);
    g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.3);
    o.connect(g).connect(audio.destination);
    o.start();
    o.stop(audio.currentTime + 0.3);
  } catch (_) { /* no audio: the title and the badge still tell */ }
  const first = c.messages.find((m) => m.role === "customer");
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      const n = new Notification("新会话 New conversation #" + c.session.id, {
        body: reasonLabel(c.assignment.reason) + (first ? "\n“" + first.text.slice(0, 80) + "”" : ""), tag: "kefu-" + c.session.id });
      n.onclick = () => { window.focus(); select(c.session.id); n.close(); };
    } catch (_) { /* notifications need a service worker on some platforms */ }
  }
  let on = false, ticks = 0;
  clearInterval(flashTimer);
  flashTimer = setInterval(() => {
    on = !on;
    document.title = on ? "● 新会话 New conversation — Kefu" : BASE_TITLE;
    if (++ticks >= 20) stopFlash();
  }, 700);
  document.title = "● 新会话 New conversation — Kefu";
}

function stopFlash() { clearInterval(flashTimer); flashTimer = null; document.title = BASE_TITLE; }
window.addEventListener("focus", () => { if (flashTimer) setTimeout(stopFlash, 3000); });
document.addEventListener("visibilitychange", () => { if (!document.hidden) { requestSync(0); renderChat(); } });

// ---- Rendering ----

function render() { renderList(); renderChat(); }

function offered(c) { return c && !c.assignment.accepted; }
function secondsLeft(c) { return Math.max(0, Math.ceil((Date.parse(c.assignment.accept_by) - now()) / 1000)); }

function renderList() {
  const ul = $("sessions");
  ul.replaceChildren(...[...convs.values()].map((c) => {
    const li = el("li", c.session.id === current ? "active" : "");
    li.dataset.session = c.session.id;
    const head = el("div", "ac-item-head");
    head.append(el("strong", "", "#" + c.session.id), el("span", "ac-lang", c.session.language || "?"));
    if (c.assignment.profile && c.assignment.profile.verified && (c.assignment.profile.tier || "").toLowerCase() === "vip") head.append(el("span", "ac-vip", "VIP"));
    if (offered(c)) { const o = el("span", "ac-left", secondsLeft(c) + "s"); o.title = "待接受 Waiting for you to accept"; head.append(o); }
    if (c.unread) head.append(el("span", "unread", c.unread));
    const last = [...c.messages].reverse().find((m) => m.role === "customer");
    li.append(head, el("div", "ac-item-reason", reasonLabel(c.assignment.reason)), el("div", "ac-item-last", last ? last.text : ""));
    li.onclick = () => select(c.session.id);
    return li;
  }));
  $("empty").hidden = convs.size > 0;
  const waiting = [...convs.values()].filter(offered).length;
  $("badge").hidden = waiting === 0;
  $("badge").textContent = waiting;
}

// select shows a conversation; each keeps its unsent draft.
function select(id) {
  if (current !== id) {
    sendTyping(false);
    closeMenu();
    const prev = convs.get(current);
    if (prev) prev.draft = $("text").value;
    $("text").value = (convs.get(id) || {}).draft || "";
  }
  current = id;
  const c = convs.get(id);
  if (c) c.unread = 0;
  render();
}

function renderChat() {
  const c = convs.get(current);
  const on = !!c;
  for (const b of [$("text"), document.querySelector("#send button[type=submit]"), $("close"), $("disposition"), $("transfer")]) b.disabled = !on;
  $("title").textContent = c ? "会话 Conversation #" + c.session.id + (c.session.language ? " · " + c.session.language : "") : "—";
  $("reason").textContent = c ? reasonLabel(c.assignment.reason) : "";
  $("offer").hidden = !offered(c);
  if (offered(c)) $("countdown").textContent = "剩余 " + secondsLeft(c) + " 秒 · " + secondsLeft(c) + " s left";
  renderTyping();
  renderContext(c);
  if (!c) { $("log").replaceChildren(); return; }
  c.unread = 0;
  const items = c.messages.map((m) => ({ t: Date.parse(m.created_at) || 0, node: messageNode(m) }));
  for (const n of c.notes) items.push({ t: Date.parse(n.created_at) || 0, node: noteNode(n), note: true });
  items.sort((a, b) => a.t - b.t || (a.note ? 1 : 0) - (b.note ? 1 : 0));
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.replaceChildren(...items.map((i) => i.node));
  if (atBottom || !renderChat.last || renderChat.last !== c.session.id) log.scrollTop = log.scrollHeight;
  renderChat.last = c.session.id;
}

function messageNode(m) {
  const li = el("li", "msg " + m.role);
  li.dataset.seq = m.seq;
  const who = m.role === "agent" ? (me && m.agent_id === me.id ? "我 Me" : WHO.agent) : WHO[m.role];
  if (who) li.append(el("span", "who", who));
  li.append(document.createTextNode(m.text));
  const meta = m.meta || {};
  if (m.role === "customer" && (meta.intent || meta.sentiment)) {
    const parts = [];
    if (meta.intent) parts.push("intent " + meta.intent + " · " + Math.round((meta.confidence || 0) * 100) + "%");
    if (meta.language) parts.push(meta.language);
    for (const e of meta.entities || []) parts.push(e.type + "=" + e.value);
    if (meta.sentiment) parts.push("情绪 sentiment " + sentimentLabel(meta.sentiment) + " (" + meta.sentiment.toFixed(2) + ")");
    li.append(el("span", "meta", parts.join(" · ")));
  }
  if (m.role === "bot") {
    const parts = [];
    if (meta.flow) parts.push("flow " + meta.flow + (meta.step ? " › " + meta.step : ""));
    if (meta.reason) parts.push("转人工 escalated: " + reasonLabel(meta.reason));
    if (meta.event) parts.push(meta.event);
    if (meta.llm && meta.llm.model) parts.push("LLM " + meta.llm.model);
    if (parts.length) li.append(el("span", "meta", parts.join(" · ")));
  }
  for (const src of meta.sources || []) {
    const s = el("span", "source", "来源 Source: " + src.title + " (v" + src.version + ", score " + (meta.score || 0).toFixed(2) + ")");
    li.append(s);
  }
  return li;
}

function noteNode(n) {
  const li = el("li", "msg note");
  li.append(el("span", "who", "内部备注 Internal note · " + (n.agent_name || "")), document.createTextNode(n.text));
  return li;
}

function renderTyping() {
  const c = convs.get(current);
  $("typing").hidden = !(c && c.typing);
}

function renderContext(c) {
  $("context").classList.toggle("ac-off", !c);
  if (!c) {
    $("ctx-reason").textContent = "—";
    $("ctx-reason").className = "ac-empty";
    for (const id of ["ctx-profile", "ctx-intents", "ctx-flow", "ctx-sources"]) $(id).replaceChildren();
    $("ctx-transfer").hidden = true;
    return;
  }
  const a = c.assignment, p = a.profile || {};
  $("ctx-reason").className = "";
  $("ctx-reason").replaceChildren(el("strong", "", reasonLabel(a.reason)), el("code", "ac-code", a.reason));

  const dl = $("ctx-profile");
  dl.replaceChildren();
  const row = (k, v) => { if (v === undefined || v === null || v === "") return; const dd = el("dd"); if (v instanceof Node) dd.append(v); else dd.textContent = v; dl.append(el("dt", "", k), dd); };
  const verified = el("span", p.verified ? "badge live ac-verified" : "badge ac-unverified", p.verified ? "✓ 已验证 verified" : "未验证 unverified");
  row("姓名 Name", p.name);
  row("邮箱 E-mail", p.email);
  if (p.tier) { const t = el("span", (p.tier || "").toLowerCase() === "vip" ? "ac-vip" : "", p.tier); row("等级 Tier", t); }
  row("地区 Region", p.region);
  row("产品 Product", p.product);
  row("身份 Identity", verified);
  row("语言 Language", a.language || c.session.language);
  row("渠道 Channel", a.channel);
  row("技能组 Group", a.group);
  if (a.priority) row("优先级 Priority", a.priority);
  if (a.enqueued_at && a.assigned_at) row("等待 Waited", Math.max(0, Math.round((Date.parse(a.assigned_at) - Date.parse(a.enqueued_at)) / 1000)) + " s");
  if (a.transfers) row("转接次数 Transfers", a.transfers);

  $("ctx-transfer").hidden = !a.note;
  $("ctx-transfer-note").textContent = a.note || "";

  const intents = c.messages.filter((m) => m.role === "customer" && m.meta && m.meta.intent);
  $("ctx-intents").replaceChildren(...(intents.length ? intents.map((m) => {
    const li = el("li");
    const conf = Math.round((m.meta.confidence || 0) * 100);
    const bar = el("span", "ac-bar");
    bar.style.setProperty("--w", conf + "%");
    li.append(el("span", "ac-q", "“" + m.text + "”"), el("span", "ac-intent", m.meta.intent + " " + conf + "%"), bar);
    if (m.meta.sentiment) li.append(el("span", "ac-sentiment", sentimentLabel(m.meta.sentiment)));
    return li;
  }) : [el("li", "ac-empty", "没有识别到意图 No intents detected")]));

  const flow = $("ctx-flow");
  flow.replaceChildren();
  const d = c.session.dialog || {};
  let fl = d.flow ? { name: d.flow.name, step: d.flow.step, slots: d.flow.slots } : null;
  if (!fl) {
    const last = [...c.messages].reverse().find((m) => m.meta && m.meta.flow);
    if (last) fl = { name: last.meta.flow, step: last.meta.step, slots: last.meta.slots };
  }
  if (fl) {
    flow.append(el("p", "ac-flow", "流程 Flow: " + fl.name + (fl.step ? " › " + fl.step : "")));
    const slots = Object.entries(fl.slots || {});
    if (slots.length) {
      const sdl = el("dl", "ac-dl");
      for (const [k, v] of slots) sdl.append(el("dt", "", k), el("dd", "", v));
      flow.append(sdl);
    }
  }
  const memory = Object.entries(d.memory || {});
  if (memory.length) flow.append(el("p", "ac-flow", "记住的信息 Remembered: " + memory.map(([k, v]) => k + "=" + v.join(", ")).join(" · ")));

  const seen = new Set(), sources = [];
  for (const m of c.messages) for (const s of (m.meta && m.meta.sources) || []) {
    const k = s.key + "/" + s.language + "/" + s.version;
    if (!seen.has(k)) { seen.add(k); sources.push(s); }
  }
  $("ctx-sources").replaceChildren(...(sources.length ? sources.map((s) => {
    const li = el("li");
    if (s.link) { const a = el("a", "", s.title); a.href = s.link; a.target = "_blank"; a.rel = "noopener"; li.append(a); } else li.append(el("strong", "", s.title));
    li.append(el("span", "ac-code", " v" + s.version + " · " + s.key + " · " + s.language));
    return li;
  }) : [el("li", "ac-empty", "机器人没有引用知识 The bot cited no knowledge")]));
}

// Countdowns tick on their own; a lapsed offer is checked with the server.
setInterval(() => {
  let due = false;
  for (const c of convs.values()) {
    if (!offered(c)) continue;
    const left = secondsLeft(c);
    const li = document.querySelector('#sessions li[data-session="' + c.session.id + '"] .ac-left');
    if (li) li.textContent = left + "s";
    if (left === 0 && !c.lapseChecked) { c.lapseChecked = true; due = true; }
  }
  const c = convs.get(current);
  if (offered(c)) $("countdown").textContent = "剩余 " + secondsLeft(c) + " 秒 · " + secondsLeft(c) + " s left";
  if (due) { requestSync(1500); setTimeout(() => requestSync(0), 5000); }
}, 1000);

// ---- Actions ----

const DISPOSITIONS = {
  resolved: "已解决 Resolved", unresolved: "未解决 Unresolved", follow_up: "待跟进 Follow-up",
  transferred_out: "转至其他渠道 Transferred out", customer_left: "客户已离开 Customer left", duplicate: "重复 Duplicate", spam: "垃圾信息 Spam",
  offline_ticket: "转为留言 Offline ticket",
};

// dispositions fills the close picker with the server's list (resolved first, the default).
function dispositions(list) {
  if (!list || !list.length) return;
  $("disposition").replaceChildren(...list.map((d) => { const o = el("option", "", DISPOSITIONS[d] || d); o.value = d; return o; }));
  $("disposition").value = list.includes("resolved") ? "resolved" : list[0];
}

$("accept").addEventListener("click", () => { if (current !== null) send({ type: "accept", session_id: current }); });

$("presence").addEventListener("change", (e) => send({ type: "presence", status: e.target.value }));

$("close").addEventListener("click", () => {
  if (current === null) return;
  sendTyping(false);
  send({ type: "close", session_id: current, disposition: $("disposition").value });
  $("disposition").selectedIndex = Math.max(0, [...$("disposition").options].findIndex((o) => o.value === "resolved"));
});

function setMode(m) {
  mode = m;
  $("mode-reply").setAttribute("aria-pressed", String(m === "reply"));
  $("mode-note").setAttribute("aria-pressed", String(m === "note"));
  $("send").classList.toggle("ac-note-mode", m === "note");
  $("text").placeholder = m === "note" ? "内部备注，客户看不到 / Internal note: the customer never sees it" : "回复客户 / Reply to the customer";
  document.querySelector("#send button[type=submit]").textContent = m === "note" ? "添加备注 Add note" : "发送 Send";
  if (m === "note") sendTyping(false);
  $("text").focus();
}
$("mode-reply").addEventListener("click", () => setMode("reply"));
$("mode-note").addEventListener("click", () => setMode("note"));

$("send").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || current === null) return;
  if (mode === "note") {
    send({ type: "note", session_id: current, client_id: newId(), text });
  } else {
    const id = newId();
    outbox.set(id, { session_id: current, text });
    send({ type: "reply", session_id: current, client_id: id, text });
    sendTyping(false);
  }
  $("text").value = "";
  closeMenu();
});

$("text").addEventListener("keydown", (e) => {
  if (!$("canned-menu").hidden) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      menu.index = (menu.index + (e.key === "ArrowDown" ? 1 : -1) + menu.items.length) % menu.items.length;
      drawMenu();
      return;
    }
    if (e.key === "Enter" || e.key === "Tab") { e.preventDefault(); pickCanned(menu.items[menu.index]); return; }
    if (e.key === "Escape") { e.preventDefault(); closeMenu(); return; }
  }
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("send").requestSubmit(); }
});

$("text").addEventListener("input", () => {
  const v = $("text").value;
  const m = /^\/([\w-]*)$/.exec(v);
  if (m) openMenu(m[1].toLowerCase()); else closeMenu();
  if (mode === "reply" && v.trim() && !m) sendTyping(true);
  else if (!v.trim()) sendTyping(false);
});

// sendTyping tells the customer the agent is typing: at most every 3 s, and "stopped" after
// 4 s without a keystroke.
function sendTyping(on) {
  if (current === null) return;
  clearTimeout(typingStop);
  if (on) {
    if (Date.now() - typingSent > 3000) { send({ type: "typing", session_id: current, typing: true }); typingSent = Date.now(); }
    const id = current;
    typingStop = setTimeout(() => { send({ type: "typing", session_id: id, typing: false }); typingSent = 0; }, 4000);
  } else if (typingSent) {
    send({ type: "typing", session_id: current, typing: false });
    typingSent = 0;
  }
}

// ---- Canned replies: "/shortcut" ----

async function loadCanned() {
  try {
    canned = (await api("/api/agent/canned")).canned;
    cannedAt = Date.now();
  } catch (_) { /* shown when typing "/" */ }
}

function openMenu(prefix) {
  if (Date.now() - cannedAt > 60000) loadCanned();
  const c = convs.get(current);
  const lang = c ? (c.session.language || "") : "";
  const fits = (x) => !x.language || !lang || lang.startsWith(x.language) || x.language.startsWith(lang);
  menu.items = canned.filter((x) => x.shortcut.startsWith(prefix))
    .sort((a, b) => Number(fits(b)) - Number(fits(a)) || a.shortcut.localeCompare(b.shortcut)).slice(0, 8);
  menu.index = 0;
  if (!menu.items.length) {
    $("canned-menu").replaceChildren(el("li", "ac-empty", canned.length ? "没有这个快捷回复 No such canned reply" : "还没有快捷回复 No canned replies yet"));
    $("canned-menu").hidden = false;
    menu.items = [];
    return;
  }
  drawMenu();
}

function drawMenu() {
  const ul = $("canned-menu");
  if (!menu.items.length) { closeMenu(); return; }
  ul.replaceChildren(...menu.items.map((x, i) => {
    const li = el("li", i === menu.index ? "active" : "");
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(i === menu.index));
    li.append(el("strong", "", "/" + x.shortcut), el("span", "ac-code", x.language || "*"), el("span", "ac-canned-title", x.title),
      el("span", "ac-canned-body", x.text));
    li.onmousedown = (e) => { e.preventDefault(); pickCanned(x); };
    return li;
  }));
  ul.hidden = false;
}

function closeMenu() { $("canned-menu").hidden = true; menu.items = []; }

function pickCanned(x) {
  if (!x) { closeMenu(); return; }
  $("text").value = x.text;
  closeMenu();
  $("text").focus();
  if (mode === "reply") sendTyping(true);
}

// ---- Knowledge search ----

$("kb-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("kb-q").value.trim();
  if (!q) return;
  const c = convs.get(current);
  const lang = $("kb-lang").value || (c ? c.session.language : "") || "";
  const ul = $("kb-results");
  ul.replaceChildren(el("li", "ac-empty", "搜索中… Searching…"));
  try {
    const res = await api("/api/agent/kb/search?" + new URLSearchParams({ q, lang }));
    ul.replaceChildren(...(res.results.length ? res.results.slice(0, 5).map((h) => {
      const li = el("li");
      const head = el("div", "ac-kb-head");
      head.append(el("strong", "", h.title), el("span", "ac-code", " v" + h.version + " · " + Math.round(h.score * 100) + "%"));
      if (h.answers) head.append(el("span", "badge live", "机器人的答案 the bot's answer"));
      const ins = el("button", "small secondary", "插入 Insert");
      ins.type = "button";
      ins.onclick = () => insert(h.text);
      li.append(head, el("p", "ac-kb-text", h.text), ins);
      return li;
    }) : [el("li", "ac-empty", "没有找到 Nothing found")]));
  } catch (err) {
    ul.replaceChildren(el("li", "error", err.message));
  }
});

function insert(text) {
  if (mode !== "reply") setMode("reply");
  const box = $("text");
  box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + "\n" + text : text;
  box.focus();
  sendTyping(true);
}

// ---- Transfer ----

$("transfer").addEventListener("click", async () => {
  if (current === null) return;
  $("transfer-error").textContent = "";
  $("transfer-note").value = "";
  $("transfer-submit").disabled = false;
  const agents = $("transfer-agent"), groups = $("transfer-group");
  agents.replaceChildren(el("option", "", "…"));
  groups.replaceChildren(el("option", "", "…"));
  $("transfer-dialog").showModal();
  try {
    const [a, g] = await Promise.all([api("/api/agent/agents"), api("/api/agent/groups")]);
    agents.replaceChildren(...a.agents.map((x) => {
      const o = el("option", "", x.name + " · " + (STATUS[x.status] || x.status) + (x.status === "online" && !x.room ? " · 满 full" : ""));
      o.value = x.id;
      o.disabled = x.status !== "online" || !x.room;
      return o;
    }));
    if (!a.agents.length) agents.replaceChildren(el("option", "", "没有同事 No colleagues"));
    const firstFree = [...agents.options].find((o) => !o.disabled && o.value);
    if (firstFree) agents.value = firstFree.value;
    groups.replaceChildren(...g.groups.map((x) => {
      const o = el("option", "", x.name + " · L" + x.tier + " · " + x.online + " 人在线 online" + (x.waiting ? " · " + x.waiting + " 等待 waiting" : ""));
      o.value = x.name;
      o.disabled = x.online === 0;
      return o;
    }));
    if (!g.groups.length) groups.replaceChildren(el("option", "", "没有技能组 No skill groups"));
  } catch (err) {
    $("transfer-error").textContent = err.message;
  }
});

$("transfer-cancel").addEventListener("click", () => $("transfer-dialog").close());
$("transfer-dialog").addEventListener("close", () => { pendingTransfer = null; });
for (const id of ["transfer-agent", "transfer-group"]) {
  $(id).addEventListener("focus", () => { document.querySelector('input[name="transfer-to"][value="' + (id === "transfer-agent" ? "agent" : "group") + '"]').checked = true; });
}

$("transfer-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (current === null) return;
  const to = document.querySelector('input[name="transfer-to"]:checked').value;
  const f = { type: "transfer", session_id: current, note: $("transfer-note").value.trim() };
  if (to === "agent") f.to_agent = Number($("transfer-agent").value) || 0; else f.to_group = $("transfer-group").value;
  if (!f.to_agent && !f.to_group) { $("transfer-error").textContent = "选择一位同事或一个技能组 Choose a colleague or a group"; return; }
  $("transfer-error").textContent = "";
  $("transfer-submit").disabled = true;
  pendingTransfer = current;
  sendTyping(false);
  send(f);
});

if (token) connect();
