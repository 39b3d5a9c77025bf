import assert from "node:assert/strict";
import { join } from "node:path";
import { zonedTime } from "../core/calendar.ts";
import type { Bar } from "../core/types.ts";
import { withDataDir } from "../tests/_data_dir.ts";
import { listFiles } from "./manifest.ts";
import type { MetaStore } from "./meta.ts";
import { recordFreshness } from "./metrics_store.ts";
import { type PartitionWriter, writeBars } from "./partitions.ts";
import { pruneBars, type PruneSelection } from "./prune.ts";

const AAPL_2024 = { tree: "bars", timeframe: "1m", symbol: "AAPL", year: 2024 } as const;

/** A writer over a fresh data directory, closed and removed afterwards. */
async function withWriter(fn: (writer: PartitionWriter & { meta: MetaStore }) => Promise<void>) {
  await withDataDir({ prefix: "marketpipe-prune-", threads: 1 }, fn);
}

/** Ten regular 1m bars of `symbol` on `date`. */
function day(date: string, fields: Partial<Bar> = {}): Bar[] {
  const start = zonedTime(date, "09:30");
  return Array.from({ length: 10 }, (_, i) => ({
    symbol: "AAPL",
    timeframe: "1m" as const,
    ts: start + i * 60_000,
    open: 100,
    high: 101,
    low: 99,
    close: 100.5,
    volume: 1_000,
    vwap: 100.25,
    tradeCount: 12,
    tradingDate: date,
    session: "regular" as const,
    provider: "fake",
    feed: "sip",
    adjustment: "raw",
    ...fields,
  }));
}

function recordDays(meta: MetaStore, source: string, symbol: string, days: [string, number][]) {
  const insert = meta.db.prepare(
    "INSERT INTO ingested_days (source, timeframe, symbol, trading_date, bars, job_id, ingested_at) VALUES (?, '1m', ?, ?, ?, 'j', 0)",
  );
  for (const [date, bars] of days) insert.run(source, symbol, date, bars);
}

function storedDays(meta: MetaStore): string[] {
  return meta.db.prepare(
    "SELECT source, symbol, trading_date FROM ingested_days ORDER BY 1, 2, 3",
  ).all().map((row) => `${row.source} ${row.symbol} ${row.trading_date}`);
}

