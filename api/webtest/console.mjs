// Walks the agent console in a real headless Chromium: customers (speaking Kefu's customer
// WebSocket protocol from a page of their own, so that every frame they receive can be
// checked) ask for a person; agents are notified, accept, read the bot's context, answer with
// canned replies and knowledge answers, keep internal notes, transfer and close.
//
//   node api/webtest/console.mjs BASE_URL AGENT_EMAIL SECOND_AGENT_EMAIL PASSWORD [SCREENSHOT_DIR [SCENARIO]]
//
// SCENARIO is "walk" (the default: the whole desk, in Chinese and English) or "lapse" (an
// offer nobody accepts goes away from the console, and the agent is made away; the server's
// offers must lapse within seconds). The server must have the desk of cmd/kefu's setupDesk:
// both agents in one skill group, and the canned replies /thanks (zh and en) and /bye. Exits
// non-zero on the first step that fails.
import { chromium } from "playwright-core";

const [base, email1, email2, password, shots, scenario = "walk"] = process.argv.slice(2);
if (!base || !email1 || !email2 || !password) {
  console.error("usage: node console.mjs BASE_URL AGENT_EMAIL SECOND_AGENT_EMAIL PASSWORD [SCREENSHOT_DIR]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
const step = (name) => console.log("step: " + name);

// An agent's browser, where Notification records what it was asked to show.
async function agentPage(name) {
  const ctx = await browser.newContext({ locale: "zh-CN" });
  await ctx.addInitScript(() => {
    window.kefuNotified = [];
    window.Notification = class {
      static permission = "granted";
      static requestPermission() { return Promise.resolve("granted"); }
      constructor(title, opts) { window.kefuNotified.push({ title, body: opts && opts.body }); }
      close() {}
    };
  });
  const page = await ctx.newPage();
  page.setDefaultTimeout(10000);
  page.on("pageerror", (err) => console.log(name + " page error: " + err.message));
  return page;
}

async function logIn(page, email) {
  await page.goto(base + "/agent");
  await page.fill("#email", email);
  await page.fill("#password", password);
  await page.click("#login button");
  await page.locator("#desk:not([hidden])").waitFor();
  await page.locator("#status", { hasText: "online" }).waitFor();
}

// A customer: a session of their own and its WebSocket, every frame kept.
async function customer(language) {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(10000);
  await page.goto(base + "/healthz");
  const id = await page.evaluate(async (language) => {
    const res = await fetch("/api/sessions", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ channel: "web", language }) });
    const s = await res.json();
    window.kefuFrames = [];
    await new Promise((resolve, reject) => {
      const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws/customer");
      window.kefuWS = ws;
      ws.onopen = () => ws.send(JSON.stringify({ type: "hello", session_id: s.session_id, token: s.token }));
      ws.onmessage = (ev) => {
        window.kefuFrames.push(ev.data);
        if (JSON.parse(ev.data).type === "welcome") resolve();
      };
      ws.onerror = () => reject(new Error("customer socket failed"));
    });
    return s.session_id;
  }, language);
  let n = 0;
  return {
    id,
    page,
    say: (text) => page.evaluate(([text, cid]) => window.kefuWS.send(JSON.stringify({ type: "message", client_id: cid, text })), [text, "c" + ++n]),
    // wait for a frame: spec fields type, role (typing), msg: {role, event, survey, sources, text, includes, reason}.
    async wait(what, spec) {
      try {
        return await page.waitForFunction((spec) => {
          for (const raw of window.kefuFrames) {
            const f = JSON.parse(raw);
            if (spec.type && f.type !== spec.type) continue;
            if (spec.role && f.role !== spec.role) continue;
            const s = spec.msg;
            if (s) {
              const m = f.message || {}, meta = m.meta || {};
              if (s.role && m.role !== s.role) continue;
              if (s.event && meta.event !== s.event) continue;
              if (s.survey && meta.survey !== true) continue;
              if (s.sources && !(meta.sources && meta.sources.length)) continue;
              if (s.reason && meta.reason !== s.reason) continue;
              if (s.text && m.text !== s.text) continue;
              if (s.includes && !(m.text || "").includes(s.includes)) continue;
            }
            return f;
          }
          return false;
        }, spec, { timeout: 10000 }).then((h) => h.jsonValue());
      } catch (_) {
        throw new Error("customer " + id + ": timed out waiting for " + what);
      }
    },
    async neverGot(...texts) {
      const raw = await page.evaluate(() => window.kefuFrames.join("\n"));
      for (const t of texts) if (raw.includes(t)) throw new Error("customer " + id + " received internal text: " + t);
    },
  };
}

