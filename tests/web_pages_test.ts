/**
 * Dashboard route tests with `app.request()`: pages, htmx partials, embedded assets and their
 * error paths.
 */
import assert from "node:assert/strict";
import { ASSETS } from "../web/assets.ts";
import {
  formatTime,
  seriesTable,
  timeTag,
  validationDetail,
  type ValidationReportDetail,
} from "../web/views.ts";
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
      // The stored data table is a pivot: a row per symbol, a column per timeframe.
      assert.match(
        text,
        /<tr data-symbol="AAPL">\s*<th scope="row"><a href="\/symbols\/AAPL">AAPL<\/a>/,
      );
      assert.match(text, /href="\/symbols\/AAPL\?timeframe=1m">4,/);
      assert.match(text, /href="\/symbols\/AAPL\?timeframe=1d">61<\/a>/);
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
      assert.match(okText, /<td>&lt;b&gt;x&lt;\/b&gt;<\/td><td class="num">42<\/td>/);
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

Deno.test("dashboard day-2 operations: update, backfill, prune, delete, export", async (t) => {
  const dir = await filledDataDir();
  // 22:00 ET on 2024-03-11: that session has closed, the next has not.
  const server = await testServer(dir, { env: { MARKETPIPE_NOW: "2024-03-12T02:00:00Z" } });
  const app = server.app;
  const hx = { "HX-Request": "true" };
  const post = async (path: string, fields: Record<string, string>, status = 200) => {
    const response = await app.request(path, {
      method: "POST",
      headers: { ...hx, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields).toString(),
    });
    const text = await response.text();
    assert.equal(response.status, status, `${path}: ${text.slice(0, 500)}`);
    return text;
  };
  const get = async (path: string) => {
    const response = await app.request(path, { headers: hx });
    const text = await response.text();
    assert.equal(response.status, 200, `${path}: ${text.slice(0, 500)}`);
    return text;
  };
  const count = async (sql: string) => {
    const response = await app.request("/api/query", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sql }),
    });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    return Number(body.rows[0][0]);
  };
  const startedIds = (text: string) =>
    [...text.matchAll(/data-started-job="([^"]+)"/g)].map((m) => m[1]);
  const finished = async (id: string) => {
    await waitUntil(
      async () =>
        /data-status="(succeeded|partial|failed)"/.test(await get(`/partials/jobs/${id}`)),
      30_000,
      `job ${id} to end`,
    );
    assert.match(await get(`/partials/jobs/${id}`), /data-status="succeeded"/);
  };
  const aaplBars = () => count("SELECT count(*) FROM bars_1m WHERE symbol = 'AAPL'");
  try {
    await t.step("GET /data renders the prune, delete and export forms", async () => {
      const text = await get("/data");
      assertCspSafe(text);
      assert.match(text, /<a href="\/data" class="active">Data<\/a>/);
      assert.match(text, /hx-post="\/partials\/prune"/);
      assert.match(text, /hx-post="\/partials\/delete"/);
      assert.match(text, /hx-post="\/partials\/exports"/);
      assert.match(text, /<option value="arrow">arrow<\/option>/);
    });

    await t.step(
      "POST /partials/prune previews the plan, changes nothing, then runs it",
      async () => {
        const before = await aaplBars();
        const removed = expectedMinuteBars("AAPL", "2024-03-04", "2024-03-05");
        const fields = { before: "2024-03-06", timeframe: "1m", provider: "" };
        const plan = await post("/partials/prune", fields);
        assert.match(plan, /<td>bars<\/td>\s*<td>1m<\/td>\s*<td>AAPL<\/td>\s*<td>2024<\/td>/);
        assert.match(plan, /<td>2024-03-04\.\.2024-03-05<\/td>/);
        assert.match(plan, new RegExp(`<td class="num">${removed.toLocaleString("en-US")}</td>`));
        assert.match(plan, /<input type="hidden" name="before" value="2024-03-06">/);
        assert.match(plan, /<input type="hidden" name="confirm" value="true">/);
        assert.equal(await aaplBars(), before, "the dry run removed bars");
        const started = await post("/partials/prune", { ...fields, confirm: "true" });
        assert.match(started, /Started prune job/);
        const [id] = startedIds(started);
        await finished(id);
        assert.equal(await aaplBars(), before - removed);
        const detail = await get(`/jobs/${id}`);
        assertCspSafe(detail);
        assert.match(detail, /<div class="label">partitions<\/div><div class="value">2\/2<\/div>/);
        const both = removed + expectedMinuteBars("MSFT", "2024-03-04", "2024-03-05");
        assert.match(
          detail,
          new RegExp(`Removed ${both.toLocaleString("en-US")} bar\\(s\\) from 2 `),
        );
        assert.doesNotMatch(detail, /--resume/);
        assert.match(
          await get("/partials/jobs"),
          new RegExp(`data-job="${id}">[^]*?<td>prune</td>`),
        );
        assert.match(await post("/partials/prune", fields), /Nothing to remove/);
      },
    );

    await t.step(
      "POST /partials/delete previews and deletes a symbol; bad symbols are text",
      async () => {
        const bad = await post("/partials/delete", { symbols: "<img src=x>" }, 400);
        assert.match(bad, /class="notice error"/);
        assert.match(bad, /&lt;img/);
        assert.doesNotMatch(bad, /<img/);
        const plan = await post("/partials/delete", { symbols: "MSFT", timeframe: "" });
        assert.match(plan, /<td>MSFT<\/td>/);
        assert.doesNotMatch(plan, /<td>AAPL<\/td>/);
        assert.ok(await count("SELECT count(*) FROM bars_1m WHERE symbol = 'MSFT'") > 0);
        const [id] = startedIds(
          await post("/partials/delete", { symbols: "MSFT", confirm: "true" }),
        );
        await finished(id);
        assert.equal(await count("SELECT count(*) FROM bars WHERE symbol = 'MSFT'"), 0);
      },
    );

    await t.step(
      "POST /partials/exports starts an export that links its file when done",
      async () => {
        const started = await post("/partials/exports", {
          symbols: "AAPL",
          timeframe: "1d",
          start: "2024-01-02",
          end: "2024-03-28",
          format: "csv",
          columns: "symbol,ts,close",
        });
        const id = /hx-get="\/partials\/exports\/([^"]+)"/.exec(started)?.[1] ??
          startedIds(started)[0];
        assert.ok(id, started);
        let status = "";
        await waitUntil(
          async () =>
            /data-status="(succeeded|failed)"/.test(status = await get(`/partials/exports/${id}`)),
          30_000,
          "the export to end",
        );
        assert.match(status, new RegExp(`href="/api/exports/${id}" download`));
        assert.doesNotMatch(status, /hx-trigger="every 1s"/);
        assert.match(await get(`/jobs/${id}`), /Exported 61 bar\(s\)/);
        const file = await app.request(`/api/exports/${id}`);
        const csv = await file.text();
        assert.equal(file.status, 200, csv);
        const lines = csv.trimEnd().split("\n");
        assert.equal(lines[0], "symbol,ts,close");
        assert.equal(lines.length, 1 + 61);
        const bad = await post("/partials/exports", {
          symbols: "AAPL",
          timeframe: "1d",
          start: "2024-01-02",
          format: "xlsx",
        }, 400);
        assert.match(bad, /format/);
      },
    );

    await t.step(
      "POST /partials/update starts the jobs of the series behind, then is up to date",
      async () => {
        const jobsPage = await get("/jobs");
        assertCspSafe(jobsPage);
        assert.match(jobsPage, /hx-post="\/partials\/update"/);
        const before = await aaplBars();
        const started = await post("/partials/update", {});
        const ids = startedIds(started);
        assert.equal(ids.length, 1, started);
        assert.match(started, /1m AAPL 2024-03-11\.\.2024-03-11/);
        await finished(ids[0]);
        assert.equal(
          await aaplBars(),
          before + expectedMinuteBars("AAPL", "2024-03-11", "2024-03-11"),
        );
        assert.match(await post("/partials/update", {}), /Everything is up to date/);
      },
    );

    await t.step("the coverage calendar backfills its missing days", async () => {
      const symbol = await get("/symbols/AAPL?timeframe=1m");
      assert.match(symbol, /hx-post="\/partials\/backfill"/);
      assert.match(symbol, /<input type="hidden" name="symbols" value="AAPL">/);
      const start = /<input type="hidden" name="start" value="([^"]+)">/.exec(symbol)![1];
      const end = /<input type="hidden" name="end" value="([^"]+)">/.exec(symbol)![1];
      const before = await aaplBars();
      const started = await post("/partials/backfill", {
        symbols: "AAPL",
        timeframe: "1m",
        start,
        end,
      });
      const ids = startedIds(started);
      assert.ok(ids.length > 0, started);
      for (const id of ids) await finished(id);
      // The prune above removed 03-04 and 03-05; 03-01 was never stored.
      const filled = expectedMinuteBars("AAPL", "2024-03-01", "2024-03-01") +
        expectedMinuteBars("AAPL", "2024-03-04", "2024-03-05");
      assert.equal(await aaplBars(), before + filled);
      assert.match(
        await post("/partials/backfill", { symbols: "AAPL", timeframe: "1m", start, end }),
        /Nothing to backfill/,
      );
    });
  } finally {
    await server.close();
  }
});

