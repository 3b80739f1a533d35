// Kefu supervisor: the live queue per skill group with its SLA, the agents and their load,
// the conversations close to their SLA (refreshed every few seconds); the service metrics of
// a date range per agent, group and day; and the administration of skill groups, accounts,
// canned replies and the messages customers left while nobody was online.
//
// Everything goes through the REST API with the bearer token of /api/login, kept in
// sessionStorage (one tab, one login). Text from the server is only ever set as textContent.

const TOKEN = "kefu.supervisor";
const LANG = "kefu.lang";
const LIVE_EVERY = 4000; // ms between refreshes of the live view
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

const T = {
  en: {
    app: "Supervisor", otherLang: "中文", email: "E-mail", password: "Password", login: "Log in", logout: "Log out",
    tabLive: "Live", tabMetrics: "Metrics", tabGroups: "Groups & agents", tabCanned: "Canned replies", tabTickets: "Offline messages",
    liveTitle: "Live queue", liveGroups: "Queue per group", group: "Group", tier: "Tier", waiting: "Waiting", longestWait: "Longest wait",
    sla: "SLA", breached: "Past SLA", online: "Online", freeSlots: "Free slots", agentsTitle: "Agents", agent: "Agent",
    presence: "Presence", load: "Load", groups: "Groups", lastSeen: "Last seen", atRiskTitle: "SLA at risk",
    conversation: "Conversation", waited: "Waited", reason: "Reason", atRiskNone: "Nobody is close to their SLA.",
    metricsTitle: "Service metrics", from: "From", to: "To (inclusive)", show: "Show", byAgent: "By agent", byGroup: "By group",
    byDay: "By day (UTC)", groupsTitle: "Skill groups", name: "Name", languages: "Languages", strategy: "Strategy", overflow: "Overflow",
    members: "Members", newGroup: "New group", editGroup: "Edit group", slaSeconds: "SLA (seconds)", acceptSeconds: "Offer lapses after (seconds)",
    languagesHint: "Languages (comma-separated; empty: any)", matchTier: "Customer tier", matchRegion: "Region", matchProduct: "Product",
    save: "Save", edit: "Edit", accountsTitle: "Accounts", roles: "Roles", newAccount: "New account", maxChats: "Max chats", create: "Create",
    cannedTitle: "Canned replies", shortcut: "Shortcut", language: "Language", title: "Title", text: "Text", anyLanguage: "any",
    ticketsTitle: "Offline messages", state: "State", stateOpen: "open", stateClosed: "closed", stateAll: "all", received: "Received",
    customer: "Customer", ticketsNone: "No messages.", close: "Close",
    leastBusy: "least busy", roundRobin: "round robin", longestIdle: "longest idle", none: "none", anyGroup: "(any agent)",
    unassigned: "(nobody)", slaOk: "OK", slaWarn: "at risk", slaBreach: "breached", online_: "online", away: "away", offline: "offline",
    updated: "updated", ago: "ago", escalated: "Escalated", assigned: "Assigned", closed: "Closed", abandoned: "Abandoned",
    avgWait: "Avg wait", p90Wait: "P90 wait", frt: "First response", aht: "Handling time", slaMet: "SLA met", abandonRate: "Abandon rate",
    transferRate: "Transfer rate", csat: "CSAT", containment: "Bot containment", tickets: "Offline messages", day: "Day",
    notSupervisor: "This account is not a supervisor: ask an admin for the supervisor role.",
    loginEnded: "Your login has ended — please log in again.", unreachable: "The server cannot be reached",
    savedGroup: "Group saved: ", savedAccount: "Account created: ", savedCanned: "Canned reply saved: /", closedTicket: "Message closed: #",
    reasons: { customer_asked: "customer asked", low_confidence: "bot could not answer", negative_sentiment: "unhappy customer",
      anger: "angry customer", vip: "VIP customer", flow: "flow", webhook_failed: "webhook failed" },
  },
  zh: {
    app: "客服主管", otherLang: "English", email: "邮箱", password: "密码", login: "登录", logout: "退出",
    tabLive: "实时", tabMetrics: "指标", tabGroups: "技能组与客服", tabCanned: "快捷回复", tabTickets: "离线留言",
    liveTitle: "实时队列", liveGroups: "各技能组队列", group: "技能组", tier: "级别", waiting: "排队中", longestWait: "最长等待",
    sla: "SLA", breached: "已超时", online: "在线", freeSlots: "空闲名额", agentsTitle: "客服", agent: "客服",
    presence: "状态", load: "负载", groups: "技能组", lastSeen: "最近活动", atRiskTitle: "即将超时",
    conversation: "会话", waited: "已等待", reason: "原因", atRiskNone: "暂无即将超时的会话。",
    metricsTitle: "服务指标", from: "开始日期", to: "结束日期（含）", show: "查询", byAgent: "按客服", byGroup: "按技能组",
    byDay: "按天（UTC）", groupsTitle: "技能组", name: "名称", languages: "语言", strategy: "分配策略", overflow: "溢出到",
    members: "成员", newGroup: "新建技能组", editGroup: "编辑技能组", slaSeconds: "SLA（秒）", acceptSeconds: "接受时限（秒）",
    languagesHint: "语言（逗号分隔；留空：不限）", matchTier: "客户等级", matchRegion: "地区", matchProduct: "产品",
    save: "保存", edit: "编辑", accountsTitle: "账号", roles: "角色", newAccount: "新建账号", maxChats: "最大并发", create: "创建",
    cannedTitle: "快捷回复", shortcut: "快捷键", language: "语言", title: "标题", text: "内容", anyLanguage: "不限",
    ticketsTitle: "离线留言", state: "状态", stateOpen: "待处理", stateClosed: "已处理", stateAll: "全部", received: "时间",
    customer: "客户", ticketsNone: "暂无留言。", close: "关闭",
    leastBusy: "最空闲优先", roundRobin: "轮流分配", longestIdle: "最久未分配优先", none: "无", anyGroup: "（任意客服）",
    unassigned: "（无人）", slaOk: "正常", slaWarn: "临近", slaBreach: "超时", online_: "在线", away: "离开", offline: "离线",
    updated: "更新于", ago: "前", escalated: "转人工", assigned: "已分配", closed: "已结束", abandoned: "放弃",
    avgWait: "平均等待", p90Wait: "P90 等待", frt: "首次响应", aht: "处理时长", slaMet: "SLA 达成", abandonRate: "放弃率",
    transferRate: "转接率", csat: "满意度", containment: "机器人自助率", tickets: "离线留言", day: "日期",
    notSupervisor: "该账号不是客服主管，请联系管理员授予 supervisor 角色。",
    loginEnded: "登录已失效，请重新登录。", unreachable: "无法连接服务器",
    savedGroup: "已保存技能组：", savedAccount: "已创建账号：", savedCanned: "已保存快捷回复：/", closedTicket: "已关闭留言：#",
    reasons: { customer_asked: "客户要求人工", low_confidence: "机器人无法回答", negative_sentiment: "客户不满",
      anger: "客户生气", vip: "VIP 客户", flow: "流程转人工", webhook_failed: "接口调用失败" },
  },
};

