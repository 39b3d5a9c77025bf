/**
 * The dashboard pages in a real headless browser (Debian chromium driven by playwright-core) at
 * 1280 px and 390 px: the time zone switch, the overview's stored data pivot and filter, tables
 * that scroll sideways with a visible cue, and resuming a cancelled job from its page.
 * Screenshots go to tests/output/ (git-ignored).
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { launchBrowser, OUTPUT, waitForTrue, watchPage } from "./_browser.ts";
import { filledDataDir, startServe } from "./web_fixture.ts";

/** The texts of the page's timestamps (trading dates excluded). */
async function timeTexts(page: Page): Promise<string[]> {
  return await page.evaluate<string[]>(
    `[...document.querySelectorAll("time[data-ts]:not([data-date])")].map((t) => t.textContent)`,
  );
}

/** Picks a setting in the header's switch (which submits itself) and waits for the new page. */
async function switchZone(page: Page, tz: string): Promise<void> {
  await page.selectOption("form.tz-switch select[name=tz]", tz);
  await page.waitForSelector(`html[data-tz='${tz}']`, { state: "attached" });
  await page.waitForLoadState("networkidle");
}

/** Asserts that every timestamp of the page reads in `zone` (its suffix), and returns them. */
async function assertZone(page: Page, zone: RegExp, what: string): Promise<string[]> {
  const texts = await timeTexts(page);
  assert.ok(texts.length > 0, `${what}: no timestamps`);
  for (const text of texts) assert.match(text, zone, `${what}: ${texts.join(" | ")}`);
  return texts;
}

