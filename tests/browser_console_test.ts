/**
 * The SQL console in a real headless browser (Debian chromium driven by playwright-core) against
 * `marketpipe serve`, at 1280 px and 390 px: the schema browser, Ctrl-Enter, the history, the
 * shareable link, the chart of a time column and DuckDB's error. Screenshots go to tests/output/.
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

/** Pixels of the query chart's canvases that are neither transparent nor white. */
async function inkedPixels(page: Page): Promise<number> {
  // A string, so this file needs no DOM types: it runs in the page.
  return await page.evaluate<number>(`(() => {
    let inked = 0;
    for (const canvas of document.querySelectorAll(".query-chart canvas")) {
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

/** Pixels of the chart's line colour (#1f77b4, the first series), which only a drawn line has. */
async function linePixels(page: Page): Promise<number> {
  return await page.evaluate<number>(`(() => {
    let line = 0;
    for (const canvas of document.querySelectorAll(".query-chart canvas")) {
      if (canvas.width === 0 || canvas.height === 0) continue;
      const context = canvas.getContext("2d");
      if (!context) continue;
      const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - 0x1f) < 24 && Math.abs(data[i + 1] - 0x77) < 24 &&
          Math.abs(data[i + 2] - 0xb4) < 24 && data[i + 3] > 200) line++;
      }
    }
    return line;
  })()`);
}

/** Polls `read` until it reaches `min` (at most 40 tries); returns the last value. */
async function pollAtLeast(page: Page, read: () => Promise<number>, min: number): Promise<number> {
  let value = 0;
  for (let i = 0; i < 40; i++) {
    value = await read();
    if (value >= min) break;
    await page.waitForTimeout(50);
  }
  return value;
}

const CHART_SQL =
  "SELECT ts, close FROM bars_1m WHERE symbol = 'AAPL' AND ts < TIMESTAMPTZ '2024-03-04 21:00:00+00' ORDER BY ts";

Deno.test("SQL console in a headless browser at 1280 and 390 px", async () => {
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
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    let loadErrors = 0;
    page.on("console", (message) => {
      if (message.type() !== "error" && message.type() !== "warning") return;
      // Chromium's note on this test's own pixel reads of the chart canvases.
      if (message.text().includes("willReadFrequently")) return;
      // Chromium logs the failing query's 400 (counted below) as a failed resource.
      if (message.text().includes("status of 400 (Bad Request)")) {
        loadErrors++;
        return;
      }
      problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on(
      "requestfailed",
      (request) => problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`),
    );
    page.on("request", (request) => {
      if (!request.url().startsWith(origin)) foreign.push(request.url());
    });
    let expectedErrors = 0;
    page.on("response", (response) => {
      if (response.status() < 400) return;
      // The one query below that is meant to fail.
      if (response.status() === 400 && response.url().endsWith("/partials/query")) {
        expectedErrors++;
        return;
      }
      problems.push(`HTTP ${response.status()}: ${response.url()}`);
    });
    const box = page.locator("textarea[name=sql]");
    // Opens the console and waits for its schema, which loads after the page (so that leaving
    // the page does not abort that request).
    const open = async (url: string) => {
      await page.goto(url);
      await page.locator("#schema-browser li[data-table]").first().waitFor();
    };

    for (const [width, height] of [[1280, 900], [390, 844]]) {
      await page.setViewportSize({ width, height });
      await open(`${serve.url}/query`);
      await page.evaluate("localStorage.clear()");
      await open(`${serve.url}/query`);

      // The schema browser lists bars_1m (open) with its columns and types.
      const minute = page.locator("#schema-browser li[data-table='bars_1m']");
      await minute.waitFor();
      const columns = minute.locator(".schema-columns li");
      assert.ok(await columns.first().isVisible(), "bars_1m columns are shown");
      const listed = (await columns.allTextContents()).map((text) => text.replace(/\s+/g, " "));
      assert.ok(listed.includes("ts TIMESTAMP WITH TIME ZONE"), listed.join("; "));
      assert.ok(listed.includes("close DOUBLE"), listed.join("; "));
      assert.deepEqual(
        await page.locator("#schema-browser li[data-table]").evaluateAll((items) =>
          items.map((item) => item.getAttribute("data-table"))
        ),
        [
          "bars_1m",
          "bars_1d",
          "bars",
          "symbols",
          "symbols_history",
          "universes",
          "universe_members",
        ],
      );
      // The default query lists timeframes in their real order.
      assert.match(await box.inputValue(), /list_position\(\['1m', '5m'/);
      await page.screenshot({ path: `${OUTPUT}console-${width}.png`, fullPage: true });

      // A click on a column name inserts it at the cursor.
      await box.fill("SELECT  FROM bars_1m LIMIT 3");
      await page.evaluate("document.querySelector('textarea[name=sql]').setSelectionRange(7, 7)");
      await minute.locator("button[data-insert='close']").click();
      assert.equal(await box.inputValue(), "SELECT close FROM bars_1m LIMIT 3");

      // Ctrl-Enter runs the query: a time column and a number make a drawn line chart.
      await box.fill(CHART_SQL);
      await box.press("Control+Enter");
      await page.waitForSelector("#query-result .query-chart[data-drawn='1'] canvas");
      const inked = await pollAtLeast(page, () => inkedPixels(page), 2000);
      assert.ok(inked >= 2000, `only ${inked} non-blank chart pixels`);
      const line = await pollAtLeast(page, () => linePixels(page), 200);
      assert.ok(line >= 200, `only ${line} pixels of the line's colour`);
      assert.match(
        await page.locator("#query-result p.small").first().textContent() ?? "",
        /^\d+ row\(s\)/,
      );
      // Times in the table are exchange time, named; numbers right-aligned.
      assert.match(
        await page.locator("#query-result tbody tr td time").first().textContent() ?? "",
        /^2024-03-04 \d\d:\d\d ET$/,
      );
      assert.equal(
        await page.evaluate<string>(
          "getComputedStyle(document.querySelector('#query-result tbody td.num')).textAlign",
        ),
        "right",
      );
      // The chart's axis reads exchange time: the first bar, 09:00 UTC, is drawn at 04:00.
      assert.equal(
        await page.locator("#query-result .query-chart").getAttribute("data-first-time"),
        String(Date.parse("2024-03-04T04:00:00Z") / 1000),
      );
      // The address bar now opens this query.
      assert.equal(new URL(page.url()).searchParams.get("sql"), CHART_SQL);
      await page.screenshot({ path: `${OUTPUT}console-chart-${width}.png` });

      // Numbers with thousands separators.
      await box.fill("SELECT count(*) AS bars, sum(volume)::BIGINT AS volume FROM bars_1m");
      await page.click("button[data-run]");
      // The previous result has no comma in its first number cell: this is the new one.
      await page.locator("#query-result tbody td.num").first().filter({ hasText: "," }).waitFor();
      assert.match(
        await page.locator("#query-result tbody td.num").first().textContent() ?? "",
        /^\d{1,3}(,\d{3})+$/,
      );
      assert.doesNotMatch(
        await page.locator("#query-result").innerHTML(),
        /data-chart/,
        "no chart without a time column",
      );

      // DuckDB's error keeps its caret line, in a monospace block that does not wrap.
      await box.fill("SELECT nope FROM bars");
      await box.press("Control+Enter");
      const error = page.locator("#query-result pre.sql-error");
      await error.waitFor();
      const text = await error.textContent() ?? "";
      assert.match(text, /\nLINE 1: SELECT nope FROM bars\n {15}\^/);
      assert.deepEqual(
        await page.evaluate(`(() => {
          const style = getComputedStyle(document.querySelector("#query-result pre.sql-error"));
          return [style.whiteSpace, /mono/i.test(style.fontFamily)];
        })()`),
        ["pre", true],
      );
      await page.screenshot({ path: `${OUTPUT}console-error-${width}.png`, fullPage: true });
      // Nothing makes the page wider than the window (tables and the error scroll inside).
      assert.equal(await page.evaluate("document.documentElement.scrollWidth"), width);

      // History: newest first, a click puts the query back; it survives a reload.
      const history = page.locator("#query-history button[data-history]");
      assert.deepEqual(await history.evaluateAll((items) => items.map((item) => item.title)), [
        "SELECT nope FROM bars",
        "SELECT count(*) AS bars, sum(volume)::BIGINT AS volume FROM bars_1m",
        CHART_SQL,
      ]);
      await open(`${serve.url}/query`);
      await page.locator("#query-history button[data-history]").nth(2).click();
      assert.equal(await box.inputValue(), CHART_SQL);
      await page.screenshot({ path: `${OUTPUT}console-history-${width}.png`, fullPage: true });

      // Copy link copies /query?sql=..., which opens with the query in the box.
      await page.click("a[data-share]");
      await page.locator("[data-share-status]", { hasText: "Link copied" }).waitFor();
      const copied = await page.evaluate<string>("navigator.clipboard.readText()");
      assert.equal(new URL(copied).searchParams.get("sql"), CHART_SQL);
      await open(copied);
      assert.equal(await box.inputValue(), CHART_SQL);
    }
    // With the UTC setting the table and the chart's axis show UTC.
    await open(`${serve.url}/query?tz=utc&${new URLSearchParams({ sql: CHART_SQL })}`);
    await page.click("button[data-run]");
    await page.locator("#query-result .query-chart[data-drawn='1']").waitFor();
    assert.equal(
      await page.locator("#query-result tbody tr td time").first().textContent(),
      "2024-03-04 09:00 UTC",
    );
    assert.equal(
      await page.locator("#query-result .query-chart").getAttribute("data-first-time"),
      String(Date.parse("2024-03-04T09:00:00Z") / 1000),
    );
    await page.screenshot({ path: `${OUTPUT}console-chart-utc-390.png` });
    // With the browser's zone (Tokyo here, UTC+9, no DST) both show Tokyo time.
    const cdp = await context.newCDPSession(page);
    await cdp.send("Emulation.setTimezoneOverride", { timezoneId: "Asia/Tokyo" });
    await open(`${serve.url}/query?tz=local&${new URLSearchParams({ sql: CHART_SQL })}`);
    await page.click("button[data-run]");
    await page.locator("#query-result .query-chart[data-drawn='1']").waitFor();
    assert.equal(
      await page.locator("#query-result tbody tr td time").first().textContent(),
      "2024-03-04 18:00 GMT+9",
    );
    assert.equal(
      await page.locator("#query-result .query-chart").getAttribute("data-first-time"),
      String(Date.parse("2024-03-04T18:00:00Z") / 1000),
    );
    await cdp.detach();
    assert.equal(expectedErrors, 2, "the failing query ran once per width");
    assert.equal(loadErrors, expectedErrors, "400s logged by the browser");
    assert.deepEqual(foreign, [], "requests outside the server");
    assert.deepEqual(problems, [], "browser log");
  } finally {
    await context.close();
    serve.child.kill("SIGTERM");
    await serve.finished;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
});
