/**
 * The SQL console in a real headless browser (Debian chromium driven by playwright-core) against
 * `marketpipe serve`, at 1280 px and 390 px: the schema browser, Ctrl-Enter, the history, the
 * shareable link, the chart of a time column and DuckDB's error. Screenshots go to tests/output/.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import {
  countPixels,
  inkedPixels,
  launchBrowser,
  OUTPUT,
  pollAtLeast,
  watchPage,
} from "./_browser.ts";
import { filledDataDir, startServe } from "./web_fixture.ts";

/** Pixels of the chart's line colour (#1f77b4, the first series), which only a drawn line has. */
async function linePixels(page: Page): Promise<number> {
  return await countPixels(
    page,
    ".query-chart",
    "Math.abs(data[i] - 0x1f) < 24 && Math.abs(data[i + 1] - 0x77) < 24 && " +
      "Math.abs(data[i + 2] - 0xb4) < 24 && data[i + 3] > 200",
  );
}

const CHART_SQL =
  "SELECT ts, close FROM bars_1m WHERE symbol = 'AAPL' AND ts < TIMESTAMPTZ '2024-03-04 21:00:00+00' ORDER BY ts";

Deno.test("SQL console in a headless browser at 1280 and 390 px", async () => {
  const dir = await filledDataDir();
  const serve = await startServe(["--data-dir", dir]);
  const browser = await launchBrowser({ width: 1280, height: 900 });
  try {
    const origin = new URL(serve.url).origin;
    await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
    const page = browser.page;
    let loadErrors = 0;
    let expectedErrors = 0;
    const { problems, foreign } = watchPage(page, {
      origin,
      skipConsole: (text) => {
        // Chromium's note on this test's own pixel reads of the chart canvases.
        if (text.includes("willReadFrequently")) return true;
        // Chromium logs the failing query's 400 (counted below) as a failed resource.
        if (text.includes("status of 400 (Bad Request)")) {
          loadErrors++;
          return true;
        }
        return false;
      },
      skipResponse: (response) => {
        // The one query below that is meant to fail.
        if (response.status() === 400 && response.url().endsWith("/partials/query")) {
          expectedErrors++;
          return true;
        }
        return false;
      },
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
      const inked = await pollAtLeast(page, () => inkedPixels(page, ".query-chart"), 2000);
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
      // Hovering names the time under the pointer (as the axis reads it) and the line's value.
      const chartBox = (await page.locator("#query-result .query-chart").boundingBox())!;
      await page.mouse.move(chartBox.x + chartBox.width / 2, chartBox.y + chartBox.height / 2);
      const hover = page.locator("#query-result .query-chart-hover");
      await page.waitForFunction(
        "document.querySelector('#query-result .query-chart-hover').textContent !== ''",
      );
      assert.match(await hover.textContent() ?? "", /^2024-03-04 \d\d:\d\d · close [\d,.]+$/);
      await page.mouse.move(0, 0);
      await page.waitForFunction(
        "document.querySelector('#query-result .query-chart-hover').textContent === ''",
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
    // The chart query under the time zone setting `tz`: the table's first time reads `text` and
    // the chart's axis starts at `axis`.
    const runInZone = async (tz: string, text: string, axis: string) => {
      await open(`${serve.url}/query?tz=${tz}&${new URLSearchParams({ sql: CHART_SQL })}`);
      await page.click("button[data-run]");
      await page.locator("#query-result .query-chart[data-drawn='1']").waitFor();
      assert.equal(
        await page.locator("#query-result tbody tr td time").first().textContent(),
        text,
      );
      assert.equal(
        await page.locator("#query-result .query-chart").getAttribute("data-first-time"),
        String(Date.parse(axis) / 1000),
      );
    };
    // With the UTC setting the table and the chart's axis show UTC.
    await runInZone("utc", "2024-03-04 09:00 UTC", "2024-03-04T09:00:00Z");
    await page.screenshot({ path: `${OUTPUT}console-chart-utc-390.png` });
    // With the browser's zone (Tokyo here, UTC+9, no DST) both show Tokyo time.
    const cdp = await browser.context.newCDPSession(page);
    await cdp.send("Emulation.setTimezoneOverride", { timezoneId: "Asia/Tokyo" });
    await runInZone("local", "2024-03-04 18:00 GMT+9", "2024-03-04T18:00:00Z");
    await cdp.detach();
    assert.equal(expectedErrors, 2, "the failing query ran once per width");
    assert.equal(loadErrors, expectedErrors, "400s logged by the browser");
    assert.deepEqual(foreign, [], "requests outside the server");
    assert.deepEqual(problems, [], "browser log");
  } finally {
    await browser.close();
    serve.child.kill("SIGTERM");
    await serve.finished;
  }
});