Deno.test("dashboard pages in a headless browser: time zones, pivot, scrolling tables, resume", async () => {
  const dir = await filledDataDir();
  const serve = await startServe(["--data-dir", dir]);
  // A zone that is neither New York nor UTC, so that `local` shows a third reading.
  const browser = await launchBrowser({ width: 1280, height: 900, timezoneId: "Asia/Tokyo" });
  try {
    const page = browser.page;
    const { problems } = watchPage(page);
    page.on("dialog", (dialog) => dialog.accept());

    for (const [width, height] of [[1280, 900], [390, 844]] as const) {
      await page.setViewportSize({ width, height });
      const tag = String(width);

      // The switch changes every timestamp of the page, and the choice sticks (cookie).
      await page.goto(`${serve.url}/`);
      await page.waitForLoadState("networkidle");
      const exchange = await assertZone(page, / ET$/, `overview ${tag} exchange`);
      await switchZone(page, "utc");
      assert.equal(new URL(page.url()).pathname, "/");
      const utc = await assertZone(page, / UTC$/, `overview ${tag} utc`);
      assert.equal(utc.length, exchange.length);
      assert.notDeepEqual(utc, exchange);
      await page.screenshot({ path: `${OUTPUT}pages-overview-utc-${tag}.png`, fullPage: true });
      await switchZone(page, "local");
      const local = await assertZone(page, / GMT\+9$/, `overview ${tag} local`);
      assert.equal(local.length, exchange.length);
      // The jobs table polls itself: swapped-in rows keep the page's zone.
      await page.goto(`${serve.url}/jobs`);
      await page.waitForLoadState("networkidle");
      await assertZone(page, / GMT\+9$/, `jobs ${tag} local`);
      await switchZone(page, "exchange");
      assert.equal(new URL(page.url()).pathname, "/jobs");
      await assertZone(page, / ET$/, `jobs ${tag} exchange`);

      // The overview's stored data: a row per symbol, filtered as one types (htmx partial).
      await page.goto(`${serve.url}/`);
      await page.waitForLoadState("networkidle");
      const symbols = () =>
        page.evaluate<string[]>(
          `[...document.querySelectorAll("#series-results tr[data-symbol]")].map((r) => r.dataset.symbol)`,
        );
      // One row per symbol: the fixture's two, and after the first round the 30 it ingested.
      const rows = await symbols();
      assert.deepEqual(rows.slice(0, 2), ["AAPL", "MSFT"]);
      assert.equal(rows.length, width === 1280 ? 2 : 32);
      assert.equal(new Set(rows).size, rows.length);
      assert.deepEqual(
        await page.evaluate<string[]>(
          `[...document.querySelectorAll("#series-results table.pivot thead th")].map((th) => th.textContent)`,
        ),
        ["symbol", "name", "1m", "1d", "on disk"],
      );
      const filtered = page.waitForResponse((response) =>
        response.url().includes("/partials/series") &&
        response.request().headers()["hx-request"] === "true"
      );
      await page.fill("#series-table input[name=q]", "ms");
      assert.equal((await filtered).status(), 200);
      await waitForTrue(
        page,
        `[...document.querySelectorAll("#series-results tr[data-symbol]")].map((r) => r.dataset.symbol).join() === "MSFT"`,
      );
      // The input kept its focus and text through the swap.
      assert.equal(await page.inputValue("#series-table input[name=q]"), "ms");
      await page.screenshot({ path: `${OUTPUT}pages-overview-filter-${tag}.png`, fullPage: true });

      // Resume from the web: a long ingest cancelled on its page, then resumed there, finishes.
      const prefix = width === 1280 ? "W" : "N";
      const list = Array.from({ length: 30 }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`);
      const started = await page.request.post(`${serve.url}/api/jobs`, {
        data: { symbols: list, start: "2024-01-02", end: "2024-02-29", workers: 1 },
      });
      assert.equal(started.status(), 202, await started.text());
      const id = (await started.json()).job.id as string;
      await page.goto(`${serve.url}/jobs/${id}`);
      await page.click("#job-detail button.danger");
      await page.waitForSelector("#job-detail[data-status='cancelled']", { timeout: 30_000 });
      await page.waitForSelector("#job-detail button[data-action='resume']");
      assert.equal(await page.locator("#job-detail button[data-action='retry']").count(), 1);
      await page.screenshot({ path: `${OUTPUT}pages-job-cancelled-${tag}.png`, fullPage: true });
      await page.click("#job-detail button[data-action='resume']");
      await page.waitForSelector(`#job-detail .notice a[data-started-job='${id}']`);
      await page.waitForSelector("#job-detail[data-status='succeeded']", { timeout: 60_000 });
      assert.equal(await page.locator("#job-detail button[data-action='resume']").count(), 0);
      // The progress bar spans the panel.
      const bar = await page.locator("#job-detail progress.full").boundingBox();
      const panel = await page.locator("#job-detail").boundingBox();
      assert.ok(
        bar && panel && bar.width >= panel.width - 2,
        `bar ${bar?.width} of ${panel?.width}`,
      );
      assert.match(await page.locator("#job-pace").textContent() ?? "", /bars\/s/);
      await assertZone(page, / ET$/, `job ${tag}`);
      const tasks = await page.request.get(`${serve.url}/api/jobs/${id}`);
      const job = await tasks.json();
      assert.equal(job.status, "succeeded");
      assert.equal(job.id, id);
      await page.screenshot({ path: `${OUTPUT}pages-job-resumed-${tag}.png`, fullPage: true });

      // Tables wider than the screen scroll sideways in their frame, with a fade as the cue.
      await page.goto(`${serve.url}/jobs`);
      await page.waitForLoadState("networkidle");
      const wrap = "#jobs-table .table-wrap";
      const measure = () =>
        page.evaluate<{ scroll: number; client: number; overflow: string | null; mask: string }>(
          `(() => {
            const wrap = document.querySelector(${JSON.stringify(wrap)});
            const style = getComputedStyle(wrap);
            return {
              scroll: wrap.scrollWidth,
              client: wrap.clientWidth,
              overflow: wrap.getAttribute("data-overflow"),
              mask: style.maskImage || style.webkitMaskImage || "none",
            };
          })()`,
        );
      const before = await measure();
      if (width === 390) {
        assert.ok(before.scroll > before.client, `${before.scroll} <= ${before.client}`);
        assert.equal(before.overflow, "right");
        assert.match(before.mask, /linear-gradient/);
        await page.evaluate(`document.querySelector(${JSON.stringify(wrap)}).scrollLeft = 60`);
        await waitForTrue(
          page,
          `document.querySelector(${JSON.stringify(wrap)}).dataset.overflow === "both"`,
        );
        await page.evaluate(
          `(() => { const w = document.querySelector(${
            JSON.stringify(wrap)
          }); w.scrollLeft = w.scrollWidth; })()`,
        );
        await waitForTrue(
          page,
          `document.querySelector(${JSON.stringify(wrap)}).dataset.overflow === "left"`,
        );
        // The page itself does not scroll sideways: only the table's frame does.
        assert.ok(
          await page.evaluate<boolean>(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth",
          ),
          "the page is wider than the screen",
        );
      } else if (before.scroll <= before.client) {
        assert.equal(before.overflow, null);
        assert.equal(before.mask, "none");
      }
      await page.screenshot({ path: `${OUTPUT}pages-jobs-${tag}.png`, fullPage: true });

      // The symbol page: below 600 px the timeframe cards give way to the chart's tabs.
      await page.goto(`${serve.url}/symbols/AAPL`);
      await page.waitForLoadState("networkidle");
      const cards = page.locator("main > .cards:has(+ #chart-panel), main .tf-cards");
      if (await cards.count() > 0) {
        assert.equal(await cards.first().isVisible(), width > 600, `cards at ${width}`);
      }
      assert.ok(await page.locator("#chart-panel nav.tabs").first().isVisible());
      await page.screenshot({ path: `${OUTPUT}pages-symbol-${tag}.png`, fullPage: true });
    }

    assert.deepEqual(problems, [], "browser log");
  } finally {
    await browser.close();
    serve.child.kill("SIGTERM");
    await serve.finished;
  }
});
