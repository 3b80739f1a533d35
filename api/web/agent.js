// Kefu agent console: log in, receive escalated conversations with their transcript and the
// bot's context, reply, close.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const convs = new Map(); // session_id → {assignment, session, messages, unread}
  let token = sessionStorage.getItem("kefu.agent"), ws = null, current = null, backoff = 1000;

  const setStatus = (t, cls) => { $("status").textContent = t; $("status").className = "status " + (cls || ""); };
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
  const reasons = { customer_asked: "客户要求人工 customer asked for a person", low_confidence: "机器人无法回答 bot could not answer" };

  $("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    const res = await fetch("/api/agent/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: $("email").value, password: $("password").value }) });
    const body = await res.json();
    if (!res.ok) { $("login-error").textContent = body.error.message; return; }
    token = body.token;
    sessionStorage.setItem("kefu.agent", token);
    connect();
  });

  function showLogin(msg) {
    sessionStorage.removeItem("kefu.agent");
    token = null;
    $("desk").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = msg || "";
  }

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", token }));
    ws.onmessage = (ev) => handle(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      if (!token) return;
      setStatus("reconnecting…");
      if (ev.code < 4500) setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }

  function handle(f) {
    switch (f.type) {
      case "welcome":
        backoff = 1000;
        $("login").hidden = true;
        $("desk").hidden = false;
        $("me").textContent = f.agent.name || f.agent.email;
        setStatus(f.agent.status, "online");
        f.assignments.forEach(assigned);
        break;
      case "assigned": assigned(f); notify(f); break;
      case "message": {
        const c = convs.get(f.message.session_id);
        if (!c || c.messages.some((m) => m.seq === f.message.seq)) break;
        c.messages.push(f.message);
        if (current === c.session.id) renderChat(); else { c.unread++; renderList(); }
        break;
      }
      case "closed":
        convs.delete(f.session_id);
        if (current === f.session_id) { current = null; renderChat(); }
        renderList();
        break;
      case "presence": setStatus(f.status, f.status === "online" ? "online" : ""); break;
      case "error":
        if (f.code === "unauthorized" && !f.session_id) { showLogin(f.message); ws.close(); break; }
        alert(f.message);
        break;
    }
  }

  function assigned(f) {
    const prev = convs.get(f.session.id);
    if (current === null) current = f.session.id;
    const unread = current === f.session.id ? 0 : (prev ? prev.unread : 1);
    convs.set(f.session.id, { assignment: f.assignment, session: f.session, messages: f.messages, unread });
    renderList();
    renderChat();
  }

  function notify(f) {
    document.title = "● 新会话 New conversation — Kefu";
    setTimeout(() => { document.title = "Kefu · 客服工作台 Agent console"; }, 5000);
    try {
      const ctx = new AudioContext(), o = ctx.createOscillator();
      o.connect(ctx.destination); o.frequency.value = 880; o.start(); o.stop(ctx.currentTime + 0.15);
    } catch (_) { /* no audio: the title still changes */ }
  }

  function renderList() {
    const ul = $("sessions");
    ul.replaceChildren(...[...convs.values()].map((c) => {
      const li = document.createElement("li");
      li.dataset.session = c.session.id;
      li.className = c.session.id === current ? "active" : "";
      li.textContent = "#" + c.session.id + " · " + (c.session.language || "?") + " · " + (reasons[c.assignment.reason] || c.assignment.reason);
      if (c.unread) { const u = document.createElement("span"); u.className = "unread"; u.textContent = c.unread; li.appendChild(u); }
      li.onclick = () => { current = c.session.id; c.unread = 0; renderList(); renderChat(); };
      return li;
    }));
    $("empty").hidden = convs.size > 0;
  }

  function renderChat() {
    const c = convs.get(current);
    const enabled = !!c;
    $("text").disabled = !enabled;
    document.querySelector("#send button").disabled = !enabled;
    $("close").disabled = !enabled;
    $("title").textContent = c ? "会话 Conversation #" + c.session.id : "—";
    $("reason").textContent = c ? (reasons[c.assignment.reason] || c.assignment.reason) : "";
    if (!c) { $("log").replaceChildren(); return; }
    c.unread = 0;
    $("log").replaceChildren(...c.messages.map((m) => {
      const li = document.createElement("li");
      li.className = "msg " + m.role;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = { customer: "客户 Customer", bot: "机器人 Bot", agent: "我 Me", system: "" }[m.role];
      li.append(who, document.createTextNode(m.text));
      const meta = m.meta || {};
      if (m.role === "customer" && meta.intent) {
        const s = document.createElement("span");
        s.className = "meta";
        s.textContent = "intent " + meta.intent + " · " + Math.round((meta.confidence || 0) * 100) + "% · " + (meta.language || "") +
          (meta.entities || []).map((e) => " · " + e.type + "=" + e.value).join("");
        li.appendChild(s);
      }
      for (const src of meta.sources || []) {
        const s = document.createElement("span");
        s.className = "source";
        s.textContent = "来源 Source: " + src.title + " (v" + src.version + ", score " + (meta.score || 0).toFixed(2) + ")";
        li.appendChild(s);
      }
      return li;
    }));
    $("log").scrollTop = $("log").scrollHeight;
  }

  $("send").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text || current === null) return;
    ws.send(JSON.stringify({ type: "reply", session_id: current, client_id: newId(), text }));
    $("text").value = "";
  });
  $("close").addEventListener("click", () => {
    if (current !== null) ws.send(JSON.stringify({ type: "close", session_id: current, disposition: "resolved" }));
  });
  $("presence").addEventListener("change", (e) => ws.send(JSON.stringify({ type: "presence", status: e.target.value })));

  if (token) connect();
})();
