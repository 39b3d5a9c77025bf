import assert from "node:assert/strict";
import type { DuckDBInstance } from "@duckdb/node-api";
import { join, relative } from "node:path";
import { zonedTime } from "../core/calendar.ts";
import type { Bar } from "../core/types.ts";
import { damageZstdPages, liveFile, truncateFile } from "../tests/_corrupt.ts";
import { openDuckDB } from "./duckdb.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import { listFiles } from "./manifest.ts";
import { writeBars } from "./partitions.ts";
import { writeQuarantine } from "./quarantine.ts";
import { findCorruptFiles, MISSING_REASON, moveCorruptFiles } from "./repair.ts";

interface Context {
  dataDir: string;
  duckdb: DuckDBInstance;
  meta: MetaStore;
  /**
   * Live files (relative to the data dir, from the manifest): the 1m bars of 2024-03-04 of each
   * symbol (each day was written apart, so each is its own file) and AAPL's quarantine file.
   */
  AAPL: string;
  MSFT: string;
  SPY: string;
  AAPL_QUARANTINE: string;
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
    // One file per day write (no merging while appending): a corrupt file stands for its day only.
    const writer = { dataDir, duckdb, meta, compactThreshold: 0 };
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
    const file = async (symbol: string) =>
      relative(dataDir, await liveFile(dataDir, "1m", symbol, { date: "2024-03-04" }));
    await fn({
      dataDir,
      duckdb,
      meta,
      AAPL: await file("AAPL"),
      MSFT: await file("MSFT"),
      SPY: await file("SPY"),
      AAPL_QUARANTINE: relative(
        dataDir,
        await liveFile(dataDir, "1m", "AAPL", { tree: "quarantine" }),
      ),
    });
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
  await withData(async ({ dataDir, duckdb, AAPL, MSFT, AAPL_QUARANTINE }) => {
    // Two files per symbol (one per day written) and one quarantine file.
    assert.deepEqual(await findCorruptFiles(dataDir, duckdb), { checked: 7, corrupt: [] });
    await truncateFile(join(dataDir, AAPL));
    await damageZstdPages(join(dataDir, MSFT));
    await Deno.writeTextFile(join(dataDir, AAPL_QUARANTINE), "not parquet");
    const scan = await findCorruptFiles(dataDir, duckdb);
    assert.equal(scan.checked, 7);
    assert.deepEqual(scan.corrupt.map((f) => [f.path, f.tree]), [
      [AAPL, "bars"],
      [MSFT, "bars"],
      [AAPL_QUARANTINE, "quarantine"],
    ]);
    assert.match(scan.corrupt[0].reason, /magic bytes/);
    assert.match(scan.corrupt[1].reason, /ZSTD Decompression failure/);
    // The trading dates the manifest records for the file, not its whole year folder.
    assert.deepEqual(scan.corrupt[0].partition, {
      timeframe: "1m",
      symbol: "AAPL",
      start: "2024-03-04",
      end: "2024-03-04",
    });
  });
});

Deno.test("moveCorruptFiles() renames each file into corrupt/ byte for byte, drops it from the manifest and forgets only its days", async () => {
  await withData(async ({ dataDir, duckdb, meta, AAPL, AAPL_QUARANTINE }) => {
    await truncateFile(join(dataDir, AAPL));
    await Deno.writeTextFile(join(dataDir, AAPL_QUARANTINE), "not parquet");
    const before = await Deno.readFile(join(dataDir, AAPL));
    const { corrupt } = await findCorruptFiles(dataDir, duckdb);
    // Paths of the manifest's live files (7: two days of three symbols, one quarantine file).
    const live = () => listFiles(meta.db).map((file) => file.path);
    const allLive = live();
    assert.equal(allLive.length, 7);

    const dry = await moveCorruptFiles({ dataDir, duckdb, meta }, corrupt, { dryRun: true });
    assert.deepEqual(dry.map((m) => [m.outcome, m.movedTo, m.daysForgotten]), [
      ["moved", `corrupt/${AAPL}`, 1],
      ["moved", `corrupt/${AAPL_QUARANTINE}`, 0],
    ]);
    assert.deepEqual(await Deno.readFile(join(dataDir, AAPL)), before, "a dry run moved the file");
    assert.deepEqual(live(), allLive, "a dry run changed the manifest");
    assert.deepEqual(days(meta, "1m", "AAPL"), ["2024-02-29", "2024-03-04", "2024-03-05"]);

    const moved = await moveCorruptFiles({ dataDir, duckdb, meta }, corrupt);
    assert.deepEqual(moved.map((m) => [m.outcome, m.movedTo, m.daysForgotten]), [
      ["moved", `corrupt/${AAPL}`, 1],
      ["moved", `corrupt/${AAPL_QUARANTINE}`, 0],
    ]);
    assert.deepEqual(await Deno.readFile(join(dataDir, "corrupt", AAPL)), before);
    assert.deepEqual(
      live(),
      allLive.filter((path) => path !== AAPL && path !== AAPL_QUARANTINE),
      "the manifest lists a moved file, or lost another",
    );
    await assert.rejects(Deno.stat(join(dataDir, AAPL)), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(join(dataDir, AAPL_QUARANTINE)), Deno.errors.NotFound);
    // The file's day of AAPL 1m is forgotten; AAPL's other days, 1d and other symbols are not.
    assert.deepEqual(days(meta, "1m", "AAPL"), ["2024-02-29", "2024-03-05"]);
    assert.deepEqual(days(meta, "1d", "AAPL"), ["2024-03-04"]);
    assert.deepEqual(days(meta, "1m", "MSFT"), ["2024-03-04", "2024-03-05"]);
    const locks = meta.db.prepare("SELECT count(*) AS n FROM partition_locks").get()!;
    assert.equal(Number(locks.n), 0);
  });
});

