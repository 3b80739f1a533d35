// Kefu chat widget: one conversation per browser, kept in localStorage, over a WebSocket that
// resumes from the last seq it saw and resends unacknowledged messages with their client ids.
// A lost connection is retried with exponential backoff and jitter (1 s doubling to 30 s, each
// wait drawn between half and all of it, so that the customers of a server that went away do
// not all come back in the same instant), and the header says so: 连接中断，正在重连… /
// Reconnecting…, then 已重新连接 / Reconnected. A message the server could not take for now
// (an error frame with code unavailable or rate_limited) stays pending and is sent again.
//
// A site that knows who its customer is sets, before this script, window.kefuIdentity =
// {profile: {name, email, tier, region, product}, signature}: the signature is the hex
// HMAC-SHA256, under KEFU_IDENTITY_SECRET, of the profile's canonical JSON (see
// dialog/profile.go), computed on the site's server. It goes with the session's creation and
// with every hello; a profile without a valid signature is kept but never makes a VIP.
(() => {
  "use strict";
  const KEY = "kefu.session";
  const $ = (id) => document.getElementById(id);
  const log = $("log"), statusEl = $("status"), banner = $("banner"), quick = $("quick"), human = $("human");
  const bannerText = $("banner-text"), queueActions = $("queue-actions"), offlineOffer = $("offline-offer"),
    bannerError = $("banner-error"), ticket = $("ticket"), ticketError = $("ticket-error");
  const identity = window.kefuIdentity && window.kefuIdentity.profile ?
    { profile: window.kefuIdentity.profile, signature: window.kefuIdentity.signature || "" } : {};
  const zh = navigator.language.startsWith("zh");
  let sess = JSON.parse(localStorage.getItem(KEY) || "null");
  // lastSeq is what this page has shown, every message up to it: a new page starts from 0 and
  // gets the whole conversation; a reconnect asks only for what it missed. A message that
  // arrives past a gap (a frame lost between servers) leaves lastSeq below the gap, so the
  // next hello, or catchUp, fills it.
  let ws = null, backoff = 1000, seen = new Set(), outbox = new Map(), timer = null, lastSeq = 0, maxSeq = 0;
  // everOnline: a welcome came once, so the next one is a reconnection; resendTimer sends the
  // outbox again after a retryable error.
  let everOnline = false, resendTimer = null, onlineTimer = null;
  // streaming is the bot's answer while an LLM writes it (delta frames): a bubble that grows,
  // replaced by the bot's next message.
  let streaming = null;
  // survey is the newest message that asks the customer to rate a person's help ({seq, li,
  // form}); ratedSeq the newest thanks for a rating. The form shows while the survey is newer.
  let survey = null, ratedSeq = 0;
  // The state the widget last showed, and whether the customer chose to keep waiting rather
  // than leave a message.
  let shownState = "", keepWaiting = false;

  const save = () => localStorage.setItem(KEY, JSON.stringify(sess));
  const setStatus = (text, cls) => { statusEl.textContent = text; statusEl.className = "status " + (cls || ""); };
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));

  async function createSession() {
    const res = await fetch("/api/sessions", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ channel: "web", language: zh ? "zh" : "en", ...identity }) });
    if (!res.ok) throw new Error("could not start a conversation: " + res.status);
    const body = await res.json();
    sess = { id: body.session_id, token: body.token };
    lastSeq = 0;
    save();
  }

  function bubble(m) {
    const li = document.createElement("li");
    li.className = "msg " + m.role;
    if (m.client_id) li.dataset.clientId = m.client_id;
    if (m.seq) li.dataset.seq = m.seq;
    if (m.role === "agent" || m.role === "bot") {
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = m.role === "agent" ? "人工客服 Agent" : "智能客服 Bot";
      li.appendChild(who);
    }
    li.appendChild(document.createTextNode(m.text));
    for (const c of (m.meta && m.meta.cards) || []) {
      const card = document.createElement(c.url ? "a" : "div");
      card.className = "card";
      if (c.url) { card.href = c.url; card.target = "_blank"; card.rel = "noopener"; }
      const title = document.createElement("strong");
      title.textContent = c.title;
      const body = document.createElement("span");
      body.textContent = c.body;
      card.append(title, body);
      li.appendChild(card);
    }
    const numbered = !!(m.meta && m.meta.llm); // an LLM's answer cites its sources as [n]
    ((m.meta && m.meta.sources) || []).forEach((src, i) => {
      const s = document.createElement("span");
      s.className = "source";
      s.textContent = "来源 Source: " + (numbered ? "[" + (i + 1) + "] " : "") + src.title + " (v" + src.version + ")";
      li.appendChild(s);
    });
    if (m.role === "bot" && m.seq && m.meta && (m.meta.sources || []).length) li.appendChild(votes(m.seq));
    return li;
  }

  // votes are the thumbs under an answer from the knowledge base: was it helpful?
  function votes(seq) {
    const box = document.createElement("span");
    box.className = "votes";
    for (const [vote, label, title] of [[1, "👍", "有帮助 Helpful"], [-1, "👎", "没帮助 Not helpful"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "vote";
      b.dataset.vote = vote;
      b.textContent = label;
      b.title = title;
      b.setAttribute("aria-label", title);
      b.onclick = async () => {
        const res = await fetch("/api/sessions/" + sess.id + "/feedback", {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: "Bearer " + sess.token },
          body: JSON.stringify({ seq: seq, vote: vote }),
        }).catch(() => null);
        if (res && res.ok) {
          box.querySelectorAll("button").forEach((x) => x.classList.toggle("chosen", x === b));
          box.dataset.voted = vote;
        }
      };
      box.appendChild(b);
    }
    return box;
  }

  function render(m) {
    if (seen.has(m.seq)) return;
    seen.add(m.seq);
    while (seen.has(lastSeq + 1)) lastSeq++;
    if (m.seq > lastSeq) gapSoon();
    const pending = m.client_id && log.querySelector('li.pending[data-client-id="' + CSS.escape(m.client_id) + '"]');
    // A message that fills a gap goes where it belongs, before the first one after it.
    const later = m.seq < maxSeq && [...log.querySelectorAll("li[data-seq]")].find((x) => Number(x.dataset.seq) > m.seq);
    maxSeq = Math.max(maxSeq, m.seq);
    const li = bubble(m);
    if (pending) pending.replaceWith(li);
    else if (later) log.insertBefore(li, later);
    else if (streaming && m.role !== "customer") { streaming.replaceWith(li); streaming = null; }
    else log.appendChild(li);
    // A bot reply's buttons, else the questions other customers asked next.
    if (m.role === "bot") showQuick((m.meta && (m.meta.quick_replies || m.meta.related)) || []);
    noteSurvey(m, li);
    // A message that moves the conversation says so even if its state frame is late.
    const moved = { agent_joined: "agent", requeued: "queued", agent_closed: "bot", abandoned: "bot", offline_ticket: "bot" };
    const ev = m.meta && m.meta.event;
    if (moved[ev] && moved[ev] !== shownState) showState({ state: moved[ev] });
    log.scrollTop = log.scrollHeight;
  }

  // api calls the REST API for this session with its token; it resolves to {ok, status, body}
  // and never throws (a network failure is status 0 with a message).
  async function api(path, payload) {
    try {
      const res = await fetch("/api/sessions/" + sess.id + path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + sess.token },
        body: JSON.stringify(payload || {}),
      });
      const body = await res.json().catch(() => ({}));
      return { ok: res.ok, status: res.status, body };
    } catch (err) {
      return { ok: false, status: 0, body: { error: { message: "网络错误 / Network error" } } };
    }
  }

  const problem = (r) => (r.body && r.body.error && r.body.error.message) || ("HTTP " + r.status);

  // noteSurvey keeps the rating form under the newest survey, until a rating thanks for it.
  function noteSurvey(m, li) {
    const meta = m.meta || {};
    if (meta.survey && (!survey || m.seq > survey.seq)) {
      if (survey && survey.form) survey.form.remove();
      survey = { seq: m.seq, li, form: null };
    }
    if (meta.event === "rated") ratedSeq = Math.max(ratedSeq, m.seq);
    if (!survey) return;
    if (ratedSeq > survey.seq) {
      if (survey.form) survey.form.remove();
      survey.form = null;
    } else if (!survey.form) {
      survey.form = csatForm();
      survey.li.appendChild(survey.form);
    }
  }

  // csatForm asks for 1–5 stars and an optional comment.
  function csatForm() {
    const form = document.createElement("form");
    form.className = "csat";
    const stars = document.createElement("span");
    stars.className = "stars";
    stars.setAttribute("role", "group");
    stars.setAttribute("aria-label", "评分 Rating");
    let score = 0;
    for (let n = 1; n <= 5; n++) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "star";
      b.dataset.score = n;
      b.textContent = "★";
      b.title = n + " 星 / " + n + (n === 1 ? " star" : " stars");
      b.setAttribute("aria-label", b.title);
      b.setAttribute("aria-pressed", "false");
      b.onclick = () => {
        score = n;
        stars.querySelectorAll(".star").forEach((x) => {
          x.classList.toggle("on", Number(x.dataset.score) <= n);
          x.setAttribute("aria-pressed", String(Number(x.dataset.score) === n));
        });
        sendBtn.disabled = false;
      };
      stars.appendChild(b);
    }
    const comment = document.createElement("textarea");
    comment.className = "csat-comment";
    comment.maxLength = 2000;
    comment.rows = 2;
    comment.placeholder = "意见（可选）/ Comment (optional)";
    comment.setAttribute("aria-label", "Comment");
    const sendBtn = document.createElement("button");
    sendBtn.type = "submit";
    sendBtn.className = "csat-send";
    sendBtn.textContent = "提交评价 / Send rating";
    sendBtn.disabled = true;
    const error = document.createElement("span");
    error.className = "form-error";
    error.setAttribute("role", "alert");
    error.hidden = true;
    form.append("请为本次人工服务评分 / Rate the help you got", stars, comment, sendBtn, error);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!score) return;
      sendBtn.disabled = true;
      const r = await api("/csat", { score, comment: comment.value });
      if (r.ok) {
        form.remove();
        if (survey) survey.form = null;
        if (r.body.message) render(r.body.message);
        else log.appendChild(bubble({ role: "system", text: "感谢您的评价！/ Thank you for your feedback!" }));
        return;
      }
      error.hidden = false;
      if (r.status === 409) { // rated already (another tab, or before a reload): nothing more to send
        error.textContent = "您已经评价过本次服务 / You have already rated this conversation";
        stars.querySelectorAll("button").forEach((x) => { x.disabled = true; });
        comment.disabled = true;
        return;
      }
      error.textContent = "⚠ " + problem(r);
      sendBtn.disabled = false;
    });
    return form;
  }

  // stream shows a delta: the next piece of the bot's answer to the message f.client_id.
  function stream(f) {
    const replyTo = f.client_id || "";
    if (!streaming || streaming.dataset.replyTo !== replyTo) {
      if (streaming) streaming.remove();
      streaming = bubble({ role: "bot", text: "" });
      streaming.classList.add("streaming");
      streaming.dataset.replyTo = replyTo;
      log.appendChild(streaming);
    }
    streaming.lastChild.appendData(f.text);
    log.scrollTop = log.scrollHeight;
  }

  function dropStream() {
    if (streaming) streaming.remove();
    streaming = null;
  }

  function showQuick(items) {
    quick.replaceChildren(...items.map((t) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = t;
      b.onclick = () => send(t);
      return b;
    }));
  }

  function showState(f) {
    shownState = f.state;
    // The way to a person is there from the first screen, and goes while one is coming or here.
    human.hidden = f.state === "queued" || f.state === "agent";
    queueActions.hidden = f.state !== "queued";
    bannerError.hidden = true;
    if (f.state !== "queued") { ticket.hidden = true; keepWaiting = false; }
    if (f.state === "queued") {
      banner.hidden = false;
      bannerText.textContent = queueText(f);
      // Nobody who could take the conversation is online: offer to leave a message instead.
      const nobody = f.online === 0;
      offlineOffer.hidden = !nobody;
      if (nobody && !keepWaiting) openTicket();
    } else if (f.state === "agent") {
      banner.hidden = false;
      bannerText.textContent = "人工客服为您服务中 · You are chatting with an agent";
    } else {
      banner.hidden = true;
    }
  }

  // queueText is where a waiting customer stands: "您前面还有 N 位，预计等待约 M 分钟 · You
  // are number N in line, about M min".
  function queueText(f) {
    let zhText = "正在排队等待人工客服", enText = "Waiting for an agent";
    if (f.position) {
      const ahead = f.position - 1;
      zhText += "：" + (ahead > 0 ? "您前面还有 " + ahead + " 位" : "下一位就是您");
      enText = "You are number " + f.position + " in line";
      if (f.wait_seconds > 0) {
        const min = Math.max(1, Math.ceil(f.wait_seconds / 60));
        zhText += "，预计等待约 " + min + " 分钟";
        enText += ", about " + min + " min";
      }
    }
    if (f.online === 0) {
      zhText += "。现在没有客服在线，请留言";
      enText += ". Nobody is online: leave a message";
    }
    return zhText + " · " + enText;
  }

  function openTicket() {
    if (!ticket.hidden) return;
    const p = identity.profile || {};
    if (!$("ticket-name").value && p.name) $("ticket-name").value = p.name;
    if (!$("ticket-email").value && p.email) $("ticket-email").value = p.email;
    ticketError.hidden = true;
    ticket.hidden = false;
  }

  async function leaveQueue() {
    const r = await api("/abandon");
    if (r.ok) {
      if (r.body.message) render(r.body.message);
      showState({ state: "bot" });
      return;
    }
    bannerError.textContent = "⚠ " + problem(r);
    bannerError.hidden = false;
  }

  async function sendTicket() {
    const r = await api("/ticket", { name: $("ticket-name").value, email: $("ticket-email").value, text: $("ticket-text").value });
    if (!r.ok) {
      ticketError.textContent = "⚠ " + problem(r);
      ticketError.hidden = false;
      return;
    }
    $("ticket-text").value = "";
    ticket.hidden = true;
    if (r.body.message) { render(r.body.message); showState({ state: "bot" }); }
    else log.appendChild(bubble({ role: "system", text: "已收到您的留言，我们会通过邮件回复您。/ We've got your message and will reply by e-mail." }));
    log.scrollTop = log.scrollHeight;
  }

  // The next wait before reconnecting: exponential, with jitter.
  function nextDelay() {
    const d = backoff / 2 + Math.random() * backoff / 2;
    backoff = Math.min(backoff * 2, 30000);
    return d;
  }

  // resendSoon sends what is unacknowledged again after a short, jittered wait (the server
  // drops a client id it already stored, so a resend never duplicates).
  function resendSoon() {
    if (resendTimer) return;
    resendTimer = setTimeout(() => {
      resendTimer = null;
      if (!ws || ws.readyState !== WebSocket.OPEN) return; // the welcome resends
      for (const [id, text] of outbox) ws.send(JSON.stringify({ type: "message", client_id: id, text }));
    }, 1000 + Math.random() * 2000);
  }

  // catchUp fetches the messages after the last one shown (render drops those it has).
  async function catchUp() {
    try {
      const res = await fetch("/api/sessions/" + sess.id + "/messages?after=" + lastSeq, { headers: { Authorization: "Bearer " + sess.token } });
      if (res.ok) (await res.json()).messages.forEach(render);
    } catch (err) { /* the next reconnect brings them */ }
  }

  // gapSoon fetches what is missing below a message that came past a gap, unless it turns up
  // meanwhile (frames from two servers may cross).
  let gapTimer = null;
  function gapSoon() {
    if (gapTimer) return;
    gapTimer = setTimeout(() => {
      gapTimer = null;
      if ([...seen].some((s) => s > lastSeq)) catchUp();
    }, 1500);
  }

  const retryable = (code) => code === "unavailable" || code === "rate_limited";

  function connect() {
    clearTimeout(timer);
    if (!everOnline) setStatus("connecting…");
    const sock = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/customer");
    let welcomed = false;
    ws = sock;
    sock.onopen = () => sock.send(JSON.stringify({ type: "hello", session_id: sess.id, token: sess.token, since: lastSeq, ...identity }));
    sock.onmessage = async (ev) => {
      const f = JSON.parse(ev.data);
      switch (f.type) {
        case "welcome":
          welcomed = true;
          backoff = 1000;
          clearTimeout(onlineTimer);
          if (everOnline) {
            setStatus("已重新连接 / Reconnected", "online reconnected");
            onlineTimer = setTimeout(() => setStatus("online", "online"), 4000);
          } else {
            setStatus("online", "online");
          }
          everOnline = true;
          f.messages.forEach(render);
          showState(f.session);
          for (const [id, text] of outbox) sock.send(JSON.stringify({ type: "message", client_id: id, text }));
          break;
        case "message": render(f.message); break;
        case "delta": stream(f); break;
        case "ack":
          outbox.delete(f.client_id);
          // A resend of a message stored before a failure: its reply never came here.
          if (f.duplicate && f.seq > lastSeq) catchUp();
          break;
        case "state": showState(f); break;
        case "typing": showTyping(f.role === "agent" && f.typing); break;
        case "error":
          if (f.code === "not_found" && !f.client_id) { // the conversation is gone: start anew
            localStorage.removeItem(KEY);
            await createSession();
            log.replaceChildren(); seen.clear(); maxSeq = 0; survey = null; ratedSeq = 0;
            sock.close();
            return;
          }
          if (retryable(f.code)) {
            // The server cannot take it now (its database is away, or this is too fast): a
            // hello is tried again on a new connection, messages on this one.
            if (!welcomed) { sock.close(); return; }
            resendSoon();
            break;
          }
          if (f.client_id) {
            if (streaming && streaming.dataset.replyTo === f.client_id) dropStream();
            outbox.delete(f.client_id);
            const li = log.querySelector('li.pending[data-client-id="' + CSS.escape(f.client_id) + '"]');
            if (li) { li.classList.add("system"); li.textContent = "⚠ " + f.message; }
          } else {
            setStatus("⚠ " + f.message);
          }
          break;
      }
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      dropStream(); // the reply, if any, comes with the backlog on reconnect
      clearTimeout(onlineTimer);
      if (ev.code >= 4500) { setStatus("disconnected: " + ev.reason); return; }
      setStatus("连接中断，正在重连… / Reconnecting…", "reconnecting");
      timer = setTimeout(connect, nextDelay());
    };
  }

  // The agent's typing shows under the conversation; it clears itself if the "stopped" frame
  // never comes.
  let typingClear = null, typingSent = 0;
  function showTyping(on) {
    $("typing").hidden = !on;
    clearTimeout(typingClear);
    if (on) typingClear = setTimeout(() => { $("typing").hidden = true; }, 6000);
  }
  // While a person has the conversation, the customer's typing is shown to them (at most
  // every 3 s).
  $("text").addEventListener("input", () => {
    if (shownState !== "agent" || !ws || ws.readyState !== WebSocket.OPEN || Date.now() - typingSent < 3000) return;
    typingSent = Date.now();
    ws.send(JSON.stringify({ type: "typing", typing: true }));
  });

  function send(text) {
    text = text.trim();
    if (!text) return;
    showTyping(false);
    const id = newId();
    outbox.set(id, text);
    const li = bubble({ role: "customer", text, client_id: id });
    li.classList.add("pending");
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
    quick.replaceChildren();
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "message", client_id: id, text }));
  }

  // A page that was in the background or offline tries at once when it is back.
  window.addEventListener("online", () => { if (ws && ws.readyState === WebSocket.CLOSED) { backoff = 1000; connect(); } });

  $("leave").addEventListener("click", leaveQueue);
  offlineOffer.addEventListener("click", () => { keepWaiting = false; openTicket(); });
  $("keep-waiting").addEventListener("click", () => { keepWaiting = true; ticket.hidden = true; });
  ticket.addEventListener("submit", (e) => { e.preventDefault(); sendTicket(); });
  // The words the bot always reads as a request for a person (dialog's askHuman).
  human.addEventListener("click", () => send(zh ? "转人工" : "Talk to a person"));
  $("send").addEventListener("submit", (e) => { e.preventDefault(); send($("text").value); $("text").value = ""; });
  $("reset").addEventListener("click", async (e) => {
    e.preventDefault();
    localStorage.removeItem(KEY);
    location.reload();
  });

  (async () => {
    try {
      if (!sess) await createSession();
      connect();
    } catch (err) {
      setStatus("⚠ " + err.message);
    }
  })();
})();
