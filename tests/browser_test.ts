/**
 * The dashboard in a real headless browser (Debian chromium driven by playwright-core) against
 * `marketpipe serve` over a data directory filled by a fake ingest. Screenshots go to
 * tests/output/ (git-ignored).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { chromium, type Page } from "playwright-core";
import { filledDataDir, startServe } from "./web_fixture.ts";

const OUTPUT = fileURLToPath(new URL("./output/", import.meta.url));

/** `chromium` on PATH, as `.ci/run` looks it up (`command -v chromium`), else Debian's path. */
async function findChromium(): Promise<string> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    const path = `${dir}/chromium`;
    try {
      const info = await Deno.stat(path);
      if (info.isFile && (info.mode ?? 0) & 0o111) return path;
    } catch {
      // Not in this directory: try the next one.
    }
  }
  return "/usr/bin/chromium";
}

/** Pixels of the chart's canvases that differ from the white background. */
async function inkedPixels(page: Page): Promise<number> {
  // A string, so this file needs no DOM types: it runs in the page.
  return await page.evaluate<number>(`(() => {
    let inked = 0;
    for (const canvas of document.querySelectorAll(".chart canvas")) {
      if (canvas.width === 0 || canvas.height === 0) continue;
      const context = canvas.getContext("2d");
      if (!context) continue;
      const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < data.length; i += 4) {
        const transparent = data[i + 3] === 0;
        const white = data[i] > 245 && data[i + 1] > 245 && data[i + 2] > 245;
        if (!transparent && !white) inked++;
      }
    }
    return inked;
  })()`);
}

Deno.test("dashboard in a headless browser: search, chart, timeframe switch, web ingest", async () => {
  const executablePath = await findChromium();
  try {
    await Deno.stat(executablePath);
  } catch {
    throw new Error(`${executablePath} is missing: apt-get install -y chromium`);
  }
  await Deno.mkdir(OUTPUT, { recursive: true });
  const dir = await filledDataDir();
  const serve = await startServe(["--data-dir", dir]);
  const profile = await Deno.makeTempDir({ prefix: "mp-chromium-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
  const problems: string[] = [];
  const foreign: string[] = [];
  const origin = new URL(serve.url).origin;
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") {
        problems.push(`console ${message.type()}: ${message.text()}`);
      }
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on(
      "requestfailed",
      (request) => problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`),
    );
    page.on("request", (request) => {
      if (!request.url().startsWith(origin)) foreign.push(request.url());
    });
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
    });

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
    let inked = 0;
    for (let i = 0; i < 40 && inked < 2000; i++) {
      inked = await inkedPixels(page);
      if (inked < 2000) await page.waitForTimeout(50);
    }
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
    let inkedDaily = 0;
    for (let i = 0; i < 40 && inkedDaily < 2000; i++) {
      inkedDaily = await inkedPixels(page);
      if (inkedDaily < 2000) await page.waitForTimeout(50);
    }
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
    await context.close();
    serve.child.kill("SIGTERM");
    await serve.finished;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
});
