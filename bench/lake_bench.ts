/**
 * `deno task bench:lake`: the storage benchmark of issue 10 (layout v2). It drives the real CLI
 * (`ingest`, `compact`) on temporary data directories and the real query engine in-process, and
 * puts every figure next to a baseline measured in the same run:
 *
 * 1. History (set-up, not compared): `--days` trading days of 1m and of 1d bars for `--symbols`
 *    symbols up to 2024-12-30, ingested month by month with `ingest --no-compact` (store A: one
 *    file per symbol and month, 1,200 1m files for 100 symbols and the whole year); then a
 *    hard-linked copy of A compacted with `compact` (store B: one file per symbol-year).
 * 2. Daily update: `ingest` of 2024-12-31 (the 21st trading day of December) in 1m and then in 1d
 *    into a copy of A and into a copy of B; the baseline is the same two ingests into an empty
 *    data directory. Bytes written = the sizes of the Parquet files the ingests created or
 *    replaced (listing of the data directory before and after, by path, inode, size and mtime);
 *    the kernel's count of every byte the child wrote (`write_bytes`, SQLite included) is shown
 *    beside it.
 * 3. Size: bytes of the stored 1m Parquet files per million bars, in A and in B, vs one zstd
 *    Parquet file of the same rows sorted by (symbol, ts), written by native DuckDB from A's rows.
 * 4. Queries, in-process: a point query (one symbol, one day), `count(*)` of the year and
 *    `min(ts), max(ts)` (shown for information) through
 *    `openQueryEngine`/`runQuery` over A, over B and over store C (the same monthly 1m ingests
 *    with the default automatic merging: what a user who ingests month by month has), and raw
 *    DuckDB over the one sorted file.
 * 5. Ingest: the whole 1m history in one `ingest --workers 8` into an empty data directory vs
 *    limits, each a fresh process that generates the identical rows with `generateFakeDay`,
 *    appends them to DuckDB in columnar chunks and writes them zstd: one `COPY` per (symbol,
 *    year) partition, in ts order (the same layout and sort; the target), and one `COPY` to one
 *    file (the physical limit). One `COPY ... PARTITION_BY (symbol, year)` would be the obvious
 *    same-layout limit, but DuckDB 1.5 writes its files out of ts order even after `ORDER BY`,
 *    so it is only timed with `--partition-by`, for information.
 *
 * Ours and the baselines alternate `--runs` times, their order rotated each run, and each ratio is
 * the median of the per-pair ratios, printed with their range. Prints `ours X vs baseline Y =
 * ratio (target T, PASS/MISS)` per figure and writes the report as JSON to
 * `bench/out/lake-<timestamp>.json`. Timing never fails the process; a missing `compact` command
 * or `--no-compact` flag, a layout other than 2 or unexpected file counts do.
 *
 * ```sh
 * deno task bench:lake                                # 20 symbols x 251 days + the update day
 * deno task bench:lake --symbols 100                  # the size: 1,200 vs 100 files
 * deno task bench:lake --symbols 3 --days 30 --runs 1 # a quick small run
 * ```
 *
 * @module
 */
import {
  DuckDBDataChunk,
  DuckDBDoubleType,
  DuckDBIntegerType,
  type DuckDBType,
  DuckDBUSmallIntType,
  DuckDBUTinyIntType,
} from "@duckdb/node-api";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { tradingDays } from "../core/mod.ts";
import { generateFakeDay } from "../providers/mod.ts";
import {
  openDuckDB,
  openQueryEngine,
  type QueryEngine,
  runQuery,
  SCHEMA_VERSION,
  sqlString,
} from "../storage/mod.ts";
import { fsyncDir, fsyncFile } from "../storage/fs.ts";
import {
  type BenchContext as Context,
  benchSymbols,
  bytesOrNa,
  checkUnchanged,
  childEnv,
  denoRun,
  FAKE_GAP_RATE,
  FAKE_SEED,
  formatBytes,
  formatCount,
  formatMs,
  ignoreNotFound,
  linkCopy,
  type Listing,
  listTree,
  machineLine,
  MAIN,
  maxOrNull,
  median,
  pairRatios,
  parquetFiles,
  parquetWritten,
  parseFlagsOr,
  positiveInt,
  printAndWriteReport,
  ratioVerdict,
  reportHead,
  ROOT,
  rotate,
  runCli,
  runDenoChild,
  runFakeIngest,
  runSample,
  sumOrNull,
  treeStats,
  withBenchDirs,
  withDuckDB,
  type WritesRun as Measured,
} from "./measure.ts";

const SELF = fileURLToPath(import.meta.url);

/** The day of the daily update: the 21st trading day of December 2024, after the history. */
const UPDATE_DAY = "2024-12-31";
/** The history is the `--days` trading days before {@link UPDATE_DAY}, within 2024. */
const HISTORY_DAYS = tradingDays("2024-01-01", "2024-12-30");
const LAYOUT_VERSION = 2;

/** Targets of issue 10: ours/baseline at most this much, and the absolute peak RSS. */
const TARGETS = {
  updateBytes: 1.5,
  updateWall: 1.5,
  pointManyFiles: 1.2,
  pointRaw: 1.3,
  countRaw: 3,
  ingestLayout: 1.2,
  bytesPerMillion: 1.1,
  peakRssBytes: 1024 ** 3,
} as const;

const SECTIONS = ["daily", "size", "query", "ingest"] as const;
type Section = typeof SECTIONS[number];

const USAGE = `Usage: deno task bench:lake [options]

  --symbols N      symbols S000, S001, ... (default 20; the issue's size is 100)
  --days N         trading days of history before ${UPDATE_DAY}, at most ${HISTORY_DAYS.length} (default all)
  --runs N         pairs of ours and the baselines, alternating; medians count (default 3)
  --query-runs N   timed rounds of the queries after a warm-up round (default 15)
  --workers N      ingest workers (default 8)
  --only LIST      sections to run, of ${SECTIONS.join(",")} (default all)
  --partition-by   also time one COPY ... PARTITION_BY as an ingest limit (no target: DuckDB
                   writes its files out of ts order)
  --keep           keep the temporary directory and print where it is

Run time on 2 cores: 2-4 minutes at the defaults, about 11 minutes with --symbols 100. The
ingest limits hold all rows in memory: about 5 GiB at --symbols 100, 7.5 GiB with --partition-by.`;