let lang = localStorage.getItem(LANG) || (navigator.language.startsWith("zh") ? "zh" : "en");
let token = sessionStorage.getItem(TOKEN);
let me = null;
let view = "live";
let liveTimer = null;
let lastLive = null, lastReport = null;
let groups = [], accounts = [], canned = [];
let editing = null; // the name of the group in the form, or null for a new one

const t = (k) => (T[lang] && T[lang][k]) ?? T.en[k] ?? k;

/** An API error: the HTTP status and the server's {"error":{code,message}}. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** api calls the REST API; a 401 ends the login and shows why. */
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
    throw new ApiError(0, "network", t("unreachable") + " (" + err.message + ").");
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { /* not JSON: described by the status below */ }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(res.status, e.code || "", e.message || res.status + " " + res.statusText);
    if (res.status === 401) showLogin(t("loginEnded") + " (" + err.message + ")");
    throw err;
  }
  return data;
}

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

const td = (text, cls) => el("td", { textContent: text, class: cls || "" });
const num = (v) => td(String(v), "num");

/** fmtSecs writes a duration: 45 s, 3 min 20 s, 1 h 5 min. */
function fmtSecs(s) {
  if (s === null || s === undefined || !isFinite(s)) return "—";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min" + (s % 60 ? " " + (s % 60) + " s" : "");
  return Math.floor(s / 3600) + " h" + (Math.floor(s % 3600 / 60) ? " " + Math.floor(s % 3600 / 60) + " min" : "");
}
const pct = (x) => Math.round(x * 1000) / 10 + "%";
const flash = (msg) => { $("flash").textContent = msg; };
const showError = (el, err) => { if (err.status !== 401) el.textContent = err.message; };
const splitList = (v) => v.split(/[,，\s]+/).map((s) => s.trim()).filter(Boolean);
const reasonText = (r) => (T[lang].reasons[r] || T.en.reasons[r] || r);
const statusText = (s) => t(s === "online" ? "online_" : s);