Deno.test("moveCorruptFiles() never replaces a file already in corrupt/ and keeps a file that reads again", async () => {
  await withData(async ({ dataDir, duckdb, meta, AAPL, SPY }) => {
    const spyBytes = await Deno.readFile(join(dataDir, SPY));
    await truncateFile(join(dataDir, AAPL));
    await truncateFile(join(dataDir, SPY));
    const { corrupt } = await findCorruptFiles(dataDir, duckdb);
    const earlier = join(dataDir, "corrupt", AAPL);
    await Deno.mkdir(join(earlier, ".."), { recursive: true });
    await Deno.writeTextFile(earlier, "moved aside last week");
    // SPY reads again between the scan and the move (restored from a backup, say). Stored files
    // are immutable, and a write that merges an unreadable file fails, so that is the one way.
    await Deno.writeFile(join(dataDir, SPY), spyBytes);
    const moved = await moveCorruptFiles({ dataDir, duckdb, meta }, corrupt);
    assert.deepEqual(moved.map((m) => [m.file.path, m.outcome, m.movedTo ?? null]), [
      [AAPL, "moved", `corrupt/${AAPL.replace(/\.parquet$/, ".1.parquet")}`],
      [SPY, "readable", null],
    ]);
    assert.equal(await Deno.readTextFile(earlier), "moved aside last week");
    assert.deepEqual(await Deno.readFile(join(dataDir, SPY)), spyBytes);
    assert.ok(listFiles(meta.db, { symbol: "SPY" }).some((file) => file.path === SPY));
    assert.deepEqual(days(meta, "1m", "SPY"), ["2024-03-04", "2024-03-05"]);
  });
});

Deno.test("findCorruptFiles() lists a live file missing on disk; moveCorruptFiles() drops it from the manifest and forgets its day", async () => {
  await withData(async ({ dataDir, duckdb, meta, MSFT }) => {
    await Deno.remove(join(dataDir, MSFT));
    const { corrupt } = await findCorruptFiles(dataDir, duckdb);
    assert.deepEqual(corrupt.map((file) => [file.path, file.reason, file.partition?.start]), [
      [MSFT, MISSING_REASON, "2024-03-04"],
    ]);
    const dry = await moveCorruptFiles({ dataDir, duckdb, meta }, corrupt, { dryRun: true });
    assert.deepEqual(dry.map((m) => [m.outcome, m.daysForgotten]), [["gone", 1]]);
    assert.ok(listFiles(meta.db).some((file) => file.path === MSFT), "a dry run changes nothing");
    const moved = await moveCorruptFiles({ dataDir, duckdb, meta }, corrupt);
    assert.deepEqual(moved.map((m) => [m.outcome, m.daysForgotten]), [["gone", 1]]);
    assert.ok(!listFiles(meta.db).some((file) => file.path === MSFT));
    assert.deepEqual(days(meta, "1m", "MSFT"), ["2024-03-05"]);
    assert.deepEqual((await findCorruptFiles(dataDir, duckdb)).corrupt, []);
  });
});