/** The workload of one run. */
interface Workload {
  symbols: string[];
  history: string[];
  months: { first: string; last: string }[];
  workers: number;
  runs: number;
  queryRuns: number;
  sections: Set<Section>;
  /** Also time one `COPY ... PARTITION_BY` as a limit (not our output: out of ts order). */
  partitionBy: boolean;
}

/** One compared figure: medians of ours and of the baseline, and the median per-pair ratio. */
interface Figure {
  name: string;
  unit: "bytes" | "ms" | "bytes/M bars";
  ours: number;
  baselineName: string;
  baseline: number;
  ratio: number;
  /** Per-pair ratios (one per run or round). */
  ratios: number[];
  /** Highest acceptable ratio, or null for a figure shown for information. */
  target: number | null;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlagsOr(() => _parseFlags(args), USAGE);
  if (typeof flags === "number") return flags;
  if (flags.kind === "limit") return await _limit(flags);

  const options = { symbols: flags.workload.symbols, env: childEnv(), keep: flags.keep };
  return await withBenchDirs("marketpipe-lakebench-", options, async (context) => {
    await _preflight(context);
    return await printAndWriteReport("lake-", await _bench(flags.workload, context), _render);
  });
}

type Report = Awaited<ReturnType<typeof _bench>>;

async function _bench(workload: Workload, context: Context) {
  const startedAt = new Date().toISOString();
  const { temp, signal } = context;
  const { symbols, history, sections, runs } = workload;
  const first = history[0];
  const last = history.at(-1)!;
  const setup: { historyIngestMs?: number; compactMs?: number } = {};
  const notes: string[] = [];
  const figures: Figure[] = [];

  // 1. The history stores: A month by month without compaction, B = A compacted.
  const storeA = join(temp, "store-a");
  const storeB = join(temp, "store-b");
  const needStores = sections.has("daily") || sections.has("size") || sections.has("query");
  let historyBars = 0;
  let listingA: Listing = new Map();
  let listingB: Listing = new Map();
  if (needStores) {
    const started = performance.now();
    for (const timeframe of ["1m", "1d"] as const) {
      for (const month of workload.months) {
        console.error(
          `History: ingest --no-compact ${timeframe} ${month.first}..${month.last} ` +
            `(${symbols.length} symbols)...`,
        );
        const run = await runFakeIngest(context, storeA, {
          start: month.first,
          end: month.last,
          timeframe,
          workers: workload.workers,
          extra: ["--no-compact"],
        });
        if (timeframe === "1m") historyBars += run.barsWritten;
      }
    }
    setup.historyIngestMs = performance.now() - started;
    await _checkStore(storeA, {
      "1m": symbols.length * workload.months.length,
      "1d": symbols.length * workload.months.length,
    });
    listingA = await listTree(storeA);
    console.error("Compacting a hard-linked copy of the history (store B)...");
    await linkCopy(storeA, storeB);
    let compactMs = 0;
    for (const timeframe of ["1m", "1d"]) {
      const run = await runCli(
        context,
        ["compact", `--timeframe=${timeframe}`, `--data-dir=${storeB}`],
        `marketpipe compact --timeframe ${timeframe}`,
      );
      compactMs += run.wallMs;
    }
    setup.compactMs = compactMs;
    await _checkStore(storeB, { "1m": symbols.length, "1d": symbols.length });
    await checkUnchanged(storeA, listingA);
    listingB = await listTree(storeB);
  }
  // Store C: the same monthly 1m ingests with the default automatic merging, what a user who
  // ingests month by month gets (A is the worst case: merging turned off).
  const storeC = join(temp, "store-c");
  let filesC = 0;
  if (sections.has("query")) {
    for (const month of workload.months) {
      console.error(
        `History: ingest 1m ${month.first}..${month.last} (${symbols.length} symbols, ` +
          "default merging)...",
      );
      await runFakeIngest(context, storeC, {
        start: month.first,
        end: month.last,
        timeframe: "1m",
        workers: workload.workers,
      });
    }
    filesC = _countParquet(await listTree(storeC), "1m");
  }
  const filesA = _countParquet(listingA, "1m");
  const filesB = _countParquet(listingB, "1m");
  const names = {
    a: `store A (${formatCount(filesA)} 1m files)`,
    b: `store B (${formatCount(filesB)} 1m files)`,
    c: `store C (${formatCount(filesC)} 1m files, default merging)`,
  };

  // 2. Daily update into copies of A and B vs the same ingests into an empty data directory.
  let daily: Record<"empty" | "a" | "b", DailySample[]> | undefined;
  if (sections.has("daily")) {
    daily = { empty: [], a: [], b: [] };
    const masters = { a: storeA, b: storeB };
    for (let run = 0; run < runs; run++) {
      for (const kind of rotate(["empty", "a", "b"] as const, run)) {
        console.error(
          `Daily update ${UPDATE_DAY} (1m, 1d) into ${_storeName(kind)} (run ${
            run + 1
          } of ${runs})...`,
        );
        const dir = join(temp, `update-${kind}`);
        if (kind !== "empty") await linkCopy(masters[kind], dir);
        daily[kind].push(await _dailyUpdate(context, dir, workload.workers));
        await Deno.remove(dir, { recursive: true });
      }
      // The copies share the masters' Parquet files by hard link: a write in place would have
      // changed them, and every later figure with them.
      await checkUnchanged(storeA, listingA);
      await checkUnchanged(storeB, listingB);
    }
    for (const kind of ["a", "b"] as const) {
      const [ours, empty] = [daily[kind], daily.empty];
      const pair = (
        what: string,
        unit: Figure["unit"],
        of: (sample: DailySample) => number | null,
        target: number | null,
      ) =>
        _paired(
          `daily update into ${names[kind]}, ${what} (1m + 1d)`,
          unit,
          ours.map(of) as number[],
          empty.map(of) as number[],
          "empty store",
          target,
        );
      figures.push(
        pair("Parquet bytes written", "bytes", (s) => s.parquetBytes, TARGETS.updateBytes),
        pair("wall time", "ms", (s) => s.wallMs, TARGETS.updateWall),
      );
      const kernel = ours.map((s) => s.kernelWriteBytes);
      const kernelEmpty = empty.map((s) => s.kernelWriteBytes);
      if (kernel.every((v) => v !== null) && kernelEmpty.every((v) => v !== null && v > 0)) {
        figures.push(
          pair("kernel write_bytes, all files", "bytes", (s) => s.kernelWriteBytes, null),
        );
      }
    }
  }

  // 3. Bytes per million 1m bars vs one zstd file of the same rows; the file is also the raw
  // baseline of the queries.
  const reference = join(temp, "reference.parquet");
  let referenceRows = 0;
  let referenceBytes = 0;
  if (sections.has("size") || sections.has("query")) {
    console.error("Writing the same rows to one sorted zstd file with native DuckDB...");
    referenceRows = await _writeReference(storeA, reference);
    referenceBytes = (await Deno.stat(reference)).size;
    if (referenceRows !== historyBars) {
      throw new Error(
        `Cannot benchmark: store A's 1m files hold ${referenceRows} rows, its ingests wrote ` +
          `${historyBars}`,
      );
    }
  }
  if (sections.has("size")) {
    const perMillion = (bytes: number) => bytes / (referenceRows / 1e6);
    const refPerMillion = perMillion(referenceBytes);
    for (const [label, listing] of [[names.a, listingA], [names.b, listingB]] as const) {
      figures.push(
        _single(
          `bytes per million 1m bars, ${label}`,
          "bytes/M bars",
          perMillion(_parquetBytes(listing, "1m")),
          refPerMillion,
          "one zstd file",
          TARGETS.bytesPerMillion,
        ),
      );
    }
  }

  // 4. Queries: ours over A and B in-process, raw DuckDB over the one file, interleaved rounds.
  let queries: Awaited<ReturnType<typeof _timeQueries>> | undefined;
  if (sections.has("query")) {
    const pointDay = history[Math.floor(history.length / 2)];
    queries = await _timeQueries(
      { a: storeA, b: storeB, c: storeC, reference },
      { symbol: symbols[0], day: pointDay, rows: referenceRows, rounds: workload.queryRuns },
      signal,
    );
    const { point, count, range } = queries.samples;
    const { a, b, c } = names;
    const raw = "raw DuckDB, one file";
    figures.push(
      _paired(`point query, ${a}`, "ms", point.a, point.b, b, TARGETS.pointManyFiles),
      _paired(`point query, ${c}`, "ms", point.c, point.b, b, TARGETS.pointManyFiles),
      _paired(`point query, ${a}`, "ms", point.a, point.raw, raw, TARGETS.pointRaw),
      _paired(`point query, ${b}`, "ms", point.b, point.raw, raw, TARGETS.pointRaw),
      _paired(`point query, ${c}`, "ms", point.c, point.raw, raw, TARGETS.pointRaw),
      _paired(`count(*) of the year, ${a}`, "ms", count.a, count.raw, raw, TARGETS.countRaw),
      _paired(`count(*) of the year, ${b}`, "ms", count.b, count.raw, raw, TARGETS.countRaw),
      _paired(`count(*) of the year, ${c}`, "ms", count.c, count.raw, raw, TARGETS.countRaw),
      _paired(`min(ts), max(ts) of the year, ${a}`, "ms", range.a, range.raw, raw, null),
      _paired(`min(ts), max(ts) of the year, ${b}`, "ms", range.b, range.raw, raw, null),
    );
  }

  // 5. Ingest of the whole 1m history vs the limits, alternating.
  let ingest: Awaited<ReturnType<typeof _benchIngest>> | undefined;
  if (sections.has("ingest")) {
    ingest = await _benchIngest(context, workload);
    const oursWall = ingest.samples.ours.map((r) => r.wallMs);
    for (const [kind, limit] of Object.entries(ingest.limits)) {
      figures.push(
        _paired(
          `ingest ${formatCount(ingest.bars)} 1m bars, ${workload.workers} workers, wall time`,
          "ms",
          oursWall,
          limit!.samples.map((r) => r.wallMs),
          limit!.name,
          kind === "layout" ? TARGETS.ingestLayout : null,
        ),
      );
    }
    if (referenceRows === ingest.bars) {
      figures.push(
        _single(
          `bytes per million 1m bars after one ingest, ${formatCount(ingest.oursFiles)} files`,
          "bytes/M bars",
          ingest.oursBytes / (ingest.bars / 1e6),
          referenceBytes / (referenceRows / 1e6),
          "one zstd file",
          TARGETS.bytesPerMillion,
        ),
      );
    }
    notes.push(...ingest.notes);
  }

  return {
    ...await reportHead(startedAt),
    workload: {
      symbols: symbols.length,
      historyDays: history.length,
      historyStart: first,
      historyEnd: last,
      months: workload.months.length,
      updateDay: UPDATE_DAY,
      historyBars1m: historyBars,
      seed: FAKE_SEED,
      gapRate: FAKE_GAP_RATE,
      workers: workload.workers,
      runs,
      queryRuns: workload.queryRuns,
      sections: [...sections],
    },
    setup: {
      ...setup,
      filesA1m: filesA,
      filesB1m: filesB,
      bytesA1m: _parquetBytes(listingA, "1m"),
      bytesB1m: _parquetBytes(listingB, "1m"),
      referenceRows,
      referenceBytes,
    },
    daily,
    queries,
    ingest,
    figures: figures.map((f) => ({ ...f, pass: f.target === null ? null : f.ratio <= f.target })),
    notes,
  };
}