async function storedDates(writer: PartitionWriter & { meta: MetaStore }): Promise<string[]> {
  const files = listFiles(writer.meta.db, { tree: "bars" }).map((f) =>
    join(writer.dataDir, f.path)
  );
  if (files.length === 0) return [];
  const connection = await writer.duckdb.connect();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT strftime(trading_date, '%Y-%m-%d') AS date, provider, count(*)
       FROM read_parquet([${files.map((f) => `'${f}'`).join(", ")}])
       GROUP BY date, provider ORDER BY date, provider`,
    );
    return reader.getRows().map((row) => row.join(" "));
  } finally {
    connection.closeSync();
  }
}

const BEFORE_0306: PruneSelection = { cutoffs: new Map([["1m", "2024-03-06"]]) };

Deno.test("pruneBars() rewrites a file that holds days on both sides of the cutoff, and forgets only the pruned days", async () => {
  await withWriter(async (writer) => {
    await writeBars(writer, ["2024-03-04", "2024-03-05", "2024-03-06"].flatMap((d) => day(d)), {
      jobId: "job-1",
    });
    recordDays(writer.meta, "fake/sip/raw", "AAPL", [
      ["2024-03-01", 0],
      ["2024-03-04", 10],
      ["2024-03-05", 10],
      ["2024-03-06", 10],
    ]);
    const dry = await pruneBars(writer, BEFORE_0306, { dryRun: true });
    assert.equal(dry.rows, 20);
    assert.equal(dry.days, 3);
    assert.deepEqual(dry.partitions, [{
      ...AAPL_2024,
      rows: 20,
      firstDate: "2024-03-04",
      lastDate: "2024-03-05",
      removed: 0,
      rewritten: 1,
      kept: 10,
    }]);
    assert.equal(storedDays(writer.meta).length, 4, "a dry run changes nothing");
    assert.equal((await storedDates(writer)).length, 3);

    const done = await pruneBars(writer, BEFORE_0306, { jobId: "prune-1" });
    assert.deepEqual(done, dry, "the run does what the dry run listed");
    assert.deepEqual(await storedDates(writer), ["2024-03-06 fake 10"]);
    assert.deepEqual(storedDays(writer.meta), ["fake/sip/raw AAPL 2024-03-06"]);
    const [file] = listFiles(writer.meta.db, AAPL_2024);
    assert.equal(file.firstDate, "2024-03-06");
    assert.equal(file.jobId, "prune-1");

    const again = await pruneBars(writer, BEFORE_0306, { jobId: "prune-2" });
    assert.deepEqual(again, { partitions: [], rows: 0, days: 0 }, "a second run has nothing to do");
  });
});

Deno.test("pruneBars() deletes whole files and their emptied folder, and forgets the series' freshness", async () => {
  await withWriter(async (writer) => {
    await writeBars(writer, day("2023-12-29"), { jobId: "job-1" });
    await writeBars(writer, day("2024-03-04"), { jobId: "job-2" });
    recordFreshness(writer.meta.db, [{ symbol: "AAPL", timeframe: "1m", lastTs: 1 }], 0);
    const summary = await pruneBars(writer, { cutoffs: new Map([["1m", undefined]]) });
    assert.equal(summary.rows, 20);
    assert.deepEqual(summary.partitions.map((p) => [p.year, p.removed, p.rewritten, p.kept]), [
      [2023, 1, 0, 0],
      [2024, 1, 0, 0],
    ]);
    assert.deepEqual(listFiles(writer.meta.db), []);
    const symbolDir = join(writer.dataDir, "bars/timeframe=1m/symbol=AAPL");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(symbolDir)), [], "year folders removed");
    assert.equal(
      writer.meta.db.prepare("SELECT count(*) AS n FROM series_freshness").get()?.n,
      0,
    );
  });
});

Deno.test("pruneBars() with a provider removes only that provider's bars and days", async () => {
  await withWriter(async (writer) => {
    await writeBars(writer, day("2024-03-04"), { jobId: "job-1" });
    await writeBars(writer, day("2024-03-05", { provider: "alpaca" }), { jobId: "job-2" });
    recordDays(writer.meta, "fake/sip/raw", "AAPL", [["2024-03-04", 10]]);
    recordDays(writer.meta, "alpaca/iex/raw", "AAPL", [["2024-03-05", 10]]);
    const summary = await pruneBars(writer, {
      cutoffs: new Map([["1m", undefined]]),
      provider: "alpaca",
    });
    assert.equal(summary.rows, 10);
    assert.equal(summary.days, 1);
    assert.deepEqual(await storedDates(writer), ["2024-03-04 fake 10"]);
    assert.deepEqual(storedDays(writer.meta), ["fake/sip/raw AAPL 2024-03-04"]);
  });
});

Deno.test("pruneBars() keeps aggregation state in step: a target built from the old 1m files counts as built from the new ones", async () => {
  await withWriter(async (writer) => {
    await writeBars(writer, ["2024-03-04", "2024-03-06"].flatMap((d) => day(d)), {
      jobId: "job-1",
    });
    const [old] = listFiles(writer.meta.db, AAPL_2024);
    writer.meta.db.prepare(
      `INSERT INTO aggregation_state (target, timeframe, symbol, session, sources, target_fingerprint, rows, native_rows, aggregated_at)
       VALUES ('bars/timeframe=5m/symbol=AAPL/year=2024', '5m', 'AAPL', 'all', ?, '', 0, 0, 0)`,
    ).run(old.path);
    await pruneBars(writer, BEFORE_0306);
    const [now] = listFiles(writer.meta.db, AAPL_2024);
    assert.notEqual(now.path, old.path);
    assert.equal(
      writer.meta.db.prepare("SELECT sources FROM aggregation_state").get()?.sources,
      now.path,
    );
  });
});

Deno.test("pruneBars() run again removes the files a killed prune left after its commit", async () => {
  await withWriter(async (writer) => {
    await writeBars(writer, day("2024-03-04"), { jobId: "job-1" });
    const [file] = listFiles(writer.meta.db, AAPL_2024);
    const kept = join(writer.dataDir, `${file.path}.copy`);
    await Deno.copyFile(join(writer.dataDir, file.path), kept);
    await pruneBars(writer, BEFORE_0306);
    // As if killed after the manifest commit, before the delete: the file is back, unlisted.
    await Deno.rename(kept, join(writer.dataDir, file.path));
    const summary = await pruneBars(writer, BEFORE_0306);
    assert.equal(summary.rows, 0);
    const yearDir = join(writer.dataDir, "bars/timeframe=1m/symbol=AAPL/year=2024");
    await assert.rejects(Deno.stat(yearDir), Deno.errors.NotFound);
  });
});