Deno.test("formatTime() names the zone, follows DST and gives daily bars their trading date", () => {
  const winter = Date.parse("2024-01-02T14:30:00Z");
  const summer = Date.parse("2024-07-01T13:30:00Z");
  assert.equal(formatTime(winter, "exchange"), "2024-01-02 09:30 ET");
  assert.equal(formatTime(summer, "exchange"), "2024-07-01 09:30 ET");
  assert.equal(formatTime(winter, "utc"), "2024-01-02 14:30 UTC");
  // The server has no browser zone: `local` is exchange time until pages.js re-renders it.
  assert.equal(formatTime(winter, "local"), "2024-01-02 09:30 ET");
  // A daily bar stamped at 05:00Z (winter) or 04:00Z (summer) is its New York trading date.
  assert.equal(formatTime(Date.parse("2024-01-02T05:00:00Z"), "utc", { date: true }), "2024-01-02");
  assert.equal(formatTime(Date.parse("2024-07-01T04:00:00Z"), "utc", { date: true }), "2024-07-01");
  assert.equal(formatTime(null, "utc"), "-");
  assert.equal(
    timeTag(winter, "utc").value,
    '<time datetime="2024-01-02T14:30:00.000Z" data-ts="1704205800000">2024-01-02 14:30 UTC</time>',
  );
});

