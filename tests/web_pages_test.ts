/**
 * Dashboard route tests with `app.request()`: pages, htmx partials, embedded assets and their
 * error paths.
 */
import assert from "node:assert/strict";
import { ASSETS } from "../web/assets.ts";
import {
  expectedMinuteBars,
  filledDataDir,
  FIXTURE,
  testServer,
  waitUntil,
} from "./web_fixture.ts";

/** Asserts markup that the CSP would not break: scripts only by src, no inline styles or handlers. */
function assertCspSafe(markup: string): void {
  for (const tag of markup.match(/<script\b[^>]*>/g) ?? []) {
    assert.match(tag, /\ssrc="\/assets\/[\w.-]+\?v=[0-9a-f]+"/, tag);
  }
  assert.doesNotMatch(markup, /<script\b[^>]*>[^<]+<\/script>/);
  assert.doesNotMatch(markup, /\sstyle="/);
  assert.doesNotMatch(markup, /<style\b/);
  assert.doesNotMatch(markup, /\son[a-z]+="/);
  assert.doesNotMatch(markup, /(src|href)="(https?:)?\/\/[^"]*"[^>]*>\s*<\/script/);
}

Deno.test("dashboard pages and partials", async (t) => {
  const dir = await filledDataDir();
  const server = await testServer(dir);
  const app = server.app;
  const page = async (path: string, status = 200, init?: RequestInit) => {
    const response = await app.request(path, init);
    const text = await response.text();
    assert.equal(response.status, status, `${path}: ${text.slice(0, 300)}`);
    assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
    return { response, text };
  };
  const hx = { headers: { "HX-Request": "true" } };
  try {
    await t.step("GET / shows stored data, recent jobs and data quality", async () => {
      const { response, text } = await page("/");
      assert.match(response.headers.get("content-security-policy")!, /script-src 'self'/);
      assertCspSafe(text);
      assert.match(text, /<h1>Overview<\/h1>/);
      assert.match(text, /href="\/symbols\/AAPL\?timeframe=1m">AAPL<\/a>/);
      const rows = expectedMinuteBars("MSFT", FIXTURE.intraday.start, FIXTURE.intraday.end);
      assert.match(text, new RegExp(`>${rows.toLocaleString("en-US")}<`));
      assert.match(text, /no validation findings, 0 bar\(s\) quarantined/);
      assert.match(text, /id="jobs-table"/);
    });

    await t.step("GET /symbols and /partials/symbols search stored symbols", async () => {
      const { text } = await page("/symbols?q=ms");
      assertCspSafe(text);
      assert.match(text, /hx-get="\/partials\/symbols"/);
      assert.match(text, /href="\/symbols\/MSFT"/);
      assert.doesNotMatch(text, /href="\/symbols\/AAPL"/);
      const partial = await page("/partials/symbols?q=A", 200, hx);
      assert.match(partial.text, /href="\/symbols\/AAPL"/);
      assert.doesNotMatch(partial.text, /<html/);
      const none = await page("/partials/symbols?q=ZZ", 200, hx);
      assert.match(none.text, /No stored symbol matches/);
      await page("/partials/symbols?q=%3Cb%3E", 400, hx);
      await page("/symbols?x=1", 400);
    });

    await t.step(
      "GET /symbols/{symbol} draws a chart of the last sessions with coverage",
      async () => {
        const { text } = await page("/symbols/AAPL");
        assertCspSafe(text);
        const data = /data-bars="([^"]*)"/.exec(text)?.[1];
        assert.ok(data, "chart data");
        const rows = JSON.parse(data!) as number[][];
        assert.equal(rows.length, expectedMinuteBars("AAPL", "2024-03-04", "2024-03-08"));
        assert.equal(rows[0].length, 6);
        // 09:00 UTC on 2024-03-04 is 04:00 in New York: the axis reads exchange time.
        assert.equal(rows[0][0], Date.parse("2024-03-04T04:00:00Z") / 1000);
        assert.match(text, /hx-get="\/partials\/chart\?symbol=AAPL&amp;timeframe=1d"/);
        assert.match(text, /class="day full"[^>]*data-date="2024-03-05"/);
        assert.match(
          text,
          /class="day holiday" title="2024-03-29: exchange closed \(Good Friday\)"/,
        );
        assert.match(
          text,
          /href="\/api\/bars\?symbol=AAPL&amp;timeframe=1m&amp;start=2024-03-04&amp;end=2024-03-08&amp;format=csv/,
        );
        const daily = await page("/symbols/AAPL?timeframe=1d");
        const dailyRows = JSON.parse(/data-bars="([^"]*)"/.exec(daily.text)![1]);
        assert.equal(dailyRows.length, 61);
        assert.match(daily.text, /data-intraday="0"/);
      },
    );

    await t.step("GET /partials/chart swaps the panel for a timeframe and range", async () => {
      const { text } = await page(
        "/partials/chart?symbol=AAPL&timeframe=1m&start=2024-03-05&end=2024-03-05",
        200,
        hx,
      );
      assert.match(text, /^<section id="chart-panel"/);
      const rows = JSON.parse(/data-bars="([^"]*)"/.exec(text)![1]);
      assert.equal(rows.length, expectedMinuteBars("AAPL", "2024-03-05", "2024-03-05"));
      const empty = await page(
        "/partials/chart?symbol=AAPL&timeframe=1m&start=2024-01-02&end=2024-01-03",
      );
      assert.match(empty.text, /No 1m bars of AAPL from 2024-01-02 to 2024-01-03/);
      await page("/partials/chart?symbol=AAPL&timeframe=9m", 400, hx);
      await page("/partials/chart?symbol=AAPL&start=2024-03-08&end=2024-03-01", 400, hx);
      await page("/partials/chart?timeframe=1m", 400, hx);
      await page("/partials/chart?symbol=NONE", 404, hx);
    });

    await t.step(
      "GET /symbols/{symbol} is a 404 page for unknown and 400 for bad symbols",
      async () => {
        const missing = await page("/symbols/NVDA", 404);
        assert.match(missing.text, /No bars stored for symbol NVDA/);
        const bad = await page("/symbols/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 400);
        assert.doesNotMatch(bad.text, /<script>alert/);
        assert.match(bad.text, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
      },
    );

    await t.step("GET /jobs shows the form and jobs; POST /partials/jobs starts one", async () => {
      const { text } = await page("/jobs");
      assertCspSafe(text);
      assert.match(text, /hx-post="\/partials\/jobs"/);
      assert.match(text, /<option value="fake">fake<\/option>/);
      const form = new URLSearchParams({
        provider: "fake",
        symbols: "AMD",
        start: "2024-03-04",
        end: "2024-03-04",
        timeframe: "5m",
      });
      const started = await app.request("/partials/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true" },
        body: form.toString(),
      });
      const startedText = await started.text();
      assert.equal(started.status, 200, startedText);
      assert.equal(started.headers.get("hx-trigger"), "jobs-changed");
      const id = /data-started-job="([^"]+)"/.exec(startedText)?.[1];
      assert.ok(id, startedText);
      await waitUntil(
        async () => {
          const detail = await page(`/partials/jobs/${id}`, 200, hx);
          return /data-status="succeeded"/.test(detail.text);
        },
        20_000,
        "the form job to succeed",
      );
      const table = await page("/partials/jobs", 200, hx);
      assert.match(table.text, new RegExp(`data-job="${id}"`));
      const detail = await page(`/jobs/${id}`);
      assertCspSafe(detail.text);
      assert.match(detail.text, /status-succeeded/);
      assert.doesNotMatch(detail.text, /hx-trigger="every 1s"/);
      const cancel = await page(`/partials/jobs/${id}/cancel`, 409, { method: "POST", ...hx });
      assert.match(cancel.text, /Cannot cancel job .*: it is succeeded/);
      const bad = await app.request("/partials/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true" },
        body: new URLSearchParams({ symbols: "<img src=x>", start: "2024-03-04" }).toString(),
      });
      const badText = await bad.text();
      assert.equal(bad.status, 400);
      assert.match(badText, /class="notice error"/);
      assert.match(badText, /Invalid symbol &quot;&lt;img&quot; in symbols/);
      assert.doesNotMatch(badText, /<img/);
      await page("/jobs/nope-nope", 404);
    });

    await t.step("GET /validation shows the state without reports; 404 for a report", async () => {
      const { text } = await page("/validation");
      assertCspSafe(text);
      assert.match(text, /No validation reports/);
      await page("/validation/20240101-abc", 404);
      await page("/validation/..%2F..%2Fetc", 400);
    });

    await t.step("GET /query and POST /partials/query run SQL into a table", async () => {
      const { text } = await page("/query");
      assertCspSafe(text);
      assert.match(text, /action="\/api\/query\?format=csv"/);
      assert.match(text, /Views: bars_1m, bars_1d, bars\./);
      const run = (sql: string) =>
        app.request("/partials/query", {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true" },
          body: new URLSearchParams({ sql, limit: "10", timeout: "5" }).toString(),
        });
      const ok = await run("SELECT '<b>x</b>' AS html, 42 AS answer");
      const okText = await ok.text();
      assert.equal(ok.status, 200);
      assert.match(okText, /<td>&lt;b&gt;x&lt;\/b&gt;<\/td><td>42<\/td>/);
      const error = await run("SELECT nope FROM bars");
      assert.equal(error.status, 400);
      assert.match(await error.text(), /Referenced column &quot;nope&quot; not found/);
    });

    await t.step(
      "GET /login without a token says none is needed; POST /login redirects",
      async () => {
        const { text } = await page("/login");
        assert.match(text, /needs no token/);
        const posted = await app.request("/login", {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: "next=%2Fjobs",
        });
        assert.equal(posted.status, 303);
        assert.equal(posted.headers.get("location"), "/jobs");
        const offsite = await app.request("/login", {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: "next=%2F%2Fevil.example",
        });
        assert.equal(offsite.headers.get("location"), "/");
        const out = await app.request("/logout", { method: "POST" });
        assert.equal(out.status, 303);
        assert.match(out.headers.get("set-cookie")!, /mp_session=; .*Max-Age=0/);
      },
    );

    await t.step(
      "GET /assets/{name} serves every embedded asset, gzipped and cacheable",
      async () => {
        for (const [name, asset] of Object.entries(ASSETS)) {
          const response = await app.request(`/assets/${name}`);
          assert.equal(response.status, 200, name);
          assert.equal(response.headers.get("content-type"), asset.type);
          assert.equal(await response.text(), asset.body);
          const etag = response.headers.get("etag")!;
          const cached = await app.request(`/assets/${name}`, {
            headers: { "If-None-Match": etag },
          });
          assert.equal(cached.status, 304);
        }
        const home = await (await app.request("/")).text();
        const chartUrl = /src="(\/assets\/lightweight-charts\.js\?v=[0-9a-f]+)"/.exec(home)![1];
        const gz = await app.request(chartUrl, { headers: { "Accept-Encoding": "gzip, br" } });
        assert.equal(gz.headers.get("content-encoding"), "gzip");
        assert.match(gz.headers.get("cache-control")!, /immutable/);
        const plain = await new Response(
          gz.body!.pipeThrough(new DecompressionStream("gzip")),
        ).text();
        assert.equal(plain, ASSETS["lightweight-charts.js"].body);
        assert.match(plain, /window\.LightweightCharts=/);
        assert.match(ASSETS["htmx.min.js"].body, /htmx/);
      },
    );

    await t.step("unknown pages are HTML 404s; wrong methods are 405", async () => {
      const missing = await page("/nope", 404);
      assert.match(missing.text, /No route GET \/nope/);
      const wrong = await app.request("/symbols", { method: "POST" });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.get("allow"), "GET");
    });
  } finally {
    await server.close();
  }
});