async function notified(page, what) {
  try {
    await page.waitForFunction(() => window.kefuNotified.length > 0 && document.title.includes("新会话"), null, { timeout: 10000 });
  } catch (_) {
    throw new Error(what + ": no browser notification or title flash");
  }
  await page.evaluate(() => { window.kefuNotified = []; });
}

// useCanned types "/shortcut" and picks the first suggestion; it returns what the reply box holds.
async function useCanned(page, prefix, want) {
  await page.click("#text");
  await page.keyboard.type("/" + prefix);
  await page.locator("#canned-menu li.active", { hasText: "/" + prefix }).waitFor();
  await page.keyboard.press("Enter");
  const got = await page.inputValue("#text");
  if (got !== want) throw new Error("canned reply /" + prefix + " put " + JSON.stringify(got) + " in the reply box, want " + JSON.stringify(want));
  return got;
}

// insertKnowledge searches the knowledge base and inserts the bot's own answer.
async function insertKnowledge(page, q) {
  await page.fill("#kb-q", q);
  await page.click("#kb-form button");
  const hit = page.locator("#kb-results li", { has: page.locator(".badge", { hasText: "the bot's answer" }) }).first();
  await hit.waitFor();
  const text = await hit.locator(".ac-kb-text").textContent();
  await hit.locator("button", { hasText: "Insert" }).click();
  if ((await page.inputValue("#text")) !== text) throw new Error("the knowledge answer was not inserted into the reply box");
  return text;
}

// lapse: an offer that is not accepted in time leaves the console, which says why.
async function lapse() {
  const agent = await agentPage("agent1");
  step("agent logs in");
  await logIn(agent, email1);
  step("a customer asks for a person; the agent is offered the conversation with a countdown");
  const c = await customer("zh");
  await c.say("转人工");
  await agent.locator("#sessions li", { hasText: "#" + c.id }).waitFor();
  await agent.locator("#offer:not([hidden])").waitFor();
  await agent.locator("#sessions li .ac-left").waitFor();
  step("nobody accepts: the conversation leaves the console, which says so, and the agent is away");
  await agent.locator("#empty:not([hidden])").waitFor({ timeout: 15000 });
  await agent.locator("#notice", { hasText: "lapsed" }).waitFor();
  await agent.locator("#status", { hasText: "away" }).waitFor();
  if ((await agent.inputValue("#presence")) !== "away") throw new Error("the presence picker does not show away");
  step("the agent comes back online");
  await agent.selectOption("#presence", "online");
  await agent.locator("#status", { hasText: "online" }).waitFor();
}

