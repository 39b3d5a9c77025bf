/**
 * The symbol page's chart in a real headless browser (Debian chromium driven by playwright-core)
 * against `marketpipe serve`, at 1280 px and 390 px: the legend follows the hovered candle, range
 * buttons reload the panel, overlays toggle, a second symbol compares, findings are marked.
 * Screenshots go to tests/output/ (git-ignored).
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { generateFakeDay } from "../providers/mod.ts";
import { openStore } from "../storage/mod.ts";
import { launchBrowser, OUTPUT, watchPage } from "./_browser.ts";
import { filledDataDir, saveSpikeReport, startServe } from "./web_fixture.ts";

/** The fixture data directory plus a validation report with one warning on 2024-03-08. */
async function dataDir(): Promise<string> {
  const dir = await filledDataDir();
  const store = await openStore(dir, { command: "test" });
  try {
    const bar = generateFakeDay("AAPL", "2024-03-08", { seed: 0, gapRate: 0.01 })
      .filter((b) => b.session === "regular")[60];
    await saveSpikeReport(store.meta.db, dir, bar);
  } finally {
    store.close();
  }
  return dir;
}

/** The legend's text per field. */
async function legend(page: Page): Promise<Record<string, string>> {
  return await page.evaluate<Record<string, string>>(`(() => {
    const out = {};
    for (const item of document.querySelectorAll(".chart-legend [data-field]")) {
      if (item.hidden) continue;
      const value = item.querySelector(".value");
      out[item.dataset.field] = (value ? value.textContent : item.textContent).trim();
    }
    return out;
  })()`);
}

/** The chart's rows and the row the legend shows. */
async function chartState(page: Page): Promise<{ rows: number[][]; index: number }> {
  return await page.evaluate<{ rows: number[][]; index: number }>(`(() => {
    const chart = document.querySelector("#chart-panel .chart");
    return { rows: JSON.parse(chart.dataset.bars), index: Number(chart.dataset.legendIndex) };
  })()`);
}

function price(value: number): string {
  return Math.abs(value) >= 1 ? value.toFixed(2) : value.toFixed(4);
}

/** Moves the mouse over the chart's price pane at `fraction` of its width. */
async function hover(page: Page, fraction: number): Promise<void> {
  const box = await page.locator("#chart-panel .chart").boundingBox();
  assert.ok(box, "chart box");
  // The right price scale takes about 80 px; the price pane is the upper three quarters.
  const x = box.x + (box.width - 90) * fraction;
  const y = box.y + box.height * 0.35;
  await page.mouse.move(x, y);
}

/** Waits until the legend shows another row than `index`, then returns the state. */
async function legendMoved(page: Page, from: number): Promise<{ rows: number[][]; index: number }> {
  await page.waitForFunction(
    `Number(document.querySelector("#chart-panel .chart").dataset.legendIndex) !== ${from}`,
  );
  return await chartState(page);
}

