/**
 * `deno task bench`: the ingest benchmark. Ingests a fixed workload with the fake provider by
 * spawning the real CLI, then times two queries through our query runner, and measures the same
 * work done natively by DuckDB in the same run (the limit): one `COPY` of as many generated rows
 * to one Parquet file, in a fresh process, and the same queries over that file. Prints each figure,
 * the limit, ours/limit and PASS/MISS against the targets, and writes the report as JSON to
 * `bench/out/<timestamp>.json`. Timing never fails the process.
 *
 * ```sh
 * deno task bench                          # 100 symbols x 20 trading days (~1.9M bars)
 * deno task bench --symbols 5 --days 2     # a quick small run
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { tradingDays } from "../core/mod.ts";
import {
  BAR_COLUMNS,
  openDuckDB,
  openQueryEngine,
  runQuery,
  sqlIdent,
  sqlString,
} from "../storage/mod.ts";
import type { LimitWriteResult } from "./limit_write.ts";
import {
  bytesOrNa,
  checkChild,
  childEnv,
  type ChildRun,
  denoRun,
  FAKE_GAP_RATE,
  FAKE_SEED,
  formatBytes,
  formatCount,
  formatMs,
  ignoreNotFound,
  MAIN,
  maxOrNull,
  median,
  parseFlagsOr,
  positiveInt,
  printAndWriteReport,
  reportHead,
  ROOT,
  runMeasured,
  runSample,
  treeStats,
} from "./measure.ts";

const LIMIT_SCRIPT = fileURLToPath(new URL("./limit_write.ts", import.meta.url));

/** First trading date of the workload; 20 trading days run to 2024-03-28. */
const FIRST_DAY = "2024-03-01";
/** The CLI's default worker count, so the benchmark measures what a user gets. */
const WORKERS = 4;
const POINT_SYMBOL = "AAPL";
const POINT_DAY = "2024-03-15";

/** Targets of the issue: ours/limit at most this much, and the absolute peak RSS. */
const TARGETS = {
  ingestRatio: 3,
  queryRatio: 1.5,
  peakRssBytes: 1024 ** 3,
} as const;

/** Well-known tickers; `--symbols` above 100 adds synthetic ones. AAPL first: the point query. */
const TICKERS: readonly string[] = `
  AAPL MSFT NVDA AMZN GOOGL GOOG META BRK.B TSLA AVGO JPM LLY V UNH XOM MA JNJ PG HD COST
  MRK ABBV CVX CRM BAC NFLX KO PEP AMD WMT TMO ADBE ACN LIN MCD CSCO ABT DIS WFC INTU
  ORCL DHR VZ CMCSA TXN QCOM PFE AMGN IBM NOW CAT PM UNP GE SPGI ISRG HON INTC AMAT RTX
  BKNG NKE LOW GS T UBER ELV PLD SYK BLK MS MDT SCHW TJX LMT DE VRTX AXP C PGR
  MMC ADP BSX CB REGN ADI SBUX LRCX MU GILD ZTS CI FI BX SO MDLZ KLAC DUK SPY QQQ
`.trim().split(/\s+/);

/** The workload of one run. */
interface Workload {
  symbols: string[];
  days: string[];
  seed: number;
  gapRate: number;
  workers: number;
}

/** One query's timings. */
interface QueryFigure {
  sql: string;
  rows: number;
  samplesMs: number[];
  medianMs: number;
}

/** One line of the verdict table. */
interface TargetCheck {
  name: string;
  ours: number;
  limit: number | null;
  ratio: number | null;
  target: string;
  pass: boolean;
}

const USAGE = `Usage: deno task bench [--symbols N] [--days N] [--runs N] [--query-runs N]

  --symbols N      symbols to ingest (default 100)
  --days N         trading days from ${FIRST_DAY} (default 20)
  --runs N         ingest + limit pairs, alternating; medians count, the highest RSS (default 1)
  --query-runs N   timed rounds of all queries after a warm-up round; medians count (default 7)`;

async function main(args: string[]): Promise<number> {
  const flags = parseFlagsOr(() => _parseFlags(args), USAGE);
  if (typeof flags === "number") return flags;
  const { runs, queryRuns } = flags;
  const workload: Workload = {
    symbols: _symbols(flags.symbols),
    days: tradingDays(FIRST_DAY, "2025-12-31").slice(0, flags.days),
    seed: FAKE_SEED,
    gapRate: FAKE_GAP_RATE,
    workers: WORKERS,
  };

  const controller = new AbortController();
  const onInterrupt = () => controller.abort(new Error("Interrupted"));
  Deno.addSignalListener("SIGINT", onInterrupt);
  const temp = await Deno.makeTempDir({ prefix: "marketpipe-bench-" });
  try {
    const report = await _bench(workload, { runs, queryRuns }, temp, controller.signal);
    return await printAndWriteReport("", report, _render);
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await Deno.remove(temp, { recursive: true });
  }
}

