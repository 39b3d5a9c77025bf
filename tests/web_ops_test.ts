/**
 * Day-2 operations over the REST API, against a real server on 127.0.0.1 with a token and a
 * fixed clock: update, backfill, prune, delete and export as jobs, their dry runs, downloads,
 * authentication and every refused body.
 */
import assert from "node:assert/strict";
import { tradingDays } from "../core/calendar.ts";
import { expectedMinuteBars, fakeIngest, jsonOf, testServer, waitUntil } from "./web_fixture.ts";

const TOKEN = "ops-token-0123456789abcdef0123";
/** 21:30 in New York on Tuesday 2024-03-12 (after the DST switch): its session has closed. */
const NOW = "2024-03-13T01:30:00Z";

interface Job {
  id: string;
  kind: string;
  status: string;
  symbols: string[];
  start: string | null;
  end: string | null;
  timeframe: string | null;
  error: string | null;
  result: Record<string, unknown> | null;
  progress: { done: number; total: number; unit: string } | null;
}

interface Plan {
  partitions: {
    tree: string;
    timeframe: string;
    symbol: string;
    year: number;
    bars_removed: number;
    bars_kept: number;
    files_removed: number;
    files_rewritten: number;
  }[];
  bars: number;
  days: number;
}

function bars(symbol: string, start: string, end: string): number {
  return expectedMinuteBars(symbol, start, end);
}