// ---- language ----

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = "Kefu · " + t("app");
  for (const n of document.querySelectorAll("[data-i18n]")) n.textContent = t(n.dataset.i18n);
  if (lastLive) renderLive(lastLive);
  if (lastReport) renderReport(lastReport);
  if (me) { renderGroups(); renderAccounts(); renderCanned(); if (view === "tickets") loadTickets(); }
  $("group-form-title").textContent = t(editing ? "editGroup" : "newGroup");
}

for (const b of document.querySelectorAll(".lang-switch")) {
  b.addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG, lang);
    applyLang();
  });
}

// ---- login ----

function showLogin(msg) {
  sessionStorage.removeItem(TOKEN);
  token = null;
  me = null;
  clearInterval(liveTimer);
  liveTimer = null;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
  $("password").value = "";
  $("email").focus();
}

const isSupervisor = (ag) => (ag.roles || []).some((r) => r === "supervisor" || r === "admin");
const isAdmin = (ag) => (ag.roles || []).includes("admin");

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  let res, body = null;
  try {
    res = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: $("email").value.trim(), password: $("password").value }) });
    body = await res.json();
  } catch (err) {
    $("login-error").textContent = t("unreachable") + " (" + err.message + ").";
    return;
  }
  if (!res.ok) {
    $("login-error").textContent = (body && body.error && body.error.message) || res.status + " " + res.statusText;
    return;
  }
  if (!isSupervisor(body.agent)) {
    $("login-error").textContent = t("notSupervisor");
    return;
  }
  token = body.token;
  sessionStorage.setItem(TOKEN, token);
  enter(body.agent);
});

$("logout").addEventListener("click", () => showLogin(""));

function enter(agent) {
  me = agent;
  $("login").hidden = true;
  $("app").hidden = false;
  $("me").textContent = agent.name ? agent.name + " <" + agent.email + ">" : agent.email;
  $("account-form").hidden = !isAdmin(agent);
  flash("");
  setView("live");
}

// ---- views ----