Deno.test("seriesTable() pivots, filters and pages the stored data", () => {
  const series = Array.from({ length: 120 }, (_, i) => `S${String(i).padStart(3, "0")}`)
    .flatMap((symbol) =>
      (["1m", "1d"] as const).map((timeframe) => ({
        symbol,
        timeframe,
        rows: 10,
        firstTs: Date.parse("2024-03-04T14:30:00Z"),
        lastTs: Date.parse("2024-03-08T20:59:00Z"),
        files: 1,
        bytes: 1000,
      }))
    );
  const rows = (markup: string) =>
    [...markup.matchAll(/<tr data-symbol="(\w+)">/g)].map((m) => m[1]);
  const first = seriesTable(series, new Map(), {}).value;
  assert.equal(rows(first).length, 50);
  assert.equal(rows(first)[0], "S000");
  assert.match(first, /<th class="num">1m<\/th><th class="num">1d<\/th>/);
  assert.match(first, /120 of 120 symbol\(s\), page 1 of 3/);
  assert.match(first, /<a href="\/\?page=2" hx-get="\/partials\/series\?page=2"/);
  const third = seriesTable(series, new Map(), { page: 3, resultsOnly: true }).value;
  assert.deepEqual(rows(third), Array.from({ length: 20 }, (_, i) => `S${100 + i}`));
  assert.doesNotMatch(third, /<form/);
  const filtered = seriesTable(series, new Map(), { q: "S11" }).value;
  assert.deepEqual(rows(filtered), Array.from({ length: 10 }, (_, i) => `S11${i}`));
  assert.doesNotMatch(filtered, /class="pager"/);
  assert.match(seriesTable(series, new Map(), { q: "ZZ" }).value, /No stored symbol matches/);
  // Daily bars show their trading date, intraday ones the time in the zone.
  assert.match(first, /data-date="1">2024-03-08<\/time>/);
  assert.match(first, />2024-03-08 15:59 ET<\/time>/);
});

