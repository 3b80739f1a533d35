// Drives Kefu's two pages in a real headless Chromium, as a customer and an agent would.
//
//   node api/webtest/pages.mjs BASE_URL AGENT_EMAIL AGENT_PASSWORD [SCREENSHOT_DIR]
//
// Exits non-zero with a message on the first step that fails.
import { chromium } from "playwright-core";

const [base, email, password, shots] = process.argv.slice(2);
if (!base || !email || !password) {
  console.error("usage: node pages.mjs BASE_URL AGENT_EMAIL AGENT_PASSWORD [SCREENSHOT_DIR]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const step = (name) => console.log("step: " + name);
let failed = false;
try {
  const customer = await (await browser.newContext({ locale: "zh-CN" })).newPage();
  const agent = await (await browser.newContext()).newPage();
  customer.setDefaultTimeout(10000);
  agent.setDefaultTimeout(10000);

  step("customer opens the widget and is greeted");
  await customer.goto(base + "/");
  await customer.locator(".status.online").waitFor();
  await customer.locator(".msg.bot").first().waitFor();
  await customer.locator("#human:visible", { hasText: "人工客服" }).waitFor();
  if (shots) await customer.screenshot({ path: shots + "/customer-first-screen.png" });

  step("customer asks a knowledge question in Chinese and sees the source");
  await customer.fill("#text", "退款多久到账？");
  await customer.press("#text", "Enter");
  await customer.locator(".msg.bot .source", { hasText: "退款时效" }).waitFor();

  step("customer finds the answer helpful");
  const answer = customer.locator(".msg.bot", { has: customer.locator(".source", { hasText: "退款时效" }) }).last();
  await answer.locator('.vote[data-vote="1"]').click();
  await answer.locator('.vote.chosen[data-vote="1"]').waitFor();

  step("customer asks in English");
  await customer.fill("#text", "Which payment methods do you accept?");
  await customer.click("form#send button");
  await customer.locator(".msg.bot .source", { hasText: "Payment methods" }).waitFor();

  step("with nobody online, a customer who asks for a person is offered to leave a message");
  const offline = await (await browser.newContext({ locale: "en-US" })).newPage();
  offline.setDefaultTimeout(10000);
  await offline.goto(base + "/");
  await offline.locator(".status.online").waitFor();
  await offline.locator("#human").click();
  await offline.locator("#banner:not([hidden])", { hasText: "You are number 1 in line" }).waitFor();
  await offline.locator("#banner", { hasText: "Nobody is online" }).waitFor();
  await offline.locator("#ticket:not([hidden])").waitFor();
  if (shots) await offline.screenshot({ path: shots + "/customer-offline-form.png" });

  step("the customer keeps waiting, then stops waiting and the bot is back");
  await offline.click("#keep-waiting");
  await offline.locator("#ticket").waitFor({ state: "hidden" });
  await offline.locator("#leave:visible").click();
  await offline.locator(".msg.system", { hasText: "left the queue" }).waitFor();
  await offline.locator("#banner").waitFor({ state: "hidden" });
  await offline.locator("#human:visible").waitFor();

  step("asked again, the customer leaves a message: a bad address is refused, a good one confirmed");
  await offline.locator("#human").click();
  await offline.locator("#ticket:not([hidden])").waitFor();
  await offline.fill("#ticket-name", "Li Lei");
  await offline.fill("#ticket-email", "not-an-address");
  await offline.fill("#ticket-text", "My order SO20261127001 has not shipped yet.");
  await offline.click("#ticket button[type=submit]");
  await offline.locator("#ticket-error:not([hidden])", { hasText: "not an e-mail address" }).waitFor();
  await offline.fill("#ticket-email", "li.lei@example.com");
  await offline.click("#ticket button[type=submit]");
  await offline.locator(".msg.system", { hasText: "reply by e-mail" }).waitFor();
  await offline.locator("#ticket").waitFor({ state: "hidden" });
  await offline.locator("#banner").waitFor({ state: "hidden" });
  await offline.locator("#human:visible").waitFor();
  if (shots) await offline.screenshot({ path: shots + "/customer-offline-sent.png" });

  step("agent logs in");
  await agent.goto(base + "/agent");
  await agent.fill("#email", email);
  await agent.fill("#password", password);
  await agent.click("#login button");
  await agent.locator("#desk:not([hidden])").waitFor();

  step("customer asks for a person and waits in the queue");
  await customer.fill("#text", "转人工");
  await customer.press("#text", "Enter");
  await customer.locator("#banner", { hasText: "人工客服" }).waitFor();

  step("agent receives the conversation with its transcript and the bot's context");
  await agent.locator("#sessions li").first().waitFor();
  await agent.locator("#log .msg.customer", { hasText: "退款多久到账" }).waitFor();
  await agent.locator("#log .msg .meta", { hasText: "intent" }).first().waitFor();
  await agent.locator("#log .msg .source").first().waitFor();
  await agent.locator("#reason", { hasText: "customer asked" }).waitFor();

  step("agent replies and the customer sees it");
  await agent.fill("#text", "您好，我是人工客服，请问有什么可以帮您？");
  await agent.press("#text", "Enter");
  await customer.locator(".msg.agent", { hasText: "我是人工客服" }).waitFor();

  step("the customer writes; the agent sees it and the bot stays silent");
  const botsBefore = await customer.locator(".msg.bot").count();
  await customer.fill("#text", "我的订单还没发货");
  await customer.press("#text", "Enter");
  await agent.locator("#log .msg.customer", { hasText: "还没发货" }).waitFor();
  await customer.waitForTimeout(1000);
  if ((await customer.locator(".msg.bot").count()) !== botsBefore) throw new Error("the bot spoke while an agent owned the conversation");
  if (shots) {
    await customer.screenshot({ path: shots + "/customer.png" });
    await agent.screenshot({ path: shots + "/agent.png" });
  }

  step("agent closes; the customer is told and asked to rate the help");
  await agent.click("#close");
  await agent.locator("#empty:not([hidden])").waitFor();
  await customer.locator(".msg.system", { hasText: "结束" }).waitFor();
  const survey = customer.locator(".msg.system .csat");
  await survey.waitFor();
  if (!(await survey.locator(".csat-send").isDisabled())) throw new Error("the rating could be sent without a score");
  if (shots) await customer.screenshot({ path: shots + "/customer-survey.png" });

  step("the customer rates 5 with a comment and is thanked; the form goes");
  await survey.locator('.star[data-score="5"]').click();
  await survey.locator('.star.on[data-score="5"]').waitFor();
  await survey.locator(".csat-comment").fill("很快，谢谢");
  await survey.locator(".csat-send").click();
  await customer.locator(".msg.system", { hasText: "感谢您的评价" }).waitFor();
  await survey.waitFor({ state: "detached" });

  step("the bot is back");
  await customer.fill("#text", "谢谢");
  await customer.press("#text", "Enter");
  await customer.locator(".msg.bot", { hasText: "不客气" }).waitFor();

  step("a reload resumes the same conversation, without asking for a rating again");
  await customer.reload();
  await customer.locator(".msg.agent", { hasText: "我是人工客服" }).waitFor();
  await customer.locator(".msg.system", { hasText: "感谢您的评价" }).waitFor();
  if ((await customer.locator(".csat").count()) !== 0) throw new Error("the rated conversation asks for a rating again after a reload");

  step("a new customer presses the button for a person before saying anything");
  const second = await (await browser.newContext({ locale: "zh-CN" })).newPage();
  second.setDefaultTimeout(10000);
  await second.goto(base + "/");
  await second.locator(".status.online").waitFor();
  await second.locator("#human", { hasText: "Talk to a person" }).click();
  await second.locator(".msg.customer", { hasText: "转人工" }).waitFor();
  await second.locator(".msg.bot", { hasText: "转接人工客服" }).waitFor();
  await second.locator("#banner:not([hidden])", { hasText: "人工客服" }).waitFor();
  await second.locator("#human").waitFor({ state: "hidden" });
  if (shots) await second.screenshot({ path: shots + "/customer-asks-for-a-person.png" });
  console.log("ok: all steps passed");
} catch (err) {
  failed = true;
  console.error("FAILED: " + err.message);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