function setView(name) {
  view = name;
  for (const v of ["live", "metrics", "groups", "canned", "tickets"]) $("view-" + v).hidden = v !== name;
  for (const b of document.querySelectorAll(".ed-tabs button")) {
    if (b.dataset.view === name) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  clearInterval(liveTimer);
  liveTimer = null;
  flash("");
  if (name === "live") {
    loadLive();
    liveTimer = setInterval(loadLive, LIVE_EVERY);
  } else if (name === "metrics") {
    if (!lastReport) loadReport();
  } else if (name === "groups") {
    loadGroups();
  } else if (name === "canned") {
    loadCanned();
  } else if (name === "tickets") {
    loadTickets();
  }
}

for (const b of document.querySelectorAll(".ed-tabs button")) b.addEventListener("click", () => setView(b.dataset.view));

// ---- live ----

let liveBusy = false;
async function loadLive() {
  if (liveBusy || !token) return;
  liveBusy = true;
  try {
    lastLive = await api("GET", "/api/supervisor/live");
    renderLive(lastLive);
    flash("");
  } catch (err) {
    showError($("flash"), err);
  } finally {
    liveBusy = false;
  }
}

/** slaState is ok, warn (past 80% of the SLA) or breach, from the longest wait. */
function slaState(g) {
  if (g.breached > 0 || (g.waiting > 0 && g.longest_wait_seconds >= g.sla_seconds)) return "breach";
  if (g.waiting > 0 && g.longest_wait_seconds >= 0.8 * g.sla_seconds) return "warn";
  return "ok";
}

function renderLive(l) {
  const now = new Date(l.now);
  $("live-groups").tBodies[0].replaceChildren(...l.groups.map((g) => {
    const state = slaState(g);
    const name = g.name || t("anyGroup");
    return el("tr", { class: "sla-" + state, data: { group: g.name } },
      el("th", { scope: "row" }, name, " ", el("span", { class: "badge sla-badge", textContent: t({ ok: "slaOk", warn: "slaWarn", breach: "slaBreach" }[state]) })),
      td(g.tier ? "L" + g.tier : "—"), num(g.waiting), td(g.waiting ? fmtSecs(g.longest_wait_seconds) : "—", "num"),
      td(fmtSecs(g.sla_seconds), "num"), num(g.breached), num(g.online), num(g.free));
  }));
  $("live-agents").tBodies[0].replaceChildren(...l.agents.map((a) => el("tr", { data: { agent: a.id } },
    el("th", { scope: "row", textContent: a.name }),
    el("td", {}, el("span", { class: "badge status-" + a.status, textContent: statusText(a.status) })),
    el("td", { class: "load" }, el("meter", { min: 0, max: a.max, value: a.active, high: a.max - 0.5, title: a.active + " / " + a.max }),
      " ", el("span", { class: "load-text", textContent: a.active + " / " + a.max })),
    td((a.groups || []).join(", ")),
    td(fmtSecs(Math.max(0, (now - new Date(a.last_seen)) / 1000)) + " " + t("ago")))));
  $("at-risk").tBodies[0].replaceChildren(...l.at_risk.map((w) => el("tr", { class: w.waited_seconds >= w.sla_seconds ? "sla-breach" : "sla-warn", data: { session: w.session_id } },
    el("th", { scope: "row", textContent: "#" + w.session_id }), td(w.group || t("anyGroup")), td(fmtSecs(w.waited_seconds), "num"),
    td(fmtSecs(w.sla_seconds), "num"), td(reasonText(w.reason) + (w.language ? " · " + w.language : "")))));
  $("at-risk-empty").hidden = l.at_risk.length > 0;
  $("refreshed").textContent = t("updated") + " " + new Date().toLocaleTimeString();
}

// ---- metrics ----

const utcDate = (d) => d.toISOString().slice(0, 10);
$("to").value = utcDate(new Date());
$("from").value = utcDate(new Date(Date.now() - 6 * 86400e3));

$("report-form").addEventListener("submit", (e) => { e.preventDefault(); loadReport(); });

async function loadReport() {
  $("report-error").textContent = "";
  const table = $("by-agent");
  table.setAttribute("aria-busy", "true");
  try {
    lastReport = await api("GET", "/api/supervisor/report?from=" + enc($("from").value) + "&to=" + enc($("to").value));
    renderReport(lastReport);
  } catch (err) {
    showError($("report-error"), err);
  } finally {
    table.removeAttribute("aria-busy");
  }
}

// The figures of a Stats row; a figure with nothing to measure shows as —.
const figures = [
  ["escalated", (s) => String(s.escalated)],
  ["assigned", (s) => String(s.assigned)],
  ["closed", (s) => String(s.closed)],
  ["abandoned", (s) => String(s.abandoned)],
  ["avgWait", (s) => (s.assigned ? fmtSecs(s.avg_wait_seconds) : "—")],
  ["p90Wait", (s) => (s.assigned ? fmtSecs(s.p90_wait_seconds) : "—")],
  ["frt", (s) => (s.avg_first_response_seconds ? fmtSecs(s.avg_first_response_seconds) : "—")],
  ["aht", (s) => (s.closed && s.avg_handle_seconds ? fmtSecs(s.avg_handle_seconds) : "—")],
  ["slaMet", (s) => (s.assigned + s.abandoned ? pct(s.sla_met) : "—")],
  ["abandonRate", (s) => (s.escalated ? pct(s.abandon_rate) : "—")],
  ["transferRate", (s) => (s.assigned ? pct(s.transfer_rate) : "—")],
  ["csat", (s) => (s.csat_count ? s.csat_avg.toFixed(2) + " (" + s.csat_count + ", " + pct(s.csat_satisfied) + " 👍)" : "—")],
];

function renderReport(r) {
  const cards = [
    ["escalated", String(r.total.escalated)],
    ["containment", r.sessions ? pct(r.containment) + " (" + r.contained + "/" + r.sessions + ")" : "—"],
    ...figures.slice(4).map(([k, f]) => [k, f(r.total)]),
    ["tickets", String(r.tickets)],
  ];
  $("summary").replaceChildren(...cards.map(([k, v]) => el("div", { class: "sv-card", data: { figure: k } },
    el("dt", { textContent: t(k) }), el("dd", { textContent: v }))));
  const fill = (id, first, rows, key) => {
    const table = $(id);
    table.tHead.replaceChildren(el("tr", {}, el("th", { scope: "col", textContent: t(first) }),
      ...figures.map(([k]) => el("th", { scope: "col", textContent: t(k) }))));
    table.tBodies[0].replaceChildren(...rows.map((s) => el("tr", { data: { key: s.key } },
      el("th", { scope: "row", textContent: key(s) }), ...figures.map(([, f]) => td(f(s), "num")))));
  };
  fill("by-agent", "agent", r.by_agent, (s) => s.key || t("unassigned"));
  fill("by-group", "group", r.by_group, (s) => s.key || t("anyGroup"));
  fill("by-day", "day", r.by_day, (s) => s.key);
}

// ---- groups and accounts ----

async function loadGroups() {
  try {
    const [g, a] = await Promise.all([api("GET", "/api/admin/groups"), api("GET", "/api/admin/agents")]);
    groups = g.groups;
    accounts = a.agents;
    renderGroups();
    renderAccounts();
  } catch (err) {
    showError($("flash"), err);
  }
}

const accountName = (id) => { const a = accounts.find((x) => x.id === id); return a ? a.name || a.email : "#" + id; };
const strategyText = (s) => t({ least_busy: "leastBusy", round_robin: "roundRobin", longest_idle: "longestIdle" }[s] || s);

function renderGroups() {
  $("groups").tBodies[0].replaceChildren(...groups.map((g) => el("tr", { data: { group: g.name } },
    el("th", { scope: "row", textContent: g.name }), td("L" + g.tier),
    td((g.languages || []).join(", ") || t("anyLanguage")), td(strategyText(g.strategy)), td(fmtSecs(g.sla_seconds), "num"),
    td(g.overflow || "—"), td((g.members || []).map(accountName).join(", ")),
    el("td", {}, el("button", { type: "button", class: "secondary small", textContent: t("edit"), onclick: () => editGroup(g) })))));
  const overflow = $("g-overflow");
  const keep = overflow.value;
  overflow.replaceChildren(el("option", { value: "", textContent: t("none") }),
    ...groups.filter((g) => g.name !== editing).map((g) => el("option", { value: g.name, textContent: g.name })));
  overflow.value = keep;
  const checked = new Set([...document.querySelectorAll("#g-members input:checked")].map((i) => Number(i.value)));
  const legend = $("g-members").querySelector("legend");
  $("g-members").replaceChildren(legend, ...accounts.filter((a) => (a.roles || []).some((r) => r === "agent" || r === "admin")).map((a) =>
    el("label", { class: "ed-check" }, el("input", { type: "checkbox", name: "member", value: String(a.id), checked: checked.has(a.id) }),
      " " + (a.name || a.email))));
}

function renderAccounts() {
  $("accounts").tBodies[0].replaceChildren(...accounts.map((a) => el("tr", { data: { account: a.id } },
    el("th", { scope: "row", textContent: a.name }), td(a.email || "—"), td((a.roles || []).join(", ")),
    el("td", {}, el("span", { class: "badge status-" + a.status, textContent: statusText(a.status) })),
    td(a.active + " / " + a.max_chats, "num"), td((a.groups || []).join(", ")))));
}

function editGroup(g) {
  editing = g ? g.name : null;
  g = g || { name: "", tier: 1, strategy: "least_busy", sla_seconds: 60, accept_seconds: 30, overflow: "", languages: [], profile_match: {}, members: [] };
  $("group-form-title").textContent = t(editing ? "editGroup" : "newGroup");
  $("g-name").value = g.name;
  $("g-name").readOnly = !!editing; // a group is known by its name
  $("g-tier").value = String(g.tier);
  $("g-strategy").value = g.strategy;
  $("g-sla").value = g.sla_seconds;
  $("g-accept").value = g.accept_seconds;
  $("g-languages").value = (g.languages || []).join(", ");
  const pm = g.profile_match || {};
  $("g-match-tier").value = pm.tier || "";
  $("g-match-region").value = pm.region || "";
  $("g-match-product").value = pm.product || "";
  for (const i of document.querySelectorAll("#g-members input")) i.checked = false;
  renderGroups();
  $("g-overflow").value = g.overflow || "";
  const members = new Set(g.members || []);
  for (const i of document.querySelectorAll("#g-members input")) i.checked = members.has(Number(i.value));
  $("group-error").textContent = "";
  (editing ? $("g-sla") : $("g-name")).focus();
}

$("g-new").addEventListener("click", () => editGroup(null));

$("group-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("group-error").textContent = "";
  flash("");
  const profile = {};
  for (const [k, id] of [["tier", "g-match-tier"], ["region", "g-match-region"], ["product", "g-match-product"]]) {
    const v = $(id).value.trim();
    if (v) profile[k] = v;
  }
  const g = {
    name: $("g-name").value.trim(), tier: Number($("g-tier").value), strategy: $("g-strategy").value,
    sla_seconds: Number($("g-sla").value), accept_seconds: Number($("g-accept").value), overflow: $("g-overflow").value,
    languages: splitList($("g-languages").value), profile_match: profile,
    members: [...document.querySelectorAll("#g-members input:checked")].map((i) => Number(i.value)),
  };
  try {
    const saved = await api("PUT", "/api/admin/groups", g);
    flash(t("savedGroup") + saved.name);
    await loadGroups();
    editGroup(groups.find((x) => x.name === saved.name) || null);
  } catch (err) {
    showError($("group-error"), err);
  }
});