Deno.test("validationDetail() filters by severity and rule, errors first, linked to the chart", () => {
  const record = {} as ValidationReportDetail["record"];
  const report: ValidationReportDetail = {
    id: "v1",
    createdAt: Date.parse("2024-03-09T12:00:00Z"),
    jobId: null,
    timeframe: "1m",
    symbols: ["AAPL"],
    start: "2024-03-04",
    end: "2024-03-08",
    barsChecked: 100,
    findings: 3,
    errors: 1,
    warnings: 1,
    infos: 1,
    quarantined: 0,
    record,
    rules: [
      { rule: "volume_spike", severity: "info", count: 5 },
      { rule: "high_below_open", severity: "error", count: 1 },
      { rule: "price_jump", severity: "warn", count: 2 },
    ],
    bars: [
      {
        symbol: "AAPL",
        ts: "2024-03-04T15:00:00.000Z",
        rule: "volume_spike",
        severity: "info",
        detail: "",
      },
      {
        symbol: "AAPL",
        ts: "2024-03-05T15:00:00.000Z",
        rule: "price_jump",
        severity: "warn",
        detail: "",
      },
      {
        symbol: "AAPL",
        ts: "2024-03-06T15:00:00.000Z",
        rule: "high_below_open",
        severity: "error",
        detail: "",
      },
    ],
    barsTotal: 3,
    files: [],
  };
  const severities = (markup: string) =>
    [...markup.matchAll(/<tr data-severity="(\w+)">/g)].map((m) => m[1]);
  const all = validationDetail(report).value;
  assert.deepEqual(severities(all), ["error", "warn", "info"]);
  assert.deepEqual(
    [...all.matchAll(/<tr data-rule="(\w+)">/g)].map((m) => m[1]),
    ["high_below_open", "price_jump", "volume_spike"],
  );
  assert.match(all, /href="\/validation\/v1\?rule=price_jump">price_jump<\/a>/);
  assert.match(
    all,
    /href="\/symbols\/AAPL\?timeframe=1m&amp;start=2024-03-06&amp;end=2024-03-06" class="finding-link"><time [^>]*>2024-03-06 10:00 ET<\/time>/,
  );
  assert.deepEqual(severities(validationDetail(report, { severity: "warn" }).value), ["warn"]);
  const byRule = validationDetail(report, { rule: "volume_spike", tz: "utc" }).value;
  assert.deepEqual(severities(byRule), ["info"]);
  assert.match(byRule, />2024-03-04 15:00 UTC<\/time>/);
  assert.match(byRule, /<option value="volume_spike"\s*selected/);
  assert.match(
    validationDetail(report, { severity: "error", rule: "price_jump" }).value,
    /No offending bars match the filter/,
  );
});

