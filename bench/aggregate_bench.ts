/**
 * The aggregation and validation benchmark. Writes a year of fake 1m bars (regular session, about
 * 9.8M bars for 100 symbols) into a data directory with our partition writer, then times:
 *
 * 1. ours: `marketpipe aggregate --force` (1m -> 5m, 15m, 30m, 1h, 4h, 1d) through the real CLI;
 * 2. the baseline, in the same run and a fresh process: ONE hand-written DuckDB statement over
 *    the same files that computes every timeframe with the same bucket rule and writes them as
 *    hive-partitioned Parquet (`COPY ... PARTITION_BY`), no locks, no fsync, no state; in two
 *    variants, each frame straight from the 1m bars, and each frame from the one before
 *    (materialized CTEs), and the faster is the limit;
 * 3. the incremental case: `marketpipe aggregate` with nothing changed, and after one new day of
 *    one symbol;
 * 4. validation: `validateBars()` over the stored bars in memory (bars/s, target 2M), and
 *    `marketpipe validate` end to end (reading Parquet, checking, writing the reports).
 *
 * Prints each figure with ours/baseline and PASS/MISS against the targets (aggregation within
 * 1.5x, validation >= 2M bars/s), and writes the report as JSON to
 * `bench/out/aggregate-<timestamp>.json`. Timing never fails the process.
 *
 * ```sh
 * deno run -A bench/aggregate_bench.ts                        # 100 symbols x 252 days
 * deno run -A bench/aggregate_bench.ts --symbols 10 --days 40 # a quick small run
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { tradingDays, tradingSession, validateBars, zonedTime } from "../core/mod.ts";
import { generateFakeDay } from "../providers/mod.ts";
import {
  listPartitionFiles,
  META_FILE,
  MetaStore,
  openDatabase,
  openDuckDB,
  readBarRows,
  sqlString,
  writeBars,
} from "../storage/mod.ts";
import {
  benchSymbols,
  checkChild,
  childEnv,
  type ChildRun,
  denoRun,
  formatBytes,
  formatCount,
  formatMs,
  MAIN,
  median,
  ROOT,
  runMeasured,
  treeStats,
  wholeNumberFlags,
  withDuckDB,
  withTempDir,
  writeFakeBars,
  writeReport,
} from "./measure.ts";

const SELF = fileURLToPath(import.meta.url);
const FIRST_DAY = "2024-01-02";
const TARGETS = { aggregateRatio: 1.5, validateBarsPerSecond: 2_000_000 } as const;

const USAGE =
  `Usage: deno run -A bench/aggregate_bench.ts [--symbols N] [--days N] [--runs N] [--extended]

  --symbols N   symbols (default 100)
  --days N      trading days from ${FIRST_DAY} (default 252, the year 2024)
  --runs N      ours + baseline pairs, alternating; medians count (default 1)
  --extended    keep pre- and after-hours bars too (about 2.5x the bars)`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      symbols: { type: "string", default: "100" },
      days: { type: "string", default: "252" },
      runs: { type: "string", default: "1" },
      extended: { type: "boolean", default: false },
      baseline: { type: "string" },
      variant: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.baseline !== undefined) {
    return await _baseline(values.baseline, values.variant === "cascade" ? "cascade" : "direct");
  }
  const sizes = wholeNumberFlags(
    { symbols: values.symbols, days: values.days, runs: values.runs },
    USAGE,
  );
  if (sizes === null) return 2;
  return await withTempDir("marketpipe-aggbench-", async (temp) => {
    const report = await _bench({ ...sizes, extended: values.extended }, temp);
    await writeReport("aggregate-", report.startedAt, report);
    return 0;
  });
}

async function _bench(
  options: { symbols: number; days: number; runs: number; extended: boolean },
  temp: string,
) {
  const startedAt = new Date().toISOString();
  const dataDir = join(temp, "data");
  const symbols = benchSymbols(options.symbols);
  const days = tradingDays(FIRST_DAY, "2026-12-31").slice(0, options.days);
  const env = childEnv();
  /** `marketpipe args...` measured, which must exit 0. */
  const cli = async (args: string[], what: string) => {
    const run = await runMeasured(Deno.execPath(), denoRun(MAIN, args), {
      cwd: ROOT,
      env,
      scratchDir: temp,
    });
    checkChild(run, what);
    return run;
  };
  const keep = (bar: { session: string }) => options.extended || bar.session === "regular";

  // The workload: written with our partition writer, not timed.
  console.error(
    `Writing ${symbols.length} symbols x ${days.length} days of fake 1m bars (${
      options.extended ? "all sessions" : "regular session"
    }) to ${dataDir} ...`,
  );
  const duckdb = await openDuckDB();
  const bars = await writeFakeBars(dataDir, symbols, days, { duckdb, keep });
  const files1m = await treeStats(join(dataDir, "bars", "timeframe=1m"));

  // Ours and the baselines, alternating so that load from elsewhere hits them alike.
  const ours: ChildRun[] = [];
  const baselines: Record<"direct" | "cascade", ChildRun[]> = { direct: [], cascade: [] };
  const inside: Record<"direct" | "cascade", number[]> = { direct: [], cascade: [] };
  let summary: { rebuilt: number } | undefined;
  for (let run = 1; run <= options.runs; run++) {
    console.error(`Run ${run} of ${options.runs}: marketpipe aggregate --force ...`);
    const oursRun = await cli(
      ["aggregate", "--force", "--json", `--data-dir=${dataDir}`],
      "marketpipe aggregate",
    );
    summary = JSON.parse(oursRun.stdout);
    ours.push(oursRun);
    for (const variant of ["direct", "cascade"] as const) {
      console.error(`Run ${run} of ${options.runs}: baseline (${variant}) ...`);
      const out = join(temp, `baseline-${variant}`);
      await Deno.remove(out, { recursive: true }).catch(() => {});
      const baselineRun = await runMeasured(
        Deno.execPath(),
        denoRun(SELF, [`--baseline=${dataDir}`, `--variant=${variant}`]),
        { cwd: ROOT, env, scratchDir: temp },
      );
      checkChild(baselineRun, `baseline ${variant}`);
      const result = JSON.parse(baselineRun.stdout) as { statementMs: number; rows: number };
      inside[variant].push(result.statementMs);
      baselines[variant].push(baselineRun);
    }
  }
  const aggregatedRows = await _countAggregated(dataDir);

  // Incremental: nothing changed, then one new day of one symbol.
  console.error("Incremental: marketpipe aggregate with nothing changed ...");
  const idle = await cli(["aggregate", "--json", `--data-dir=${dataDir}`], "marketpipe aggregate");
  const extraDay = tradingDays(days.at(-1)!, "2026-12-31")[1];
  const meta = new MetaStore(openDatabase(join(dataDir, META_FILE)), { command: "bench" });
  try {
    await writeBars(
      { dataDir, duckdb, meta },
      generateFakeDay(symbols[0], extraDay).filter(keep),
      { jobId: "bench-2" },
    );
  } finally {
    meta.close();
  }
  console.error(`Incremental: marketpipe aggregate after one new day of ${symbols[0]} ...`);
  const oneDay = await cli(
    ["aggregate", "--json", `--data-dir=${dataDir}`],
    "marketpipe aggregate",
  );

  // Validation: the pure checker over the stored bars, and the command end to end.
  console.error("Validation: validateBars() over the stored bars ...");
  const connection = await duckdb.connect();
  let validated = 0;
  let validateMs = 0;
  let readMs = 0;
  let findings = 0;
  try {
    for (const symbol of symbols) {
      const t0 = performance.now();
      const files = await listPartitionFiles(dataDir, "bars", "1m", symbol);
      const stored = (await readBarRows(connection, files)).map((row) => row.bar);
      const t1 = performance.now();
      findings += validateBars(stored).length;
      validateMs += performance.now() - t1;
      readMs += t1 - t0;
      validated += stored.length;
    }
  } finally {
    connection.closeSync();
    duckdb.closeSync();
  }
  const symbolsFile = join(temp, "symbols.txt");
  await Deno.writeTextFile(symbolsFile, symbols.join("\n") + "\n");
  console.error("Validation: marketpipe validate end to end ...");
  const validateRun = await cli([
    "validate",
    `--symbols-file=${symbolsFile}`,
    `--start=${days[0]}`,
    `--end=${days.at(-1)}`,
    "--json",
    `--data-dir=${dataDir}`,
  ], "marketpipe validate");

  const oursMs = median(ours.map((r) => r.wallMs));
  const directMs = median(baselines.direct.map((r) => r.wallMs));
  const cascadeMs = median(baselines.cascade.map((r) => r.wallMs));
  const limitMs = Math.min(directMs, cascadeMs);
  const peak = (list: ChildRun[]) => Math.max(...list.map((r) => r.peakRssBytes ?? 0)) || null;
  const validateRate = validated / (validateMs / 1000);
  const report = {
    startedAt,
    machine: {
      cores: navigator.hardwareConcurrency,
      memoryBytes: Deno.systemMemoryInfo().total,
      loadAverage: Deno.loadavg(),
      deno: Deno.version.deno,
    },
    workload: {
      symbols: symbols.length,
      days: days.length,
      start: days[0],
      end: days.at(-1),
      sessions: options.extended ? "all" : "regular",
      bars,
      files1m: files1m.files,
      aggregatedRows,
      targetPartitions: summary?.rebuilt ?? null,
    },
    aggregate: {
      ours: { wallMs: oursMs, peakRssBytes: peak(ours), samples: ours.map((r) => r.wallMs) },
      baselineDirect: {
        wallMs: directMs,
        statementMs: median(inside.direct),
        peakRssBytes: peak(baselines.direct),
      },
      baselineCascade: {
        wallMs: cascadeMs,
        statementMs: median(inside.cascade),
        peakRssBytes: peak(baselines.cascade),
      },
      ratio: oursMs / limitMs,
      ratioToDirect: oursMs / directMs,
      target: TARGETS.aggregateRatio,
      pass: oursMs / limitMs <= TARGETS.aggregateRatio,
      incremental: {
        nothingChangedMs: idle.wallMs,
        oneNewDayMs: oneDay.wallMs,
        oneNewDayRebuilt: (JSON.parse(oneDay.stdout) as { rebuilt: number }).rebuilt,
      },
    },
    validate: {
      bars: validated,
      findings,
      validateBarsMs: validateMs,
      barsPerSecond: validateRate,
      readFromParquetMs: readMs,
      target: TARGETS.validateBarsPerSecond,
      pass: validateRate >= TARGETS.validateBarsPerSecond,
      command: { wallMs: validateRun.wallMs, peakRssBytes: validateRun.peakRssBytes },
    },
  };
  const pass = (ok: boolean) => (ok ? "PASS" : "MISS");
  console.log(`
Aggregation of ${
    formatCount(bars)
  } 1m bars (${symbols.length} symbols x ${days.length} days, ${report.workload.sessions} session) into ${summary?.rebuilt} partitions, ${
    formatCount(aggregatedRows)
  } bars:
  ours (marketpipe aggregate --force)   ${formatMs(oursMs)}  peak RSS ${
    formatBytes(report.aggregate.ours.peakRssBytes ?? 0)
  }
  baseline, one SQL, direct             ${formatMs(directMs)}  (statement ${
    formatMs(report.aggregate.baselineDirect.statementMs)
  })  peak RSS ${formatBytes(report.aggregate.baselineDirect.peakRssBytes ?? 0)}
  baseline, one SQL, cascaded           ${formatMs(cascadeMs)}  (statement ${
    formatMs(report.aggregate.baselineCascade.statementMs)
  })  peak RSS ${formatBytes(report.aggregate.baselineCascade.peakRssBytes ?? 0)}
  ours / faster baseline                ${
    report.aggregate.ratio.toFixed(2)
  }x  (target <= ${TARGETS.aggregateRatio}x) ${pass(report.aggregate.pass)}
  ours / direct baseline                ${report.aggregate.ratioToDirect.toFixed(2)}x
  incremental, nothing changed          ${formatMs(idle.wallMs)}
  incremental, one new day of 1 symbol  ${
    formatMs(oneDay.wallMs)
  } (${report.aggregate.incremental.oneNewDayRebuilt} partitions rebuilt)

Validation of ${formatCount(validated)} stored 1m bars:
  validateBars() in memory              ${formatMs(validateMs)}  ${
    formatCount(validateRate)
  } bars/s (target >= ${formatCount(TARGETS.validateBarsPerSecond)}) ${pass(report.validate.pass)}
  reading them from Parquet             ${formatMs(readMs)}
  marketpipe validate end to end        ${formatMs(validateRun.wallMs)}  peak RSS ${
    formatBytes(validateRun.peakRssBytes ?? 0)
  }  (${findings} findings)`);
  return report;
}