type Report = Awaited<ReturnType<typeof _bench>>;

async function _bench(
  workload: Workload,
  options: { runs: number; queryRuns: number },
  temp: string,
  signal: AbortSignal,
) {
  const { runs, queryRuns } = options;
  const head = await reportHead(new Date().toISOString());
  const dataDir = join(temp, "data");
  const limitFile = join(temp, "limit", "bars.parquet");
  await Deno.mkdir(join(temp, "limit"));
  const symbolsFile = join(temp, "symbols.txt");
  await Deno.writeTextFile(symbolsFile, workload.symbols.join("\n") + "\n");
  const first = workload.days[0];
  const last = workload.days.at(-1)!;

  // 1 and 2, alternating `runs` times so that load from elsewhere hits both alike: ours, the
  // real CLI end to end on a fresh data dir; then the limit, one COPY of as many generated rows,
  // in a fresh process.
  const env = childEnv();
  const ingestRuns: ChildRun[] = [];
  const limitRuns: ChildRun[] = [];
  const limitInsides: LimitWriteResult[] = [];
  let bars = 0;
  for (let run = 1; run <= runs; run++) {
    await Deno.remove(dataDir, { recursive: true }).catch(ignoreNotFound);
    await Deno.remove(limitFile).catch(ignoreNotFound);
    const of = runs > 1 ? ` (run ${run} of ${runs})` : "";
    console.error(
      `Ingesting ${workload.symbols.length} symbols x ${workload.days.length} trading days ` +
        `(${first}..${last}) with the CLI${of}...`,
    );
    const ingestRun = await runMeasured(
      Deno.execPath(),
      denoRun(MAIN, [
        "ingest",
        "--provider=fake",
        `--symbols-file=${symbolsFile}`,
        `--start=${first}`,
        `--end=${last}`,
        `--fake-seed=${workload.seed}`,
        `--fake-gap-rate=${workload.gapRate}`,
        `--workers=${workload.workers}`,
        `--data-dir=${dataDir}`,
        "--json",
      ]),
      { cwd: ROOT, env, signal, scratchDir: temp },
    );
    signal.throwIfAborted();
    checkChild(ingestRun, "marketpipe ingest");
    const summary = JSON.parse(ingestRun.stdout) as { status: string; barsWritten: number };
    if (summary.status !== "succeeded") {
      throw new Error(`Cannot benchmark: the ingest ended ${summary.status}\n${ingestRun.stderr}`);
    }
    if (run > 1 && summary.barsWritten !== bars) {
      throw new Error(
        `Cannot benchmark: run ${run} wrote ${summary.barsWritten} bars, run 1 ${bars}`,
      );
    }
    bars = summary.barsWritten;
    ingestRuns.push(ingestRun);

    console.error(`Writing the limit: ${formatCount(bars)} rows with one DuckDB COPY${of}...`);
    const limitRun = await runMeasured(
      Deno.execPath(),
      denoRun(LIMIT_SCRIPT, [
        `--out=${limitFile}`,
        `--rows=${bars}`,
        `--symbols-file=${symbolsFile}`,
        `--days=${workload.days.join(",")}`,
      ]),
      { cwd: ROOT, env, signal, scratchDir: temp },
    );
    signal.throwIfAborted();
    checkChild(limitRun, "bench/limit_write.ts");
    limitRuns.push(limitRun);
    limitInsides.push(JSON.parse(limitRun.stdout) as LimitWriteResult);
  }
  const parquet = await treeStats(join(dataDir, "bars"), (name) => name.endsWith(".parquet"));
  const allFiles = await treeStats(dataDir);
  const limitStats = await treeStats(join(temp, "limit"));
  const ingestWallMs = median(ingestRuns.map((r) => r.wallMs));
  const limitWallMs = median(limitRuns.map((r) => r.wallMs));
  const ingestRss = maxOrNull(ingestRuns.map((r) => r.peakRssBytes));
  const limitRss = maxOrNull(limitRuns.map((r) => r.peakRssBytes));

  // 3. Queries: ours through openQueryEngine/runQuery over the tree, the limit over one file.
  const pointDay = workload.days.includes(POINT_DAY)
    ? POINT_DAY
    : workload.days[Math.floor(workload.days.length / 2)];
  const sqls = {
    daily: "SELECT symbol, trading_date, first(open ORDER BY ts), max(high), min(low), " +
      "last(close ORDER BY ts), sum(volume) FROM bars_1m WHERE session='regular' GROUP BY ALL",
    point: `SELECT * FROM bars_1m WHERE symbol='${POINT_SYMBOL}' ` +
      `AND trading_date = DATE '${pointDay}' ORDER BY ts`,
  };
  console.error(`Timing the queries (${queryRuns} rounds after a warm-up)...`);
  signal.throwIfAborted();
  const openStarted = performance.now();
  const engine = await openQueryEngine(dataDir);
  const engineOpenMs = performance.now() - openStarted;
  let storedRows: number;
  let timings: Record<"ours" | "limit" | "treeNative", Record<keyof typeof sqls, QueryFigure>>;
  try {
    storedRows = Number((await runQuery(engine, "SELECT count(*) FROM bars_1m")).rows[0][0]);
    await using limitDb = await _nativeOver(`read_parquet(${sqlString(limitFile)})`, {
      checkSchema: true,
      expectRows: bars,
    });
    // Not a target: the same queries natively over our tree, to tell the layout's cost (many
    // files, hive paths) from the query runner's (sandbox, prepare, JSON-safe rows).
    const glob = join(dataDir, "bars", "timeframe=1m", "**", "*.parquet");
    await using treeDb = await _nativeOver(
      `read_parquet(${sqlString(glob)}, hive_partitioning = true, hive_types_autocast = false)`,
      { checkSchema: false, expectRows: bars },
    );
    timings = await _timeRounds(queryRuns, sqls, {
      ours: async (sql) => (await runQuery(engine, sql, { limit: 10_000_000 })).rowCount,
      limit: limitDb.rows,
      treeNative: treeDb.rows,
    });
  } finally {
    engine.close();
  }
  const { ours, limit, treeNative } = timings;
  if (storedRows !== bars) {
    throw new Error(`Cannot benchmark: bars_1m holds ${storedRows} rows, the ingest wrote ${bars}`);
  }
  for (const key of ["daily", "point"] as const) {
    if (ours[key].rows !== treeNative[key].rows) {
      throw new Error(
        `Cannot benchmark: the ${key} query returned ${ours[key].rows} rows through runQuery ` +
          `and ${treeNative[key].rows} natively`,
      );
    }
  }

  const checks: TargetCheck[] = [
    _ratioCheck("ingest wall time", ingestWallMs, limitWallMs, TARGETS.ingestRatio),
    _ratioCheck("daily aggregation", ours.daily.medianMs, limit.daily.medianMs, TARGETS.queryRatio),
    _ratioCheck("point query", ours.point.medianMs, limit.point.medianMs, TARGETS.queryRatio),
    {
      name: "ingest peak RSS",
      ours: ingestRss ?? NaN,
      limit: limitRss,
      ratio: limitRss && ingestRss ? ingestRss / limitRss : null,
      target: `< ${formatBytes(TARGETS.peakRssBytes)}`,
      pass: ingestRss !== null && ingestRss < TARGETS.peakRssBytes,
    },
  ];

  return {
    ...head,
    workload: {
      symbols: workload.symbols.length,
      days: workload.days.length,
      start: first,
      end: last,
      seed: workload.seed,
      gapRate: workload.gapRate,
      workers: workload.workers,
      bars,
    },
    runs,
    ingest: {
      wallMs: ingestWallMs,
      barsPerSecond: bars / (ingestWallMs / 1000),
      peakRssBytes: ingestRss,
      cpuSeconds: _medianOrNull(ingestRuns.map((r) => r.cpuSeconds)),
      rssMethod: ingestRuns[0].rssMethod,
      parquetFiles: parquet.files,
      parquetBytes: parquet.bytes,
      filesWritten: allFiles.files,
      bytesOnDisk: allFiles.bytes,
      allocatedBytes: allFiles.allocatedBytes,
      engineReportedMs: median(
        ingestRuns.map((r) => (JSON.parse(r.stdout) as { elapsedMs: number }).elapsedMs),
      ),
      samples: ingestRuns.map(runSample),
    },
    limit: {
      wallMs: limitWallMs,
      rowsPerSecond: bars / (limitWallMs / 1000),
      peakRssBytes: limitRss,
      cpuSeconds: _medianOrNull(limitRuns.map((r) => r.cpuSeconds)),
      rows: limitInsides[0].rows,
      copyMs: median(limitInsides.map((r) => r.copyMs)),
      fileBytes: limitStats.bytes,
      duckdbVersion: limitInsides[0].duckdbVersion,
      samples: limitRuns.map((r, i) => ({ ...runSample(r), copyMs: limitInsides[i].copyMs })),
    },
    queries: {
      engineOpenMs,
      ours,
      limit,
      treeNative,
    },
    targets: checks,
  };
}