$("account-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("account-error").textContent = "";
  flash("");
  const body = {
    email: $("a-email").value.trim(), name: $("a-name").value.trim(), password: $("a-password").value,
    languages: splitList($("a-languages").value), max_chats: Number($("a-max").value) || 0,
    roles: [...document.querySelectorAll("#account-form input[name=role]:checked")].map((i) => i.value),
  };
  try {
    const ag = await api("POST", "/api/admin/agents", body);
    flash(t("savedAccount") + ag.email);
    $("account-form").reset();
    await loadGroups();
  } catch (err) {
    showError($("account-error"), err);
  }
});

// ---- canned replies ----

async function loadCanned() {
  try {
    canned = (await api("GET", "/api/admin/canned")).canned;
    renderCanned();
  } catch (err) {
    showError($("flash"), err);
  }
}

function renderCanned() {
  $("canned").tBodies[0].replaceChildren(...canned.map((c) => el("tr", { data: { shortcut: c.shortcut } },
    el("th", { scope: "row", textContent: "/" + c.shortcut }), td(c.language || t("anyLanguage")), td(c.title),
    el("td", { class: "sv-text", textContent: c.text }),
    el("td", {}, el("button", { type: "button", class: "secondary small", textContent: t("edit"), onclick: () => {
      $("c-shortcut").value = c.shortcut;
      $("c-language").value = c.language;
      $("c-title").value = c.title;
      $("c-text").value = c.text;
      $("c-text").focus();
    } })))));
}