/** Rows of every aggregated frame, counted natively. */
async function _countAggregated(dataDir: string): Promise<number> {
  return await withDuckDB(async (connection) => {
    const reader = await connection.runAndReadAll(
      `SELECT count(*) FROM read_parquet([${
        ["5m", "15m", "30m", "1h", "4h", "1d"].map((tf) =>
          sqlString(join(dataDir, "bars", `timeframe=${tf}`, "**", "*.parquet"))
        ).join(", ")
      }], hive_partitioning = false)`,
    );
    return Number(reader.getRows()[0][0]);
  });
}

/**
 * The baseline, in its own process: the session table (the calendar is input, not the work),
 * then ONE statement computing all frames and writing them hive-partitioned. Prints its timings
 * as JSON.
 */
async function _baseline(dataDir: string, variant: "direct" | "cascade"): Promise<number> {
  return await withDuckDB(async (connection) => {
    const years = new Set<number>();
    for await (const entry of Deno.readDir(join(dataDir, "bars", "timeframe=1m"))) {
      for await (const year of Deno.readDir(join(dataDir, "bars", "timeframe=1m", entry.name))) {
        years.add(Number(year.name.slice(5)));
      }
    }
    const rows: string[] = [];
    for (const year of years) {
      for (let day = Date.UTC(year, 0, 1); day < Date.UTC(year + 1, 0, 1); day += 86_400_000) {
        const date = new Date(day).toISOString().slice(0, 10);
        const s = tradingSession(date);
        rows.push(
          `(DATE '${date}', ${s?.preOpen ?? zonedTime(date, "04:00")}, ${
            s?.open ?? zonedTime(date, "09:30")
          }, ${s?.close ?? zonedTime(date, "16:00")}, ${zonedTime(date, "00:00")})`,
        );
      }
    }
    await connection.run(
      `CREATE TABLE sessions AS SELECT * FROM (VALUES ${
        rows.join(", ")
      }) AS t(d, pre_open, open, close, midnight)`,
    );
    const glob = sqlString(join(dataDir, "bars", "timeframe=1m", "**", "*.parquet"));
    const out = sqlString(join(dataDir, "..", `baseline-${variant}`));
    const started = performance.now();
    const copied = await connection.run(
      `${variant === "direct" ? _directSql(glob) : _cascadeSql(glob)}
       TO ${out} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (_tf, _sym, _y))`,
    );
    console.log(JSON.stringify({
      variant,
      rows: Number(copied.rowsChanged),
      statementMs: performance.now() - started,
    }));
    return 0;
  });
}

