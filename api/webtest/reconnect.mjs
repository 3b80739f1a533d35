// The chat widget on a network that fails: its connection is cut and new ones refused for a
// few seconds (the Go test's proxy, told through CONTROL_URL). The widget must say it is
// reconnecting, keep a message typed meanwhile, reconnect with backoff, say it has, and have
// that message answered once.
//
//   node api/webtest/reconnect.mjs BASE_URL CONTROL_URL [SCREENSHOT_DIR]
import { chromium } from "playwright-core";

const [base, control, shots] = process.argv.slice(2);
if (!base || !control) {
  console.error("usage: node reconnect.mjs BASE_URL CONTROL_URL [SCREENSHOT_DIR]");
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
  const page = await (await browser.newContext({ locale: "zh-CN" })).newPage();
  page.setDefaultTimeout(10000);

  step("the customer is greeted and answered");
  await page.goto(base + "/");
  await page.locator(".status.online").waitFor();
  await page.fill("#text", "你好");
  await page.press("#text", "Enter");
  await page.locator(".msg.bot").nth(1).waitFor();
  const botsBefore = await page.locator(".msg.bot").count();

  step("the network fails: the widget says it is reconnecting");
  const res = await fetch(control + "/cut?for=4s", { method: "POST" });
  if (res.status !== 204) throw new Error("the proxy did not cut: " + res.status);
  await page.locator("#status.reconnecting", { hasText: "连接中断，正在重连… / Reconnecting…" }).waitFor();
  if (shots) await page.screenshot({ path: shots + "/customer-reconnecting.png" });

  step("a message typed meanwhile waits");
  await page.fill("#text", "运费多少钱？");
  await page.press("#text", "Enter");
  await page.locator(".msg.customer.pending", { hasText: "运费多少钱？" }).waitFor();

  step("the widget reconnects, says so, and the message is answered once");
  await page.locator("#status.online", { hasText: "已重新连接 / Reconnected" }).waitFor({ timeout: 20000 });
  if (shots) await page.screenshot({ path: shots + "/customer-reconnected.png" });
  await page.locator(".msg.bot").nth(botsBefore).waitFor();
  await page.locator(".msg.customer.pending").waitFor({ state: "detached" });
  const sent = await page.locator(".msg.customer", { hasText: "运费多少钱？" }).count();
  if (sent !== 1) throw new Error("the message typed while offline shows " + sent + " times");
  const seqs = await page.locator(".msg[data-seq]").evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  if (new Set(seqs).size !== seqs.length) throw new Error("a message shows twice: seqs " + seqs.join(","));
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== seqs[i - 1] + 1) throw new Error("the conversation has a gap: seqs " + seqs.join(","));
  }

  step("the status settles back to online");
  await page.locator("#status.online", { hasText: /^online$/ }).waitFor();
  console.log("ok: all steps passed");
} catch (err) {
  failed = true;
  console.error("FAILED: " + err.message);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