Deno.test("dashboard time zone switch, overview filter, job pace, resume and retry", async (t) => {
  const dir = await filledDataDir();
  const server = await testServer(dir);
  const app = server.app;
  const hx = { "HX-Request": "true" };
  const get = async (path: string, headers: Record<string, string> = {}, status = 200) => {
    const response = await app.request(path, { headers });
    const text = await response.text();
    assert.equal(response.status, status, `${path}: ${text.slice(0, 300)}`);
    return text;
  };
  const post = async (path: string, body: Record<string, string> = {}, status = 200) => {
    const response = await app.request(path, {
      method: "POST",
      headers: { ...hx, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(body).toString(),
    });
    const text = await response.text();
    assert.equal(response.status, status, `${path}: ${text.slice(0, 300)}`);
    return { response, text };
  };
  /** The texts of the page's timestamps (not trading dates). */
  const times = (markup: string) =>
    [...markup.matchAll(/<time datetime="[^"]*" data-ts="\d+">([^<]*)<\/time>/g)].map((m) => m[1]);
  const status = async (id: string) =>
    /data-status="(\w+)"/.exec(await get(`/partials/jobs/${id}`, hx))![1];
  try {
    await t.step(
      "every timestamp follows ?tz=, the MP-TZ header and the mp_tz cookie",
      async () => {
        const exchange = await get("/");
        assertCspSafe(exchange);
        assert.match(exchange, /<html lang="en" data-tz="exchange">/);
        assert.match(exchange, /<form class="tz-switch" method="get" action="\/settings\/tz">/);
        assert.match(exchange, /<script src="\/assets\/pages\.js\?v=[0-9a-f]+" defer>/);
        assert.ok(times(exchange).length >= 6, times(exchange).join());
        assert.ok(times(exchange).every((text) => / ET$/.test(text)), times(exchange).join());
        const utc = await get("/?tz=utc");
        assert.match(utc, /data-tz="utc"/);
        assert.match(utc, /<option value="utc"\s*selected/);
        assert.equal(times(utc).length, times(exchange).length);
        assert.ok(times(utc).every((text) => / UTC$/.test(text)), times(utc).join());
        assert.match(await get("/", { Cookie: "mp_tz=utc" }), /data-tz="utc"/);
        assert.match(utc, /times are UTC unless marked otherwise/, "the footer names the zone");
        assert.match(exchange, /times are New York \(ET\) unless marked otherwise/);
        // Error pages keep the setting, and a bad ?tz= still gets its page (in exchange time).
        assert.match(await get("/nope", { Cookie: "mp_tz=utc" }, 404), /data-tz="utc"/);
        const bad = await get("/jobs?tz=mars", {}, 400);
        assert.match(bad, /data-tz="exchange"/);
        assert.match(bad, /Invalid tz/);
        assert.match(await get("/schedules?tz=utc"), /data-tz="utc"/);
        for (const path of ["/jobs", "/validation", "/universes", "/symbols"]) {
          assert.ok(times(await get(`${path}?tz=utc`)).every((text) => / UTC$/.test(text)), path);
        }
        const table = await get("/partials/jobs", { ...hx, "MP-TZ": "utc" });
        assert.ok(times(table).length > 0 && times(table).every((text) => / UTC$/.test(text)));
        assert.match(await get("/?tz=mars", {}, 400), /Invalid tz &quot;mars&quot;/);
      },
    );

    await t.step("GET /settings/tz keeps the setting in a cookie and goes back", async () => {
      const set = (query: string) => app.request(`/settings/tz?${query}`);
      const response = await set("tz=utc&next=%2Fjobs%3Fx%3D1");
      assert.equal(response.status, 303);
      assert.equal(response.headers.get("location"), "/jobs?x=1");
      assert.match(
        response.headers.get("set-cookie")!,
        /^mp_tz=utc; Max-Age=31536000; Path=\/; SameSite=Strict/,
      );
      assert.equal((await set("tz=local&next=%2F%2Fevil.example")).headers.get("location"), "/");
      assert.match(await (await set("tz=mars")).text(), /Invalid tz &quot;mars&quot;/);
      assert.match(await (await set("next=%2F")).text(), /Missing tz/);
      assert.equal((await set("tz=utc&x=1")).status, 400);
    });

    await t.step(
      "the overview's stored data filters without scripts and as a partial",
      async () => {
        const page = await get("/?q=ms");
        assert.match(page, /<tr data-symbol="MSFT">/);
        assert.doesNotMatch(page, /<tr data-symbol="AAPL">/);
        assert.match(page, /name="q" value="MS"/);
        const partial = await get("/partials/series?q=AA&page=1", hx);
        assert.match(partial, /^\s*<div id="series-results"/);
        assert.match(partial, /<tr data-symbol="AAPL">/);
        assert.doesNotMatch(partial, /<tr data-symbol="MSFT">|<html/);
        // A page past the last shows the last.
        assert.match(await get("/?page=9"), /<tr data-symbol="AAPL">/);
        await get("/?page=0", {}, 400);
        await get("/partials/series?q=%3Cb%3E", hx, 400);
      },
    );

    await t.step("a job page shows the roll-up of an ingest this server ran", async () => {
      const { text } = await post("/partials/jobs", {
        provider: "fake",
        symbols: "AMD",
        start: "2024-03-04",
        end: "2024-03-04",
        timeframe: "1m",
        aggregate: "true",
      });
      const id = /data-started-job="([^"]+)"/.exec(text)![1];
      await waitUntil(async () => await status(id) === "succeeded", 30_000, "the job to end");
      await waitUntil(
        async () => /id="job-aggregation">done: \d+ partition/.test(await get(`/jobs/${id}`)),
        30_000,
        "the roll-up to end",
      );
      const detail = await get(`/jobs/${id}`);
      assert.match(detail, /<progress class="full" max="1" value="1">/);
      assert.match(detail, /data-pace="rate">[\d,]+<\/span> bars\/s/);
      assert.doesNotMatch(detail, /data-action="resume"/);
      const json = await (await app.request(`/api/jobs/${id}`)).json();
      assert.equal(json.aggregation.state, "done");
      assert.match(json.aggregation.detail, /^\d+ partition\(s\) rebuilt, \d+ up to date$/);
    });

    await t.step(
      "Resume from the web finishes a cancelled job; Retry starts it again",
      async () => {
        const symbols = Array.from({ length: 40 }, (_, i) => `R${String(i).padStart(3, "0")}`);
        const started = await app.request("/api/jobs", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ symbols, start: "2024-01-02", end: "2024-02-29", workers: 1 }),
        });
        assert.equal(started.status, 202);
        const id = (await started.json()).job.id as string;
        const running = await get(`/partials/jobs/${id}`, hx);
        assert.match(running, /data-pace="eta"/);
        assert.match(running, /elapsed <span data-pace="elapsed">/);
        // The jobs table shows its pace too: elapsed, tasks ended of all, bars/s.
        const pace = new RegExp(`data-pace="${id}">[^<]+ · [\\d,]+/[\\d,]+ tasks · [\\d,]+ bars/s`);
        await waitUntil(
          async () => pace.test(await get("/partials/jobs", hx)),
          30_000,
          "the pace in the jobs table",
        );
        await post(`/partials/jobs/${id}/cancel`);
        await waitUntil(async () => await status(id) === "cancelled", 30_000, "the cancel");
        const cancelled = await get(`/jobs/${id}`);
        assertCspSafe(cancelled);
        assert.match(cancelled, new RegExp(`hx-post="/partials/jobs/${id}/resume"`));
        assert.match(cancelled, new RegExp(`hx-post="/partials/jobs/${id}/retry"`));
        const resumed = await post(`/partials/jobs/${id}/resume`);
        assert.equal(resumed.response.headers.get("hx-trigger"), "jobs-changed");
        assert.match(resumed.text, new RegExp(`Resumed job <a href="/jobs/${id}"`));
        assert.match(resumed.text, /^\s*<section id="job-detail"/);
        await waitUntil(async () => await status(id) === "succeeded", 60_000, "the resumed job");
        const bars = await app.request("/api/query", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            sql: "SELECT count(DISTINCT symbol) FROM bars_1m WHERE symbol LIKE 'R%'",
          }),
        });
        assert.equal(Number((await bars.json()).rows[0][0]), 40);
        assert.match((await post(`/partials/jobs/${id}/resume`, {}, 409)).text, /it is succeeded/);

        // Retry: a cancelled job's request runs again as a new job.
        const again = await app.request("/api/jobs", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            symbols: ["Q001", "Q002", "Q003"],
            start: "2024-01-02",
            end: "2024-02-29",
            workers: 1,
          }),
        });
        const other = (await again.json()).job.id as string;
        await post(`/partials/jobs/${other}/cancel`);
        await waitUntil(async () => await status(other) === "cancelled", 30_000, "the cancel");
        const retried = await post(`/partials/jobs/${other}/retry`);
        const retryId = /data-started-job="([^"]+)"/.exec(retried.text)?.[1];
        assert.ok(retryId, retried.text);
        assert.notEqual(retryId, other);
        assert.equal(retried.response.headers.get("hx-redirect"), `/jobs/${retryId}`);
        await waitUntil(async () => await status(retryId) === "succeeded", 60_000, "the retry");
        assert.equal(await status(other), "cancelled");
        await post("/partials/jobs/nope/resume", {}, 404);
      },
    );
  } finally {
    await server.close();
  }
});
