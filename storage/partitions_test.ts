import assert from "node:assert/strict";
import type { DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import { zonedTime } from "../core/calendar.ts";
import type { Bar } from "../core/types.ts";
import { BAR_COLUMNS, openDuckDB, sqlString } from "./duckdb.ts";
import { listFiles as liveFiles } from "./manifest.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import {
  compactPartition,
  FILE_COLUMNS,
  type PartitionWriter,
  replacePartition,
  SCHEMA_VERSION,
  tailMergeCount,
  writeBars,
} from "./partitions.ts";
import { CorruptFileError } from "../core/errors.ts";
import { damageZstdPages } from "../tests/_corrupt.ts";

const YEAR = "bars/timeframe=1m/symbol=AAPL/year=2024";
const LAST_YEAR = "bars/timeframe=1m/symbol=AAPL/year=2023";
const AAPL_2024 = { tree: "bars", timeframe: "1m", symbol: "AAPL", year: 2024 } as const;
const INGESTED_AT = Date.UTC(2024, 2, 10, 12, 0, 0);

interface Context {
  dataDir: string;
  duckdb: DuckDBInstance;
  meta: MetaStore;
  writer: PartitionWriter;
}

/** A data directory with a migrated MetaStore and an in-memory DuckDB, all closed afterwards. */
async function withWriter(fn: (context: Context) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-partitions-" });
  const db = openDatabase(join(dataDir, META_FILE));
  migrate(db);
  const meta = new MetaStore(db, { command: "test" });
  const duckdb = await openDuckDB({ threads: 2 });
  try {
    await fn({ dataDir, duckdb, meta, writer: { dataDir, duckdb, meta, now: () => INGESTED_AT } });
  } finally {
    duckdb.closeSync();
    meta.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

/** A 1m AAPL bar at New York `time` on `date`. */
function bar(date: string, time: string, fields: Partial<Bar> = {}): Bar {
  return {
    symbol: "AAPL",
    timeframe: "1m",
    ts: zonedTime(date, time),
    open: 100,
    high: 101,
    low: 99,
    close: 100.5,
    volume: 1_000,
    vwap: 100.25,
    tradeCount: 12,
    tradingDate: date,
    session: "regular",
    provider: "fake",
    feed: "sip",
    adjustment: "raw",
    ...fields,
  };
}

/** Bars at consecutive minutes from `first` (HH:MM) on `date`. */
function minutes(date: string, first: string, count: number, fields: Partial<Bar> = {}): Bar[] {
  const start = zonedTime(date, first);
  return Array.from(
    { length: count },
    (_, i) => ({ ...bar(date, first, fields), ts: start + i * 60_000 }),
  );
}

interface Row {
  symbol: string;
  ts: number;
  close: number;
  vwap: number | null;
  trade_count: number | null;
  timeframe: string;
  trading_date: string;
  session: string;
  provider: string;
  ingest_id: string;
  ingested_at: number;
  schema_version: number;
}

/** Rows of the live files (per the manifest) of one partition folder, by file then file order. */
async function readPartition(context: Context, partition: string): Promise<Row[]> {
  const files = livePaths(context, partition);
  if (files.length === 0) return [];
  const connection = await context.duckdb.connect();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT symbol, CAST(epoch_ms(ts) AS DOUBLE) AS ts, close, vwap, CAST(trade_count AS DOUBLE) AS trade_count,
        timeframe, CAST(trading_date AS VARCHAR) AS trading_date, session, provider, ingest_id,
        CAST(epoch_ms(ingested_at) AS DOUBLE) AS ingested_at, schema_version
       FROM read_parquet([${files.map(sqlString).join(", ")}], hive_partitioning = true,
         hive_types_autocast = false, filename = true, file_row_number = true)
       ORDER BY filename, file_row_number`,
    );
    return reader.getRowObjectsJson() as unknown as Row[];
  } finally {
    connection.closeSync();
  }
}

/** Absolute paths of the live files of a partition folder, oldest first. */
function livePaths(context: Context, partition: string): string[] {
  return liveFiles(context.meta.db).filter((file) => file.path.startsWith(`${partition}/`))
    .map((file) => join(context.dataDir, file.path));
}

/** Every file under `dir`, relative, sorted. */
async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) out.push(...await listFiles(dir, path));
    else out.push(path);
  }
  return out.sort();
}

/**
 * The partition folder of each bar file under the data directory, one entry per file, sorted;
 * also checks that the files on disk are exactly the manifest's (no orphan, none missing) and
 * are named `<first>_<last>-<id>.parquet` after the trading dates they hold.
 */
async function barFiles(context: Context, options: { stats?: boolean } = {}): Promise<string[]> {
  const disk = (await listFiles(context.dataDir)).filter((path) => path.startsWith("bars/"));
  const manifest = liveFiles(context.meta.db);
  assert.deepEqual(disk, manifest.map((file) => file.path).sort(), "files on disk = manifest");
  for (const file of manifest) {
    assert.match(
      file.path,
      new RegExp(`/${file.firstDate}_${file.lastDate}-[0-9a-f]{8}\\.parquet$`),
    );
  }
  if (options.stats !== false) await assertManifestStats(context);
  return disk.map((path) => path.slice(0, path.lastIndexOf("/"))).sort();
}

/** The manifest's rows, ts range, dates and size of each file are what the file holds. */
async function assertManifestStats(context: Context): Promise<void> {
  const connection = await context.duckdb.connect();
  try {
    for (const file of liveFiles(context.meta.db)) {
      const path = join(context.dataDir, file.path);
      const reader = await connection.runAndReadAll(
        `SELECT count(*), epoch_us(min(ts)), epoch_us(max(ts)),
           CAST(min(trading_date) AS VARCHAR), CAST(max(trading_date) AS VARCHAR)
         FROM read_parquet(${sqlString(path)})`,
      );
      const [rows, minTs, maxTs, firstDate, lastDate] = reader.getRows()[0];
      assert.deepEqual(
        {
          rows: file.rows,
          minTs: file.minTs,
          maxTs: file.maxTs,
          firstDate: file.firstDate,
          lastDate: file.lastDate,
          bytes: file.bytes,
        },
        {
          rows: Number(rows),
          minTs: Number(minTs),
          maxTs: Number(maxTs),
          firstDate,
          lastDate,
          bytes: (await Deno.stat(path)).size,
        },
        `manifest entry of ${file.path}`,
      );
    }
  } finally {
    connection.closeSync();
  }
}

function assertNoDuplicates(rows: Row[]): void {
  const keys = rows.map((row) => `${row.symbol}|${row.timeframe}|${row.ts}`);
  assert.equal(new Set(keys).size, keys.length, "duplicate (symbol, timeframe, ts) rows");
}

function assertSortedByTs(rows: Row[]): void {
  for (let i = 1; i < rows.length; i++) {
    assert.ok(rows[i - 1].ts < rows[i].ts, `row ${i} is not after row ${i - 1}`);
  }
}

Deno.test("writeBars() creates a file in the year partition, named by its dates, sorted by ts", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const bars = minutes("2024-03-04", "09:30", 5);
    const shuffled = [bars[3], bars[0], bars[4], bars[1], bars[2]];
    const result = await writeBars(writer, shuffled, { jobId: "job-1" });
    assert.deepEqual(result, { written: 5, replaced: 0, partitions: 1 });
    assert.deepEqual(await barFiles(context), [YEAR]);
    const rows = await readPartition(context, YEAR);
    assert.deepEqual(rows.map((row) => row.ts), bars.map((b) => b.ts));
  });
});

Deno.test("writeBars() stores every bar column with the job id, ingest time and schema version", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    await writeBars(writer, [
      bar("2024-03-04", "08:00", { session: "pre", vwap: null, tradeCount: null, close: 99.5 }),
      bar("2024-03-04", "16:30", { session: "post" }),
    ], { jobId: "job-1" });
    const rows = await readPartition(context, YEAR);
    assert.deepEqual(rows[0], {
      symbol: "AAPL",
      ts: zonedTime("2024-03-04", "08:00"),
      close: 99.5,
      vwap: null,
      trade_count: null,
      timeframe: "1m",
      trading_date: "2024-03-04",
      session: "pre",
      provider: "fake",
      ingest_id: "job-1",
      ingested_at: INGESTED_AT,
      schema_version: SCHEMA_VERSION,
    });
    assert.equal(rows[1].session, "post");
    assert.equal(rows[1].vwap, 100.25);
    assert.equal(rows[1].trade_count, 12);
  });
});

Deno.test("writeBars() records each file's rows, ts range and dates as the file holds them, milliseconds included", async () => {
  await withWriter(async (context) => {
    const writer = { ...context.writer, compactThreshold: 0 };
    // Whole minutes (the manifest entry is known without reading the file back), then bars a
    // few milliseconds off the minute at both ends (read back), then a merge with both.
    await writeBars(writer, minutes("2024-03-04", "09:30", 3), { jobId: "job-1" });
    const odd = minutes("2024-03-05", "09:30", 3).map((b, i) => ({ ...b, ts: b.ts + 7 + i }));
    await writeBars(writer, odd, { jobId: "job-2" });
    await writeBars(writer, minutes("2024-03-05", "09:31", 3), { jobId: "job-3" });
    assert.deepEqual(await barFiles(context), [YEAR, YEAR]);
    const files = liveFiles(context.meta.db).map((file) => [file.firstDate, file.rows]);
    assert.deepEqual(files, [["2024-03-04", 3], ["2024-03-05", 6]]);
  });
});

Deno.test("writeBars() of bars spanning several scan chunks stores every value, nulls included, as new and as merged", async () => {
  await withWriter(async (context) => {
    const { duckdb, writer } = context;
    // 5 days x 960 minutes: chunks of 2048 rows cut through days; nulls sit on chunk edges,
    // vwap's in the first two chunks only and trade_count's in the last only, so a chunk without
    // nulls follows one with nulls and the other way round.
    const days = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"];
    const sessions = ["pre", "regular", "post"] as const;
    const make = (shift: number) =>
      days.flatMap((date) => minutes(date, "04:00", 960)).map((b, i) => ({
        ...b,
        open: 100 + i / 100 + shift,
        high: 200 + i / 100 + shift,
        low: 50 + i / 100,
        close: 150 + i / 1000,
        volume: 1_000 + i,
        vwap: i < 4096 && (i % 2048 === 0 || i % 2048 === 2047) ? null : 120 + i / 10_000,
        tradeCount: i >= 4096 && (i % 1000 === 7 || i === 4096) ? null : i,
        session: sessions[i % 3],
      }));
    const read = async () => {
      const connection = await duckdb.connect();
      try {
        const reader = await connection.runAndReadAll(
          `SELECT CAST(epoch_ms(ts) AS DOUBLE), open, high, low, close, volume, vwap,
             CAST(trade_count AS DOUBLE), CAST(trading_date AS VARCHAR), session
           FROM read_parquet([${livePaths(context, YEAR).map(sqlString).join(", ")}]) ORDER BY ts`,
        );
        return reader.getRows();
      } finally {
        connection.closeSync();
      }
    };
    const expected = (bars: Bar[]) =>
      bars.map((b) => [
        b.ts,
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        b.vwap,
        b.tradeCount,
        b.tradingDate,
        b.session,
      ]);
    const first = make(0);
    assert.deepEqual(await writeBars(writer, first, { jobId: "job-1" }), {
      written: first.length,
      replaced: 0,
      partitions: 1,
    });
    assert.deepEqual(await read(), expected(first));
    // The same days again with other prices: merged into the stored file, every bar replaced.
    const second = make(1);
    assert.deepEqual(await writeBars(writer, second, { jobId: "job-2" }), {
      written: 0,
      replaced: second.length,
      partitions: 1,
    });
    assert.deepEqual(await read(), expected(second));
  });
});

Deno.test("writeBars() writes the documented bar columns in order and with their types", async () => {
  await withWriter(async (context) => {
    const { duckdb, writer } = context;
    await writeBars(writer, minutes("2024-03-04", "09:30", 1), { jobId: "job-1" });
    const connection = await duckdb.connect();
    try {
      const reader = await connection.runAndReadAll(
        `DESCRIBE SELECT * FROM read_parquet(${
          sqlString(livePaths(context, YEAR)[0])
        }, hive_partitioning = false)`,
      );
      const columns = reader.getRowObjectsJson().map((row) => ({
        name: row.column_name,
        type: row.column_type,
      }));
      // DESCRIBE spells TIMESTAMPTZ out; symbol and timeframe live in the folder names only.
      assert.deepEqual(columns.map((column) => column.name), FILE_COLUMNS);
      const expected = BAR_COLUMNS.filter((c) => FILE_COLUMNS.includes(c.name)).map((c) => ({
        name: c.name,
        type: c.type === "TIMESTAMPTZ" ? "TIMESTAMP WITH TIME ZONE" : c.type,
      }));
      assert.deepEqual(columns, expected);
    } finally {
      connection.closeSync();
    }
  });
});

Deno.test("writeBars() merges an overlapping write: no duplicates and the newer values win", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    // 09:30-09:34 then 09:33-09:37: two bars overlap.
    const first = await writeBars(writer, minutes("2024-03-04", "09:30", 5, { close: 1 }), {
      jobId: "job-1",
    });
    assert.deepEqual(first, { written: 5, replaced: 0, partitions: 1 });
    const second = await writeBars(writer, minutes("2024-03-04", "09:33", 5, { close: 2 }), {
      jobId: "job-2",
    });
    assert.deepEqual(second, { written: 3, replaced: 2, partitions: 1 });

    const rows = await readPartition(context, YEAR);
    assert.equal(rows.length, 8);
    assertNoDuplicates(rows);
    assertSortedByTs(rows);
    assert.deepEqual(rows.map((row) => [row.close, row.ingest_id]), [
      [1, "job-1"],
      [1, "job-1"],
      [1, "job-1"],
      [2, "job-2"],
      [2, "job-2"],
      [2, "job-2"],
      [2, "job-2"],
      [2, "job-2"],
    ]);
    // The second write held a day of the first file: merged into one file that replaced it.
    assert.deepEqual(await barFiles(context), [YEAR]);
  });
});

Deno.test("writeBars() of the same bars again replaces them all and adds nothing", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const bars = minutes("2024-03-04", "09:30", 4);
    await writeBars(writer, bars, { jobId: "job-1" });
    const again = await writeBars(writer, bars, { jobId: "job-2" });
    assert.deepEqual(again, { written: 0, replaced: 4, partitions: 1 });
    const rows = await readPartition(context, YEAR);
    assert.equal(rows.length, 4);
    assert.ok(rows.every((row) => row.ingest_id === "job-2"));
  });
});

Deno.test("writeBars() of new days appends a file and keeps the stored one as it is", async () => {
  await withWriter(async (context) => {
    const writer = { ...context.writer, compactThreshold: 0 };
    await writeBars(writer, minutes("2024-03-04", "09:30", 3), { jobId: "job-1" });
    const [before] = livePaths(context, YEAR);
    const bytes = await Deno.readFile(before);
    const result = await writeBars(writer, minutes("2024-03-05", "09:30", 2), { jobId: "job-2" });
    assert.deepEqual(result, { written: 2, replaced: 0, partitions: 1 });
    assert.deepEqual(await barFiles(context), [YEAR, YEAR]);
    assert.deepEqual(await Deno.readFile(before), bytes, "history is never rewritten");
    const rows = await readPartition(context, YEAR);
    assert.deepEqual(rows.map((row) => row.trading_date), [
      "2024-03-04",
      "2024-03-04",
      "2024-03-04",
      "2024-03-05",
      "2024-03-05",
    ]);
  });
});

Deno.test("writeBars() puts bars spanning two years into two partitions", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const bars = [...minutes("2023-12-29", "15:58", 2), ...minutes("2024-01-02", "09:30", 3)];
    const result = await writeBars(writer, bars, { jobId: "job-1" });
    assert.deepEqual(result, { written: 5, replaced: 0, partitions: 2 });
    assert.deepEqual(await barFiles(context), [LAST_YEAR, YEAR]);
    const december = await readPartition(context, LAST_YEAR);
    const january = await readPartition(context, YEAR);
    assert.deepEqual(december.map((row) => row.trading_date), ["2023-12-29", "2023-12-29"]);
    assert.deepEqual(january.map((row) => row.trading_date), [
      "2024-01-02",
      "2024-01-02",
      "2024-01-02",
    ]);
  });
});

Deno.test("writeBars() files a post-market bar by its New York trading date, not its UTC date", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    // 19:59 New York on Dec 31 is already January 1 in UTC.
    const late = bar("2024-12-31", "19:59", { session: "post" });
    assert.equal(new Date(late.ts).toISOString().slice(0, 10), "2025-01-01");
    await writeBars(writer, [late], { jobId: "job-1" });
    assert.deepEqual(await barFiles(context), [YEAR]);
    assert.match(livePaths(context, YEAR)[0], /2024-12-31_2024-12-31-[0-9a-f]{8}\.parquet$/);
  });
});

Deno.test("writeBars() keeps symbols in separate partitions", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const bars = [
      ...minutes("2024-03-04", "09:30", 2),
      ...minutes("2024-03-04", "09:30", 3, { symbol: "BRK.B" }),
    ];
    const result = await writeBars(writer, bars, { jobId: "job-1" });
    assert.deepEqual(result, { written: 5, replaced: 0, partitions: 2 });
    const brk = "bars/timeframe=1m/symbol=BRK.B/year=2024";
    assert.deepEqual(await barFiles(context), [YEAR, brk]);
    const rows = await readPartition(context, brk);
    assert.deepEqual(rows.map((row) => row.symbol), ["BRK.B", "BRK.B", "BRK.B"]);
  });
});

Deno.test("writeBars() stores daily bars in a year partition", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const daily = ["2024-03-04", "2024-11-29"].map((date) =>
      bar(date, "00:00", { timeframe: "1d", ts: zonedTime(date, "00:00") })
    );
    await writeBars(writer, daily, { jobId: "job-1" });
    // The same layout as intraday bars: one year folder.
    assert.deepEqual(await barFiles(context), ["bars/timeframe=1d/symbol=AAPL/year=2024"]);
  });
});

Deno.test("writeBars() leaves no temp files behind", async () => {
  await withWriter(async (context) => {
    const { dataDir, writer } = context;
    await writeBars(writer, minutes("2024-03-04", "09:30", 5), { jobId: "job-1" });
    await writeBars(writer, minutes("2024-03-04", "09:32", 5), { jobId: "job-2" });
    await writeBars(writer, minutes("2023-02-28", "09:30", 5), { jobId: "job-3" });
    const files = await listFiles(dataDir);
    assert.deepEqual(files.filter((path) => path.includes(".tmp-")), []);
    assert.deepEqual(await barFiles(context), [LAST_YEAR, YEAR]);
  });
});

Deno.test("writeBars() removes the temp and orphan files a crashed writer left in the partition", async () => {
  await withWriter(async (context) => {
    const { dataDir, writer } = context;
    await writeBars(writer, minutes("2024-03-04", "09:30", 3), { jobId: "job-1" });
    const stale = join(dataDir, YEAR, ".tmp-0b1c2d3e-crashed");
    await Deno.writeFile(stale, new Uint8Array([0x50, 0x41, 0x52, 0x31, 0, 1, 2]));
    // A file renamed into place but never committed (or replaced but never deleted).
    const orphan = join(dataDir, YEAR, "2024-03-04_2024-03-04-0badf00d.parquet");
    await Deno.copyFile(livePaths(context, YEAR)[0], orphan);
    await writeBars(writer, minutes("2024-03-04", "09:33", 2), { jobId: "job-2" });
    assert.deepEqual(await barFiles(context), [YEAR]);
    assert.equal((await readPartition(context, YEAR)).length, 5);
  });
});

Deno.test("writeBars() serializes concurrent writes to one partition: the union without duplicates", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const [a, b] = await Promise.all([
      writeBars(writer, minutes("2024-03-04", "09:30", 5, { close: 1 }), { jobId: "job-a" }),
      writeBars(writer, minutes("2024-03-04", "09:32", 5, { close: 2 }), { jobId: "job-b" }),
    ]);
    // 09:30-09:34 and 09:32-09:36 overlap in three minutes; the union is seven bars.
    assert.equal(a.written + b.written, 7);
    assert.equal(a.replaced + b.replaced, 3);
    const rows = await readPartition(context, YEAR);
    assert.equal(rows.length, 7);
    assertNoDuplicates(rows);
    assertSortedByTs(rows);
    // The write that ran second owns the overlap.
    const second = a.replaced > 0 ? "job-a" : "job-b";
    const overlap = rows.filter((row) =>
      row.ts >= zonedTime("2024-03-04", "09:32") && row.ts <= zonedTime("2024-03-04", "09:34")
    );
    assert.ok(overlap.every((row) => row.ingest_id === second), JSON.stringify(overlap));
    assert.deepEqual(await barFiles(context), [YEAR]);
  });
});

Deno.test("writeBars() from two stores of one data directory at once loses no bars", async () => {
  await withWriter(async (context) => {
    const { dataDir, writer } = context;
    const db = openDatabase(join(dataDir, META_FILE));
    const other = new MetaStore(db, { command: "other" });
    try {
      await Promise.all([
        writeBars(writer, minutes("2024-03-04", "09:30", 4), { jobId: "job-a" }),
        writeBars({ ...writer, meta: other }, minutes("2024-03-04", "09:40", 4), {
          jobId: "job-b",
        }),
      ]);
      const rows = await readPartition(context, YEAR);
      assert.equal(rows.length, 8);
      assertNoDuplicates(rows);
    } finally {
      other.close();
    }
  });
});

Deno.test("writeBars() locks each partition it writes and releases it afterwards", async () => {
  await withWriter(async (context) => {
    const { dataDir, duckdb, meta } = context;
    const calls: string[] = [];
    const writer: PartitionWriter = {
      dataDir,
      duckdb,
      meta: {
        db: meta.db,
        lockPartition: (partition) => {
          calls.push(`lock ${partition}`);
          return Promise.resolve();
        },
        unlockPartition: (partition) => void calls.push(`unlock ${partition}`),
      },
    };
    await writeBars(writer, [
      ...minutes("2023-12-29", "09:30", 1),
      ...minutes("2024-01-02", "09:30", 1),
    ], {
      jobId: "job-1",
    });
    assert.deepEqual(calls, [
      `lock ${LAST_YEAR}`,
      `unlock ${LAST_YEAR}`,
      `lock ${YEAR}`,
      `unlock ${YEAR}`,
    ]);
    const locks = meta.db.prepare("SELECT count(*) AS n FROM partition_locks").get()!;
    assert.equal(Number(locks.n), 0);
  });
});

Deno.test("writeBars() over a live file that is not Parquet names the file and the cause, unlocks it and keeps the file", async () => {
  await withWriter(async (context) => {
    const { writer, meta } = context;
    await writeBars(writer, minutes("2024-03-04", "09:30", 2), { jobId: "job-0" });
    const [live] = livePaths(context, YEAR);
    const garbage = new TextEncoder().encode("not a parquet file");
    await Deno.writeFile(live, garbage);
    await assert.rejects(
      writeBars(writer, minutes("2024-03-04", "09:30", 2), { jobId: "job-1" }),
      (error: unknown) => {
        assert.ok(error instanceof CorruptFileError, `expected a CorruptFileError, got ${error}`);
        assert.equal(error.path, live);
        assert.equal(
          error.message,
          `Cannot write partition ${live}: cannot read the stored file (corrupt Parquet: ${error.reason}); run "marketpipe repair" to move it aside`,
        );
        assert.match(error.reason, /too small to be a Parquet file|magic bytes/);
        return true;
      },
    );
    assert.deepEqual(await Deno.readFile(live), garbage);
    assert.deepEqual(await barFiles(context, { stats: false }), [YEAR]);
    const locks = meta.db.prepare("SELECT count(*) AS n FROM partition_locks").get()!;
    assert.equal(Number(locks.n), 0, "the partition stayed locked after a failed write");
  });
});

Deno.test("writeBars() over a live file with damaged zstd pages throws a CorruptFileError and leaves it byte-identical", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    await writeBars(writer, minutes("2024-03-04", "04:00", 600), { jobId: "job-1" });
    const [live] = livePaths(context, YEAR);
    await damageZstdPages(live);
    const before = await Deno.readFile(live);
    await assert.rejects(
      // The same day again: the stored file must be read to merge it.
      writeBars(writer, minutes("2024-03-04", "09:30", 2), { jobId: "job-2" }),
      (error: unknown) =>
        error instanceof CorruptFileError && error.path === live &&
        /ZSTD Decompression failure/.test(error.reason) &&
        error.message.startsWith(`Cannot write partition ${live}: cannot read the stored file`),
    );
    assert.deepEqual(await Deno.readFile(live), before);
    assert.deepEqual(await barFiles(context), [YEAR]);
  });
});

Deno.test("replacePartition() whose write fails while the stored file reads names the partition and the cause", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    await writeBars(writer, minutes("2024-03-04", "09:30", 2), { jobId: "job-1" });
    await assert.rejects(
      replacePartition(
        writer,
        AAPL_2024,
        () => Promise.reject(new Error("the new file could not be built")),
      ),
      (error: unknown) =>
        !(error instanceof CorruptFileError) && error instanceof Error &&
        error.message === `Cannot write partition ${YEAR}: the new file could not be built`,
    );
    assert.deepEqual(await barFiles(context), [YEAR]);
  });
});

Deno.test("writeBars() with an aborted signal writes nothing", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const controller = new AbortController();
    controller.abort(new Error("Ctrl-C"));
    await assert.rejects(
      writeBars(writer, minutes("2024-03-04", "09:30", 2), {
        jobId: "job-1",
        signal: controller.signal,
      }),
      { message: "Ctrl-C" },
    );
    assert.deepEqual(await barFiles(context), []);
  });
});

Deno.test("writeBars() of bars repeating a timestamp stores the key once, the last bar winning", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const result = await writeBars(writer, [
      bar("2024-03-04", "09:30", { close: 1 }),
      bar("2024-03-04", "09:31"),
      bar("2024-03-04", "09:30", { close: 3 }),
    ], { jobId: "job-1" });
    const rows = await readPartition(context, YEAR);
    assertNoDuplicates(rows);
    assert.deepEqual(rows.map((row) => row.close), [3, 100.5]);
    assert.deepEqual(result, { written: 2, replaced: 0, partitions: 1 });
  });
});

Deno.test("writeBars() counts bars its own job stored before as written, another job's as replaced", async () => {
  await withWriter(async (context) => {
    const { writer } = context;
    const bars = minutes("2024-03-04", "09:30", 10);
    await writeBars(writer, bars, { jobId: "job-1" });
    // A resumed task whose killed attempt renamed its file into place before it was marked done.
    assert.deepEqual(await writeBars(writer, bars, { jobId: "job-1" }), {
      written: 10,
      replaced: 0,
      partitions: 1,
    });
    const more = [...bars, ...minutes("2024-03-05", "09:30", 5)];
    assert.deepEqual(await writeBars(writer, more, { jobId: "job-2" }), {
      written: 5,
      replaced: 10,
      partitions: 1,
    });
    assert.deepEqual(await writeBars(writer, bars.slice(0, 4), { jobId: "job-1" }), {
      written: 0,
      replaced: 4,
      partitions: 1,
    });
  });
});

Deno.test("compactPartition() merges a partition's files into one, sorted, and keeps every row", async () => {
  await withWriter(async (context) => {
    // No merging while appending: three files for compact to merge.
    const writer = { ...context.writer, compactThreshold: 0 };
    for (const date of ["2024-03-06", "2024-03-04", "2024-03-05"]) {
      await writeBars(writer, minutes(date, "09:30", 3), { jobId: `job-${date}` });
    }
    assert.deepEqual(await barFiles(context), [YEAR, YEAR, YEAR]);
    const before = await readPartition(context, YEAR);
    const result = await compactPartition(writer, AAPL_2024, { jobId: "compact-1" });
    assert.deepEqual(result, { files: 3, rows: 9 });
    assert.deepEqual(await barFiles(context), [YEAR]);
    assert.match(livePaths(context, YEAR)[0], /2024-03-04_2024-03-06-[0-9a-f]{8}\.parquet$/);
    const after = await readPartition(context, YEAR);
    assertSortedByTs(after);
    assert.deepEqual(
      after,
      [...before].sort((a, b) => a.ts - b.ts),
      "the same rows, every value kept (ingest ids too)",
    );
    // One file: nothing to do.
    assert.deepEqual(await compactPartition(writer, AAPL_2024), { files: 0, rows: 0 });
  });
});

Deno.test("tailMergeCount() merges the newest files like a binary counter", () => {
  assert.equal(tailMergeCount([]), 0);
  assert.equal(tailMergeCount([5]), 0);
  assert.equal(tailMergeCount([1, 1]), 2);
  assert.equal(tailMergeCount([250, 1]), 0, "a day beside the year's file stays a file of its own");
  assert.equal(tailMergeCount([3, 1, 1]), 3);
  assert.equal(tailMergeCount([5, 1, 1]), 2);
  assert.equal(tailMergeCount([250, 100, 30]), 0);
  assert.equal(tailMergeCount([400, 100, 60]), 2);
  assert.equal(tailMergeCount([250, 100, 60]), 3, "the run carries on into the year's file");
  // A year of daily appends keeps a handful of files, and rewrites each row a few times.
  const files: number[] = [];
  let rewritten = 0;
  for (let day = 0; day < 252; day++) {
    files.push(1);
    const count = tailMergeCount(files);
    if (count > 0) {
      const merged = files.splice(files.length - count).reduce((a, b) => a + b, 0);
      rewritten += merged;
      files.push(merged);
    }
  }
  assert.ok(files.length <= 9, `files: ${files}`);
  assert.ok(rewritten / 252 < 9, `each day rewritten ${rewritten / 252} times on average`);
});

Deno.test("writeBars() merges small appended files and compacts a partition at the threshold", async () => {
  await withWriter(async (context) => {
    const writer = { ...context.writer, compactThreshold: 3 };
    // Two days of the same size: merged at once into one file.
    await writeBars(writer, minutes("2024-03-04", "09:30", 4), { jobId: "job-1" });
    await writeBars(writer, minutes("2024-03-05", "09:30", 4), { jobId: "job-2" });
    assert.deepEqual(await barFiles(context), [YEAR]);
    // ... but not two files of one job (a bulk ingest writes many): they wait.
    const bulk = { ...context.writer, compactThreshold: 16 };
    await writeBars(bulk, minutes("2023-03-06", "09:30", 4), { jobId: "job-bulk" });
    await writeBars(bulk, minutes("2023-03-07", "09:30", 4), { jobId: "job-bulk" });
    assert.deepEqual(await barFiles(context), [LAST_YEAR, LAST_YEAR, YEAR]);
    // Smaller and smaller days stay files of their own until the threshold.
    await writeBars(writer, minutes("2024-03-06", "09:30", 3), { jobId: "job-3" });
    assert.deepEqual(await barFiles(context), [LAST_YEAR, LAST_YEAR, YEAR, YEAR]);
    const twoFiles = await readPartition(context, YEAR);
    await writeBars(writer, minutes("2024-03-07", "09:30", 1), { jobId: "job-4" });
    assert.deepEqual(
      await barFiles(context),
      [LAST_YEAR, LAST_YEAR, YEAR],
      "three files: compacted",
    );
    const rows = await readPartition(context, YEAR);
    assert.equal(rows.length, 12);
    assertSortedByTs(rows);
    assert.deepEqual(rows.slice(0, 11), twoFiles);
  });
});
