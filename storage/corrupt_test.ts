import assert from "node:assert/strict";
import { join } from "node:path";
import { CorruptFileError } from "../core/errors.ts";
import { storeBarFile } from "../tests/_bar_files.ts";
import { damageZstdPages, liveFile, truncateFile } from "../tests/_corrupt.ts";
import { checkParquetFile } from "./corrupt.ts";
import { openDuckDB } from "./duckdb.ts";
import { runQuery } from "./query.ts";
import { readBars } from "./query_bars.ts";
import { openQueryEngine } from "./query_engine.ts";
import { storedBarSeries, storedInventory } from "./query_inventory.ts";

const SYMBOLS = ["AAPL", "MSFT", "SPY"];

/** The live 1m file of `symbol` for March 2024 under `dataDir`, from the manifest. */
function marchFile(dataDir: string, symbol: string): Promise<string> {
  return liveFile(dataDir, "1m", symbol, { date: "2024-03-04" });
}

/** A data directory with 390 zstd-compressed 1m bars of each of {@link SYMBOLS} on 2024-03-04. */
async function makeDataDir(): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-corrupt-test-" });
  const instance = await openDuckDB({ threads: 1 });
  try {
    const connection = await instance.connect();
    try {
      for (const symbol of SYMBOLS) {
        await storeBarFile(dataDir, connection, {
          timeframe: "1m",
          symbol,
          select: `SELECT TIMESTAMPTZ '2024-03-04 14:30:00+00' + i * INTERVAL 1 MINUTE AS ts,
              100.0 + i AS open, 101.0 + i AS high, 99.0 + i AS low, 100.5 + i AS close,
              1000.0 * (i + 1) AS volume, 100.25 + i AS vwap, (10 + i)::BIGINT AS trade_count,
              DATE '2024-03-04' AS trading_date,
              'regular'::VARCHAR AS session, 'fake'::VARCHAR AS provider, 'sip'::VARCHAR AS feed,
              'raw'::VARCHAR AS adjustment, 'job-1'::VARCHAR AS ingest_id,
              TIMESTAMPTZ '2024-03-05 00:00:00+00' AS ingested_at, 2::INTEGER AS schema_version
            FROM range(390) AS t(i)`,
        });
      }
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
  return dataDir;
}

async function withDataDir(fn: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await makeDataDir();
  try {
    await fn(dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("checkParquetFile() passes a good file and says why a truncated or zstd-damaged one cannot be read", async () => {
  await withDataDir(async (dataDir) => {
    await truncateFile(await marchFile(dataDir, "AAPL"));
    await damageZstdPages(await marchFile(dataDir, "MSFT"));
    const instance = await openDuckDB({ threads: 1 });
    try {
      const connection = await instance.connect();
      try {
        assert.equal(
          await checkParquetFile(connection, await marchFile(dataDir, "SPY")),
          undefined,
        );
        assert.match(
          (await checkParquetFile(connection, await marchFile(dataDir, "AAPL")))!,
          /^Invalid Input Error: .*magic bytes/,
        );
        // The footer of the damaged file reads; only reading its pages shows the damage.
        assert.equal(
          await checkParquetFile(connection, await marchFile(dataDir, "MSFT"), {
            footerOnly: true,
          }),
          undefined,
        );
        assert.match(
          (await checkParquetFile(connection, await marchFile(dataDir, "MSFT")))!,
          /ZSTD Decompression failure/,
        );
        assert.equal(
          await checkParquetFile(connection, join(dataDir, "gone.parquet")),
          undefined,
          "a file that vanished is not corrupt",
        );
      } finally {
        connection.closeSync();
      }
    } finally {
      instance.closeSync();
    }
  });
});

Deno.test("storedInventory() lists a truncated file with its reason and still counts every other series", async () => {
  await withDataDir(async (dataDir) => {
    await truncateFile(await marchFile(dataDir, "AAPL"));
    using engine = await openQueryEngine(dataDir, { threads: 1 });
    const inventory = await storedInventory(engine);
    assert.deepEqual(
      inventory.series.map((s) => [s.symbol, s.timeframe, s.rows, s.files]),
      [["MSFT", "1m", 390, 1], ["SPY", "1m", 390, 1]],
    );
    assert.equal(inventory.corrupt.length, 1);
    const [corrupt] = inventory.corrupt;
    assert.equal(corrupt.path, await marchFile(engine.dataDir, "AAPL"));
    assert.deepEqual([corrupt.symbol, corrupt.timeframe], ["AAPL", "1m"]);
    assert.match(corrupt.reason, /magic bytes/);
    await assert.rejects(
      storedBarSeries(engine),
      (error: unknown) =>
        error instanceof CorruptFileError && error.path === corrupt.path &&
        error.message.includes('run "marketpipe repair"'),
    );
  });
});

Deno.test("openQueryEngine() opens when the first file of a timeframe is truncated and its views read the others", async () => {
  await withDataDir(async (dataDir) => {
    // AAPL sorts first: the file DuckDB would read the view's columns from.
    await truncateFile(await marchFile(dataDir, "AAPL"));
    using engine = await openQueryEngine(dataDir, { threads: 1 });
    assert.deepEqual(engine.timeframes, ["1m"]);
    const result = await runQuery(
      engine,
      "SELECT symbol, count(*)::INTEGER AS n FROM bars_1m GROUP BY symbol ORDER BY symbol",
    );
    assert.deepEqual(result.rows, [["MSFT", 390], ["SPY", 390]]);
  });
});

Deno.test("readBars() of a symbol whose file is zstd-damaged throws a CorruptFileError naming it; other symbols read", async () => {
  await withDataDir(async (dataDir) => {
    const msft = await marchFile(dataDir, "MSFT");
    await damageZstdPages(msft);
    using engine = await openQueryEngine(dataDir, { threads: 1 });
    const request = { timeframe: "1m" as const, start: "2024-03-04", end: "2024-03-04", limit: 10 };
    await assert.rejects(
      readBars(engine, { ...request, symbol: "MSFT" }, () => {}),
      (error: unknown) => {
        assert.ok(error instanceof CorruptFileError, `expected a CorruptFileError, got ${error}`);
        assert.equal(error.path, msft);
        assert.match(
          error.message,
          new RegExp(
            `^Cannot read the 1m bars of MSFT from ${
              RegExp.escape(msft)
            }: cannot read the stored file \\(corrupt Parquet: .*ZSTD Decompression failure\\); run "marketpipe repair" to move it aside$`,
          ),
        );
        return true;
      },
    );
    let read = 0;
    await readBars(engine, { ...request, symbol: "SPY" }, (chunk) => {
      read += chunk.length;
    });
    assert.equal(read, 10);
  });
});
