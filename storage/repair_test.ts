import assert from "node:assert/strict";
import type { DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import { zonedTime } from "../core/calendar.ts";
import type { Bar } from "../core/types.ts";
import { damageZstdPages, truncateFile } from "../tests/_corrupt.ts";
import { openDuckDB } from "./duckdb.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import { writeBars } from "./partitions.ts";
import { writeQuarantine } from "./quarantine.ts";
import { findCorruptFiles, moveCorruptFiles } from "./repair.ts";

const AAPL = "bars/timeframe=1m/symbol=AAPL/year=2024/month=03/data.parquet";
const MSFT = "bars/timeframe=1m/symbol=MSFT/year=2024/month=03/data.parquet";
const SPY = "bars/timeframe=1m/symbol=SPY/year=2024/month=03/data.parquet";
const AAPL_QUARANTINE = "quarantine/timeframe=1m/symbol=AAPL/year=2024/month=03/data.parquet";

interface Context {
  dataDir: string;
  duckdb: DuckDBInstance;
  meta: MetaStore;
}

/** 1m bars of `symbol` from 04:00 New York on `date` (600 of them, so pages are zstd frames). */
function dayOfBars(symbol: string, date: string): Bar[] {
  const start = zonedTime(date, "04:00");
  return Array.from({ length: 600 }, (_, i) => ({
    symbol,
    timeframe: "1m",
    ts: start + i * 60_000,
    open: 100 + i / 100,
    high: 101 + i / 100,
    low: 99 + i / 100,
    close: 100.5 + i / 100,
    volume: 1_000 + i,
    vwap: 100.25,
    tradeCount: 12,
    tradingDate: date,
    session: "regular",
    provider: "fake",
    feed: "sip",
    adjustment: "raw",
  }));
}

/**
 * A data directory with 1m bars of AAPL, MSFT and SPY on 2024-03-04 and 03-05 (their days
 * recorded as ingested, plus a 1d record and a February day of AAPL that repair must keep) and
 * one quarantined AAPL bar.
 */
async function withData(fn: (context: Context) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-repair-" });
  const db = openDatabase(join(dataDir, META_FILE));
  migrate(db);
  const meta = new MetaStore(db, { command: "test" });
  const duckdb = await openDuckDB({ threads: 1 });
  try {
    const writer = { dataDir, duckdb, meta };
    const record = db.prepare(
      "INSERT INTO ingested_days (source, timeframe, symbol, trading_date, bars, job_id, ingested_at) VALUES ('fake/sip/raw', ?, ?, ?, ?, 'job-1', 0)",
    );
    for (const symbol of ["AAPL", "MSFT", "SPY"]) {
      for (const date of ["2024-03-04", "2024-03-05"]) {
        await writeBars(writer, dayOfBars(symbol, date), { jobId: "job-1" });
        record.run("1m", symbol, date, 600);
      }
    }
    record.run("1m", "AAPL", "2024-02-29", 600);
    record.run("1d", "AAPL", "2024-03-04", 1);
    const [bad] = dayOfBars("AAPL", "2024-03-06");
    await writeQuarantine(writer, [{
      bar: { ...bad, high: 1 },
      rule: "ohlc_consistency",
      detail: "x",
    }], {
      jobId: "job-1",
    });
    await fn({ dataDir, duckdb, meta });
  } finally {
    duckdb.closeSync();
    meta.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function days(meta: MetaStore, timeframe: string, symbol: string): string[] {
  return meta.db.prepare(
    "SELECT trading_date FROM ingested_days WHERE timeframe = ? AND symbol = ? ORDER BY trading_date",
  ).all(timeframe, symbol).map((row) => row.trading_date as string);
}

Deno.test("findCorruptFiles() reads every file under bars/ and quarantine/ and lists the unreadable ones with the reason", async () => {
  await withData(async ({ dataDir, duckdb }) => {
    assert.deepEqual(await findCorruptFiles(dataDir, duckdb), { checked: 4, corrupt: [] });
    await truncateFile(join(dataDir, AAPL));
    await damageZstdPages(join(dataDir, MSFT));
    await Deno.writeTextFile(join(dataDir, AAPL_QUARANTINE), "not parquet");
    const scan = await findCorruptFiles(dataDir, duckdb);
    assert.equal(scan.checked, 4);
    assert.deepEqual(scan.corrupt.map((f) => [f.path, f.tree]), [
      [AAPL, "bars"],
      [MSFT, "bars"],
      [AAPL_QUARANTINE, "quarantine"],
    ]);
    assert.match(scan.corrupt[0].reason, /magic bytes/);
    assert.match(scan.corrupt[1].reason, /ZSTD Decompression failure/);
    assert.deepEqual(scan.corrupt[0].partition, {
      timeframe: "1m",
      symbol: "AAPL",
      start: "2024-03-01",
      end: "2024-03-31",
    });
  });
});

Deno.test("moveCorruptFiles() renames each file into corrupt/ byte for byte and forgets only its partition's days", async () => {
  await withData(async ({ dataDir, duckdb, meta }) => {
    await truncateFile(join(dataDir, AAPL));
    await Deno.writeTextFile(join(dataDir, AAPL_QUARANTINE), "not parquet");
    const before = await Deno.readFile(join(dataDir, AAPL));
    const { corrupt } = await findCorruptFiles(dataDir, duckdb);

    const dry = await moveCorruptFiles({ dataDir, duckdb, meta }, corrupt, { dryRun: true });
    assert.deepEqual(dry.map((m) => [m.outcome, m.movedTo, m.daysForgotten]), [
      ["moved", `corrupt/${AAPL}`, 2],
      ["moved", `corrupt/${AAPL_QUARANTINE}`, 0],
    ]);
    assert.deepEqual(await Deno.readFile(join(dataDir, AAPL)), before, "a dry run moved the file");
    assert.deepEqual(days(meta, "1m", "AAPL"), ["2024-02-29", "2024-03-04", "2024-03-05"]);

    const moved = await moveCorruptFiles({ dataDir, duckdb, meta }, corrupt);
    assert.deepEqual(moved.map((m) => [m.outcome, m.movedTo, m.daysForgotten]), [
      ["moved", `corrupt/${AAPL}`, 2],
      ["moved", `corrupt/${AAPL_QUARANTINE}`, 0],
    ]);
    assert.deepEqual(await Deno.readFile(join(dataDir, "corrupt", AAPL)), before);
    await assert.rejects(Deno.stat(join(dataDir, AAPL)), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(join(dataDir, AAPL_QUARANTINE)), Deno.errors.NotFound);
    // March of AAPL 1m is forgotten; February, 1d and the other symbols are not.
    assert.deepEqual(days(meta, "1m", "AAPL"), ["2024-02-29"]);
    assert.deepEqual(days(meta, "1d", "AAPL"), ["2024-03-04"]);
    assert.deepEqual(days(meta, "1m", "MSFT"), ["2024-03-04", "2024-03-05"]);
    const locks = meta.db.prepare("SELECT count(*) AS n FROM partition_locks").get()!;
    assert.equal(Number(locks.n), 0);
  });
});

Deno.test("moveCorruptFiles() never replaces a file already in corrupt/ and keeps a file that reads again", async () => {
  await withData(async ({ dataDir, duckdb, meta }) => {
    await truncateFile(join(dataDir, AAPL));
    await truncateFile(join(dataDir, SPY));
    const { corrupt } = await findCorruptFiles(dataDir, duckdb);
    const earlier = join(dataDir, "corrupt", AAPL);
    await Deno.mkdir(join(earlier, ".."), { recursive: true });
    await Deno.writeTextFile(earlier, "moved aside last week");
    // SPY is rewritten (by an ingest, say) between the scan and the move.
    await Deno.remove(join(dataDir, SPY));
    await writeBars({ dataDir, duckdb, meta }, dayOfBars("SPY", "2024-03-04"), { jobId: "job-2" });
    const moved = await moveCorruptFiles({ dataDir, duckdb, meta }, corrupt);
    assert.deepEqual(moved.map((m) => [m.file.path, m.outcome, m.movedTo ?? null]), [
      [AAPL, "moved", `corrupt/${AAPL.replace(/\.parquet$/, ".1.parquet")}`],
      [SPY, "readable", null],
    ]);
    assert.equal(await Deno.readTextFile(earlier), "moved aside last week");
    assert.ok((await Deno.stat(join(dataDir, SPY))).isFile);
    assert.deepEqual(days(meta, "1m", "SPY"), ["2024-03-04", "2024-03-05"]);
  });
});