$("canned-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("canned-error").textContent = "";
  flash("");
  try {
    const c = await api("PUT", "/api/admin/canned", { shortcut: $("c-shortcut").value.trim(), language: $("c-language").value,
      title: $("c-title").value.trim(), text: $("c-text").value });
    flash(t("savedCanned") + c.shortcut);
    $("canned-form").reset();
    await loadCanned();
  } catch (err) {
    showError($("canned-error"), err);
  }
});

// ---- offline messages ----

$("t-state").addEventListener("change", loadTickets);

async function loadTickets() {
  try {
    const list = (await api("GET", "/api/supervisor/tickets?state=" + enc($("t-state").value))).tickets;
    $("tickets").tBodies[0].replaceChildren(...list.map((k) => el("tr", { data: { ticket: k.id } },
      el("th", { scope: "row", textContent: "#" + k.id }), td(new Date(k.created_at).toLocaleString()),
      td([k.name, k.email].filter(Boolean).join(" · ") || "#" + k.session_id), td(k.language || "—"),
      el("td", { class: "sv-text", textContent: k.text }), td(t(k.state === "open" ? "stateOpen" : "stateClosed")),
      el("td", {}, k.state === "open" ? el("button", { type: "button", class: "secondary small", textContent: t("close"), onclick: async () => {
        try {
          await api("POST", "/api/supervisor/tickets/" + k.id + "/close");
          flash(t("closedTicket") + k.id);
          loadTickets();
        } catch (err) {
          showError($("flash"), err);
        }
      } }) : null))));
    $("tickets-empty").hidden = list.length > 0;
  } catch (err) {
    showError($("flash"), err);
  }
}

// ---- start ----

applyLang();
if (token) {
  api("GET", "/api/agent/me").then((ag) => {
    if (isSupervisor(ag)) enter(ag); else showLogin(t("notSupervisor"));
  }).catch((err) => showLogin(err.message));
} else {
  showLogin("");
}