/**
 * Time every query on every runner in rounds (one warm-up round first), so that load from other
 * processes falls on all of them alike; each figure is the median of its `rounds` samples.
 */
async function _timeRounds<R extends string, Q extends string>(
  rounds: number,
  sqls: Record<Q, string>,
  runners: Record<R, (sql: string) => Promise<number>>,
): Promise<Record<R, Record<Q, QueryFigure>>> {
  const result = {} as Record<R, Record<Q, QueryFigure>>;
  for (let round = 0; round <= rounds; round++) {
    for (
      const [runner, run] of Object.entries(runners) as [R, (sql: string) => Promise<number>][]
    ) {
      const figures = result[runner] ??= {} as Record<Q, QueryFigure>;
      for (const [query, sql] of Object.entries(sqls) as [Q, string][]) {
        const started = performance.now();
        const rows = await run(sql);
        const ms = performance.now() - started;
        figures[query] ??= { sql, rows, samplesMs: [], medianMs: NaN };
        if (round > 0) figures[query].samplesMs.push(ms);
      }
    }
  }
  for (const figures of Object.values<Record<Q, QueryFigure>>(result)) {
    for (const figure of Object.values<QueryFigure>(figures)) {
      figure.medianMs = median(figure.samplesMs);
    }
  }
  return result;
}

