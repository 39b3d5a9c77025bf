import assert from "node:assert/strict";
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import {
  copyLayoutV1Fixture,
  digestStored,
  LAYOUT_V1_FIXTURE,
  listFilesUnder,
} from "../tests/_layout_v1.ts";
import { openDuckDB, sqlString } from "./duckdb.ts";
import { listFiles } from "./manifest.ts";
import { META_FILE, MetaStore, openMigrated } from "./meta.ts";
import {
  assertLayoutCurrent,
  detectLayout,
  type LayoutMigrationResult,
  listLayout1Files,
  migrateLayout,
  type MigrateLayoutOptions,
  type MigrateStep,
  writeLayoutFile,
} from "./migrate_layout.ts";

/** Layout-1 files of the fixture: 2 symbols x 6 intraday timeframes x 2 months, 3 daily, 1 quarantine. */
const FIXTURE_FILES = 2 * 6 * 2 + 3 + 1;

interface Context {
  dataDir: string;
  duckdb: DuckDBInstance;
  connection: DuckDBConnection;
  meta: MetaStore;
  /** Run a conversion as `marketpipe migrate` does, with a fresh metadata store each time. */
  migrate: (options?: MigrateLayoutOptions) => Promise<LayoutMigrationResult>;
}

async function withFixture(fn: (context: Context) => Promise<void>): Promise<void> {
  const dataDir = await copyLayoutV1Fixture();
  const duckdb = await openDuckDB({ threads: 1 });
  const connection = await duckdb.connect();
  const open = () => new MetaStore(openMigrated(join(dataDir, META_FILE)).db, { command: "test" });
  const meta = open();
  try {
    await fn({
      dataDir,
      duckdb,
      connection,
      meta,
      migrate: async (options = {}) => {
        const run = open();
        try {
          return await migrateLayout({ dataDir, duckdb, meta: run }, options);
        } finally {
          run.close();
        }
      },
    });
  } finally {
    meta.close();
    connection.closeSync();
    duckdb.closeSync();
    await Deno.remove(dataDir, { recursive: true });
  }
}

/** Every value of both trees per timeframe, read as layout `layout`. */
async function digests(context: Context, layout: 1 | 2) {
  return {
    bars: await digestStored(context.connection, context.dataDir, "bars", layout),
    quarantine: await digestStored(context.connection, context.dataDir, "quarantine", layout),
  };
}

/** The manifest lists exactly the Parquet files on disk, with their true rows, range and size. */
async function assertManifestMatchesDisk(context: Context): Promise<void> {
  const { dataDir, connection, meta } = context;
  const onDisk = [
    ...(await listFilesUnder(join(dataDir, "bars"), "bars")),
    ...(await listFilesUnder(join(dataDir, "quarantine"), "quarantine")),
  ];
  const files = listFiles(meta.db);
  assert.deepEqual(files.map((f) => f.path).sort(), onDisk, "manifest = files on disk");
  for (const file of files) {
    const path = join(dataDir, file.path);
    const row = (await connection.runAndReadAll(
      `SELECT count(*) AS n, strftime(min(trading_date), '%Y-%m-%d') AS first,
         strftime(max(trading_date), '%Y-%m-%d') AS last, epoch_us(min(ts)) AS min_ts,
         epoch_us(max(ts)) AS max_ts FROM read_parquet(${
        sqlString(path)
      }, hive_partitioning = false)`,
    )).getRowObjectsJson()[0];
    assert.deepEqual(
      [file.rows, file.firstDate, file.lastDate, file.minTs, file.maxTs, file.bytes],
      [
        Number(row.n),
        row.first,
        row.last,
        Number(row.min_ts),
        Number(row.max_ts),
        (await Deno.stat(path)).size,
      ],
      file.path,
    );
    assert.match(
      file.path,
      new RegExp(`/${file.firstDate}_${file.lastDate}-[0-9a-f]{8}\\.parquet$`),
    );
    assert.match(file.jobId ?? "", /^migrate-\d{8}-\d{6}-[0-9a-f]{4}$/);
  }
}