/** What one daily update (1m then 1d) wrote and how long it took. */
interface DailySample {
  wallMs: number;
  parquetBytes: number;
  parquetFiles: number;
  /** Parquet files that were there before and are gone or replaced after. */
  parquetReplaced: number;
  kernelWriteBytes: number | null;
  perTimeframe: Record<string, Omit<DailySample, "perTimeframe">>;
}

async function _dailyUpdate(context: Context, dir: string, workers: number): Promise<DailySample> {
  const total: DailySample = {
    wallMs: 0,
    parquetBytes: 0,
    parquetFiles: 0,
    parquetReplaced: 0,
    kernelWriteBytes: 0,
    perTimeframe: {},
  };
  for (const timeframe of ["1m", "1d"] as const) {
    const before = await listTree(dir);
    const run = await runFakeIngest(context, dir, {
      start: UPDATE_DAY,
      end: UPDATE_DAY,
      timeframe,
      workers,
    });
    const part = {
      wallMs: run.wallMs,
      ...parquetWritten(before, await listTree(dir)),
      kernelWriteBytes: run.kernelWriteBytes,
    };
    total.perTimeframe[timeframe] = part;
    total.wallMs += part.wallMs;
    total.parquetBytes += part.parquetBytes;
    total.parquetFiles += part.parquetFiles;
    total.parquetReplaced += part.parquetReplaced;
    total.kernelWriteBytes = sumOrNull(total.kernelWriteBytes, part.kernelWriteBytes);
  }
  return total;
}

