import assert from "node:assert/strict";
import { join } from "node:path";
import { zonedTime } from "../core/calendar.ts";
import type { Bar } from "../core/types.ts";
import { openDuckDB } from "./duckdb.ts";
import { listFiles } from "./manifest.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import { FILE_COLUMNS, type PartitionWriter, writeBars } from "./partitions.ts";
import { quarantineDir, readQuarantine, writeQuarantine } from "./quarantine.ts";

async function withWriter(fn: (writer: PartitionWriter) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-quarantine-" });
  const db = openDatabase(join(dataDir, META_FILE));
  migrate(db);
  const meta = new MetaStore(db, { command: "test" });
  const duckdb = await openDuckDB({ threads: 2 });
  try {
    await fn({ dataDir, duckdb, meta, now: () => Date.UTC(2024, 2, 10) });
  } finally {
    duckdb.closeSync();
    meta.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function bar(date: string, time: string, fields: Partial<Bar> = {}): Bar {
  return {
    symbol: "AAPL",
    timeframe: "1m",
    ts: zonedTime(date, time),
    open: 100,
    high: 101,
    low: -99,
    close: 100.5,
    volume: 1000,
    vwap: 100.2,
    tradeCount: 12,
    tradingDate: date,
    session: "regular",
    provider: "fake",
    feed: "sip",
    adjustment: "raw",
    ...fields,
  };
}

Deno.test("quarantineDir() mirrors the bars layout under quarantine/", () => {
  assert.equal(
    quarantineDir("1m", "BRK.B", "2024-03-04"),
    join("quarantine", "timeframe=1m", "symbol=BRK.B", "year=2024"),
  );
  assert.equal(
    quarantineDir("1d", "SPY", "2024-03-04"),
    join("quarantine", "timeframe=1d", "symbol=SPY", "year=2024"),
  );
});

Deno.test("writeQuarantine() stores the file columns plus rule and detail, one file per partition", async () => {
  await withWriter(async (writer) => {
    const result = await writeQuarantine(writer, [
      { bar: bar("2024-03-04", "10:00"), rule: "positive_prices", detail: "low -99" },
      { bar: bar("2024-04-01", "10:00", { open: NaN }), rule: "positive_prices", detail: "NaN" },
    ], { jobId: "job-1" });
    // March and April of 2024: one partition (the year), one file.
    assert.deepEqual(result, { bars: 2, partitions: 1 });
    const files = listFiles(writer.meta.db, { tree: "quarantine" });
    assert.equal(files.length, 1);
    assert.ok(files[0].path.startsWith(quarantineDir("1m", "AAPL", "2024-03-04") + "/"));
    const file = join(writer.dataDir, files[0].path);
    const connection = await writer.duckdb.connect();
    try {
      const described = await connection.runAndReadAll(
        `DESCRIBE SELECT * FROM read_parquet('${file}', hive_partitioning = false)`,
      );
      assert.deepEqual(
        (described.getRowsJS() as string[][]).map((row) => row[0]),
        [...FILE_COLUMNS, "rule", "detail"],
      );
    } finally {
      connection.closeSync();
    }
    const connection2 = await writer.duckdb.connect();
    try {
      const april = await readQuarantine(connection2, writer.dataDir, "1m", "AAPL", {
        start: "2024-04-01",
        end: "2024-04-30",
      });
      assert.equal(april.length, 1);
      assert.equal(april[0].bar.open, null); // NaN is kept as NULL, the bar is not dropped
      assert.equal(april[0].jobId, "job-1");
    } finally {
      connection2.closeSync();
    }
  });
});

Deno.test("writeQuarantine() merges into a partition: a key appears once, the latest rejection winning", async () => {
  await withWriter(async (writer) => {
    await writeQuarantine(writer, [
      { bar: bar("2024-03-04", "10:00"), rule: "positive_prices", detail: "first" },
      { bar: bar("2024-03-04", "10:01"), rule: "positive_prices", detail: "kept" },
    ], { jobId: "job-1" });
    await writeQuarantine(writer, [
      {
        bar: bar("2024-03-04", "10:00", { low: 99, high: 98 }),
        rule: "ohlc_consistency",
        detail: "second",
      },
    ], { jobId: "job-2" });
    const connection = await writer.duckdb.connect();
    try {
      const rows = await readQuarantine(connection, writer.dataDir, "1m", "AAPL");
      assert.deepEqual(rows.map((r) => [r.rule, r.detail, r.jobId]), [
        ["ohlc_consistency", "second", "job-2"],
        ["positive_prices", "kept", "job-1"],
      ]);
      const byJob = await readQuarantine(connection, writer.dataDir, "1m", "AAPL", {
        jobId: "job-1",
      });
      assert.deepEqual(byJob.map((r) => r.detail), ["kept"]);
    } finally {
      connection.closeSync();
    }
  });
});

Deno.test("readQuarantine() leaves out a rejection once a newer ingest stored its key or its day in bars/", async () => {
  await withWriter(async (writer) => {
    const at = (ms: number): PartitionWriter => ({ ...writer, now: () => ms });
    // Stored first, rejected later: the rejection is the newer word and stays.
    await writeBars(at(Date.UTC(2024, 2, 5)), [bar("2024-03-05", "10:02", { low: 99 })], {
      jobId: "job-0",
    });
    await writeQuarantine(at(Date.UTC(2024, 2, 6)), [
      { bar: bar("2024-03-04", "10:00"), rule: "positive_prices", detail: "fixed later" },
      {
        bar: bar("2024-03-04", "10:03", { ts: zonedTime("2024-03-04", "10:03") + 30_000 }),
        rule: "ts_alignment",
        detail: "off the grid, day fetched again",
      },
      { bar: bar("2024-03-05", "10:02"), rule: "positive_prices", detail: "rejected later" },
      { bar: bar("2024-03-05", "10:00"), rule: "positive_prices", detail: "never fetched again" },
    ], { jobId: "job-1" });
    await writeBars(
      at(Date.UTC(2024, 2, 7)),
      [bar("2024-03-04", "10:00", { low: 99 }), bar("2024-03-04", "10:03", { low: 99 })],
      { jobId: "job-2" },
    );
    const connection = await writer.duckdb.connect();
    try {
      const rows = await readQuarantine(connection, writer.dataDir, "1m", "AAPL");
      assert.deepEqual(rows.map((r) => r.detail), ["never fetched again", "rejected later"]);
      const byJob = await readQuarantine(connection, writer.dataDir, "1m", "AAPL", {
        jobId: "job-1",
        start: "2024-03-04",
        end: "2024-03-05",
      });
      assert.deepEqual(byJob.map((r) => r.detail), ["never fetched again", "rejected later"]);
    } finally {
      connection.closeSync();
    }
  });
});