Deno.test("detectLayout() tells layout 1, layout 2 and an empty directory apart", async () => {
  assert.equal(await detectLayout(LAYOUT_V1_FIXTURE), 1);
  const dir = await Deno.makeTempDir({ prefix: "marketpipe-layout-" });
  try {
    assert.equal(await detectLayout(join(dir, "missing")), "empty");
    assert.equal(await detectLayout(dir), "empty");
    // Folders without files (a write that failed early) are still nothing stored.
    await Deno.mkdir(join(dir, "bars", "timeframe=1m", "symbol=AAPL", "year=2024", "month=03"), {
      recursive: true,
    });
    assert.equal(await detectLayout(dir), "empty");
    await Deno.writeTextFile(
      join(dir, "bars", "timeframe=1m", "symbol=AAPL", "year=2024", "month=03", "data.parquet"),
      "",
    );
    assert.equal(await detectLayout(dir), 1);
    await writeLayoutFile(dir);
    assert.equal(await detectLayout(dir), 2);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(dir, "layout.json"))), { layout: 2 });
    assert.deepEqual((await listFilesUnder(dir)).filter((f) => f.startsWith(".tmp-")), []);

    await Deno.writeTextFile(join(dir, "layout.json"), '{"layout": 3}');
    await assert.rejects(
      detectLayout(dir),
      /uses storage layout 3, written by a newer MarketPipe \(this build knows 2\): upgrade marketpipe/,
    );
    await Deno.writeTextFile(join(dir, "layout.json"), "{not json");
    await assert.rejects(
      detectLayout(dir),
      /^Error: Cannot read .*layout\.json: expected \{"layout": 2\}/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("assertLayoutCurrent() refuses a layout-1 directory and names the command to run", async () => {
  await assert.rejects(
    assertLayoutCurrent(LAYOUT_V1_FIXTURE),
    (error) =>
      error instanceof UsageError &&
      error.message ===
        `${LAYOUT_V1_FIXTURE} uses storage layout 1; run "marketpipe migrate --data-dir ${LAYOUT_V1_FIXTURE}" to convert it (nothing was written)`,
  );
  const dir = await Deno.makeTempDir({ prefix: "marketpipe layout " });
  try {
    await assertLayoutCurrent(dir); // empty: fine
    await Deno.mkdir(join(dir, "quarantine", "timeframe=1d", "symbol=X", "year=2024"), {
      recursive: true,
    });
    await Deno.writeTextFile(
      join(dir, "quarantine", "timeframe=1d", "symbol=X", "year=2024", "data.parquet"),
      "",
    );
    await assert.rejects(assertLayoutCurrent(dir), (error) =>
      error instanceof UsageError &&
      error.message.includes(`run "marketpipe migrate --data-dir "${dir}"" to convert it`));
    await writeLayoutFile(dir);
    await assertLayoutCurrent(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listLayout1Files() lists every file of the fixture with its layout-2 partition", async () => {
  const files = await listLayout1Files(LAYOUT_V1_FIXTURE);
  assert.equal(files.length, FIXTURE_FILES);
  const daily = files.filter((f) => f.timeframe === "1d").map((f) => [f.path, f.partition]);
  assert.deepEqual(daily, [
    [
      "bars/timeframe=1d/symbol=AAPL/year=2023/data.parquet",
      "bars/timeframe=1d/symbol=AAPL/year=2023",
    ],
    [
      "bars/timeframe=1d/symbol=AAPL/year=2024/data.parquet",
      "bars/timeframe=1d/symbol=AAPL/year=2024",
    ],
    [
      "bars/timeframe=1d/symbol=BRK.B/year=2024/data.parquet",
      "bars/timeframe=1d/symbol=BRK.B/year=2024",
    ],
  ]);
  const quarantine = files.filter((f) => f.tree === "quarantine");
  assert.deepEqual(quarantine.map((f) => [f.partition, f.month, f.start, f.end]), [
    ["quarantine/timeframe=1m/symbol=BRK.B/year=2024", 2, "2024-02-01", "2024-02-29"],
  ]);
  assert.equal(files[0].timeframe, "1m", "shortest timeframe first");
  assert.ok(files.every((f) => f.bytes > 0));
});

Deno.test("migrateLayout() converts the fixture in place with every value kept", async () => {
  await withFixture(async (context) => {
    const { dataDir, connection, meta } = context;
    const before = await digests(context, 1);
    assert.equal(before.quarantine["1m"].rows, 1);
    const stateRows = Number(
      meta.db.prepare("SELECT count(*) AS n FROM aggregation_state").get()?.n,
    );
    assert.ok(stateRows > 0, "the fixture has aggregation states keyed by layout-1 folders");

    const progress: string[] = [];
    const result = await context.migrate({
      onProgress: (p) => progress.push(`${p.done}/${p.total}`),
    });
    assert.equal(result.complete, true);
    assert.equal(result.layoutBefore, 1);
    assert.equal(result.converted, FIXTURE_FILES);
    assert.equal(result.total, FIXTURE_FILES);
    assert.equal(result.resumed, 0);
    assert.deepEqual(result.failures, []);
    assert.equal(progress.length, FIXTURE_FILES);
    assert.equal(progress.at(-1), `${FIXTURE_FILES}/${FIXTURE_FILES}`);
    const totalRows = Object.values(before.bars).reduce((sum, d) => sum + d.rows, 0) + 1;
    assert.equal(result.rows, totalRows);
    assert.equal(result.aggregationStatesCleared, stateRows);
    assert.equal(
      Number(meta.db.prepare("SELECT count(*) AS n FROM aggregation_state").get()?.n),
      0,
    );

    assert.deepEqual(await digests(context, 2), before);
    assert.equal(await detectLayout(dataDir), 2);
    const files = await listFilesUnder(dataDir);
    assert.deepEqual(files.filter((f) => /month=|data\.parquet|\.tmp-/.test(f)), []);
    await assertManifestMatchesDisk(context);
    // The months of a year are separate files of one partition; 1d keeps one file per year.
    assert.deepEqual(
      listFiles(meta.db, { tree: "bars", timeframe: "1m", symbol: "AAPL" }).map((f) =>
        `${f.path.split("/").slice(0, 4).join("/")} ${f.firstDate}..${f.lastDate}`
      ),
      [
        "bars/timeframe=1m/symbol=AAPL/year=2024 2024-01-30..2024-01-31",
        "bars/timeframe=1m/symbol=AAPL/year=2024 2024-02-01..2024-02-02",
      ],
    );
    assert.equal(listFiles(meta.db, { timeframe: "1d", symbol: "AAPL" }).length, 2);
    assert.equal(
      result.bytesBefore,
      (await listLayout1Files(LAYOUT_V1_FIXTURE)).reduce((s, f) => s + f.bytes, 0),
    );
    assert.equal(result.bytesAfter, listFiles(meta.db).reduce((s, f) => s + f.bytes, 0));

    // Files of layout 2: no symbol/timeframe columns, sorted by ts, schema_version 2.
    const bars = listFiles(meta.db, { tree: "bars", timeframe: "5m", symbol: "BRK.B" })[0];
    const quarantined = listFiles(meta.db, { tree: "quarantine" })[0];
    const columnsOf = async (path: string) =>
      (await connection.runAndReadAll(
        `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${
          sqlString(join(dataDir, path))
        }, hive_partitioning = false))`,
      )).getRowObjectsJson().map((r) => `${r.column_name} ${r.column_type}`);
    const v2 = [
      "ts TIMESTAMP WITH TIME ZONE",
      "open DOUBLE",
      "high DOUBLE",
      "low DOUBLE",
      "close DOUBLE",
      "volume DOUBLE",
      "vwap DOUBLE",
      "trade_count BIGINT",
      "trading_date DATE",
      "session VARCHAR",
      "provider VARCHAR",
      "feed VARCHAR",
      "adjustment VARCHAR",
      "ingest_id VARCHAR",
      "ingested_at TIMESTAMP WITH TIME ZONE",
      "schema_version INTEGER",
    ];
    assert.deepEqual(await columnsOf(bars.path), v2);
    assert.deepEqual(await columnsOf(quarantined.path), [...v2, "rule VARCHAR", "detail VARCHAR"]);
    const order = (await connection.runAndReadAll(
      `SELECT list(ts) = list(ts ORDER BY ts) AS sorted, min(schema_version) AS lo,
         max(schema_version) AS hi
       FROM read_parquet(${sqlString(join(dataDir, bars.path))}, hive_partitioning = false)`,
    )).getRowObjectsJson()[0];
    assert.deepEqual([order.sorted, order.lo, order.hi], [true, 2, 2]);
    const compression = (await connection.runAndReadAll(
      `SELECT DISTINCT compression FROM parquet_metadata(${sqlString(join(dataDir, bars.path))})`,
    )).getRowObjectsJson().map((r) => r.compression);
    assert.deepEqual(compression, ["ZSTD"]);

    const again = await context.migrate();
    assert.deepEqual([again.layoutBefore, again.complete, again.converted], [2, true, 0]);
  });
});

for (const step of ["written", "renamed", "committed", "deleted"] as MigrateStep[]) {
  Deno.test(`migrateLayout() stopped after a file was ${step} finishes on the next run with no row lost or repeated`, async () => {
    await withFixture(async (context) => {
      const before = await digests(context, 1);
      let seen = 0;
      const first = await context.migrate({
        onStep: (at) => {
          // Like a kill: stop here. The 4th file, 1m BRK.B of February, is the last of its
          // partition, so nothing else of the run touches what it leaves.
          if (at === step && ++seen === 4) throw new Error(`stopped after ${step}`);
        },
      });
      assert.equal(first.complete, false);
      assert.equal(first.failures.length, 1);
      assert.match(first.failures[0].error, new RegExp(`stopped after ${step}`));
      assert.equal(await detectLayout(context.dataDir), 1);
      if (step === "written") {
        // A kill would leave the temp file (a throw removes it): leave one like it.
        const partition = join(context.dataDir, "bars/timeframe=1m/symbol=BRK.B/year=2024");
        await Deno.writeTextFile(join(partition, ".tmp-killed"), "half a file");
      }
      if (step === "renamed") {
        const orphans = (await listFilesUnder(join(context.dataDir, "bars"), "bars"))
          .filter((f) => !f.endsWith("data.parquet"))
          .filter((f) => !listFiles(context.meta.db).some((m) => m.path === f));
        assert.equal(orphans.length, 1, "the renamed file is not in the manifest");
      }

      const second = await context.migrate();
      assert.deepEqual(second.failures, []);
      assert.equal(second.complete, true);
      assert.equal(second.converted, step === "deleted" ? 0 : 1);
      assert.equal(second.resumed, step === "committed" ? 1 : 0);
      assert.equal(second.orphansRemoved, step === "written" || step === "renamed" ? 1 : 0);
      assert.deepEqual(await digests(context, 2), before);
      assert.deepEqual(
        (await listFilesUnder(context.dataDir)).filter((f) =>
          /month=|data\.parquet|\.tmp-/.test(f)
        ),
        [],
      );
      await assertManifestMatchesDisk(context);
    });
  });
}

Deno.test("migrateLayout() reports a corrupt file, keeps it and converts the rest", async () => {
  await withFixture(async (context) => {
    const bad = join(
      context.dataDir,
      "bars/timeframe=1h/symbol=AAPL/year=2024/month=01/data.parquet",
    );
    const bytes = await Deno.readFile(bad);
    await Deno.writeFile(bad, bytes.slice(0, bytes.length - 100));
    const result = await context.migrate();
    assert.equal(result.complete, false);
    assert.equal(result.converted, FIXTURE_FILES - 1);
    assert.deepEqual(result.failures.map((f) => f.path), [
      "bars/timeframe=1h/symbol=AAPL/year=2024/month=01/data.parquet",
    ]);
    assert.match(
      result.failures[0].error,
      /^Cannot convert bars\/timeframe=1h\/symbol=AAPL\/year=2024\/month=01\/data\.parquet: cannot read the stored file \(corrupt Parquet: .+\); move it out of the data directory and run "marketpipe migrate" again$/,
    );
    assert.deepEqual(
      await Deno.readFile(bad),
      bytes.slice(0, bytes.length - 100),
      "left as it was",
    );
    assert.equal(await detectLayout(context.dataDir), 1);
    assert.deepEqual((await listLayout1Files(context.dataDir)).map((f) => f.path), [
      "bars/timeframe=1h/symbol=AAPL/year=2024/month=01/data.parquet",
    ]);

    await Deno.remove(bad);
    const rerun = await context.migrate();
    assert.equal(rerun.complete, true);
    assert.equal(rerun.converted, 0);
    assert.equal(await detectLayout(context.dataDir), 2);
  });
});

Deno.test("migrateLayout() keeps both files when a committed file differs from the old one", async () => {
  await withFixture(async (context) => {
    let seen = 0;
    await context.migrate({
      onStep: (at) => {
        if (at === "committed" && ++seen === 1) throw new Error("stopped");
      },
    });
    // Tamper with the committed file's row as if it held other rows.
    const [committed] = listFiles(context.meta.db, {
      tree: "bars",
      timeframe: "1m",
      symbol: "AAPL",
      year: 2024,
    }).filter((f) => f.firstDate.startsWith("2024-01"));
    const brk = join(
      LAYOUT_V1_FIXTURE,
      "bars/timeframe=1m/symbol=BRK.B/year=2024/month=01/data.parquet",
    );
    await context.connection.run(
      `COPY (SELECT * EXCLUDE (symbol, timeframe) FROM read_parquet(${
        sqlString(brk)
      }, hive_partitioning = false)) TO ${
        sqlString(join(context.dataDir, committed.path))
      } (FORMAT parquet)`,
    );
    const rerun = await context.migrate();
    assert.equal(rerun.complete, false);
    assert.match(
      rerun.failures[0]?.error ?? "",
      /^Cannot finish converting bars\/timeframe=1m\/symbol=AAPL\/year=2024\/month=01\/data\.parquet: its \d+ rows differ from the \d+ rows of .+, committed by an earlier run; both are left in place$/,
    );
    assert.ok(
      await Deno.stat(
        join(context.dataDir, "bars/timeframe=1m/symbol=AAPL/year=2024/month=01/data.parquet"),
      ),
    );
  });
});

Deno.test("migrateLayout() stops at the signal between files and the next run finishes", async () => {
  await withFixture(async (context) => {
    const before = await digests(context, 1);
    const controller = new AbortController();
    const first = await context.migrate({
      signal: controller.signal,
      onProgress: ({ done }) => done === 10 && controller.abort(),
    });
    assert.deepEqual([first.interrupted, first.complete, first.converted], [true, false, 10]);
    assert.deepEqual(first.failures, []);
    assert.equal((await listLayout1Files(context.dataDir)).length, FIXTURE_FILES - 10);
    assert.equal(await detectLayout(context.dataDir), 1);
    const second = await context.migrate();
    assert.deepEqual([second.complete, second.converted], [true, FIXTURE_FILES - 10]);
    assert.deepEqual(await digests(context, 2), before);
    await assertManifestMatchesDisk(context);
  });
});
