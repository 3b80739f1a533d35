// Drives Kefu's supervisor page (/supervisor) in a real headless Chromium, with a customer on
// the chat widget (/) asking for a person while the supervisor watches the queue.
//
//   node api/webtest/supervisor.mjs BASE_URL SUPERVISOR_EMAIL PASSWORD [SCREENSHOT_DIR] [AGENT_EMAIL]
//
// It expects the demo data (skill groups "售前 Pre-sales L1" and "技术支持 Tech L2", the demo
// agent "Demo Agent 演示客服" away with one conversation of 5), one conversation waiting in
// Pre-sales L1 and one open offline message, as cmd/kefu's TestSupervisorInBrowser prepares.
// Exits non-zero with a message on the first step that fails.
import { chromium } from "playwright-core";

const [base, email, password, shots, agentEmail] = process.argv.slice(2);
if (!base || !email || !password) {
  console.error("usage: node supervisor.mjs BASE_URL SUPERVISOR_EMAIL PASSWORD [SCREENSHOT_DIR] [AGENT_EMAIL]");
  process.exit(2);
}
const L1 = "售前 Pre-sales L1";
const L2 = "技术支持 Tech L2";
const AGENT = "Demo Agent 演示客服";
const NEW_GROUP = "VIP 贵宾";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const step = (name) => console.log("step: " + name);
const shot = async (page, name) => { if (shots) await page.screenshot({ path: shots + "/" + name + ".png", fullPage: true }); };
const check = (ok, msg) => { if (!ok) throw new Error(msg); };