Deno.test("day-2 operations over the REST API", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-ops-" });
  // AAPL and MSFT 1m bars of 2024-03-04..08 without 03-06.
  await fakeIngest(dir, { symbols: ["AAPL", "MSFT"], start: "2024-03-04", end: "2024-03-05" });
  await fakeIngest(dir, { symbols: ["AAPL", "MSFT"], start: "2024-03-07", end: "2024-03-08" });
  const server = await testServer(dir, { token: TOKEN, env: { MARKETPIPE_NOW: NOW } });
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    server.app.fetch,
  );
  const base = `http://127.0.0.1:${http.addr.port}`;
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const get = (path: string) => fetch(`${base}${path}`, { headers: auth });
  const post = (path: string, body: unknown, headers: Record<string, string> = auth) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  const jobs = async () => (await jsonOf<{ jobs: Job[] }>(await get("/api/jobs?limit=1000"))).jobs;
  const job = async (id: string) => await jsonOf<Job>(await get(`/api/jobs/${id}`));
  const finished = async (id: string): Promise<Job> => {
    let last: Job | undefined;
    await waitUntil(
      async () => {
        last = await job(id);
        return !["pending", "running"].includes(last.status);
      },
      30_000,
      `job ${id} to end`,
    );
    assert.equal(last!.status, "succeeded", last!.error ?? "");
    return last!;
  };
  const query = async (sql: string) =>
    (await jsonOf<{ rows: unknown[][] }>(await post("/api/query", { sql, limit: 10_000 }))).rows;
  const counts = async () =>
    Object.fromEntries(
      await query("SELECT symbol, count(*)::INTEGER FROM bars_1m GROUP BY symbol"),
    ) as Record<string, number>;
  const refused = async (response: Response, status: number) => {
    const text = await response.text();
    assert.equal(response.status, status, text);
    return (JSON.parse(text) as { error: { message: string } }).error.message;
  };

  try {
    const stored = {
      AAPL: bars("AAPL", "2024-03-04", "2024-03-08") - bars("AAPL", "2024-03-06", "2024-03-06"),
      MSFT: bars("MSFT", "2024-03-04", "2024-03-08") - bars("MSFT", "2024-03-06", "2024-03-06"),
    };
    assert.deepEqual(await counts(), stored);

    await t.step("every write without the token is 401, from another origin 403", async () => {
      const writes: [string, unknown][] = [
        ["/api/update", {}],
        ["/api/backfill", { symbols: ["AAPL"] }],
        ["/api/prune", { before: "2024-03-06", dry_run: false }],
        ["/api/delete", { symbols: ["MSFT"], dry_run: false }],
        ["/api/exports", {
          symbols: ["AAPL"],
          timeframe: "1m",
          start: "2024-03-04",
          format: "csv",
        }],
      ];
      for (const [path, body] of writes) {
        await refused(await post(path, body, {}), 401);
        await refused(await post(path, body, { ...auth, Origin: "https://evil.example" }), 403);
      }
      assert.equal((await jobs()).length, 2, "no job was recorded");
      assert.deepEqual(await counts(), stored);
    });

    await t.step("bad bodies are 400 naming the field and write nothing", async () => {
      const export_ = { symbols: ["AAPL"], timeframe: "1m", start: "2024-03-04", format: "csv" };
      const cases: [string, unknown, RegExp][] = [
        ["/api/update", { bogus: 1 }, /Unknown field "bogus": expected symbols, timeframe/],
        ["/api/update", { timeframe: "2h" }, /Invalid timeframe "2h"/],
        ["/api/update", { symbols: ["ZZZZ"] }, /Unknown series ZZZZ/],
        ["/api/update", { symbols: "AAPL;DROP" }, /Invalid symbols "AAPL;DROP"/],
        ["/api/backfill", { start: "2024-13-01" }, /Invalid start "2024-13-01"/],
        [
          "/api/backfill",
          { before: "2024-03-13" },
          /Invalid before 2024-03-13: after the last closed session 2024-03-12/,
        ],
        ["/api/backfill", { before: "2024-01-02", start: "2024-03-04" }, /Cannot combine before/],
        ["/api/prune", {}, /Missing before/],
        ["/api/prune", { before: "2024-03-32" }, /Invalid before "2024-03-32"/],
        ["/api/prune", { before: "2024-03-14" }, /Invalid before 2024-03-14: it is after today/],
        ["/api/prune", { before: "2024-03-06", timeframe: "7m" }, /Invalid timeframe "7m"/],
        ["/api/prune", { before: "2024-03-06", provider: "nope" }, /Unknown provider "nope"/],
        ["/api/prune", { before: "2024-03-06", dry_run: "no" }, /Invalid dry_run/],
        ["/api/prune", { before: "2024-03-06", dryrun: false }, /Unknown field "dryrun"/],
        ["/api/delete", { dry_run: false }, /Missing symbols/],
        ["/api/delete", { symbols: ["BAD!"], dry_run: false }, /Invalid symbols "BAD!"/],
        ["/api/delete", { symbols: [1], dry_run: false }, /Invalid symbols: expected a list/],
        ["/api/exports", { ...export_, format: "xlsx" }, /Invalid format "xlsx"/],
        ["/api/exports", { ...export_, format: undefined }, /Missing format/],
        ["/api/exports", { ...export_, timeframe: "1w" }, /Invalid timeframe "1w"/],
        ["/api/exports", { ...export_, start: "2024-02-30" }, /Invalid start "2024-02-30"/],
        ["/api/exports", { ...export_, end: "2024-03-01" }, /Invalid range/],
        ["/api/exports", { ...export_, columns: ["ts", "tss"] }, /unknown column "tss"/],
        ["/api/exports", { ...export_, tz: "Mars/Base" }, /Invalid tz "Mars\/Base"/],
        ["/api/exports", { ...export_, format: "parquet", tz: "UTC" }, /Invalid tz for format/],
        ["/api/exports", { ...export_, symbols: ["NVDA"] }, /no 1m bars of NVDA are stored/],
      ];
      for (const [path, body, message] of cases) {
        assert.match(await refused(await post(path, body), 400), message, JSON.stringify(body));
      }
      assert.equal((await jobs()).length, 2, "no job was recorded");
      assert.deepEqual(await counts(), stored);
    });

    await t.step("backfill fills the hole; a second backfill is up to date", async () => {
      const started = await jsonOf<{ status: string; jobs: Job[] }>(
        await post("/api/backfill", { symbols: ["AAPL"] }),
        202,
      );
      assert.deepEqual(
        started.jobs.map((j) => [j.kind, j.symbols, j.start, j.end]),
        [["ingest", ["AAPL"], "2024-03-06", "2024-03-06"]],
      );
      await finished(started.jobs[0].id);
      stored.AAPL += bars("AAPL", "2024-03-06", "2024-03-06");
      assert.deepEqual(await counts(), stored);
      const again = await jsonOf<{ status: string; jobs: Job[] }>(
        await post("/api/backfill", { symbols: ["AAPL"] }),
      );
      assert.deepEqual(again, { status: "up-to-date", jobs: [] });
    });

    await t.step(
      "update adds the sessions up to the clock; a second update is up to date",
      async () => {
        const started = await jsonOf<{ jobs: Job[] }>(await post("/api/update", {}), 202);
        assert.deepEqual(
          started.jobs.map((j) => [j.symbols, j.start, j.end]),
          [[["AAPL", "MSFT"], "2024-03-11", "2024-03-12"]],
        );
        await finished(started.jobs[0].id);
        stored.AAPL += bars("AAPL", "2024-03-11", "2024-03-12");
        stored.MSFT += bars("MSFT", "2024-03-11", "2024-03-12");
        assert.deepEqual(await counts(), stored);
        assert.deepEqual(
          await jsonOf(await post("/api/update", { timeframe: "1m" })),
          { status: "up-to-date", jobs: [] },
        );
      },
    );

    let pruneJobId = "";
    await t.step(
      "prune: the dry run changes nothing, the job removes exactly its plan",
      async () => {
        const request = { before: "2024-03-06", timeframe: "1m" };
        const dry = await jsonOf<{ dry_run: boolean; plan: Plan }>(
          await post("/api/prune", request),
        );
        const early = bars("AAPL", "2024-03-04", "2024-03-05") +
          bars("MSFT", "2024-03-04", "2024-03-05");
        assert.equal(dry.dry_run, true);
        assert.equal(dry.plan.bars, early);
        assert.equal(dry.plan.days, 4, "2 days of 2 symbols are forgotten");
        assert.deepEqual(
          dry.plan.partitions.map((p) => [p.tree, p.timeframe, p.symbol, p.year]),
          [["bars", "1m", "AAPL", 2024], ["bars", "1m", "MSFT", 2024]],
        );
        assert.equal(dry.plan.partitions.reduce((n, p) => n + p.bars_removed, 0), early);
        assert.deepEqual(await counts(), stored, "a dry run changes nothing");

        const started = await jsonOf<{ job: Job }>(
          await post("/api/prune", { ...request, dry_run: false }),
          202,
        );
        assert.equal(started.job.kind, "prune");
        pruneJobId = started.job.id;
        const done = await finished(pruneJobId);
        assert.deepEqual(done.result, dry.plan, "the job removed what the dry run listed");
        assert.equal(done.progress?.unit, "partitions");
        assert.equal(done.progress?.done, done.progress?.total);
        stored.AAPL -= bars("AAPL", "2024-03-04", "2024-03-05");
        stored.MSFT -= bars("MSFT", "2024-03-04", "2024-03-05");
        assert.deepEqual(await counts(), stored);

        // The coverage calendar and ingest agree: the pruned days are missing and fetched again.
        const coverage = await jsonOf<{ days: { date: string; status: string }[] }>(
          await get("/api/coverage?symbol=AAPL&timeframe=1m&start=2024-03-04&end=2024-03-12"),
        );
        const status = Object.fromEntries(coverage.days.map((d) => [d.date, d.status]));
        for (const date of tradingDays("2024-03-04", "2024-03-12")) {
          assert.equal(status[date], date < "2024-03-06" ? "missing" : "full", date);
        }
        const again = await jsonOf<{ status: string; job: Job }>(
          await post("/api/jobs", { symbols: "AAPL", start: "2024-03-04", end: "2024-03-04" }),
          202,
        );
        assert.equal(again.status, "started");
        await finished(again.job.id);
        stored.AAPL += bars("AAPL", "2024-03-04", "2024-03-04");
        assert.deepEqual(await counts(), stored);
      },
    );

    await t.step(
      "delete: the dry run lists every bar of the symbol, the job removes them",
      async () => {
        const dry = await jsonOf<{ plan: Plan }>(await post("/api/delete", { symbols: ["MSFT"] }));
        assert.equal(dry.plan.bars, stored.MSFT);
        assert.deepEqual(await counts(), stored, "a dry run changes nothing");
        const started = await jsonOf<{ job: Job }>(
          await post("/api/delete", { symbols: ["MSFT"], dry_run: false }),
          202,
        );
        assert.deepEqual([started.job.kind, started.job.symbols, started.job.timeframe], [
          "delete",
          ["MSFT"],
          null,
        ]);
        const done = await finished(started.job.id);
        assert.equal((done.result as unknown as Plan).bars, dry.plan.bars);
        delete (stored as Partial<typeof stored>).MSFT;
        assert.deepEqual(await counts(), stored);
        const symbols = await jsonOf<{ symbols: { symbol: string }[] }>(await get("/api/symbols"));
        assert.deepEqual(symbols.symbols.map((s) => s.symbol), ["AAPL"]);
      },
    );

    let exportJobId = "";
    await t.step("an export job's download equals a query of the same range", async () => {
      const columns = ["ts", "open", "high", "low", "close", "volume"];
      const started = await jsonOf<{ job: Job; links: { self: string } }>(
        await post("/api/exports", {
          symbols: ["AAPL"],
          timeframe: "1m",
          start: "2024-03-06",
          end: "2024-03-12",
          format: "csv",
          columns,
        }),
        202,
      );
      assert.equal(started.job.kind, "export");
      exportJobId = started.job.id;
      const done = await finished(exportJobId);
      const expected = await query(
        `SELECT ${
          columns.join(", ")
        } FROM bars_1m WHERE symbol = 'AAPL' AND trading_date BETWEEN '2024-03-06' AND '2024-03-12' ORDER BY ts`,
      );
      assert.equal(expected.length, bars("AAPL", "2024-03-06", "2024-03-12"));
      assert.deepEqual(done.progress, {
        done: expected.length,
        total: expected.length,
        unit: "bars",
      });
      assert.equal(done.result?.rows, expected.length);

      const download = await get(`/api/exports/${exportJobId}`);
      assert.equal(download.status, 200);
      assert.match(download.headers.get("content-type")!, /^text\/csv/);
      assert.match(
        download.headers.get("content-disposition")!,
        /^attachment; filename=".+\.csv"$/,
      );
      const [header, ...lines] = (await download.text()).trimEnd().split("\n");
      assert.equal(header, columns.join(","));
      const rows = lines.map((line) => line.split(","));
      assert.equal(rows.length, expected.length);
      rows.forEach((row, i) => {
        const want = expected[i];
        assert.equal(Date.parse(row[0]), Date.parse(String(want[0])), `ts of row ${i}`);
        for (let c = 1; c < columns.length; c++) {
          assert.equal(Number(row[c]), Number(want[c]), `${columns[c]} of row ${i}`);
        }
      });

      const parquet = await jsonOf<{ job: Job }>(
        await post("/api/exports", {
          symbols: "AAPL",
          timeframe: "1m",
          start: "2024-03-11",
          format: "parquet",
        }),
        202,
      );
      await finished(parquet.job.id);
      const file = await get(`/api/exports/${parquet.job.id}`);
      assert.equal(file.headers.get("content-type"), "application/vnd.apache.parquet");
      const bytes = new Uint8Array(await file.arrayBuffer());
      assert.equal(new TextDecoder().decode(bytes.slice(0, 4)), "PAR1");
      assert.equal(Number(file.headers.get("content-length")), bytes.length);

      await refused(await get("/api/exports/20990101-000000-0000"), 404);
      assert.match(
        await refused(await post("/api/jobs", { resume: pruneJobId }), 409),
        /it is a prune job, not an ingest/,
      );
      assert.match(await refused(await get(`/api/exports/${pruneJobId}`), 404), /No export job/);
    });

    await t.step("GET /api/jobs lists the jobs of every kind with their progress", async () => {
      const all = await jobs();
      const kinds = new Map<string, Job[]>();
      for (const j of all) kinds.set(j.kind, [...kinds.get(j.kind) ?? [], j]);
      assert.deepEqual([...kinds.keys()].sort(), ["delete", "export", "ingest", "prune"]);
      assert.equal(kinds.get("export")!.length, 2);
      assert.ok(all.every((j) => j.status === "succeeded"));
      for (const j of all) {
        assert.ok(j.progress !== null && j.progress.done === j.progress.total, j.id);
      }
      const ingest = kinds.get("ingest")!.find((j) => j.start === "2024-03-11")!;
      assert.deepEqual(ingest.progress, { done: 2, total: 2, unit: "tasks" });
      const exported = all.find((j) => j.id === exportJobId)!;
      assert.deepEqual([exported.timeframe, exported.start, exported.end], [
        "1m",
        "2024-03-06",
        "2024-03-12",
      ]);
    });
  } finally {
    await http.shutdown();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