const QUERIES = ["point", "count", "range"] as const;

/** A `ts` of a result as epoch ms: an ISO string from runQuery, a DuckDB value from raw DuckDB. */
function _epochMs(value: unknown): number {
  return typeof value === "string"
    ? Date.parse(value)
    : Number((value as { micros: bigint }).micros / 1000n);
}

/**
 * Time the point query, `count(*)` and `min(ts), max(ts)`, ours through the query engine over stores A and B, raw
 * DuckDB over the one sorted file, in rounds (one warm-up round first, the runners' order rotated
 * each round) so that load from elsewhere falls on all alike. Every runner must return the same.
 */
async function _timeQueries(
  paths: { a: string; b: string; c: string; reference: string },
  options: { symbol: string; day: string; rows: number; rounds: number },
  signal: AbortSignal,
) {
  const columns =
    "symbol, ts, open, high, low, close, volume, vwap, trade_count, trading_date, session";
  const sqls = {
    point: `SELECT ${columns} FROM bars_1m WHERE symbol = ${sqlString(options.symbol)} ` +
      `AND trading_date = DATE ${sqlString(options.day)} ORDER BY ts`,
    count: "SELECT count(*) FROM bars_1m",
    range: "SELECT min(ts), max(ts) FROM bars_1m",
  };
  console.error(`Timing the queries (${options.rounds} rounds after a warm-up)...`);
  const engines: QueryEngine[] = [];
  const raw = await openDuckDB();
  const connection = await raw.connect();
  try {
    engines.push(
      await openQueryEngine(paths.a),
      await openQueryEngine(paths.b),
      await openQueryEngine(paths.c),
    );
    await connection.run(
      `CREATE VIEW bars_1m AS SELECT * FROM read_parquet(${sqlString(paths.reference)})`,
    );
    const ours = (engine: QueryEngine) => async (sql: string) =>
      (await runQuery(engine, sql, { limit: 100_000 })).rows;
    const runners = {
      a: ours(engines[0]),
      b: ours(engines[1]),
      c: ours(engines[2]),
      raw: async (sql: string) => (await connection.runAndReadAll(sql)).getRows() as unknown[][],
    };
    const samples = {
      point: { a: [] as number[], b: [] as number[], c: [] as number[], raw: [] as number[] },
      count: { a: [] as number[], b: [] as number[], c: [] as number[], raw: [] as number[] },
      range: { a: [] as number[], b: [] as number[], c: [] as number[], raw: [] as number[] },
    };
    const results: Record<string, string> = {};
    for (let round = 0; round <= options.rounds; round++) {
      signal.throwIfAborted();
      for (const runner of rotate(["a", "b", "c", "raw"] as const, round)) {
        for (const query of QUERIES) {
          const started = performance.now();
          const rows = await runners[runner](sqls[query]);
          const ms = performance.now() - started;
          if (round > 0) samples[query][runner].push(ms);
          // What must agree: the point query's row count, the count's value, the ts range.
          const result = query === "point"
            ? String(rows.length)
            : query === "count"
            ? String(Number(rows[0][0]))
            : rows[0].map(_epochMs).join(" ");
          const key = `${query}\0${runner}`;
          if (results[key] !== undefined && results[key] !== result) {
            throw new Error(
              `Cannot benchmark: the ${query} query on ${runner} returned ${results[key]} in one ` +
                `round and ${result} in another`,
            );
          }
          results[key] = result;
        }
      }
    }
    for (const query of QUERIES) {
      const seen = ["a", "b", "c", "raw"].map((runner) => results[`${query}\0${runner}`]);
      if (new Set(seen).size !== 1) {
        throw new Error(
          `Cannot benchmark: the ${query} query returned ${
            seen.join(", ")
          } on A, B, C and the file`,
        );
      }
    }
    if (Number(results["count\0raw"]) !== options.rows) {
      throw new Error(
        `Cannot benchmark: count(*) is ${results["count\0raw"]}, not ${options.rows}`,
      );
    }
    return {
      sql: sqls,
      pointRows: Number(results["point\0raw"]),
      samples,
    };
  } finally {
    for (const engine of engines) engine.close();
    connection.closeSync();
    raw.closeSync();
  }
}

/** The limits of the ingest: see {@link _limit}. */
type LimitKind = "layout" | "partition-by" | "file";

const LIMIT_NAMES: Record<LimitKind, string> = {
  layout: "same-layout limit",
  "partition-by": "PARTITION_BY limit",
  file: "one-file limit",
};

