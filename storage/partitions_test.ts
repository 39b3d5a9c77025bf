import assert from "node:assert/strict";
import type { DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import { zonedTime } from "../core/calendar.ts";
import type { Bar } from "../core/types.ts";
import { BAR_COLUMNS, openDuckDB, sqlString } from "./duckdb.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import { type PartitionWriter, replacePartition, SCHEMA_VERSION, writeBars } from "./partitions.ts";
import { CorruptFileError } from "../core/errors.ts";
import { damageZstdPages } from "../tests/_corrupt.ts";

const MARCH = "bars/timeframe=1m/symbol=AAPL/year=2024/month=03";
const FEBRUARY = "bars/timeframe=1m/symbol=AAPL/year=2024/month=02";
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

/** Rows of one Parquet file in file order. */
async function readFile(duckdb: DuckDBInstance, file: string): Promise<Row[]> {
  const connection = await duckdb.connect();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT symbol, CAST(epoch_ms(ts) AS DOUBLE) AS ts, close, vwap, CAST(trade_count AS DOUBLE) AS trade_count,
        timeframe, CAST(trading_date AS VARCHAR) AS trading_date, session, provider, ingest_id,
        CAST(epoch_ms(ingested_at) AS DOUBLE) AS ingested_at, schema_version
       FROM read_parquet(${sqlString(file)}, hive_partitioning = false)`,
    );
    return reader.getRowObjectsJson() as unknown as Row[];
  } finally {
    connection.closeSync();
  }
}

function partitionFile(dataDir: string, partition: string): string {
  return join(dataDir, partition, "data.parquet");
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

/** Bar files under the data directory (ignoring the SQLite files). */
async function barFiles(dataDir: string): Promise<string[]> {
  return (await listFiles(dataDir)).filter((path) => path.startsWith("bars/"));
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

Deno.test("writeBars() creates the month partition file sorted by ts", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    const bars = minutes("2024-03-04", "09:30", 5);
    const shuffled = [bars[3], bars[0], bars[4], bars[1], bars[2]];
    const result = await writeBars(writer, shuffled, { jobId: "job-1" });
    assert.deepEqual(result, { written: 5, replaced: 0, partitions: 1 });
    assert.deepEqual(await barFiles(dataDir), [`${MARCH}/data.parquet`]);
    const rows = await readFile(duckdb, partitionFile(dataDir, MARCH));
    assert.deepEqual(rows.map((row) => row.ts), bars.map((b) => b.ts));
  });
});

Deno.test("writeBars() stores every bar column with the job id, ingest time and schema version", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    await writeBars(writer, [
      bar("2024-03-04", "08:00", { session: "pre", vwap: null, tradeCount: null, close: 99.5 }),
      bar("2024-03-04", "16:30", { session: "post" }),
    ], { jobId: "job-1" });
    const rows = await readFile(duckdb, partitionFile(dataDir, MARCH));
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

Deno.test("writeBars() writes the documented bar columns in order and with their types", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    await writeBars(writer, minutes("2024-03-04", "09:30", 1), { jobId: "job-1" });
    const connection = await duckdb.connect();
    try {
      const reader = await connection.runAndReadAll(
        `DESCRIBE SELECT * FROM read_parquet(${
          sqlString(partitionFile(dataDir, MARCH))
        }, hive_partitioning = false)`,
      );
      const columns = reader.getRowObjectsJson().map((row) => ({
        name: row.column_name,
        type: row.column_type,
      }));
      // DESCRIBE spells TIMESTAMPTZ out.
      const expected = BAR_COLUMNS.map((c) => ({
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
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    // 09:30-09:34 then 09:33-09:37: two bars overlap.
    const first = await writeBars(writer, minutes("2024-03-04", "09:30", 5, { close: 1 }), {
      jobId: "job-1",
    });
    assert.deepEqual(first, { written: 5, replaced: 0, partitions: 1 });
    const second = await writeBars(writer, minutes("2024-03-04", "09:33", 5, { close: 2 }), {
      jobId: "job-2",
    });
    assert.deepEqual(second, { written: 3, replaced: 2, partitions: 1 });

    const rows = await readFile(duckdb, partitionFile(dataDir, MARCH));
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
    assert.deepEqual(await barFiles(dataDir), [`${MARCH}/data.parquet`]);
  });
});

Deno.test("writeBars() of the same bars again replaces them all and adds nothing", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    const bars = minutes("2024-03-04", "09:30", 4);
    await writeBars(writer, bars, { jobId: "job-1" });
    const again = await writeBars(writer, bars, { jobId: "job-2" });
    assert.deepEqual(again, { written: 0, replaced: 4, partitions: 1 });
    const rows = await readFile(duckdb, partitionFile(dataDir, MARCH));
    assert.equal(rows.length, 4);
    assert.ok(rows.every((row) => row.ingest_id === "job-2"));
  });
});

Deno.test("writeBars() keeps stored bars of other days in the month", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    await writeBars(writer, minutes("2024-03-04", "09:30", 3), { jobId: "job-1" });
    const result = await writeBars(writer, minutes("2024-03-05", "09:30", 2), { jobId: "job-2" });
    assert.deepEqual(result, { written: 2, replaced: 0, partitions: 1 });
    const rows = await readFile(duckdb, partitionFile(dataDir, MARCH));
    assert.deepEqual(rows.map((row) => row.trading_date), [
      "2024-03-04",
      "2024-03-04",
      "2024-03-04",
      "2024-03-05",
      "2024-03-05",
    ]);
  });
});

Deno.test("writeBars() puts bars spanning two months into two partitions", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    const bars = [...minutes("2024-02-29", "15:58", 2), ...minutes("2024-03-01", "09:30", 3)];
    const result = await writeBars(writer, bars, { jobId: "job-1" });
    assert.deepEqual(result, { written: 5, replaced: 0, partitions: 2 });
    assert.deepEqual(await barFiles(dataDir), [
      `${FEBRUARY}/data.parquet`,
      `${MARCH}/data.parquet`,
    ]);
    const february = await readFile(duckdb, partitionFile(dataDir, FEBRUARY));
    const march = await readFile(duckdb, partitionFile(dataDir, MARCH));
    assert.deepEqual(february.map((row) => row.trading_date), ["2024-02-29", "2024-02-29"]);
    assert.deepEqual(march.map((row) => row.trading_date), [
      "2024-03-01",
      "2024-03-01",
      "2024-03-01",
    ]);
  });
});

Deno.test("writeBars() files a post-market bar by its New York trading date, not its UTC date", async () => {
  await withWriter(async ({ dataDir, writer }) => {
    // 19:59 New York on Feb 29 is already March 1 in UTC.
    const late = bar("2024-02-29", "19:59", { session: "post" });
    assert.equal(new Date(late.ts).toISOString().slice(0, 10), "2024-03-01");
    await writeBars(writer, [late], { jobId: "job-1" });
    assert.deepEqual(await barFiles(dataDir), [`${FEBRUARY}/data.parquet`]);
  });
});

Deno.test("writeBars() keeps symbols in separate partitions", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    const bars = [
      ...minutes("2024-03-04", "09:30", 2),
      ...minutes("2024-03-04", "09:30", 3, { symbol: "BRK.B" }),
    ];
    const result = await writeBars(writer, bars, { jobId: "job-1" });
    assert.deepEqual(result, { written: 5, replaced: 0, partitions: 2 });
    const brk = "bars/timeframe=1m/symbol=BRK.B/year=2024/month=03";
    assert.deepEqual(await barFiles(dataDir), [`${MARCH}/data.parquet`, `${brk}/data.parquet`]);
    const rows = await readFile(duckdb, partitionFile(dataDir, brk));
    assert.deepEqual(rows.map((row) => row.symbol), ["BRK.B", "BRK.B", "BRK.B"]);
  });
});

Deno.test("writeBars() stores daily bars in a year partition", async () => {
  await withWriter(async ({ dataDir, writer }) => {
    const daily = ["2024-03-04", "2024-11-29"].map((date) =>
      bar(date, "00:00", { timeframe: "1d", ts: zonedTime(date, "00:00") })
    );
    await writeBars(writer, daily, { jobId: "job-1" });
    assert.deepEqual(await barFiles(dataDir), [
      "bars/timeframe=1d/symbol=AAPL/year=2024/data.parquet",
    ]);
  });
});

Deno.test("writeBars() leaves no temp files behind", async () => {
  await withWriter(async ({ dataDir, writer }) => {
    await writeBars(writer, minutes("2024-03-04", "09:30", 5), { jobId: "job-1" });
    await writeBars(writer, minutes("2024-03-04", "09:32", 5), { jobId: "job-2" });
    await writeBars(writer, minutes("2024-02-29", "09:30", 5), { jobId: "job-3" });
    const files = await listFiles(dataDir);
    assert.deepEqual(files.filter((path) => path.includes(".tmp-")), []);
    assert.deepEqual(await barFiles(dataDir), [
      `${FEBRUARY}/data.parquet`,
      `${MARCH}/data.parquet`,
    ]);
  });
});

Deno.test("writeBars() removes a stale temp file a crashed writer left in the partition", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    await writeBars(writer, minutes("2024-03-04", "09:30", 3), { jobId: "job-1" });
    const stale = join(dataDir, MARCH, ".tmp-0b1c2d3e-crashed");
    await Deno.writeFile(stale, new Uint8Array([0x50, 0x41, 0x52, 0x31, 0, 1, 2]));
    await writeBars(writer, minutes("2024-03-04", "09:33", 2), { jobId: "job-2" });
    assert.deepEqual(await barFiles(dataDir), [`${MARCH}/data.parquet`]);
    assert.equal((await readFile(duckdb, partitionFile(dataDir, MARCH))).length, 5);
  });
});

Deno.test("writeBars() serializes concurrent writes to one partition: the union without duplicates", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    const [a, b] = await Promise.all([
      writeBars(writer, minutes("2024-03-04", "09:30", 5, { close: 1 }), { jobId: "job-a" }),
      writeBars(writer, minutes("2024-03-04", "09:32", 5, { close: 2 }), { jobId: "job-b" }),
    ]);
    // 09:30-09:34 and 09:32-09:36 overlap in three minutes; the union is seven bars.
    assert.equal(a.written + b.written, 7);
    assert.equal(a.replaced + b.replaced, 3);
    const rows = await readFile(duckdb, partitionFile(dataDir, MARCH));
    assert.equal(rows.length, 7);
    assertNoDuplicates(rows);
    assertSortedByTs(rows);
    // The write that ran second owns the overlap.
    const second = a.replaced > 0 ? "job-a" : "job-b";
    const overlap = rows.filter((row) =>
      row.ts >= zonedTime("2024-03-04", "09:32") && row.ts <= zonedTime("2024-03-04", "09:34")
    );
    assert.ok(overlap.every((row) => row.ingest_id === second), JSON.stringify(overlap));
    assert.deepEqual(await barFiles(dataDir), [`${MARCH}/data.parquet`]);
  });
});

Deno.test("writeBars() from two stores of one data directory at once loses no bars", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    const db = openDatabase(join(dataDir, META_FILE));
    const other = new MetaStore(db, { command: "other" });
    try {
      await Promise.all([
        writeBars(writer, minutes("2024-03-04", "09:30", 4), { jobId: "job-a" }),
        writeBars({ ...writer, meta: other }, minutes("2024-03-04", "09:40", 4), {
          jobId: "job-b",
        }),
      ]);
      const rows = await readFile(duckdb, partitionFile(dataDir, MARCH));
      assert.equal(rows.length, 8);
      assertNoDuplicates(rows);
    } finally {
      other.close();
    }
  });
});

Deno.test("writeBars() locks each partition it writes and releases it afterwards", async () => {
  await withWriter(async ({ dataDir, duckdb, meta }) => {
    const calls: string[] = [];
    const writer: PartitionWriter = {
      dataDir,
      duckdb,
      meta: {
        lockPartition: (partition) => {
          calls.push(`lock ${partition}`);
          return Promise.resolve();
        },
        unlockPartition: (partition) => void calls.push(`unlock ${partition}`),
      },
    };
    await writeBars(writer, [
      ...minutes("2024-02-29", "09:30", 1),
      ...minutes("2024-03-01", "09:30", 1),
    ], {
      jobId: "job-1",
    });
    assert.deepEqual(calls, [
      `lock ${FEBRUARY}`,
      `unlock ${FEBRUARY}`,
      `lock ${MARCH}`,
      `unlock ${MARCH}`,
    ]);
    const locks = meta.db.prepare("SELECT count(*) AS n FROM partition_locks").get()!;
    assert.equal(Number(locks.n), 0);
  });
});

Deno.test("writeBars() over a live file that is not Parquet names the file and the cause, unlocks it and keeps the file", async () => {
  await withWriter(async ({ dataDir, writer, meta }) => {
    const live = partitionFile(dataDir, MARCH);
    await Deno.mkdir(join(dataDir, MARCH), { recursive: true });
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
    assert.deepEqual(await barFiles(dataDir), [`${MARCH}/data.parquet`]);
    const locks = meta.db.prepare("SELECT count(*) AS n FROM partition_locks").get()!;
    assert.equal(Number(locks.n), 0, "the partition stayed locked after a failed write");
  });
});

Deno.test("writeBars() over a live file with damaged zstd pages throws a CorruptFileError and leaves it byte-identical", async () => {
  await withWriter(async ({ dataDir, writer }) => {
    await writeBars(writer, minutes("2024-03-04", "04:00", 600), { jobId: "job-1" });
    const live = partitionFile(dataDir, MARCH);
    await damageZstdPages(live);
    const before = await Deno.readFile(live);
    await assert.rejects(
      writeBars(writer, minutes("2024-03-05", "09:30", 2), { jobId: "job-2" }),
      (error: unknown) =>
        error instanceof CorruptFileError && error.path === live &&
        /ZSTD Decompression failure/.test(error.reason) &&
        error.message.startsWith(`Cannot write partition ${live}: cannot read the stored file`),
    );
    assert.deepEqual(await Deno.readFile(live), before);
    assert.deepEqual(await barFiles(dataDir), [`${MARCH}/data.parquet`]);
  });
});

Deno.test("replacePartition() whose write fails while the stored file reads names the partition and the cause", async () => {
  await withWriter(async ({ dataDir, writer }) => {
    await writeBars(writer, minutes("2024-03-04", "09:30", 2), { jobId: "job-1" });
    await assert.rejects(
      replacePartition(
        writer,
        MARCH,
        () => Promise.reject(new Error("the new file could not be built")),
      ),
      (error: unknown) =>
        !(error instanceof CorruptFileError) && error instanceof Error &&
        error.message === `Cannot write partition ${MARCH}: the new file could not be built`,
    );
    assert.deepEqual(await barFiles(dataDir), [`${MARCH}/data.parquet`]);
  });
});

Deno.test("writeBars() with an aborted signal writes nothing", async () => {
  await withWriter(async ({ dataDir, writer }) => {
    const controller = new AbortController();
    controller.abort(new Error("Ctrl-C"));
    await assert.rejects(
      writeBars(writer, minutes("2024-03-04", "09:30", 2), {
        jobId: "job-1",
        signal: controller.signal,
      }),
      { message: "Ctrl-C" },
    );
    assert.deepEqual(await barFiles(dataDir), []);
  });
});

Deno.test("writeBars() of bars repeating a timestamp stores the key once, the last bar winning", async () => {
  await withWriter(async ({ dataDir, duckdb, writer }) => {
    const result = await writeBars(writer, [
      bar("2024-03-04", "09:30", { close: 1 }),
      bar("2024-03-04", "09:31"),
      bar("2024-03-04", "09:30", { close: 3 }),
    ], { jobId: "job-1" });
    const rows = await readFile(duckdb, partitionFile(dataDir, MARCH));
    assertNoDuplicates(rows);
    assert.deepEqual(rows.map((row) => row.close), [3, 100.5]);
    assert.deepEqual(result, { written: 2, replaced: 0, partitions: 1 });
  });
});

Deno.test("writeBars() counts bars its own job stored before as written, another job's as replaced", async () => {
  await withWriter(async ({ writer }) => {
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