/**
 * A fresh native DuckDB instance with `bars_1m` as a view over `source`, checked for its row count
 * (and, for the limit file, its column types); `rows(sql)` runs a query and reads every row into
 * JS values, as a caller of `@duckdb/node-api` would.
 */
async function _nativeOver(
  source: string,
  options: { checkSchema: boolean; expectRows: number },
): Promise<{ rows(sql: string): Promise<number>; [Symbol.asyncDispose](): Promise<void> }> {
  const instance = await openDuckDB();
  const connection = await instance.connect();
  const close = () => {
    connection.closeSync();
    instance.closeSync();
  };
  try {
    const columns = BAR_COLUMNS.map((column) => sqlIdent(column.name)).join(", ");
    await connection.run(`CREATE VIEW bars_1m AS SELECT ${columns} FROM ${source}`);
    if (options.checkSchema) {
      const described = await connection.runAndReadAll("DESCRIBE bars_1m");
      const types = described.getRows().map((row) => String(row[1]));
      const expected = BAR_COLUMNS.map((c) =>
        c.type.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")
      );
      if (types.join() !== expected.join()) {
        throw new Error(`Cannot benchmark: the limit file has types ${types.join()}`);
      }
    }
    const count = await connection.runAndReadAll("SELECT count(*) FROM bars_1m");
    if (Number(count.getRows()[0][0]) !== options.expectRows) {
      throw new Error(
        `Cannot benchmark: ${source} holds ${count.getRows()[0][0]} rows, ` +
          `expected ${options.expectRows}`,
      );
    }
  } catch (error) {
    close();
    throw error;
  }
  return {
    rows: async (sql) => (await connection.runAndReadAll(sql)).getRows().length,
    [Symbol.asyncDispose]: () => Promise.resolve(close()),
  };
}

function _medianOrNull(values: (number | null)[]): number | null {
  return values.some((v) => v === null) ? null : median(values as number[]);
}

function _ratioCheck(name: string, ours: number, limit: number, max: number): TargetCheck {
  const ratio = ours / limit;
  return { name, ours, limit, ratio, target: `<= ${max}x`, pass: ratio <= max };
}