/** Ingest the whole 1m history `--runs` times, alternating with the limits. */
async function _benchIngest(context: Context, workload: Workload) {
  const { temp, signal } = context;
  const first = workload.history[0];
  const last = workload.history.at(-1)!;
  const limits: LimitKind[] = workload.partitionBy
    ? ["layout", "partition-by", "file"]
    : ["layout", "file"];
  const ours: Measured[] = [];
  const samples = new Map<LimitKind, { run: Measured; inside: LimitResult }[]>(
    limits.map((kind) => [kind, []]),
  );
  const outputs = new Map<LimitKind, LimitOutput>();
  let bars = 0;
  let oursFiles = 0;
  let oursBytes = 0;
  for (let run = 0; run < workload.runs; run++) {
    for (const kind of rotate(["ours", ...limits] as const, run)) {
      const of = `(run ${run + 1} of ${workload.runs})`;
      const out = join(temp, `ingest-${kind}`);
      await Deno.remove(out, { recursive: true }).catch(ignoreNotFound);
      signal.throwIfAborted();
      if (kind === "ours") {
        console.error(
          `Ingest: ${workload.symbols.length} symbols x ${workload.history.length} days of 1m ` +
            `with ${workload.workers} workers ${of}...`,
        );
        const measured = await runFakeIngest(context, out, {
          start: first,
          end: last,
          timeframe: "1m",
          workers: workload.workers,
        });
        if (run > 0 && measured.barsWritten !== bars) {
          throw new Error(
            `Cannot benchmark: ingest run ${
              run + 1
            } wrote ${measured.barsWritten} bars, run 1 ${bars}`,
          );
        }
        bars = measured.barsWritten;
        ours.push(measured);
        const listing = await listTree(out);
        oursFiles = _countParquet(listing, "1m");
        oursBytes = _parquetBytes(listing, "1m");
      } else {
        console.error(`Ingest: the ${LIMIT_NAMES[kind]} ${of}...`);
        const measured = await runDenoChild(
          context,
          denoRun(SELF, [
            `--limit=${kind}`,
            `--out=${out}`,
            `--symbols-file=${context.symbolsFile}`,
            `--start=${first}`,
            `--end=${last}`,
          ]),
          `the ${LIMIT_NAMES[kind]}`,
        );
        samples.get(kind)!.push({ run: measured, inside: JSON.parse(measured.stdout) });
        if (!outputs.has(kind)) outputs.set(kind, await _checkLimitOutput(out, kind));
      }
      await Deno.remove(out, { recursive: true });
    }
  }
  const notes: string[] = [];
  for (const [kind, runs] of samples) {
    const rows = runs.map((r) => r.inside.rows);
    if (rows.some((n) => n !== bars)) {
      throw new Error(
        `Cannot benchmark: the ${LIMIT_NAMES[kind]} wrote ${rows.join(", ")} rows, ours ${bars}`,
      );
    }
    const output = outputs.get(kind)!;
    if (output.outOfOrder > 0 || output.files !== output.partitions) {
      notes.push(
        `The ${LIMIT_NAMES[kind]} (DuckDB ${runs[0].inside.duckdbVersion}) wrote ` +
          `${output.files} files in ${output.partitions} partitions with ` +
          `${formatCount(output.outOfOrder)} rows out of ts order: not the output we must write.`,
      );
    }
  }
  return {
    bars,
    oursFiles,
    oursBytes,
    peakRssBytes: maxOrNull(ours.map((r) => r.peakRssBytes)),
    rssMethod: ours[0].rssMethod,
    samples: { ours: ours.map(_sampleOf) },
    limits: Object.fromEntries(
      [...samples].map(([kind, runs]) => [kind, {
        name: LIMIT_NAMES[kind],
        output: outputs.get(kind)!,
        peakRssBytes: maxOrNull(runs.map((r) => r.run.peakRssBytes)),
        phases: _phaseMedians(runs.map((r) => r.inside)),
        samples: runs.map((r) => ({ ..._sampleOf(r.run), inside: r.inside })),
      }]),
    ) as Partial<Record<LimitKind, LimitReport>>,
    notes,
  };
}

/** One limit's figures in the report. */
interface LimitReport {
  name: string;
  output: LimitOutput;
  peakRssBytes: number | null;
  phases: Record<string, number>;
  samples: (ReturnType<typeof _sampleOf> & { inside: LimitResult })[];
}

/** What the limit child reports on stdout. */
interface LimitResult {
  kind: LimitKind;
  rows: number;
  /** DuckDB start-up. */
  openMs: number;
  /** `generateFakeDay` alone, summed. */
  generateMs: number;
  /** Generation and columnar append into the in-memory table. */
  loadMs: number;
  /** The COPY statement(s): encoding, compression, writing (and sorting, for partition-by). */
  copyMs: number;
  fsyncMs: number;
  /** From the start of `main` to the end of the fsync. */
  totalMs: number;
  duckdbVersion: string;
}

const _LIMIT_TYPES: DuckDBType[] = [
  DuckDBUSmallIntType.instance,
  ...Array.from({ length: 8 }, () => DuckDBDoubleType.instance),
  DuckDBUTinyIntType.instance,
  DuckDBIntegerType.instance,
];
const _CHUNK_ROWS = 2048;
const _SESSION_CODES = { pre: 0, regular: 1, post: 2 } as const;

/**
 * The limit child (`--limit KIND`): generate the rows our ingest stores, with the same generator,
 * seed and gap rate, in (symbol, ts) order; append them to an in-memory DuckDB table in columnar
 * chunks (as our writer does); write them with the columns of our files, zstd, and fsync:
 *
 * - `layout`: one `COPY` per (symbol, year) to `<out>/bars/timeframe=1m/symbol=S/year=Y/`, each
 *   a filtered scan of the table, which keeps its (ts) order (the same layout and sort as ours);
 * - `partition-by`: ONE `COPY ... ORDER BY symbol, ts` with `PARTITION_BY (symbol, year)` to the
 *   same folders (DuckDB 1.5 writes such files out of ts order, so this is not our output);
 * - `file`: ONE `COPY` of all rows with a symbol column to the one file `<out>`, in table order.
 *
 * Prints one JSON line ({@link LimitResult}).
 */
