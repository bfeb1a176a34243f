// Clicks through Strom's web console in headless Chromium (Debian's, driven by playwright-core:
// no downloaded browser) and reports what it saw. Usage:
//   node console.js <base url> <screenshot dir> <json plan>
// The plan names the topic, group and evil strings the test produced; the test asserts on the
// RESULT, this script only looks and clicks.
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [base, shots, planJson] = process.argv.slice(2);
  const plan = JSON.parse(planJson);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = { dialogs: [], pageErrors: [], steps: {} };
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // An escaped value must never run: any alert() is a failure the test reports.
    page.on("dialog", async d => { out.dialogs.push(d.message()); await d.dismiss(); });
    page.on("pageerror", e => out.pageErrors.push(String(e)));
    const texts = async sel => page.$$eval(sel, els => els.map(e => e.textContent.trim()));

    // Overview: cards, groups with lag, the lag chart drawn by console.js.
    await page.goto(base + "/");
    await page.waitForSelector("#chart-total svg[data-points]");
    out.steps.overview = {
      title: await page.title(),
      topics: await page.textContent("#topic-count"),
      brokers: await page.textContent("#broker-count"),
      groups: await texts("#groups tbody tr td:first-child"),
      groupLag: await texts("#groups tbody tr td:nth-child(5)"),
    };
    await page.screenshot({ path: shots + "/overview.png", fullPage: true });

    // Groups → the share group (KIP-932): members, assignment, start offsets and lag. Visited
    // first, while the test's share consumer is surely still a member.
    await page.click("nav >> text=Consumer groups");
    out.steps.groups = { types: await texts("#groups tbody tr td:nth-child(2)"), members: await texts("#groups tbody tr td:nth-child(4)") };
    await page.click(`#groups a:text-is(${JSON.stringify(plan.share)})`);
    await page.waitForSelector("#offsets");
    out.steps.share = {
      heading: await page.textContent("h1"),
      type: await page.textContent("#group-type"),
      state: await page.textContent("#group-state"),
      members: await texts("#members tbody tr td:nth-child(2)"),
      subscribed: await texts("#members tbody tr td:nth-child(5)"),
      assignment: await texts("#members tbody tr td:nth-child(6)"),
      partitions: await texts("#offsets tbody tr td:nth-child(2)"),
      starts: await texts("#offsets tbody tr td:nth-child(3)"),
      ends: await texts("#offsets tbody tr td:nth-child(4)"),
      lags: await texts("#offsets tbody tr td:nth-child(5)"),
      resetForms: await page.$$eval("#reset-form", els => els.length),
      markupElements: await page.$$eval("main b, h1 b", els => els.filter(e => e.textContent === "of").length),
    };
    await page.screenshot({ path: shots + "/share-group.png", fullPage: true });

    // Topics → the topic → its partitions and configs.
    await page.click("nav >> text=Topics");
    out.steps.topics = { names: await texts("#topics tbody tr td:first-child") };
    await page.click(`#topics a:text-is("${plan.topic}")`);
    out.steps.topic = {
      partitions: await texts("#partitions tbody tr td:first-child"),
      highWatermarks: await texts("#partitions tbody tr td:nth-child(6)"),
      configs: await texts("#configs tbody tr td:first-child"),
    };
    await page.screenshot({ path: shots + "/topic.png", fullPage: true });

    // The message browser, as JSON, from offset 0 of partition 1.
    await page.click("#browse");
    await page.selectOption("#browse-form select[name=partition]", "1");
    await page.fill("#browse-form input[name=offset]", "0");
    await page.fill("#browse-form input[name=limit]", "5");
    await page.selectOption("#browse-form select[name=format]", "json");
    await page.click("#browse-form button");
    await page.waitForSelector("#messages");
    out.steps.messages = {
      offsets: await texts("#messages tbody tr td:first-child"),
      keys: await texts("#messages tbody tr td:nth-child(3)"),
      headers: await texts("#messages tbody tr td:nth-child(4)"),
      values: await texts("#messages tbody tr td:nth-child(5)"),
      scriptsInTable: await page.$$eval("#messages script, #messages img", els => els.length),
      next: await page.getAttribute("#next", "href").catch(() => null),
    };
    await page.screenshot({ path: shots + "/messages.png", fullPage: true });

    // Groups → the group (an id full of markup) → lag, chart, reset to earliest.
    await page.click("nav >> text=Consumer groups");
    await page.click(`#groups a:text-is(${JSON.stringify(plan.group)})`);
    await page.waitForSelector("#chart-lag svg[data-points]");
    out.steps.group = {
      heading: await page.textContent("h1"),
      state: await page.textContent("#group-state"),
      lags: await texts("#offsets tbody tr td:nth-child(5)"),
      chartLast: await page.getAttribute("#chart-lag svg", "data-last"),
    };
    await page.screenshot({ path: shots + "/group.png", fullPage: true });
    await page.selectOption("#reset-form select[name=strategy]", "earliest");
    await page.click("#reset-form button");
    await page.waitForSelector(".notice");
    out.steps.reset = { notice: await page.textContent(".notice"), committed: await texts("#offsets tbody tr td:nth-child(3)") };

    // Create a topic from the form, then delete it (the name typed to confirm).
    await page.click("nav >> text=Topics");
    await page.fill("#create-topic input[name=name]", plan.created);
    await page.fill("#create-topic input[name=partitions]", "2");
    await page.fill("#create-topic textarea[name=configs]", "retention.ms=3600000");
    await page.click("#create-topic button");
    await page.waitForSelector("#partitions");
    out.steps.created = {
      notice: await page.textContent(".notice"),
      partitions: await texts("#partitions tbody tr td:first-child"),
      configs: await texts("#configs tbody tr td:first-child b"),
    };
    await page.fill("#delete-topic input[name=confirm]", plan.created);
    await page.click("#delete-topic button");
    await page.waitForSelector("#topics");
    out.steps.deleted = { notice: await page.textContent(".notice"), names: await texts("#topics tbody tr td:first-child") };
  } finally {
    await browser.close();
  }
  console.log("RESULT " + JSON.stringify(out));
}

main().catch(e => { console.log("ERROR " + String(e && e.stack || e).replace(/\n/g, " | ")); process.exit(1); });