/**
 * The file columns of layout 2 in file order, then the hive partition keys (timeframe, symbol,
 * year, as our partitions), from an aggregated row.
 */
function _columns(tf: string, ts: string): string {
  return `timezone('UTC', epoch_ms(${ts})) AS ts, open, high, low, close, volume, vwap,
    CAST(trade_count AS BIGINT) AS trade_count, trading_date, session,
    provider, feed, adjustment, 'baseline' AS ingest_id, TIMESTAMPTZ '2024-01-01 00:00:00+00'
    AS ingested_at, 2 AS schema_version, '${tf}' AS _tf, symbol AS _sym,
    year(trading_date) AS _y`;
}

/** Hand-written: every frame straight from the 1m bars. */
function _directSql(glob: string): string {
  const m1 = `(SELECT b.symbol, epoch_ms(b.ts) AS t, b.session, b.trading_date, b.open, b.high,
      b.low, b.close, b.volume, b.vwap, b.trade_count, b.provider, b.feed, b.adjustment,
      s.open AS s_open, s.pre_open AS s_pre, s.close AS s_close, s.midnight AS s_midnight
    FROM read_parquet(${glob}, hive_partitioning = true, hive_types_autocast = false) b
    JOIN sessions s ON s.d = b.trading_date)`;
  const frame = (tf: string, minutes: number) => {
    const bucket = minutes === 0 ? "s_midnight" : `greatest(
      s_open + CAST(floor((t - s_open) / ${minutes * 60_000}) AS BIGINT) * ${minutes * 60_000},
      CASE session WHEN 'regular' THEN s_open WHEN 'pre' THEN s_pre ELSE s_close END)`;
    return `SELECT ${_columns(tf, "bucket")} FROM (
      SELECT symbol, ${bucket} AS bucket, trading_date,
        ${minutes === 0 ? "'regular'" : "session"} AS session,
        arg_min(open, t) AS open, max(high) AS high, min(low) AS low, arg_max(close, t) AS close,
        sum(volume) AS volume,
        sum(vwap * volume) / nullif(sum(CASE WHEN vwap IS NOT NULL THEN volume END), 0) AS vwap,
        sum(trade_count) AS trade_count, any_value(provider) AS provider,
        any_value(feed) AS feed, any_value(adjustment) AS adjustment
      FROM ${m1} ${minutes === 0 ? "WHERE session = 'regular'" : ""}
      GROUP BY ALL)`;
  };
  return `COPY (
    ${frame("5m", 5)} UNION ALL ${frame("15m", 15)} UNION ALL ${frame("30m", 30)}
    UNION ALL ${frame("1h", 60)} UNION ALL ${frame("4h", 240)} UNION ALL ${frame("1d", 0)}
  )`;
}

