// Drives Kefu's knowledge editor (/editor) in a real headless Chromium, with a customer on the
// chat widget (/) checking what the bot answers before and after each change.
//
//   node api/webtest/editor.mjs BASE_URL EDITOR_EMAIL PASSWORD [SCREENSHOT_DIR] [AGENT_EMAIL]
//
// Exits non-zero with a message on the first step that fails.
import { chromium } from "playwright-core";

const [base, email, password, shots, agentEmail] = process.argv.slice(2);
if (!base || !email || !password) {
  console.error("usage: node editor.mjs BASE_URL EDITOR_EMAIL PASSWORD [SCREENSHOT_DIR] [AGENT_EMAIL]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const step = (name) => console.log("step: " + name);
const shot = async (page, name) => { if (shots) await page.screenshot({ path: shots + "/" + name + ".png", fullPage: true }); };
const check = (ok, msg) => { if (!ok) throw new Error(msg); };

// ask sends a question from the chat widget and returns the text of the bot's reply.
async function ask(page, question) {
  const bots = page.locator(".msg.bot");
  const before = await bots.count();
  await page.fill("#text", question);
  await page.press("#text", "Enter");
  await page.waitForFunction((n) => document.querySelectorAll(".msg.bot").length > n, before, { timeout: 10000 });
  await page.waitForTimeout(300); // a turn may have more than one reply
  const texts = await bots.allTextContents();
  return texts.slice(before).join("\n");
}

const OLD = "仓库收到退货并验收后1个工作日内发起退款"; // the live answer of refund-time (zh) in the demo data
const marker = "验证标记" + Date.now().toString(36);
const sentence = marker + "：退款到账后会短信通知您。";
const QUESTION = "退款多久到账？";
const GAP = "你们卖二手车吗？";

let failed = false;
try {
  const customer = await (await browser.newContext({ locale: "zh-CN" })).newPage();
  const stranger = await (await browser.newContext({ locale: "zh-CN" })).newPage();
  const ctx = await browser.newContext({ locale: "en-US", viewport: { width: 1400, height: 1000 } });
  const ed = await ctx.newPage();
  for (const p of [customer, stranger, ed]) p.setDefaultTimeout(10000);
  ed.on("pageerror", (err) => { console.error("page error: " + err.message); failed = true; });

  step("a customer asks something the knowledge base cannot answer (a knowledge gap)");
  await stranger.goto(base + "/");
  await stranger.locator(".status.online").waitFor();
  const gapReply = await ask(stranger, GAP);
  check(!gapReply.includes("来源"), "the bot answered the gap question from the knowledge base: " + gapReply);

  step("the customer gets the live answer of refund-time");
  await customer.goto(base + "/");
  await customer.locator(".status.online").waitFor();
  let reply = await ask(customer, QUESTION);
  check(reply.includes(OLD), "expected the live refund answer, got: " + reply);

  step("a wrong password shows an error");
  await ed.goto(base + "/editor");
  await ed.fill("#email", email);
  await ed.fill("#password", password + "-wrong");
  await ed.click("#login button");
  await ed.locator("#login-error", { hasText: /\S/ }).waitFor();
  check(await ed.locator("#app").isHidden(), "the app opened with a wrong password");

  if (agentEmail) {
    step("an agent without the editor role is refused");
    await ed.fill("#email", agentEmail);
    await ed.fill("#password", password);
    await ed.click("#login button");
    await ed.locator("#login-error", { hasText: "not a knowledge editor" }).waitFor();
    check(await ed.locator("#app").isHidden(), "the app opened for an agent");
  }

  step("a stale token returns to the login with a message");
  await ed.evaluate(() => sessionStorage.setItem("kefu.editor", "not-a-token"));
  await ed.reload();
  await ed.locator("#login-error", { hasText: "log in again" }).waitFor();

  step("the editor logs in and sees the entries");
  await ed.fill("#email", email);
  await ed.fill("#password", password);
  await ed.click("#login button");
  await ed.locator("#app:not([hidden])").waitFor();
  await ed.locator("#entries tbody tr.entry").first().waitFor();
  await shot(ed, "editor-list");

  step("search finds refund-time in Chinese");
  await ed.selectOption("#f-lang", "zh");
  await ed.fill("#q", "refund-time");
  await ed.locator("#page-info", { hasText: /^1–1 of 1$/ }).waitFor();
  const row = ed.locator('#entries tr.entry[data-key="refund-time"][data-lang="zh"]');
  await row.waitFor();
  check((await ed.locator("#entries tbody tr.entry").count()) === 1, "the search for refund-time in zh found more than one row");
  check((await row.locator(".translations").textContent()).includes("en"), "the row does not list the English translation");

  step("open it: the form, the live marker, the translations");
  await row.locator("button.open").click();
  await ed.locator("#view-edit:not([hidden])").waitFor();
  check((await ed.inputValue("#e-answer")).includes(OLD), "the form does not hold the live answer");
  check((await ed.inputValue("#e-question")) === QUESTION, "the form does not hold the question");
  await ed.locator('#translations button.translation[data-lang="en"]').waitFor();
  const oldLive = Number(await ed.locator("#versions tr.is-live").getAttribute("data-version"));
  check(oldLive >= 1, "no live version in the versions panel");

  step("edit the answer: the preview shows it at once");
  const answer = (await ed.inputValue("#e-answer")) + sentence;
  await ed.fill("#e-answer", answer);
  await ed.fill("#e-note", "webtest: add a notice");
  await ed.locator("#preview", { hasText: marker }).waitFor();
  await ed.locator("#preview .source", { hasText: "退款时效 · v" }).waitFor();
  await ed.locator("#edit-state", { hasText: "unsaved" }).waitFor();

  step("save the draft");
  await ed.click("#save-draft");
  await ed.locator("#edit-status", { hasText: "Draft saved as version" }).waitFor();
  const draft = Number(await ed.locator("#versions tr.version.draft").getAttribute("data-version"));
  check(draft > oldLive, "the draft's version " + draft + " is not after the live " + oldLive);
  await shot(ed, "editor-edit");

  step("try the question with the draft: the new text answers");
  await ed.fill("#try-question", QUESTION);
  await ed.check("#try-draft");
  await ed.click("#try-go");
  await ed.locator("#try-answer", { hasText: marker }).waitFor();
  await ed.locator('#try-passages tr.passage.answers[data-key="refund-time"]').waitFor();
  await ed.locator("#try-answer .source", { hasText: "v" + draft }).waitFor();
  await shot(ed, "editor-try");

  step("try without the draft: the live text answers");
  await ed.uncheck("#try-draft");
  await ed.click("#try-go");
  await ed.waitForFunction(([old, m]) => {
    const t = document.getElementById("try-answer").textContent;
    return !document.getElementById("try-result").hidden && t.includes(old) && !t.includes(m);
  }, [OLD, marker]);

  step("the customer still gets the old answer");
  reply = await ask(customer, QUESTION);
  check(reply.includes(OLD) && !reply.includes(marker), "the customer saw the draft before it was published: " + reply);

  step("publish; the customer gets the new answer");
  await ed.click("#publish");
  await ed.locator("#edit-status", { hasText: "Published version " + draft }).waitFor();
  await ed.locator(`#versions tr.is-live[data-version="${draft}"]`).waitFor();
  reply = await ask(customer, QUESTION);
  check(reply.includes(marker), "the customer did not get the published answer: " + reply);
  check(reply.includes("v" + draft), "the customer's source line does not name version " + draft + ": " + reply);

  step("the versions panel shows the change as inserted text");
  await ed.check(`#versions tr[data-version="${oldLive}"] input.cmp`);
  await ed.check(`#versions tr[data-version="${draft}"] input.cmp`);
  await ed.locator('#diff .diff-field[data-field="answer"] ins', { hasText: marker }).waitFor();
  check((await ed.locator('#diff .diff-field[data-field="answer"] del').count()) === 0, "the diff shows removed text for an appended sentence");
  await shot(ed, "editor-versions");

  step("roll back to the previous version; the customer gets the old answer again");
  await ed.click(`#versions tr[data-version="${oldLive}"] button.rollback`);
  await ed.locator("#confirm[open]").waitFor();
  await ed.click("#confirm-ok");
  await ed.locator("#edit-status", { hasText: "Rolled back" }).waitFor();
  const back = Number(await ed.locator("#versions tr.is-live").getAttribute("data-version"));
  check(back > draft, "the rollback did not publish a new version");
  check(!(await ed.inputValue("#e-answer")).includes(marker), "the form still shows the rolled-back text");
  reply = await ask(customer, QUESTION);
  check(reply.includes(OLD) && !reply.includes(marker), "after the rollback the customer got: " + reply);

  step("a save over someone else's newer draft is a conflict, and reload shows theirs");
  await ed.click('#translations button.translation[data-lang="en"]');
  await ed.locator("#edit-title", { hasText: "refund-time (en)" }).waitFor();
  const theirs = await ed.evaluate(async () => {
    const auth = { Authorization: "Bearer " + sessionStorage.getItem("kefu.editor") };
    const h = await (await fetch("/api/kb/entries/refund-time/en", { headers: auth })).json();
    const r = h.revisions.find((x) => x.state !== "discarded");
    const res = await fetch("/api/kb/entries/refund-time/en/draft", { method: "PUT", headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ kind: r.kind, title: r.title, question: r.question, alternates: r.alternates, answer: r.answer + " (their change)",
        link: r.link, tags: r.tags, note: "another editor", base_version: r.version }) });
    return res.status;
  });
  check(theirs === 200, "the other editor's draft was not saved: " + theirs);
  await ed.fill("#e-answer", (await ed.inputValue("#e-answer")) + " (my change)");
  await ed.click("#save-draft");
  await ed.locator("#edit-error", { hasText: "has changed since version" }).waitFor();
  await ed.click("#reload-entry");
  await ed.waitForFunction(() => document.getElementById("e-answer").value.includes("(their change)"));
  await ed.click("#discard-draft");
  await ed.click("#confirm-ok");
  await ed.locator("#edit-status", { hasText: "discarded" }).waitFor();
  check(!(await ed.inputValue("#e-answer")).includes("(their change)"), "the discarded draft is still in the form");

  step("a document opens with its format and body");
  await ed.click("#back");
  await ed.fill("#q", "");
  await ed.selectOption("#f-lang", "");
  await ed.selectOption("#f-kind", "document");
  await ed.locator("#page-info", { hasText: /^1–\d+ of \d+$/ }).waitFor();
  await ed.waitForFunction(() => [...document.querySelectorAll("#entries tr.entry")].every((r) => r.querySelector(".badge")?.textContent === "document"));
  await ed.locator("#entries tr.entry button.open").first().click();
  await ed.locator("#e-format-label:not([hidden])").waitFor();
  check(await ed.locator("#e-question-label").isHidden(), "a document shows the question field");
  check((await ed.inputValue("#e-answer")).length > 200, "the document's body is not in the form");
  await ed.click("#back");
  await ed.selectOption("#f-kind", "");

  step("an import with one bad row names the line and imports nothing");
  await ed.click("#tab-import");
  const badFile = [
    JSON.stringify({ id: "webtest-import-a", question: "测试导入问题一", answer: "测试导入答案一" }),
    JSON.stringify({ id: "webtest-import-b", question: "测试导入问题二" }),
    JSON.stringify({ id: "webtest-import-c", question: "测试导入问题三", answer: "测试导入答案三" }),
  ].join("\n") + "\n";
  await ed.setInputFiles("#import-file", { name: "faq.jsonl", mimeType: "application/x-ndjson", buffer: Buffer.from(badFile) });
  await ed.click("#import-go");
  await ed.locator("#import-report", { hasText: "Nothing was imported" }).waitFor();
  await ed.locator('#import-errors li[data-line="2"]', { hasText: "answer is empty" }).waitFor();
  check((await ed.locator("#import-errors li").count()) === 1, "more than the one bad row was reported");
  await shot(ed, "editor-import-errors");
  await ed.click("#tab-entries");
  await ed.selectOption("#f-lang", "");
  await ed.fill("#q", "webtest-import");
  await ed.locator("#entries-empty:not([hidden])").waitFor();

  step("a good CSV import fills the progress bar and adds the entries");
  await ed.click("#tab-import");
  const goodFile = "id,question,answer,language,alternatives\n" +
    "webtest-import-a,测试导入问题一,测试导入答案一,,问题一的另一种说法\n" +
    "webtest-import-d,How do I test imports?,\"Import a file, then check the list.\",en,\n";
  await ed.setInputFiles("#import-file", { name: "faq.csv", mimeType: "text/csv", buffer: Buffer.from(goodFile) });
  await ed.click("#import-go");
  await ed.locator("#import-report", { hasText: "Imported 2 entries" }).waitFor();
  check(await ed.evaluate(() => { const b = document.getElementById("import-progress"); return b.value === b.max && b.max === 2; }),
    "the progress bar is not full");
  await ed.click("#tab-entries");
  await ed.locator('#entries tr.entry[data-key="webtest-import-a"][data-lang="zh"]').waitFor();
  await ed.locator('#entries tr.entry[data-key="webtest-import-d"][data-lang="en"]').waitFor();

  step("the gaps view lists the question the bot could not answer");
  await ed.click("#tab-gaps");
  const gap = ed.locator("#gaps li.gap", { hasText: "二手车" });
  for (let i = 0; i < 30 && !(await gap.count()); i++) { // usage rows are written every second
    await ed.waitForTimeout(500);
    await ed.click("#gaps-reload");
    await ed.waitForFunction(() => !document.getElementById("gaps").hasAttribute("aria-busy"));
  }
  await gap.waitFor();
  await shot(ed, "editor-gaps");

  step("trying the gap question shows that the bot is not sure");
  await ed.fill("#try-question", GAP);
  await ed.click("#try-go");
  await ed.locator("#try-answer.not-sure", { hasText: "not sure" }).waitFor();
  check((await ed.locator("#try-passages tr.passage.answers").count()) === 0, "a passage is marked as answering a question the bot is not sure of");

  step("create a draft from the gap; saving it closes the gap");
  await gap.locator("button.create-draft").click();
  await ed.locator("#view-edit:not([hidden])").waitFor();
  check((await ed.inputValue("#e-question")) === GAP, "the new entry's question is not the gap's");
  await ed.fill("#e-key", "used-cars");
  await ed.fill("#e-title", "二手车");
  await ed.fill("#e-answer", "我们只销售全新商品，不销售二手车。");
  await ed.click("#save-draft");
  await ed.locator("#edit-status", { hasText: "gap is closed" }).waitFor();
  await ed.locator("#edit-title", { hasText: "used-cars (zh)" }).waitFor();
  await ed.click("#tab-gaps");
  await ed.waitForFunction(() => !document.getElementById("gaps").hasAttribute("aria-busy"));
  await ed.waitForTimeout(300);
  check((await ed.locator("#gaps li.gap", { hasText: "二手车" }).count()) === 0, "the closed gap is still listed");

  step("the audit lists the editor's actions");
  await ed.click("#tab-audit");
  for (const action of ["create_draft", "publish", "rollback", "import", "gap_draft"]) {
    await ed.locator(`#audit tr.audit[data-action="${action}"]`).first().waitFor();
  }
  await ed.locator('#audit tr.audit[data-action="rollback"][data-key="refund-time"]', { hasText: email }).waitFor();
  await shot(ed, "editor-audit");

  step("log out");
  await ed.click("#logout");
  await ed.locator("#login:not([hidden])").waitFor();
  check(await ed.evaluate(() => sessionStorage.getItem("kefu.editor") === null), "the token is still stored after logging out");
  await ed.reload();
  await ed.locator("#login:not([hidden])").waitFor();
  check(await ed.locator("#app").isHidden(), "a reload after logging out opened the app");
  if (failed) throw new Error("the page threw an error (see above)");
  console.log("ok: all steps passed");
} catch (err) {
  failed = true;
  console.error("FAILED: " + err.message);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
