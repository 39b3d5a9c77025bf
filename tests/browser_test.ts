/**
 * The dashboard in a real headless browser (Debian chromium driven by playwright-core) against
 * `marketpipe serve` over a data directory filled by a fake ingest. Screenshots go to
 * tests/output/ (git-ignored).
 */
import assert from "node:assert/strict";
import { inkedPixels, launchBrowser, OUTPUT, pollAtLeast, watchPage } from "./_browser.ts";
import { filledDataDir, startServe } from "./web_fixture.ts";

Deno.test("dashboard in a headless browser: search, chart, timeframe switch, web ingest", async () => {
  const dir = await filledDataDir();
  const serve = await startServe(["--data-dir", dir]);
  const browser = await launchBrowser({ width: 1280, height: 900 });
  try {
    const page = browser.page;
    const { problems, foreign } = watchPage(page, { origin: new URL(serve.url).origin });

    // Overview.
    await page.goto(`${serve.url}/`);
    await page.waitForLoadState("networkidle");
    assert.equal(await page.locator("h1").textContent(), "Overview");
    assert.equal(await page.locator("a[href='/symbols/MSFT?timeframe=1m']").count(), 1);
    await page.screenshot({ path: `${OUTPUT}overview-1280.png`, fullPage: true });

    // Search a symbol: the results come from an htmx request as the user types.
    await page.click("nav >> text=Symbols");
    await page.waitForLoadState("networkidle");
    const search = page.waitForResponse((response) =>
      response.url().includes("/partials/symbols?q=AA") &&
      response.request().headers()["hx-request"] === "true"
    );
    await page.fill("input[name=q]", "AA");
    assert.equal((await search).status(), 200);
    // The page first lists every symbol; the swapped-in results list only the match.
    await page.waitForFunction(
      "[...document.querySelectorAll('#symbol-results a.sym')].map((a) => a.textContent).join() === 'AAPL'",
    );
    await page.screenshot({ path: `${OUTPUT}symbols-1280.png`, fullPage: true });
    await page.click("#symbol-results a.sym:text('AAPL')");
    await page.waitForURL(/\/symbols\/AAPL$/);

    // The chart is drawn: its canvases have non-blank pixels.
    await page.waitForSelector(".chart canvas");
    await page.waitForSelector(".chart[data-drawn='1']");
    const inked = await pollAtLeast(page, () => inkedPixels(page, ".chart"), 2000);
    assert.ok(inked >= 2000, `only ${inked} non-blank chart pixels`);
    await page.screenshot({ path: `${OUTPUT}symbol-1m-1280.png`, fullPage: true });

    // Switch timeframe: htmx fetches the chart panel and swaps it in without a page load.
    // A value on window survives an htmx swap but not a page load.
    await page.evaluate("window.mpMarker = 42");
    const partial = page.waitForRequest((request) =>
      request.url().includes("/partials/chart?symbol=AAPL&timeframe=1d") &&
      request.headers()["hx-request"] === "true"
    );
    await page.click("#chart-panel nav.tabs a:text('1d')");
    await partial;
    await page.waitForSelector("#chart-panel[data-timeframe='1d'] .chart[data-drawn='1'] canvas");
    await page.waitForURL(/\/symbols\/AAPL\?timeframe=1d$/);
    const inkedDaily = await pollAtLeast(page, () => inkedPixels(page, ".chart"), 2000);
    assert.ok(inkedDaily >= 2000, `only ${inkedDaily} non-blank pixels after the switch`);
    assert.equal(await page.evaluate("window.mpMarker"), 42, "the switch reloaded the page");
    assert.match(
      await page.locator("#chart-panel p.small").first().textContent() ?? "",
      /61 1d bars/,
    );
    await page.screenshot({ path: `${OUTPUT}symbol-1d-1280.png`, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await page.waitForSelector(".chart[data-drawn='1'] canvas");
    await page.waitForTimeout(100);
    await page.screenshot({ path: `${OUTPUT}symbol-1d-390.png`, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    // Start a fake ingest from the jobs page and watch it finish.
    await page.goto(`${serve.url}/jobs`);
    await page.waitForLoadState("networkidle");
    await page.fill("input[name=symbols]", "NFLX,AMD");
    await page.fill("input[name=start]", "2024-03-04");
    await page.fill("input[name=end]", "2024-03-06");
    await page.selectOption("select[name=timeframe]", "1m");
    await page.click("button:text('Start ingest')");
    const link = page.locator("#job-start-result a[data-started-job]");
    await link.waitFor();
    const id = await link.getAttribute("data-started-job");
    assert.ok(id);
    await page.waitForSelector(`#jobs-table tr[data-job='${id}'] .status-succeeded`, {
      timeout: 30_000,
    });
    await page.screenshot({ path: `${OUTPUT}jobs-1280.png`, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${OUTPUT}jobs-390.png`, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await link.click();
    await page.waitForURL(new RegExp(`/jobs/${id}$`));
    assert.equal(await page.locator("#job-detail").getAttribute("data-status"), "succeeded");
    await page.screenshot({ path: `${OUTPUT}job-1280.png`, fullPage: true });

    // The SQL console runs a query through htmx.
    await page.goto(`${serve.url}/query`);
    await page.fill(
      "textarea[name=sql]",
      "SELECT symbol, count(*) AS bars FROM bars_1m GROUP BY symbol ORDER BY symbol",
    );
    await page.click("button:text('Run')");
    await page.waitForSelector("#query-result table");
    assert.equal(await page.locator("#query-result tbody tr").count(), 4);
    await page.screenshot({ path: `${OUTPUT}query-1280.png`, fullPage: true });

    // The Data page previews a prune (the dry run changes nothing) before offering to run it.
    await page.click("nav >> text=Data");
    await page.waitForURL(/\/data$/);
    await page.fill("input[name=before]", "2024-03-05");
    await page.selectOption("form[hx-post='/partials/prune'] select[name=timeframe]", "1m");
    await page.click("button:text('Preview prune')");
    await page.waitForSelector("#prune-result table");
    assert.equal(await page.locator("#prune-result tbody tr").count(), 4);
    assert.equal(await page.locator("#prune-result button.danger").count(), 1);
    await page.screenshot({ path: `${OUTPUT}data-1280.png`, fullPage: true });

    assert.deepEqual(foreign, [], "requests outside the server");
    assert.deepEqual(problems, [], "browser log");
  } finally {
    await browser.close();
    serve.child.kill("SIGTERM");
    await serve.finished;
  }
});