let failed = false;
try {
  if (scenario === "lapse") {
    await lapse();
  } else {
    await walk();
  }
  console.log("ok: all steps passed");
} catch (err) {
  failed = true;
  console.error("FAILED: " + err.message);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

// walk is the whole desk, in Chinese then in English.
async function walk() {
  const agent1 = await agentPage("agent1");
  const agent2 = await agentPage("agent2");

  step("agent logs in and is online");
  await logIn(agent1, email1);
  await agent1.locator("#empty:not([hidden])").waitFor();

  // The context the console fetches with a new offer is answered only after the agent has
  // accepted: what it says (not accepted yet) must not bring the offer back.
  const heldContext = [];
  await agent1.route("**/api/agent/sessions/*/context", async (route) => {
    const response = await route.fetch();
    heldContext.push(() => route.fulfill({ response }));
  });

  step("a Chinese customer asks the bot, then for a person");
  const zh = await customer("zh");
  await zh.say("退款多久到账？");
  const answer = await zh.wait("a knowledge answer", { type: "message", msg: { role: "bot", sources: true } });
  await zh.say("转人工");
  await zh.wait("the escalation", { type: "message", msg: { role: "bot", reason: "customer_asked" } });

  step("the agent is notified: sound, browser notification, title, badge and the offer's countdown");
  await agent1.locator("#sessions li", { hasText: "#" + zh.id }).waitFor();
  await notified(agent1, "agent1");
  await agent1.locator("#badge:not([hidden])", { hasText: "1" }).waitFor();
  await agent1.locator("#offer:not([hidden])").waitFor();
  const left = await agent1.textContent("#countdown");
  if (!/\d+ s left/.test(left)) throw new Error("no countdown to accept: " + left);

  step("the agent reads the context: reason, profile, the bot's turns, intents and the knowledge it cited");
  await agent1.locator("#reason", { hasText: "customer asked" }).waitFor();
  await agent1.locator("#ctx-reason", { hasText: "客户要求人工" }).waitFor();
  await agent1.locator("#ctx-profile", { hasText: "unverified" }).waitFor();
  await agent1.locator("#log .msg.bot", { hasText: answer.message.text.slice(0, 12) }).waitFor();
  await agent1.locator("#log .msg.customer .meta", { hasText: "intent refund" }).waitFor();
  await agent1.locator("#ctx-intents li", { hasText: "refund" }).waitFor();
  await agent1.locator("#ctx-sources li", { hasText: answer.message.meta.sources[0].title }).waitFor();
  await agent1.locator("#log .msg.bot .source").first().waitFor();

  step("the agent accepts in time");
  await agent1.click("#accept");
  await agent1.locator("#offer").waitFor({ state: "hidden" });
  await agent1.locator("#badge").waitFor({ state: "hidden" });
  if (!heldContext.length) throw new Error("the console fetched no context with the offer");
  for (const release of heldContext) await release();
  await agent1.unroute("**/api/agent/sessions/*/context");
  await agent1.waitForTimeout(300);
  if (await agent1.isVisible("#offer") || await agent1.isVisible("#badge")) throw new Error("a context fetched before accepting brought the offer back");
  await zh.wait("a person joined", { type: "message", msg: { event: "agent_joined" } });

  step("the customer's typing shows in the console");
  await zh.page.evaluate(() => window.kefuWS.send(JSON.stringify({ type: "typing", typing: true })));
  await agent1.locator("#typing").waitFor({ state: "visible" });

  step("a canned reply through /thanks, with the typing indicator on the customer's side");
  const thanks = await useCanned(agent1, "than", "感谢您的耐心等待，我马上为您查询。");
  await zh.wait("the agent typing", { type: "typing", role: "agent" });
  await agent1.press("#text", "Enter");
  await zh.wait("the canned reply", { type: "message", msg: { role: "agent", text: thanks } });
  await agent1.locator("#log .msg.agent", { hasText: thanks }).waitFor();

  step("a knowledge search whose answer goes into the reply");
  const kb = await insertKnowledge(agent1, "运费怎么算？");
  await agent1.press("#text", "Enter");
  await zh.wait("the knowledge answer from the agent", { type: "message", msg: { role: "agent", text: kb } });

  step("an internal note, shown apart in the transcript");
  const secret = "内部备注：客户两次退款失败 NOTE-4711";
  await agent1.click("#mode-note");
  await agent1.fill("#text", secret);
  await agent1.press("#text", "Enter");
  await agent1.locator("#log .msg.note", { hasText: "NOTE-4711" }).waitFor();
  await agent1.click("#mode-reply");

  step("a colleague logs in; the agent transfers to them with a note");
  await logIn(agent2, email2);
  await agent1.click("#transfer");
  await agent1.locator("#transfer-dialog[open]").waitFor();
  await agent1.locator("#transfer-agent option:not([disabled])", { hasText: "Second Agent" }).waitFor({ state: "attached" });
  const value = await agent1.evaluate(() => [...document.querySelectorAll("#transfer-agent option")].find((o) => o.textContent.includes("Second Agent")).value);
  await agent1.selectOption("#transfer-agent", value);
  await agent1.locator("#transfer-group option", { hasText: "online" }).first().waitFor({ state: "attached" });
  const handover = "请核对退款单号 HANDOVER-0815";
  await agent1.fill("#transfer-note", handover);
  await agent1.click("#transfer-submit");
  await agent1.locator("#transfer-dialog[open]").waitFor({ state: "detached" });
  await agent1.locator("#empty:not([hidden])").waitFor();
  await agent1.locator("#notice", { hasText: "transferred" }).waitFor();

  step("the colleague is notified and reads the transfer note and the internal note");
  await agent2.locator("#sessions li", { hasText: "#" + zh.id }).waitFor();
  await notified(agent2, "agent2");
  await agent2.locator("#ctx-transfer-note", { hasText: "HANDOVER-0815" }).waitFor();
  await agent2.locator("#log .msg.note", { hasText: "NOTE-4711" }).waitFor();
  await agent2.locator("#log .msg.agent", { hasText: thanks }).waitFor();
  await agent2.locator("#ctx-profile", { hasText: "Transfers" }).waitFor();
  await agent2.locator("#offer:not([hidden])").waitFor();

  step("the colleague answers (which accepts) and closes with a disposition; the customer is asked to rate");
  await agent2.fill("#text", "您好，我是二号客服，退款单我来跟进。");
  await agent2.press("#text", "Enter");
  await zh.wait("the colleague's reply", { type: "message", msg: { role: "agent", includes: "二号客服" } });
  await agent2.locator("#offer").waitFor({ state: "hidden" });
  if (shots) {
    await agent2.screenshot({ path: shots + "/console-agent.png" });
  }
  await agent2.selectOption("#disposition", "follow_up");
  await agent2.click("#close");
  await agent2.locator("#empty:not([hidden])").waitFor();
  await zh.wait("the survey", { type: "message", msg: { survey: true } });
  await zh.neverGot("NOTE-4711", "HANDOVER-0815");

  step("in English: the colleague goes away, so the first agent gets the next customer");
  await agent2.selectOption("#presence", "away");
  await agent2.locator("#status", { hasText: "away" }).waitFor();
  const en = await customer("en");
  await en.say("How long does shipping take?");
  const enAnswer = await en.wait("a knowledge answer", { type: "message", msg: { role: "bot", sources: true } });
  await en.say("talk to a human");
  await en.wait("the escalation", { type: "message", msg: { role: "bot", reason: "customer_asked" } });
  await agent1.locator("#sessions li", { hasText: "#" + en.id }).waitFor();
  await notified(agent1, "agent1 (English)");
  await agent1.locator("#reason", { hasText: "customer asked" }).waitFor();
  await agent1.locator("#ctx-sources li", { hasText: enAnswer.message.meta.sources[0].title }).waitFor();
  await agent1.locator("#log .msg.customer .meta", { hasText: "intent" }).first().waitFor();
  await agent1.click("#accept");
  await agent1.locator("#offer").waitFor({ state: "hidden" });
  const enThanks = await useCanned(agent1, "thanks", "Thank you for waiting, let me check that for you.");
  await agent1.press("#text", "Enter");
  await en.wait("the English canned reply", { type: "message", msg: { role: "agent", text: enThanks } });
  await agent1.selectOption("#kb-lang", "en");
  const enKB = await insertKnowledge(agent1, "Which payment methods do you accept?");
  await agent1.press("#text", "Enter");
  await en.wait("the English knowledge answer", { type: "message", msg: { role: "agent", text: enKB } });
  await agent1.click("#mode-note");
  await agent1.fill("#text", "Customer prefers e-mail NOTE-0042");
  await agent1.press("#text", "Enter");
  await agent1.locator("#log .msg.note", { hasText: "NOTE-0042" }).waitFor();
  if (shots) {
    await agent1.screenshot({ path: shots + "/console-agent-en.png" });
  }
  await agent1.click("#close");
  await agent1.locator("#empty:not([hidden])").waitFor();
  await en.wait("the survey", { type: "message", msg: { survey: true } });
  await en.neverGot("NOTE-0042");
}