/** Hand-written: 5m from 1m, then each frame from the one before (materialized CTEs). */
function _cascadeSql(glob: string): string {
  const level = (from: string, minutes: number) => `
    SELECT x.symbol, x.trading_date, ${minutes === 0 ? "'regular'" : "x.session"} AS session,
      ${
    minutes === 0
      ? "any_value(s.midnight)"
      : `greatest(s.open + CAST(floor((x.t - s.open) / ${minutes * 60_000}) AS BIGINT) * ${
        minutes * 60_000
      },
        CASE x.session WHEN 'regular' THEN s.open WHEN 'pre' THEN s.pre_open ELSE s.close END)`
  } AS t,
      arg_min(x.open, x.t) AS open, max(x.high) AS high, min(x.low) AS low,
      arg_max(x.close, x.t) AS close, sum(x.volume) AS volume, sum(x.pv) AS pv, sum(x.vv) AS vv,
      sum(x.trade_count) AS trade_count, any_value(x.provider) AS provider,
      any_value(x.feed) AS feed, any_value(x.adjustment) AS adjustment
    FROM ${from} x JOIN sessions s ON s.d = x.trading_date
    ${
    minutes === 0 ? "WHERE x.session = 'regular' GROUP BY x.symbol, x.trading_date" : "GROUP BY ALL"
  }`;
  const out = (name: string, tf: string) =>
    `SELECT ${_columns(tf, "t")} FROM (SELECT *, pv / nullif(vv, 0) AS vwap FROM ${name})`;
  return `COPY (
    WITH m1 AS (
      SELECT symbol, trading_date, session, epoch_ms(ts) AS t, open, high, low, close, volume,
        vwap * volume AS pv, CASE WHEN vwap IS NOT NULL THEN volume END AS vv, trade_count,
        provider, feed, adjustment
      FROM read_parquet(${glob}, hive_partitioning = true, hive_types_autocast = false)
    ),
    l5 AS MATERIALIZED (${level("m1", 5)}),
    l15 AS MATERIALIZED (${level("l5", 15)}),
    l30 AS MATERIALIZED (${level("l15", 30)}),
    l60 AS MATERIALIZED (${level("l30", 60)}),
    l240 AS MATERIALIZED (${level("l60", 240)}),
    d AS (${level("l30", 0)})
    ${out("l5", "5m")} UNION ALL ${out("l15", "15m")} UNION ALL ${out("l30", "30m")}
    UNION ALL ${out("l60", "1h")} UNION ALL ${out("l240", "4h")} UNION ALL ${out("d", "1d")}
  )`;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