function _render(report: Report): string {
  const { machine, workload, ingest, limit, queries } = report;
  const x = (ratio: number | null) => ratio === null ? "-" : `${ratio.toFixed(2)}x`;
  const rows: string[][] = [
    ["", "ours", "limit", "ours/limit", "target", "result"],
  ];
  for (const check of report.targets) {
    const isRss = check.name.endsWith("RSS");
    const show = (v: number | null) =>
      v === null || Number.isNaN(v) ? "n/a" : isRss ? bytesOrNa(v) : formatMs(v);
    rows.push([
      check.name,
      show(check.ours),
      show(check.limit),
      isRss ? "-" : x(check.ratio),
      check.target,
      check.pass ? "PASS" : "MISS",
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const table = rows.map((row) =>
    row.map((cell, i) => i === 0 || i === 4 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))
      .join("  ").trimEnd()
  );
  const cpu = (s: number | null, wallMs: number) =>
    s === null ? "" : `, ${s.toFixed(2)} s CPU (${(s / (wallMs / 1000)).toFixed(2)} cores busy)`;
  return [
    "",
    `MarketPipe ingest benchmark, ${report.startedAt}, tree ${report.revision ?? "unknown"}`,
    `machine   ${machine.cores} cores (${machine.cpu}), ${formatBytes(machine.memoryBytes)} RAM, ` +
    `${machine.os}; deno ${machine.deno}, v8 ${machine.v8}; DuckDB ${limit.duckdbVersion}`,
    `load      ${machine.loadAverage.map((l) => l.toFixed(2)).join(" ")} at the start` +
    (machine.loadAverage[0] > 0.5
      ? ": other processes were busy, so the figures below are noisy (repeat on an idle machine)"
      : ""),
    `workload  ${workload.symbols} symbols x ${workload.days} trading days ` +
    `(${workload.start}..${workload.end}), 1m bars with extended hours, fake seed ${workload.seed}, ` +
    `gapRate ${workload.gapRate}, ${workload.workers} workers: ${formatCount(workload.bars)} bars`,
    "",
    ...(report.runs > 1
      ? [
        `runs      ${report.runs} ingest + limit pairs: medians shown, peak RSS is the highest; ` +
        `ingest walls ${ingest.samples.map((r) => formatMs(r.wallMs)).join(", ")}; ` +
        `limit walls ${limit.samples.map((r) => formatMs(r.wallMs)).join(", ")}`,
      ]
      : []),
    `ours      marketpipe ingest (CLI child): ${formatMs(ingest.wallMs)} wall, ` +
    `${formatCount(ingest.barsPerSecond)} bars/s, peak RSS ${bytesOrNa(ingest.peakRssBytes)}` +
    `${cpu(ingest.cpuSeconds, ingest.wallMs)}; engine-reported ${
      formatMs(ingest.engineReportedMs)
    }`,
    `          wrote ${formatCount(ingest.parquetFiles)} Parquet files ` +
    `(${formatBytes(ingest.parquetBytes)}); ${formatCount(ingest.filesWritten)} files and ` +
    `${formatBytes(ingest.bytesOnDisk)} in the data dir with SQLite` +
    (ingest.allocatedBytes === null ? "" : ` (${formatBytes(ingest.allocatedBytes)} allocated)`),
    `limit     one DuckDB COPY of ${formatCount(limit.rows)} generated rows to one zstd Parquet ` +
    `file (fresh child): ${formatMs(limit.wallMs)} wall (COPY ${formatMs(limit.copyMs)}), ` +
    `${formatCount(limit.rowsPerSecond)} rows/s, peak RSS ${bytesOrNa(limit.peakRssBytes)}` +
    `${cpu(limit.cpuSeconds, limit.wallMs)}, ${formatBytes(limit.fileBytes)}`,
    `queries   ours: openQueryEngine + runQuery over the tree (engine open ` +
    `${formatMs(queries.engineOpenMs)}); limit: native DuckDB over the one file; median of ` +
    `${queries.ours.daily.samplesMs.length} interleaved rounds`,
    `          daily aggregation: ${formatCount(queries.ours.daily.rows)} rows; point query: ` +
    `${formatCount(queries.ours.point.rows)} rows`,
    `          diagnostic, native DuckDB over our tree (no runQuery): daily ` +
    `${formatMs(queries.treeNative.daily.medianMs)}, point ${
      formatMs(queries.treeNative.point.medianMs)
    }`,
    "",
    ...table,
    "",
    `PASS/MISS is information, not a test: the process exits 0 either way.` +
    (workload.symbols === 100 && workload.days === 20
      ? ""
      : ` The RSS target is set for 100 symbols x 20 days.`),
  ].join("\n");
}

function _symbols(count: number): string[] {
  const symbols = TICKERS.slice(0, count);
  for (let i = symbols.length; i < count; i++) symbols.push(`X${String(i).padStart(5, "0")}`);
  return symbols;
}

function _parseFlags(
  args: string[],
): "help" | { symbols: number; days: number; runs: number; queryRuns: number } {
  const { values } = parseArgs({
    args,
    options: {
      symbols: { type: "string", default: "100" },
      days: { type: "string", default: "20" },
      runs: { type: "string", default: "1" },
      "query-runs": { type: "string", default: "7" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return "help";
  return {
    symbols: positiveInt(values.symbols, "--symbols", 10_000),
    days: positiveInt(values.days, "--days", 250),
    runs: positiveInt(values.runs, "--runs", 100),
    queryRuns: positiveInt(values["query-runs"], "--query-runs", 1000),
  };
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