async function _limit(flags: {
  limit: LimitKind;
  out: string;
  symbolsFile: string;
  start: string;
  end: string;
}): Promise<number> {
  const started = performance.now();
  const symbols = (await Deno.readTextFile(flags.symbolsFile)).split(/\s+/).filter(Boolean);
  const days = tradingDays(flags.start, flags.end);
  await withDuckDB(async (connection) => {
    const version = String((await connection.runAndReadAll("SELECT version()")).getRows()[0][0]);
    const opened = performance.now();
    await connection.run(
      "CREATE TABLE incoming (si USMALLINT, ts DOUBLE, open DOUBLE, high DOUBLE, low DOUBLE, " +
        "close DOUBLE, volume DOUBLE, vwap DOUBLE, trade_count DOUBLE, session UTINYINT, " +
        "day INTEGER)",
    );
    const appender = await connection.createAppender("incoming");
    let generateMs = 0;
    let rows = 0;
    try {
      let chunk = DuckDBDataChunk.create(_LIMIT_TYPES, _CHUNK_ROWS);
      let v = _LIMIT_TYPES.map((_, i) => chunk.getColumnVector(i));
      let n = 0;
      const flush = () => {
        for (const vector of v) vector.flush();
        if (n < _CHUNK_ROWS) chunk.rowCount = n;
        appender.appendDataChunk(chunk);
        rows += n;
        n = 0;
        chunk = DuckDBDataChunk.create(_LIMIT_TYPES, _CHUNK_ROWS);
        v = _LIMIT_TYPES.map((_, i) => chunk.getColumnVector(i));
      };
      for (let si = 0; si < symbols.length; si++) {
        for (const date of days) {
          const t = performance.now();
          const bars = generateFakeDay(symbols[si], date, {
            seed: FAKE_SEED,
            gapRate: FAKE_GAP_RATE,
          });
          generateMs += performance.now() - t;
          const day = Date.parse(`${date}T00:00:00Z`) / 86_400_000;
          for (const bar of bars) {
            v[0].setItem(n, si);
            v[1].setItem(n, bar.ts);
            v[2].setItem(n, bar.open);
            v[3].setItem(n, bar.high);
            v[4].setItem(n, bar.low);
            v[5].setItem(n, bar.close);
            v[6].setItem(n, bar.volume);
            v[7].setItem(n, bar.vwap);
            v[8].setItem(n, bar.tradeCount);
            v[9].setItem(n, _SESSION_CODES[bar.session]);
            v[10].setItem(n, day);
            if (++n === _CHUNK_ROWS) flush();
          }
        }
      }
      if (n > 0) flush();
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    const loaded = performance.now();
    const columns = `to_timestamp(ts / 1000) AS ts, open, high, low, close, volume, vwap,
      CAST(trade_count AS BIGINT) AS trade_count,
      CAST(DATE '1970-01-01' + day AS DATE) AS trading_date,
      CASE session WHEN 0 THEN 'pre' WHEN 1 THEN 'regular' ELSE 'post' END AS session,
      'fake' AS provider, 'sip' AS feed, 'raw' AS adjustment,
      ${sqlString(crypto.randomUUID())} AS ingest_id,
      CAST(${sqlString(new Date().toISOString())} AS TIMESTAMPTZ) AS ingested_at,
      CAST(${SCHEMA_VERSION} AS INTEGER) AS schema_version`;
    const symbol = `[${symbols.map(sqlString).join(", ")}][si + 1]`;
    const root = join(flags.out, "bars", "timeframe=1m");
    if (flags.limit === "layout") {
      const years = [...new Set(days.map((day) => day.slice(0, 4)))];
      for (let si = 0; si < symbols.length; si++) {
        for (const year of years) {
          const from = Date.parse(`${year}-01-01T00:00:00Z`) / 86_400_000;
          const to = Date.parse(`${Number(year) + 1}-01-01T00:00:00Z`) / 86_400_000;
          const dir = join(root, `symbol=${symbols[si]}`, `year=${Number(year)}`);
          await Deno.mkdir(dir, { recursive: true });
          await connection.run(
            `COPY (SELECT ${columns} FROM incoming WHERE si = ${si} AND day >= ${from}
               AND day < ${to}) TO ${sqlString(join(dir, "data_0.parquet"))}
             (FORMAT parquet, COMPRESSION zstd)`,
          );
        }
      }
    } else if (flags.limit === "partition-by") {
      await Deno.mkdir(root, { recursive: true });
      await connection.run(
        `COPY (SELECT ${symbol} AS symbol, CAST(year(DATE '1970-01-01' + day) AS INTEGER) AS year,
           ${columns} FROM incoming ORDER BY symbol, ts)
         TO ${sqlString(root)} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (symbol, year))`,
      );
    } else {
      await connection.run(
        `COPY (SELECT ${symbol} AS symbol, ${columns} FROM incoming)
         TO ${sqlString(flags.out)} (FORMAT parquet, COMPRESSION zstd)`,
      );
    }
    const copied = performance.now();
    await _fsyncTree(flags.out);
    const end = performance.now();
    const result: LimitResult = {
      kind: flags.limit,
      rows,
      openMs: opened - started,
      generateMs,
      loadMs: loaded - opened,
      copyMs: copied - loaded,
      fsyncMs: end - copied,
      totalMs: end - started,
      duckdbVersion: version,
    };
    console.log(JSON.stringify(result));
  });
  return 0;
}

/** fsync a file, or every file and folder under a folder (as our writer syncs what it writes). */
async function _fsyncTree(path: string): Promise<void> {
  const info = await Deno.stat(path);
  if (info.isFile) {
    await fsyncFile(path);
    return;
  }
  for await (const entry of Deno.readDir(path)) await _fsyncTree(join(path, entry.name));
  await fsyncDir(path);
}

/** Files, partitions, bytes and sort order of what a limit wrote. */
interface LimitOutput {
  files: number;
  bytes: number;
  /** Folders holding files (1 for the one file). */
  partitions: number;
  /** Rows whose ts is below the previous row's in the same file (and symbol). */
  outOfOrder: number;
}

/** Check what a limit wrote (not timed; once per limit). */
async function _checkLimitOutput(out: string, kind: LimitKind): Promise<LimitOutput> {
  const single = kind === "file";
  const stats = single
    ? { files: 1, bytes: (await Deno.stat(out)).size }
    : await treeStats(out, (name) => name.endsWith(".parquet"));
  return await withDuckDB(async (connection) => {
    const glob = single ? out : join(out, "bars", "timeframe=1m", "**", "*.parquet");
    const reader = `read_parquet(${sqlString(glob)}, filename = true, file_row_number = true, ` +
      "hive_partitioning = false)";
    const group = single ? "symbol" : "filename";
    const [[partitions, outOfOrder]] = (await connection.runAndReadAll(
      `SELECT count(DISTINCT parse_dirpath(filename)), count(*) FILTER (WHERE back)
       FROM (SELECT filename, ts < lag(ts) OVER (PARTITION BY ${group} ORDER BY file_row_number)
         AS back FROM ${reader})`,
    )).getRows();
    return {
      files: stats.files,
      bytes: stats.bytes,
      partitions: Number(partitions),
      outOfOrder: Number(outOfOrder),
    };
  });
}

/**
 * Write store A's 1m rows, as read back from its files, to one zstd Parquet file sorted by
 * (symbol, ts): the columns of the files plus the symbol from the hive path. Returns its rows.
 */
async function _writeReference(store: string, file: string): Promise<number> {
  return await withDuckDB(async (connection) => {
    const glob = join(store, "bars", "timeframe=1m", "**", "*.parquet");
    const copied = await connection.run(
      `COPY (SELECT symbol, COLUMNS(c -> c NOT IN ('symbol', 'timeframe', 'year', 'month'))
         FROM read_parquet(${sqlString(glob)}, hive_partitioning = true) ORDER BY symbol, ts)
       TO ${sqlString(file)} (FORMAT parquet, COMPRESSION zstd)`,
    );
    return Number(copied.rowsChanged);
  });
}

/**
 * Refuse to start on a build without storage v2's `compact` command and `ingest --no-compact`:
 * both run once on a one-symbol, one-day data directory.
 */
async function _preflight(context: Context): Promise<void> {
  const dataDir = join(context.temp, "preflight");
  const run = async (name: string, args: string[]) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: denoRun(MAIN, [...args, `--data-dir=${dataDir}`]),
      cwd: ROOT,
      env: context.env,
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      signal: context.signal,
    }).output();
    if (!output.success) {
      const error = new TextDecoder().decode(output.stderr).trim();
      throw new Error(
        `Cannot benchmark: \`marketpipe ${name}\` failed on this build ` +
          `(${error.split("\n").at(-1)}); bench:lake needs the storage v2 writer of issue 10`,
      );
    }
  };
  await run("ingest --no-compact", [
    "ingest",
    "--no-compact",
    "--provider=fake",
    "--symbols=S000",
    `--start=${UPDATE_DAY}`,
  ]);
  await run("compact", ["compact", "--timeframe=1m"]);
  await Deno.remove(dataDir, { recursive: true });
}