async function checkWidth(page: Page, base: string, width: number): Promise<void> {
  await page.setViewportSize({ width, height: width < 600 ? 844 : 900 });
  await page.goto(`${base}/symbols/AAPL?timeframe=1m&range=1D`);
  await page.waitForSelector("#chart-panel[data-range='1D'] .chart[data-drawn='1'] canvas");
  let state = await chartState(page);
  const last = state.rows.length - 1;
  assert.equal(state.index, last, "the legend starts at the last bar");
  assert.equal((await legend(page)).close, price(state.rows[last][4]));

  // Hovering a candle shows that bar's values; further left is an earlier bar.
  await hover(page, 0.6);
  state = await legendMoved(page, last);
  const right = state.index;
  const shown = await legend(page);
  const bar = state.rows[right];
  assert.equal(shown.open, price(bar[1]));
  assert.equal(shown.high, price(bar[2]));
  assert.equal(shown.low, price(bar[3]));
  assert.equal(shown.close, price(bar[4]));
  assert.equal(shown.volume, Math.round(bar[5]).toLocaleString("en-US"));
  const wall = new Date(bar[0] * 1000).toISOString();
  assert.equal(shown.time, `${wall.slice(0, 10)} ${wall.slice(11, 16)} ET`);
  const previous = state.rows[right - 1][4];
  assert.match(
    shown.change,
    new RegExp(`\\(${((bar[4] - previous) / previous * 100) >= 0 ? "\\+" : "-"}`),
  );
  // About 60% across the visible bars (the range starts a little left of the first bar).
  assert.ok(right > last * 0.45 && right < last * 0.75, `hovered bar ${right} of ${last}`);
  await hover(page, 0.2);
  state = await legendMoved(page, right);
  assert.ok(state.index < right, `left of bar ${right} is bar ${state.index}`);
  assert.equal((await legend(page)).close, price(state.rows[state.index][4]));
  await page.screenshot({ path: `${OUTPUT}chart-hover-${width}.png`, fullPage: true });

  // The finding of the report is marked and listed with a link to the report.
  const findings = page.locator(".chart-findings a");
  assert.equal(await findings.count(), 1);
  assert.match(await findings.first().getAttribute("href") ?? "", /^\/validation\/v/);

  // Toggling VWAP hides it from the legend.
  assert.ok((await legend(page)).vwap);
  await page.click("input[data-overlay='vwap']");
  await page.waitForFunction(
    `document.querySelector(".chart-legend [data-field='vwap']").hidden === true`,
  );
  await page.click("input[data-overlay='vwap']");

  // Range buttons reload the panel through htmx, without a page load.
  await page.evaluate("window.mpMarker = 7");
  await page.click("#chart-panel nav.ranges a[data-range='5D']");
  await page.waitForSelector("#chart-panel[data-range='5D'] .chart[data-drawn='1'] canvas");
  assert.equal(await page.locator("#chart-panel").getAttribute("data-start"), "2024-03-04");
  assert.equal(await page.locator("#chart-panel").getAttribute("data-end"), "2024-03-08");
  await page.waitForURL(/range=5D/);
  const fiveDays = await chartState(page);
  assert.ok(fiveDays.rows.length > state.rows.length * 4, `${fiveDays.rows.length} bars in 5D`);
  assert.equal(
    await page.locator("#chart-panel nav.ranges a.active").textContent(),
    "5D",
  );
  assert.equal(await page.evaluate("window.mpMarker"), 7, "the range reloaded the page");
  await page.screenshot({ path: `${OUTPUT}chart-5d-${width}.png`, fullPage: true });
  await page.click("#chart-panel nav.ranges a[data-range='1D']");
  await page.waitForSelector("#chart-panel[data-range='1D'] .chart[data-drawn='1'] canvas");
  assert.equal(await page.locator("#chart-panel").getAttribute("data-start"), "2024-03-08");

  // Compare a second symbol: its % change joins the legend.
  await page.fill("#chart-panel input[name=compare]", "msft");
  await page.press("#chart-panel input[name=compare]", "Enter");
  await page.waitForSelector(".chart[data-compare-symbol='MSFT'][data-drawn='1'] canvas");
  const compared = await legend(page);
  assert.match(compared.compare ?? "", /^[+-]\d+\.\d\d%$/);
  assert.match(compared.own ?? "", /^[+-]\d+\.\d\d%$/);
  await page.screenshot({ path: `${OUTPUT}chart-compare-${width}.png`, fullPage: true });

  // Daily bars: the legend names the trading date.
  await page.goto(`${base}/symbols/AAPL?timeframe=1d&range=All`);
  await page.waitForSelector(".chart[data-drawn='1'] canvas");
  assert.match((await legend(page)).time, /^2024-03-28$/);
  await page.screenshot({ path: `${OUTPUT}chart-1d-${width}.png`, fullPage: true });
}

Deno.test("chart in a headless browser: legend on hover, ranges, overlays, compare", async () => {
  const dir = await dataDir();
  const serve = await startServe(["--data-dir", dir]);
  const browser = await launchBrowser({ width: 1280, height: 900 });
  try {
    const page = browser.page;
    const { problems } = watchPage(page);
    await checkWidth(page, serve.url, 1280);
    await checkWidth(page, serve.url, 390);

    // The UTC setting moves the axis and the legend to UTC.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${serve.url}/symbols/AAPL?timeframe=1m&range=1D&tz=utc`);
    await page.waitForSelector(".chart[data-drawn='1'] canvas");
    const { rows } = await chartState(page);
    const utc = new Date((rows[rows.length - 1][0] + 5 * 3600) * 1000).toISOString();
    assert.equal((await legend(page)).time, `${utc.slice(0, 10)} ${utc.slice(11, 16)} UTC`);
    await page.screenshot({ path: `${OUTPUT}chart-utc-1280.png`, fullPage: true });

    // `local` follows the browser's zone: Tokyo is UTC+9 all year.
    const cdp = await browser.context.newCDPSession(page);
    await cdp.send("Emulation.setTimezoneOverride", { timezoneId: "Asia/Tokyo" });
    await page.goto(`${serve.url}/symbols/AAPL?timeframe=1m&range=1D&tz=local`);
    await page.waitForSelector(".chart[data-drawn='1'] canvas");
    const tokyo = new Date((rows[rows.length - 1][0] + 14 * 3600) * 1000).toISOString();
    assert.match(
      (await legend(page)).time,
      new RegExp(`^${tokyo.slice(0, 10)} ${tokyo.slice(11, 16)} (GMT\\+9|JST)$`),
    );
    assert.match(await page.locator(".chart-zone").textContent() ?? "", /your time zone/);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    serve.child.kill("SIGTERM");
    await serve.finished;
    await Deno.remove(dir, { recursive: true });
  }
});
