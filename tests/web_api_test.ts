/**
 * REST API route tests with `app.request()` (no socket): every endpoint, its formats and every
 * 4xx path, over a data directory filled by fake ingests.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { generateFakeDay } from "../providers/mod.ts";
import { runCli } from "./_cli.ts";
import { openDuckDB, openQueryEngine } from "../storage/mod.ts";
import { barsPage, createApp, createLimiter } from "../web/mod.ts";
import {
  errorOf,
  expectedMinuteBars,
  filledDataDir,
  FIXTURE,
  jsonOf,
  testServer,
  waitUntil,
} from "./web_fixture.ts";

interface BarsBody {
  symbol: string;
  timeframe: string;
  next_cursor: string | null;
  bars: { ts: string; open: number; close: number; trading_date: string; session: string }[];
}

const JSON_POST = { method: "POST", headers: { "Content-Type": "application/json" } };

Deno.test("REST API", async (t) => {
  const dir = await filledDataDir();
  const server = await testServer(dir);
  const app = server.app;
  const get = (path: string, init?: RequestInit) => app.request(path, init);
  const post = (path: string, body: unknown) =>
    app.request(path, { ...JSON_POST, body: JSON.stringify(body) });
  const aaplDay = generateFakeDay("AAPL", "2024-03-05", { seed: 0, gapRate: 0.01 });
  try {
    await t.step("GET /api/symbols lists each stored symbol with rows per timeframe", async () => {
      const body = await jsonOf<{
        symbols: {
          symbol: string;
          rows: number;
          timeframes: {
            timeframe: string;
            rows: number;
            first: string;
            first_exchange: string;
            last_exchange: string;
          }[];
        }[];
      }>(await get("/api/symbols"));
      assert.deepEqual(body.symbols.map((s) => s.symbol), ["AAPL", "MSFT"]);
      const aapl = body.symbols[0];
      assert.deepEqual(aapl.timeframes.map((tf) => tf.timeframe), ["1m", "1d"]);
      assert.equal(
        aapl.timeframes[0].rows,
        expectedMinuteBars("AAPL", FIXTURE.intraday.start, FIXTURE.intraday.end),
      );
      assert.equal(aapl.timeframes[1].rows, 61); // trading days 2024-01-02..2024-03-28
      // JSON times are ISO UTC; *_exchange says the same instant on the New York clock.
      assert.equal(aapl.timeframes[0].first, "2024-03-04T09:00:00.000Z");
      assert.equal(aapl.timeframes[0].first_exchange, "2024-03-04T04:00:00-05:00");
      assert.equal(
        Date.parse(aapl.timeframes[1].last_exchange),
        Date.parse(aapl.timeframes[1].last_exchange.slice(0, 10) + "T00:00:00-04:00"),
        "a daily bar starts at midnight New York time of its trading date",
      );
    });

    await t.step(
      "GET /api/symbols/{symbol} shows coverage; 404 unknown, 400 malformed",
      async () => {
        const body = await jsonOf<
          { symbol: string; coverage: { timeframe: string; days_with_bars: number }[] }
        >(
          await get("/api/symbols/aapl"),
        );
        assert.equal(body.symbol, "AAPL");
        assert.deepEqual(
          body.coverage.map((c) => [c.timeframe, c.days_with_bars]).sort(),
          [["1d", 61], ["1m", 5]],
        );
        assert.equal((await errorOf(await get("/api/symbols/ZZZZ"), 404)).code, "not_found");
        assert.match(
          (await errorOf(await get("/api/symbols/BAD!"), 400)).message,
          /Invalid symbol "BAD!"/,
        );
        assert.match(
          (await errorOf(await get("/api/symbols/AAPL?x=1"), 400)).message,
          /Unknown parameter "x"/,
        );
      },
    );

    await t.step("GET /api/bars returns one day of 1m bars exactly as generated", async () => {
      const body = await jsonOf<BarsBody>(
        await get("/api/bars?symbol=AAPL&timeframe=1m&start=2024-03-05&end=2024-03-05"),
      );
      assert.equal(body.symbol, "AAPL");
      assert.equal(body.timeframe, "1m");
      assert.equal(body.next_cursor, null);
      assert.equal(body.bars.length, aaplDay.length);
      assert.equal(body.bars[0].ts, new Date(aaplDay[0].ts).toISOString());
      assert.equal(body.bars[0].open, aaplDay[0].open);
      assert.equal(body.bars.at(-1)!.close, aaplDay.at(-1)!.close);
      assert.equal(body.bars[0].trading_date, "2024-03-05");
      assert.equal(body.bars[0].session, "pre");
    });

    await t.step("GET /api/bars pages with a keyset cursor: no bar lost or repeated", async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/api/bars?symbol=AAPL&start=2024-03-05&end=2024-03-05&limit=300${
          cursor ? `&cursor=${cursor}` : ""
        }`;
        const response: Response = await get(url);
        const header = response.headers.get("x-next-cursor");
        const body: BarsBody = await jsonOf<BarsBody>(response);
        assert.equal(header, body.next_cursor);
        if (body.next_cursor) {
          assert.match(response.headers.get("link")!, /cursor=.*>; rel="next"$/);
        }
        assert.ok(body.bars.length <= 300);
        seen.push(...body.bars.map((b) => b.ts));
        cursor = body.next_cursor;
        pages++;
      } while (cursor);
      assert.equal(pages, Math.ceil(aaplDay.length / 300));
      assert.deepEqual(seen, aaplDay.map((b) => new Date(b.ts).toISOString()));
    });

    await t.step(
      "GET /api/bars serves CSV by format and by Accept, with the same rows",
      async () => {
        const byFormat = await get(
          "/api/bars?symbol=AAPL&start=2024-03-05&end=2024-03-05&format=csv",
        );
        assert.equal(byFormat.status, 200);
        assert.match(byFormat.headers.get("content-type")!, /^text\/csv/);
        assert.match(
          byFormat.headers.get("content-disposition")!,
          /AAPL_1m_2024-03-05_2024-03-05\.csv/,
        );
        const lines = (await byFormat.text()).trimEnd().split("\n");
        assert.equal(
          lines[0],
          "symbol,ts,open,high,low,close,volume,vwap,trade_count,trading_date,session",
        );
        assert.equal(lines.length, aaplDay.length + 1);
        assert.equal(lines[1].split(",")[2], String(aaplDay[0].open));
        const byAccept = await get("/api/bars?symbol=AAPL&start=2024-03-05&end=2024-03-05", {
          headers: { Accept: "text/csv" },
        });
        assert.equal((await byAccept.text()).trimEnd().split("\n").length, lines.length);
      },
    );

    await t.step("GET /api/bars serves Arrow IPC that apache-arrow reads back", async () => {
      const response = await get("/api/bars?symbol=AAPL&start=2024-03-05&end=2024-03-05", {
        headers: { Accept: "application/vnd.apache.arrow.stream" },
      });
      assert.equal(response.status, 200);
      const table = tableFromIPC(new Uint8Array(await response.arrayBuffer()));
      assert.equal(table.numRows, aaplDay.length);
      assert.equal(String(table.schema.fields[1].type), "Timestamp<MICROSECOND, UTC>");
      const first = table.get(0)!.toJSON();
      assert.equal(first.symbol, "AAPL");
      assert.equal(first.ts, aaplDay[0].ts);
      assert.equal(first.close, aaplDay[0].close);
    });

    await t.step("GET /api/bars serves Parquet that DuckDB reads back", async () => {
      const response = await get(
        "/api/bars?symbol=AAPL&start=2024-03-05&end=2024-03-05&format=parquet&limit=500",
      );
      assert.equal(response.status, 200);
      assert.ok(response.headers.get("x-next-cursor"));
      const bytes = new Uint8Array(await response.arrayBuffer());
      assert.equal(new TextDecoder().decode(bytes.slice(0, 4)), "PAR1");
      const file = join(await Deno.makeTempDir(), "page.parquet");
      await Deno.writeFile(file, bytes);
      const duck = await openDuckDB();
      try {
        const connection = await duck.connect();
        const reader = await connection.runAndReadAll(
          `SELECT count(*)::INTEGER, min(epoch_ms(ts))::DOUBLE FROM read_parquet('${file}')`,
        );
        assert.deepEqual(reader.getRows()[0], [500, aaplDay[0].ts]);
        connection.closeSync();
      } finally {
        duck.closeSync();
      }
    });

    await t.step(
      "barsPage() streams large pages with the same rows and cursor as buffered ones",
      async () => {
        const exportDir = await Deno.makeTempDir();
        const engine = await openQueryEngine(dir, { exportDir });
        try {
          const request = { symbol: "MSFT", timeframe: "1m" as const, limit: 2500 };
          const read = async (bufferRows: number) => {
            let done = 0;
            const page = await barsPage(engine, request, "json", {
              bufferRows,
              onDone: () => done++,
            });
            const body = JSON.parse(await new Response(page.body).text()) as BarsBody;
            await waitUntil(() => done === 1, 2000, "onDone");
            return { cursor: page.nextCursor, body };
          };
          const buffered = await read(100_000);
          const streamed = await read(100);
          assert.equal(buffered.body.bars.length, 2500);
          assert.deepEqual(streamed, buffered);
          assert.equal(buffered.cursor, BigInt(Date.parse(buffered.body.bars.at(-1)!.ts)) * 1000n);
        } finally {
          engine.close();
        }
      },
    );

    await t.step("GET /api/bars of a symbol or range without bars is an empty page", async () => {
      const body = await jsonOf<BarsBody>(await get("/api/bars?symbol=NVDA"));
      assert.deepEqual(body.bars, []);
      const five = await jsonOf<BarsBody>(await get("/api/bars?symbol=AAPL&timeframe=5m"));
      assert.deepEqual(five.bars, []);
    });

    await t.step("GET /api/bars refuses every bad parameter with a 400 naming it", async () => {
      const cases: [string, RegExp][] = [
        ["", /Missing symbol/],
        ["symbol=AAPL%3B", /Invalid symbol/],
        ["symbol=AAPL&timeframe=2m", /Invalid timeframe "2m"/],
        ["symbol=AAPL&start=2024-3-1", /Invalid start "2024-3-1": expected YYYY-MM-DD/],
        ["symbol=AAPL&end=2024-02-30", /Invalid end "2024-02-30": no such calendar date/],
        ["symbol=AAPL&start=2024-03-08&end=2024-03-04", /start 2024-03-08 is after end/],
        ["symbol=AAPL&limit=0", /Invalid limit "0"/],
        ["symbol=AAPL&limit=1000001", /Invalid limit "1000001"/],
        ["symbol=AAPL&limit=1e3", /Invalid limit "1e3"/],
        ["symbol=AAPL&cursor=abc", /Invalid cursor "abc"/],
        ["symbol=AAPL&cursor=" + btoa("t:1; DROP TABLE x"), /Invalid cursor/],
        ["symbol=AAPL&format=xml", /Invalid format "xml"/],
        ["symbol=AAPL&sybmol=x", /Unknown parameter "sybmol"/],
      ];
      for (const [query, message] of cases) {
        const error = await errorOf(await get(`/api/bars?${query}`), 400);
        assert.equal(error.code, "bad_request", query);
        assert.match(error.message, message, query);
      }
    });

    await t.step("GET /api/coverage marks full days, gaps, weekends and holidays", async () => {
      const body = await jsonOf<{
        timeframe: string;
        summary: Record<string, number>;
        days: { date: string; status: string; bars: number; holiday?: string }[];
      }>(await get("/api/coverage?symbol=AAPL&timeframe=1m&start=2024-03-01&end=2024-03-31"));
      assert.equal(body.timeframe, "1m");
      const status = Object.fromEntries(body.days.map((d) => [d.date, d.status]));
      assert.equal(status["2024-03-05"], "full");
      assert.equal(status["2024-03-01"], "missing");
      assert.equal(status["2024-03-09"], "weekend");
      assert.equal(status["2024-03-29"], "holiday");
      assert.equal(body.days.find((d) => d.date === "2024-03-29")!.holiday, "Good Friday");
      assert.equal(body.days.find((d) => d.date === "2024-03-05")!.bars, aaplDay.length);
      assert.equal(body.summary.full, 5);
      const defaults = await jsonOf<{ start: string; end: string; timeframe: string }>(
        await get("/api/coverage?symbol=AAPL"),
      );
      assert.deepEqual([defaults.timeframe, defaults.start, defaults.end], [
        "1m",
        "2024-03-04",
        "2024-03-08",
      ]);
      assert.equal((await errorOf(await get("/api/coverage?symbol=ZZZ"), 404)).code, "not_found");
      assert.match(
        (await errorOf(
          await get("/api/coverage?symbol=AAPL&start=1990-01-01&end=2100-01-01"),
          400,
        )).message,
        /at most 7400 days/,
      );
      await errorOf(await get("/api/coverage?symbol=AAPL&timeframe=7m"), 400);
      await errorOf(await get("/api/coverage"), 400);
    });

    await t.step("GET /api/jobs lists jobs, filters by status; 400 for bad filters", async () => {
      const body = await jsonOf<{ jobs: { id: string; status: string }[] }>(await get("/api/jobs"));
      assert.equal(body.jobs.length, 2);
      assert.ok(body.jobs.every((job) => job.status === "succeeded"));
      const none = await jsonOf<{ jobs: unknown[] }>(await get("/api/jobs?status=failed"));
      assert.deepEqual(none.jobs, []);
      assert.match((await errorOf(await get("/api/jobs?status=done"), 400)).message, /status/);
      await errorOf(await get("/api/jobs?limit=-1"), 400);
    });

    await t.step("GET /api/jobs/{id} shows tasks and per-symbol progress; 404, 400", async () => {
      const { jobs } = await jsonOf<{ jobs: { id: string }[] }>(await get("/api/jobs"));
      const id = jobs.at(-1)!.id;
      const job = await jsonOf<{
        id: string;
        symbols: { symbol: string; done: number; bars_written: number }[];
        tasks: unknown[];
      }>(await get(`/api/jobs/${id}`));
      assert.equal(job.id, id);
      assert.deepEqual(job.symbols.map((s) => s.symbol), ["AAPL", "MSFT"]);
      assert.equal(
        job.symbols[0].bars_written,
        expectedMinuteBars("AAPL", FIXTURE.intraday.start, FIXTURE.intraday.end),
      );
      // Jobs made in the same second share 16 characters; take a prefix no other job has.
      let length = 16;
      while (jobs.some((other) => other.id !== id && other.id.startsWith(id.slice(0, length)))) {
        length++;
      }
      const prefix = await jsonOf<{ id: string }>(
        await get(`/api/jobs/${id.slice(0, Math.min(length, id.length - 1))}`),
      );
      assert.equal(prefix.id, id);
      assert.equal(
        (await errorOf(await get("/api/jobs/20990101-000000-0000"), 404)).code,
        "not_found",
      );
      assert.match(
        (await errorOf(await get("/api/jobs/x'%20OR%20'1'%3D'1"), 400)).message,
        /Invalid job id/,
      );
    });

    await t.step("POST /api/jobs refuses bad bodies with 4xx naming the field", async () => {
      const noJson = await app.request("/api/jobs", { method: "POST", body: "symbols=AAPL" });
      assert.equal((await errorOf(noJson, 415)).code, "unsupported_media_type");
      const broken = await app.request("/api/jobs", { ...JSON_POST, body: "{" });
      assert.match((await errorOf(broken, 400)).message, /Invalid JSON body/);
      assert.match(
        (await errorOf(await post("/api/jobs", [1]), 400)).message,
        /expected an object/,
      );
      const cases: [unknown, RegExp][] = [
        [{ symbols: "AAPL", start: "2024-03-04", bogus: 1 }, /Unknown field "bogus"/],
        [{ start: "2024-03-04" }, /Missing symbols/],
        [{ symbols: "AAPL;DROP", start: "2024-03-04" }, /Invalid symbol "AAPL;DROP" in symbols/],
        [{ symbols: "AAPL", start: "2024-13-01" }, /Invalid start "2024-13-01"/],
        [{ symbols: "AAPL", start: "2024-03-09" }, /No trading days/],
        [{ symbols: "AAPL", start: "2024-03-04", timeframe: "2h" }, /Invalid timeframe "2h"/],
        [{ symbols: "AAPL", start: "2024-03-04", workers: 0 }, /Invalid workers "0"/],
        [{ symbols: "AAPL", start: "2024-03-04", provider: "nope" }, /Unknown provider "nope"/],
        [{ symbols: ["AAPL", 1], start: "2024-03-04" }, /Invalid symbols/],
        [{ symbols: "AAPL", start: "2024-03-04", force: "maybe" }, /Invalid force/],
        [{ resume: "20240101-000000-abcd", symbols: "AAPL" }, /Cannot combine resume with symbols/],
        [{ resume: "bad id!" }, /Invalid resume "bad id!"/],
      ];
      for (const [body, message] of cases) {
        const error = await errorOf(await post("/api/jobs", body), 400);
        assert.match(error.message, message, JSON.stringify(body));
      }
      assert.equal(
        (await errorOf(await post("/api/jobs", { resume: "20240101-000000-abcd" }), 404)).code,
        "not_found",
      );
      const huge = await app.request("/api/jobs", {
        ...JSON_POST,
        body: JSON.stringify({ symbols: "A,".repeat(40_000) }),
      });
      assert.equal((await errorOf(huge, 413)).code, "payload_too_large");
    });

    await t.step(
      "POST /api/jobs starts an ingest (202) that finishes; a repeat is up to date",
      async () => {
        const started = await jsonOf<
          { status: string; job: { id: string }; links: { self: string } }
        >(
          await post("/api/jobs", { symbols: ["NVDA"], start: "2024-03-04", end: "2024-03-05" }),
          202,
        );
        assert.equal(started.status, "started");
        const id = started.job.id;
        await waitUntil(
          async () => {
            const job = await jsonOf<{ status: string }>(await get(started.links.self));
            return job.status === "succeeded";
          },
          20_000,
          "the web job to succeed",
        );
        const bars = await jsonOf<BarsBody>(await get("/api/bars?symbol=NVDA&limit=100000"));
        assert.equal(bars.bars.length, expectedMinuteBars("NVDA", "2024-03-04", "2024-03-05"));
        const again = await jsonOf<{ status: string }>(
          await post("/api/jobs", { symbols: "NVDA", start: "2024-03-04", end: "2024-03-05" }),
        );
        assert.equal(again.status, "up-to-date");
        assert.equal(
          (await errorOf(await app.request(`/api/jobs/${id}`, { method: "DELETE" }), 409)).code,
          "conflict",
        );
        assert.equal(
          (await errorOf(
            await app.request("/api/jobs/20990101-000000-0000", { method: "DELETE" }),
            404,
          ))
            .code,
          "not_found",
        );
      },
    );

    await t.step(
      "DELETE /api/jobs/{id} cancels a running job resumably; 409 on overlap",
      async () => {
        const symbols = Array.from({ length: 40 }, (_, i) => `S${String(i).padStart(3, "0")}`);
        const started = await jsonOf<{ job: { id: string } }>(
          await post("/api/jobs", { symbols, start: "2024-01-02", end: "2024-02-29", workers: 1 }),
          202,
        );
        const id = started.job.id;
        const overlap = await post("/api/jobs", { symbols: "S001", start: "2024-02-05" });
        assert.match((await errorOf(overlap, 409)).message, /same symbols and months/);
        const cancel = await jsonOf<{ status: string }>(
          await app.request(`/api/jobs/${id}`, { method: "DELETE" }),
          202,
        );
        assert.equal(cancel.status, "cancelling");
        await waitUntil(
          async () => {
            const job = await jsonOf<{ status: string }>(await get(`/api/jobs/${id}`));
            return job.status === "cancelled";
          },
          20_000,
          "the job to be cancelled",
        );
        const resumed = await jsonOf<{ status: string; job: { id: string } }>(
          await post("/api/jobs", { resume: id }),
          202,
        );
        assert.equal(resumed.status, "resumed");
        assert.equal(resumed.job.id, id);
        await waitUntil(
          async () => {
            const job = await jsonOf<{ status: string }>(await get(`/api/jobs/${id}`));
            return job.status === "succeeded";
          },
          60_000,
          "the resumed job to succeed",
        );
        const s039 = await jsonOf<BarsBody>(await get("/api/bars?symbol=S039&limit=1000000"));
        assert.equal(s039.bars.length, expectedMinuteBars("S039", "2024-01-02", "2024-02-29"));
      },
    );

    await t.step(
      "GET /api/validation/reports lists what `marketpipe validate` stored",
      async () => {
        const none = await jsonOf<{ available: boolean; reports: unknown[] }>(
          await get("/api/validation/reports"),
        );
        assert.deepEqual(none, { available: true, reports: [] });
        // Another process ingests corrupted bars (some are quarantined) and validates them.
        const ingested = await runCli([
          "ingest",
          "--symbols",
          "BADX",
          "--start",
          "2024-03-04",
          "--end",
          "2024-03-05",
          "--fake-corrupt-rate",
          "0.01",
          "--data-dir",
          dir,
        ]);
        assert.equal(ingested.code, 0, ingested.stderr);
        const validated = await runCli([
          "validate",
          "--symbols",
          "BADX",
          "--start",
          "2024-03-04",
          "--end",
          "2024-03-05",
          "--data-dir",
          dir,
        ]);
        assert.equal(validated.code, 0, validated.stderr);
        const id = /Report (\S+):/.exec(validated.stdout + validated.stderr)?.[1];
        assert.ok(id, validated.stdout);
        const list = await jsonOf<{
          reports: { id: string; symbols: string[]; errors: number; quarantined: number }[];
        }>(await get("/api/validation/reports"));
        assert.deepEqual(list.reports.map((r) => [r.id, r.symbols]), [[id, ["BADX"]]]);
        assert.ok(list.reports[0].quarantined > 0);
        const report = await jsonOf<{
          id: string;
          rules: Record<string, number>;
          rows: { symbol: string; rule: string }[];
          rows_total: number;
          path: string;
          files: string[];
        }>(await get(`/api/validation/reports/${id}`));
        assert.equal(report.id, id);
        const rules = Object.keys(report.rules);
        assert.ok(rules.length > 0);
        assert.equal(
          Object.values(report.rules).reduce((n, count) => n + count, 0),
          report.rows_total,
          "per-rule counts add up to the offending bars",
        );
        assert.ok(report.rows.every((bar) => bar.symbol === "BADX"));
        assert.equal(report.path, `reports/validation/${id}`);
        assert.deepEqual(report.files, [`reports/validation/${id}/BADX.csv`]);
        const listPage = await (await get("/validation")).text();
        assert.match(listPage, new RegExp(`href="/validation/${id}"`));
        const detailPage = await (await get(`/validation/${id}`)).text();
        assert.match(
          detailPage,
          new RegExp(`<td><a href="/validation/${id}\\?rule=${rules[0]}">${rules[0]}</a></td>`),
        );
        // Each finding links to the chart of its symbol on its trading date.
        assert.match(
          detailPage,
          /<a href="\/symbols\/BADX\?timeframe=1m&amp;start=2024-03-0[45]&amp;end=2024-03-0[45]" class="finding-link"><time /,
        );
        const shownRows = (text: string) =>
          [...text.matchAll(/<tr data-severity="(\w+)">/g)].length;
        const oneRule = await (await get(`/validation/${id}?rule=${rules[0]}&severity=`)).text();
        assert.equal(shownRows(oneRule), Math.min(report.rules[rules[0]], 2000));
        assert.equal(
          shownRows(await (await get(`/validation/${id}?severity=info&rule=${rules[0]}`)).text()),
          report.rows.filter((row) =>
            row.rule === rules[0] && (row as { severity?: string }).severity === "info"
          ).length,
        );
        const fatal = await get(`/validation/${id}?severity=fatal`);
        assert.equal(fatal.status, 400);
        assert.match(await fatal.text(), /Invalid severity &quot;fatal&quot;/);
        await errorOf(await get("/api/validation/reports/v20990101-000000-0000"), 404);
        await errorOf(await get("/api/validation/reports/a..b"), 400);
        await errorOf(await get("/api/validation/reports?limit=0"), 400);
      },
    );

    await t.step("POST /api/query runs read-only SQL as JSON, CSV and from a form", async () => {
      const body = await jsonOf<{
        columns: { name: string; type: string }[];
        rows: unknown[][];
        row_count: number;
        truncated: boolean;
      }>(
        await post("/api/query", {
          sql: "SELECT symbol, count(*) AS n FROM bars_1m GROUP BY symbol ORDER BY symbol",
        }),
      );
      assert.deepEqual(body.columns.map((c) => c.name), ["symbol", "n"]);
      assert.equal(body.rows[0][0], "AAPL");
      assert.equal(
        body.rows[0][1],
        expectedMinuteBars("AAPL", FIXTURE.intraday.start, FIXTURE.intraday.end),
      );
      const limited = await jsonOf<{ row_count: number; truncated: boolean }>(
        await post("/api/query", { sql: "SELECT * FROM range(10)", limit: 3 }),
      );
      assert.deepEqual([limited.row_count, limited.truncated], [3, true]);
      const csv = await app.request("/api/query?format=csv", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ sql: "SELECT 1 AS one, 'a,b' AS two" }).toString(),
      });
      assert.equal(csv.status, 200);
      assert.equal(await csv.text(), 'one,two\n1,"a,b"\n');
    });

    await t.step(
      "POST /api/query refuses writes, files outside the data and bad input",
      async () => {
        const cases: [unknown, number, string][] = [
          [{ sql: "DROP VIEW bars" }, 400, "query_rejected"],
          [{ sql: "COPY bars TO '/tmp/x.csv'" }, 400, "query_rejected"],
          [{ sql: "SELECT * FROM read_csv('/etc/passwd')" }, 400, "query_rejected"],
          [{ sql: "ATTACH '/tmp/x.db'" }, 400, "query_rejected"],
          [{ sql: "SELECT 1; SELECT 2" }, 400, "query_rejected"],
          [{ sql: "SELEC 1" }, 400, "sql_error"],
          [{ sql: "  " }, 400, "bad_request"],
          [{}, 400, "bad_request"],
          [{ sql: "SELECT 1", limit: 0 }, 400, "bad_request"],
          [{ sql: "SELECT 1", limit: 10_001 }, 400, "bad_request"],
          [{ sql: "SELECT 1", timeout_ms: 0 }, 400, "bad_request"],
          [{ sql: "SELECT 1", other: 1 }, 400, "bad_request"],
        ];
        for (const [body, status, code] of cases) {
          const error = await errorOf(await post("/api/query", body), status);
          assert.equal(error.code, code, JSON.stringify(body));
        }
        const slow = await post("/api/query", {
          sql: "SELECT count(*) FROM range(10000000000) a",
          timeout_ms: 100,
        });
        assert.equal((await errorOf(slow, 504)).code, "query_timeout");
        const plain = await app.request("/api/query", {
          method: "POST",
          headers: { "Content-Type": "text/plain" },
          body: "SELECT 1",
        });
        assert.equal((await errorOf(plain, 415)).code, "unsupported_media_type");
        await errorOf(await get("/api/query"), 405);
      },
    );

    await t.step("heavy requests beyond the cap get 503 with Retry-After", async () => {
      const heavy = createLimiter({ concurrency: 1, queue: 0 });
      const capped = createApp({ ...server.deps, heavy });
      const release = await heavy.acquire();
      const refused = await capped.request("/api/bars?symbol=AAPL");
      assert.equal(refused.headers.get("retry-after"), "1");
      assert.equal((await errorOf(refused, 503)).code, "busy");
      release();
      assert.equal((await capped.request("/api/bars?symbol=AAPL&limit=1")).status, 200);
    });

    await t.step("unknown /api routes are JSON 404s; wrong methods 405 with Allow", async () => {
      assert.equal((await errorOf(await get("/api/nope"), 404)).code, "not_found");
      const wrong = await app.request("/api/jobs", { method: "PUT" });
      assert.equal(wrong.headers.get("allow"), "GET, POST");
      assert.equal((await errorOf(wrong, 405)).code, "method_not_allowed");
    });

    await t.step("GET /healthz, /readyz and /metrics answer", async () => {
      assert.deepEqual(await jsonOf(await get("/healthz")), { status: "ok" });
      const ready = await jsonOf<{ status: string; checks: Record<string, string> }>(
        await get("/readyz"),
      );
      assert.deepEqual(ready, { status: "ready", checks: { sqlite: "ok", duckdb: "ok" } });
      const metrics = await get("/metrics");
      assert.equal(metrics.status, 200);
      assert.match(metrics.headers.get("content-type")!, /^text\/plain; version=0.0.4/);
      assert.match(await metrics.text(), /mp_ingest_rows_total/);
      await errorOf(await get("/healthz?x=1"), 400);
    });

    await t.step(
      "every route is in /api/openapi.json and every documented route exists",
      async () => {
        const doc = await jsonOf<
          { openapi: string; paths: Record<string, Record<string, unknown>> }
        >(
          await get("/api/openapi.json"),
        );
        assert.equal(doc.openapi, "3.1.0");
        const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
          Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)
        ).sort();
        const routes = [
          ...new Set(
            app.routes.filter((route) => route.method !== "ALL").map((route) =>
              `${route.method} ${route.path.replace(/:([^/]+)/g, "{$1}")}`
            ),
          ),
        ].sort();
        assert.deepEqual(routes, documented);
      },
    );

    await t.step(
      "every route takes exactly the query and path parameters /api/openapi.json lists",
      async () => {
        const doc = await jsonOf<{
          paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>>;
        }>(await get("/api/openapi.json"));
        const samples: Record<string, string> = {
          symbol: "AAPL",
          id: "20240101-000000-abcd",
          name: "app.css",
        };
        for (const [path, item] of Object.entries(doc.paths)) {
          const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
          for (const [method, operation] of Object.entries(item)) {
            const route = `${method.toUpperCase()} ${path}`;
            const documented = (kind: string) =>
              (operation.parameters ?? []).filter((p) => p.in === kind).map((p) => p.name);
            assert.deepEqual(documented("path"), inPath, route);
            // The refusal of an unknown parameter lists the ones the route knows.
            const url = path.replace(/\{(\w+)\}/g, (_, name) => samples[name]);
            const response = await app.request(`${url}?unknownparameter=1`, {
              method: method.toUpperCase(),
            });
            assert.equal(response.status, 400, route);
            const known = /Unknown parameter \S*unknownparameter\S*: expected ([\w, ]+)/
              .exec(await response.text())?.[1];
            assert.ok(known !== undefined, route);
            assert.deepEqual(known === "none" ? [] : known.split(", "), documented("query"), route);
          }
        }
      },
    );
  } finally {
    await server.close();
  }
});