/**
 * The shape every comparison depends on: layout 2, and as many 1m and 1d Parquet files as
 * partitions times ingests (or one per partition after `compact`).
 */
async function _checkStore(dir: string, expected: Record<"1m" | "1d", number>): Promise<void> {
  let layout: unknown;
  try {
    layout = JSON.parse(await Deno.readTextFile(join(dir, "layout.json"))).layout;
  } catch (error) {
    throw new Error(`Cannot benchmark: cannot read ${join(dir, "layout.json")}`, { cause: error });
  }
  if (layout !== LAYOUT_VERSION) {
    throw new Error(`Cannot benchmark: ${dir} has layout ${layout}, expected ${LAYOUT_VERSION}`);
  }
  const listing = await listTree(dir);
  for (const timeframe of ["1m", "1d"] as const) {
    const files = _countParquet(listing, timeframe);
    if (files !== expected[timeframe]) {
      throw new Error(
        `Cannot benchmark: ${dir} holds ${files} ${timeframe} Parquet files, expected ` +
          `${expected[timeframe]}`,
      );
    }
  }
}

function _countParquet(listing: Listing, timeframe: string): number {
  return _parquetOf(listing, timeframe).length;
}

function _parquetBytes(listing: Listing, timeframe: string): number {
  return _parquetOf(listing, timeframe).reduce((sum, [, state]) => sum + state.size, 0);
}

function _parquetOf(listing: Listing, timeframe: string) {
  return parquetFiles(listing, `bars/timeframe=${timeframe}/`);
}

function _paired(
  name: string,
  unit: Figure["unit"],
  ours: number[],
  baseline: number[],
  baselineName: string,
  target: number | null,
): Figure {
  return {
    name,
    unit,
    ours: median(ours),
    baselineName,
    baseline: median(baseline),
    ...pairRatios(ours, baseline),
    target,
  };
}

function _single(
  name: string,
  unit: Figure["unit"],
  ours: number,
  baseline: number,
  baselineName: string,
  target: number | null,
): Figure {
  return { name, unit, ours, baselineName, baseline, ratio: ours / baseline, ratios: [], target };
}