let failed = false;
try {
  const ctx = await browser.newContext({ locale: "en-US", viewport: { width: 1400, height: 1000 } });
  const sv = await ctx.newPage();
  const customer = await (await browser.newContext({ locale: "zh-CN" })).newPage();
  for (const p of [sv, customer]) p.setDefaultTimeout(10000);
  sv.on("pageerror", (err) => { console.error("page error: " + err.message); failed = true; });
  const row = (table, attr, value) => sv.locator(`#${table} tbody tr[data-${attr}="${value}"]`);
  const cell = (r, i) => r.locator("td").nth(i); // 0 is the first td after the row's th

  step("a wrong password shows an error");
  await sv.goto(base + "/supervisor");
  await sv.fill("#email", email);
  await sv.fill("#password", password + "-wrong");
  await sv.click("#login button[type=submit]");
  await sv.locator("#login-error", { hasText: /\S/ }).waitFor();
  check(await sv.locator("#app").isHidden(), "the app opened with a wrong password");

  if (agentEmail) {
    step("an agent without the supervisor role is refused");
    await sv.fill("#email", agentEmail);
    await sv.fill("#password", password);
    await sv.click("#login button[type=submit]");
    await sv.locator("#login-error", { hasText: "not a supervisor" }).waitFor();
    check(await sv.locator("#app").isHidden(), "the app opened for an agent");
  }

  step("the supervisor logs in and sees the live queue");
  await sv.fill("#email", email);
  await sv.fill("#password", password);
  await sv.click("#login button[type=submit]");
  await sv.locator("#app:not([hidden])").waitFor();
  const l1 = row("live-groups", "group", L1);
  await l1.waitFor();
  check((await cell(l1, 1).textContent()) === "1", "Pre-sales L1 should have 1 waiting, has " + (await cell(l1, 1).textContent()));
  check((await cell(l1, 0).textContent()) === "L1", "Pre-sales L1 is not shown as tier L1");
  check(/sla-(ok|warn|breach)/.test(await l1.getAttribute("class")), "the group row has no SLA state");
  await row("live-groups", "group", L2).waitFor();

  step("the agent's presence and load are shown");
  const agent = sv.locator("#live-agents tbody tr", { hasText: AGENT });
  await agent.locator(".load-text", { hasText: "1 / 5" }).waitFor();
  await agent.locator(".badge.status-away", { hasText: "away" }).waitFor();
  check((await agent.locator("td").nth(2).textContent()).includes(L1), "the agent's groups are not shown");
  await shot(sv, "supervisor-live");

  step("a customer asks for a person; the live view follows by itself");
  await customer.goto(base + "/");
  await customer.locator(".status.online").waitFor();
  await customer.fill("#text", "转人工");
  await customer.press("#text", "Enter");
  await sv.waitForFunction((name) => {
    const r = document.querySelector(`#live-groups tbody tr[data-group="${name}"]`);
    return r && r.querySelectorAll("td")[1].textContent === "2";
  }, L1, { timeout: 15000 });

  step("the page switches to Chinese and back");
  await sv.locator("#app .lang-switch").click();
  await sv.locator("#live-title", { hasText: "实时队列" }).waitFor();
  await sv.locator("#live-agents .badge.status-away", { hasText: "离开" }).waitFor();
  await sv.locator("#app .lang-switch").click();
  await sv.locator("#live-title", { hasText: "Live queue" }).waitFor();

  step("the supervisor creates a skill group");
  await sv.click("#tab-groups");
  await row("groups", "group", L1).waitFor();
  await sv.locator("#g-members label", { hasText: AGENT }).waitFor();
  await sv.click("#g-new");
  await sv.fill("#g-name", NEW_GROUP);
  await sv.selectOption("#g-tier", "1");
  await sv.selectOption("#g-strategy", "longest_idle");
  await sv.fill("#g-sla", "30");
  await sv.selectOption("#g-overflow", L2);
  await sv.fill("#g-languages", "zh, en");
  await sv.fill("#g-match-tier", "vip");
  await sv.locator("#g-members label", { hasText: AGENT }).locator("input").check();
  await sv.click("#g-save");
  await sv.locator("#flash", { hasText: "Group saved: " + NEW_GROUP }).waitFor();
  const vip = row("groups", "group", NEW_GROUP);
  await vip.waitFor();
  check((await vip.textContent()).includes(AGENT), "the new group's member is not listed");
  check((await vip.textContent()).includes("longest idle"), "the new group's strategy is not listed");
  check((await vip.textContent()).includes(L2), "the new group's overflow is not listed");

  step("the supervisor edits it");
  await vip.locator("button").click();
  check(await sv.locator("#g-name").evaluate((e) => e.readOnly), "the name of an existing group is editable");
  check((await sv.locator("#g-overflow").inputValue()) === L2, "the form lost the overflow");
  await sv.fill("#g-sla", "45");
  await sv.click("#g-save");
  await vip.locator("td", { hasText: "45 s" }).waitFor();

  step("a bad group name is refused with the server's message");
  await sv.click("#g-new");
  await sv.fill("#g-name", "<script>");
  await sv.click("#g-save");
  await sv.locator("#group-error", { hasText: "group name" }).waitFor();
  check((await sv.locator("#groups tbody tr").count()) === 3, "a refused group was listed");
  await shot(sv, "supervisor-groups");

  step("the supervisor saves a canned reply");
  await sv.click("#tab-canned");
  await sv.fill("#c-shortcut", "/thanks");
  await sv.selectOption("#c-language", "zh");
  await sv.fill("#c-title", "致谢");
  await sv.fill("#c-text", "感谢您的耐心等待！");
  await sv.locator("#canned-form button[type=submit]").click();
  await row("canned", "shortcut", "thanks").locator("td", { hasText: "感谢您的耐心等待" }).waitFor();

  step("the supervisor closes an offline message");
  await sv.click("#tab-tickets");
  const ticket = sv.locator("#tickets tbody tr", { hasText: "请明天上午回电" });
  await ticket.waitFor();
  await ticket.locator("button").click();
  await sv.locator("#tickets-empty:not([hidden])").waitFor();
  await sv.selectOption("#t-state", "closed");
  await sv.locator("#tickets tbody tr", { hasText: "请明天上午回电" }).waitFor();

  step("the metrics of the last 7 days, per agent, group and day");
  await sv.click("#tab-metrics");
  await sv.locator('#summary [data-figure="escalated"] dd', { hasText: /^3$/ }).waitFor();
  await sv.locator('#summary [data-figure="containment"] dd', { hasText: "0%" }).waitFor();
  const byGroup = row("by-group", "key", L1);
  await byGroup.waitFor();
  check((await cell(byGroup, 0).textContent()) === "3", "Pre-sales L1 should show 3 escalations");
  const byAgent = row("by-agent", "key", AGENT);
  await byAgent.waitFor();
  check((await cell(byAgent, 1).textContent()) === "1", "the demo agent should show 1 assigned");
  await sv.locator("#by-day tbody tr").first().waitFor();
  check((await sv.locator("#by-agent thead th").allTextContents()).includes("First response"), "no first response column");

  step("a range the server refuses shows its message");
  await sv.fill("#from", "2020-01-01");
  await sv.click("#report-form button[type=submit]");
  await sv.locator("#report-error", { hasText: "366 days" }).waitFor();
  await shot(sv, "supervisor-metrics");
  console.log("ok: all steps passed");
} catch (err) {
  failed = true;
  console.error("FAILED: " + err.message);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