function _render(report: Report): string {
  const { workload, setup, ingest } = report;
  const show = (value: number, unit: Figure["unit"]) =>
    unit === "ms" ? formatMs(value) : formatBytes(value);
  const lines = [
    "",
    `MarketPipe lake benchmark, ${report.startedAt}, tree ${report.revision ?? "unknown"}`,
    machineLine(report.machine),
    `workload  ${workload.symbols} symbols x ${workload.historyDays} trading days ` +
    `(${workload.historyStart}..${workload.historyEnd}, ${workload.months} months) of 1m and 1d, ` +
    `update day ${workload.updateDay}; fake seed ${workload.seed}, gapRate ${workload.gapRate}, ` +
    `${workload.workers} workers, ${workload.runs} runs`,
  ];
  if (setup.filesA1m > 0) {
    const a = `${formatCount(setup.filesA1m)} files (${formatBytes(setup.bytesA1m)})`;
    const b = `${formatCount(setup.filesB1m)} files (${formatBytes(setup.bytesB1m)})`;
    const reference = setup.referenceBytes > 0
      ? `; one sorted zstd file of the same rows: ${formatBytes(setup.referenceBytes)}`
      : "";
    lines.push(
      `stores    A: ${formatCount(workload.historyBars1m)} 1m bars in ${a}, monthly ingests in ` +
        `${formatMs(setup.historyIngestMs ?? 0)}; B: A compacted to ${b} in ` +
        `${formatMs(setup.compactMs ?? 0)}${reference}`,
    );
  }
  if (report.daily) {
    lines.push(
      "daily     ingest of the update day in 1m, then in 1d (two CLI children); bytes = sizes of " +
        "the Parquet files they created or replaced (data directory listing before and after); " +
        "kernel = write_bytes of the child, all files",
    );
    for (const kind of ["empty", "a", "b"] as const) {
      const first = report.daily[kind][0].perTimeframe;
      const part = (tf: string) => {
        const { parquetFiles, parquetReplaced, parquetBytes, wallMs, kernelWriteBytes } = first[tf];
        return `${tf} ${parquetFiles} files written, ${parquetReplaced} replaced, ` +
          `${formatBytes(parquetBytes)} (kernel ${bytesOrNa(kernelWriteBytes)}) ` +
          `in ${formatMs(wallMs)}`;
      };
      const store = kind === "empty" ? "empty store" : `store ${kind.toUpperCase()}`;
      lines.push(`          run 1, ${store}: ${part("1m")}; ${part("1d")}`);
    }
  }
  if (report.queries) {
    lines.push(
      `queries   ours: openQueryEngine + runQuery over A and B; raw: native DuckDB over the one ` +
        `file; ${workload.queryRuns} rounds; point query returns ` +
        `${formatCount(report.queries.pointRows)} rows`,
    );
  }
  if (ingest) {
    const phases = (p: Record<string, number>) =>
      `open ${formatMs(p.openMs)}, generate+append ${formatMs(p.loadMs)} (generate ` +
      `${formatMs(p.generateMs)}), COPY ${formatMs(p.copyMs)}, fsync ${formatMs(p.fsyncMs)}`;
    lines.push(
      `ingest    ours: marketpipe ingest (CLI child) wrote ${
        formatCount(ingest.oursFiles)
      } files ` +
        `(${formatBytes(ingest.oursBytes)}); peak RSS by ${ingest.rssMethod}; limits (fresh ` +
        "children, same rows):",
    );
    for (const limit of Object.values(ingest.limits)) {
      const { output } = limit!;
      lines.push(
        `          ${limit!.name}: ${phases(limit!.phases)}; ${formatCount(output.files)} ` +
          `file${output.files === 1 ? "" : "s"} (${formatBytes(output.bytes)}), ` +
          `peak RSS ${bytesOrNa(limit!.peakRssBytes)}`,
      );
    }
  }
  lines.push("");
  for (const figure of report.figures) {
    const { spread, verdict } = ratioVerdict(figure);
    lines.push(
      `${figure.name}: ours ${show(figure.ours, figure.unit)} vs ${figure.baselineName} ` +
        `${show(figure.baseline, figure.unit)} = ` +
        `${figure.ratio.toFixed(2)}x${spread} (${verdict})`,
    );
  }
  if (ingest) {
    const pass = ingest.peakRssBytes !== null && ingest.peakRssBytes < TARGETS.peakRssBytes;
    lines.push(
      `ingest peak RSS, ${workload.workers} workers: ours ${bytesOrNa(ingest.peakRssBytes)} ` +
        `(target < ${formatBytes(TARGETS.peakRssBytes)}, ${pass ? "PASS" : "MISS"})`,
    );
  }
  for (const note of report.notes) lines.push("", `note: ${note}`);
  lines.push("", "PASS/MISS is information, not a test: the process exits 0 either way.");
  return lines.join("\n");
}

function _phaseMedians(results: LimitResult[]): Record<string, number> {
  const keys = ["openMs", "generateMs", "loadMs", "copyMs", "fsyncMs", "totalMs"] as const;
  return Object.fromEntries(keys.map((key) => [key, median(results.map((r) => r[key]))]));
}

function _sampleOf(run: Measured) {
  return { ...runSample(run), kernelWriteBytes: run.kernelWriteBytes };
}

function _storeName(kind: "empty" | "a" | "b"): string {
  return kind === "empty" ? "an empty store" : kind === "a" ? "a copy of A" : "a copy of B";
}

function _parseFlags(args: string[]):
  | "help"
  | { kind: "bench"; workload: Workload; keep: boolean }
  | { kind: "limit" } & Parameters<typeof _limit>[0] {
  const { values } = parseArgs({
    args,
    options: {
      symbols: { type: "string", default: "20" },
      days: { type: "string", default: String(HISTORY_DAYS.length) },
      runs: { type: "string", default: "3" },
      "query-runs": { type: "string", default: "15" },
      workers: { type: "string", default: "8" },
      only: { type: "string", default: SECTIONS.join(",") },
      keep: { type: "boolean", default: false },
      "partition-by": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      // The limit child, spawned by the benchmark itself.
      limit: { type: "string" },
      out: { type: "string" },
      "symbols-file": { type: "string" },
      start: { type: "string" },
      end: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return "help";
  if (values.limit !== undefined) {
    if (!(values.limit in LIMIT_NAMES)) {
      throw new RangeError(
        `Invalid --limit "${values.limit}": expected ${Object.keys(LIMIT_NAMES).join(", ")}`,
      );
    }
    if (!values.out || !values["symbols-file"] || !values.start || !values.end) {
      throw new TypeError("Missing --out, --symbols-file, --start or --end for --limit");
    }
    return {
      kind: "limit",
      limit: values.limit as LimitKind,
      out: values.out,
      symbolsFile: values["symbols-file"],
      start: values.start,
      end: values.end,
    };
  }
  const sections = new Set<Section>();
  for (const name of values.only.split(",")) {
    if (!(SECTIONS as readonly string[]).includes(name)) {
      throw new RangeError(
        `Invalid --only "${values.only}": expected some of ${SECTIONS.join(",")}`,
      );
    }
    sections.add(name as Section);
  }
  const symbolCount = positiveInt(values.symbols, "--symbols", 10_000);
  const days = positiveInt(values.days, "--days", HISTORY_DAYS.length);
  const history = HISTORY_DAYS.slice(-days);
  const december = tradingDays("2024-12-01", UPDATE_DAY);
  if (december.length !== 21 || december.at(-1) !== UPDATE_DAY) {
    throw new Error(`Cannot benchmark: ${UPDATE_DAY} is not the 21st trading day of its month`);
  }
  const months = [...new Set(history.map((day) => day.slice(0, 7)))].map((month) => {
    const inMonth = history.filter((day) => day.startsWith(month));
    return { first: inMonth[0], last: inMonth.at(-1)! };
  });
  return {
    kind: "bench",
    keep: values.keep,
    workload: {
      symbols: benchSymbols(symbolCount),
      history,
      months,
      workers: positiveInt(values.workers, "--workers", 64),
      runs: positiveInt(values.runs, "--runs", 100),
      queryRuns: positiveInt(values["query-runs"], "--query-runs", 1000),
      sections,
      partitionBy: values["partition-by"],
    },
  };
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
