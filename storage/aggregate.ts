/**
 * Aggregation of stored 1m bars to 5m ... 1d, in DuckDB SQL over the Parquet partitions.
 *
 * Buckets are computed in SQL exactly as `core/aggregate.ts` does: a small table of per-date
 * session instants (built from the NYSE calendar) is joined to the bars, a bucket starts at
 * `open + floor((ts - open) / length) * length` and is clamped to the start of the bar's session.
 * One target partition (timeframe, symbol, year) is rebuilt from the 1m partition of the same
 * symbol and year as one new file that replaces all of the target's live files, through the
 * atomic partition writer. Each target records in SQLite the manifest's list of the 1m files it
 * was built from and of the file it wrote; files are immutable (a new ingest adds or replaces
 * files, which changes the lists), so a run rebuilds only targets whose 1m data (or which itself)
 * changed since. Rows a provider delivered directly for the target timeframe (any `ingest_id`
 * not starting with `agg-`) are kept: for those trading dates the stored frame is the provider's.
 *
 * @module
 */
import { dateValue, type DuckDBConnection, type DuckDBInstance } from "@duckdb/node-api";
import type { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { tradingSession, zonedTime } from "../core/calendar.ts";
import type { Metrics } from "../core/metrics.ts";
import { runPool } from "../core/pool.ts";
import { VWAP_DRIFT } from "../core/aggregate.ts";
import { type Timeframe, TIMEFRAME_MINUTES, TIMEFRAMES } from "../core/types.ts";
import { openDuckDB, readFilesSql, sqlIdent, sqlString } from "./duckdb.ts";
import { partitionDir } from "./layout.ts";
import { type BarFile, listFiles } from "./manifest.ts";
import { type MetaStore, newJobId } from "./meta.ts";
import {
  FILE_COLUMNS,
  type PartitionChange,
  type PartitionFiles,
  type PartitionKey,
  type PartitionWriter,
  replacePartition,
  SCHEMA_VERSION,
} from "./partitions.ts";
import { ownedDirName, removeDeadOwnedDirs } from "./owned_dirs.ts";
import { corruptFileError } from "./corrupt.ts";
import { pathExists } from "./fs.ts";

/** Timeframes aggregation produces from 1m bars. */
export const AGGREGATE_TIMEFRAMES: readonly Timeframe[] = TIMEFRAMES.filter((tf) => tf !== "1m");

/** Prefix of `ingest_id` on aggregated rows; any other id marks a provider's own bar. */
export const AGGREGATE_ID_PREFIX = "agg-";

/** Sessions a daily bar covers. */
export type DailySession = "regular" | "extended";

/** What aggregation needs: the partition writer plus the metadata database. */
export interface AggregationStore {
  dataDir: string;
  duckdb: DuckDBInstance;
  meta: Pick<MetaStore, "lockPartition" | "unlockPartition" | "db">;
  now?: () => number;
}

/** Options of {@link aggregatePartitions}. */
export interface AggregatePartitionsOptions {
  /** Target timeframes; default all of {@link AGGREGATE_TIMEFRAMES}. */
  timeframes?: readonly Timeframe[];
  /** Symbols; default every symbol with 1m bars. */
  symbols?: readonly string[];
  /**
   * First and last trading date of the 1m bars to aggregate; default all. Targets are whole
   * years: every year with 1m bars in the range is rebuilt from all of that year's 1m bars.
   */
  start?: string;
  end?: string;
  /**
   * Sessions of daily bars. Default: what the target was last built with, `regular` for a new one.
   */
  session?: DailySession;
  /** Rebuild every target in scope, changed or not. */
  force?: boolean;
  /** Target partitions of one batch written at once (default 4; as many batches as cores). */
  concurrency?: number;
  signal?: AbortSignal;
  metrics?: Metrics;
  /** Called after each target is checked or rebuilt. */
  onProgress?: (done: number, total: number) => void;
}

/** Per-timeframe outcome of {@link aggregatePartitions}. */
export interface TimeframeAggregation {
  timeframe: Timeframe;
  /** Target partitions rewritten. */
  rebuilt: number;
  /** Target partitions whose 1m data had not changed. */
  upToDate: number;
  /** Bars in the rewritten partitions (aggregated plus provider bars kept). */
  bars: number;
  /** Provider bars kept in the rewritten partitions instead of our aggregation. */
  providerBars: number;
}

/** Outcome of {@link aggregatePartitions}. */
export interface AggregationSummary {
  /** `ingest_id` of the rows written, `agg-...`. */
  runId: string;
  symbols: string[];
  /** 1m partitions (symbol-years) in scope. */
  sources: number;
  timeframes: TimeframeAggregation[];
  rebuilt: number;
  upToDate: number;
  elapsedMs: number;
}

interface _Target {
  key: PartitionKey;
  /** Target partition directory relative to the data directory: its aggregation state key. */
  dir: string;
  /** Live 1m files of the symbol and year, from the manifest. */
  sources: BarFile[];
}

interface _State {
  session: string;
  sources: string;
  targetFingerprint: string;
  nativeRows: number;
}

/**
 * Aggregate stored 1m bars into the partitions of higher timeframes, rebuilding only the targets
 * whose 1m partitions changed since their last aggregation (or all with `force`).
 *
 * @example
 * ```ts
 * const store = await openStore("./data");
 * const target = { dataDir: store.dataDir, duckdb: await store.duckdb(), meta: store.meta };
 * const summary = await aggregatePartitions(target, {
 *   timeframes: ["5m", "1h", "1d"], symbols: ["AAPL"],
 * });
 * console.log(summary.rebuilt, summary.upToDate);
 * ```
 */
export async function aggregatePartitions(
  store: AggregationStore,
  options: AggregatePartitionsOptions = {},
): Promise<AggregationSummary> {
  const started = performance.now();
  const now = store.now ?? Date.now;
  const timeframes = options.timeframes ?? AGGREGATE_TIMEFRAMES;
  _checkOptions(timeframes, options.session);
  const runId = `${AGGREGATE_ID_PREFIX}${newJobId(now())}`;
  // What a killed run staged is removed at the next start, whatever this run has to do: at once
  // when its process is gone, else by age.
  const stagingParent = join(store.dataDir, STAGING_DIR);
  await removeDeadOwnedDirs(stagingParent, AGGREGATE_ID_PREFIX, {
    uncheckedMaxAgeMs: _STALE_STAGING_MS,
    now: now(),
  });
  const db = store.meta.db;
  const { symbols, sources, targets } = _targetsInScope(db, timeframes, options);

  const perTimeframe = new Map<Timeframe, TimeframeAggregation>(
    timeframes.map((
      tf,
    ) => [tf, { timeframe: tf, rebuilt: 0, upToDate: 0, bars: 0, providerBars: 0 }]),
  );
  const summary: AggregationSummary = {
    runId,
    symbols,
    sources,
    timeframes: [...perTimeframe.values()],
    rebuilt: 0,
    upToDate: 0,
    elapsedMs: 0,
  };
  if (targets.length === 0) {
    summary.elapsedMs = performance.now() - started;
    return summary;
  }

  const state = _stateTable(db);
  let done = 0;
  const plans: _Plan[] = [];
  for (const target of targets) {
    const plan = await _planTarget(store.dataDir, db, target, state.get(target.dir), options);
    if (plan) {
      plans.push(plan);
      continue;
    }
    perTimeframe.get(target.key.timeframe)!.upToDate++;
    summary.upToDate++;
    options.onProgress?.(++done, targets.length);
  }

  await _rebuild(store, plans, {
    runId,
    ingestedAt: new Date(now()).toISOString(),
    stagingParent,
    concurrency: options.concurrency ?? 4,
    signal: options.signal,
    onRebuilt: (plan, written) => {
      const { key } = plan.target;
      // What this run wrote, and only that: a file another writer added since is a change.
      const wroteKey = _filesKey(listFiles(db, key).filter((f) => f.jobId === runId));
      state.put(plan, wroteKey, written, now());
      const stats = perTimeframe.get(key.timeframe)!;
      stats.rebuilt++;
      stats.bars += written.rows;
      stats.providerBars += written.nativeRows;
      summary.rebuilt++;
      options.onProgress?.(++done, targets.length);
    },
  });
  options.signal?.throwIfAborted();
  summary.elapsedMs = performance.now() - started;
  options.metrics?.processingTime.observe({ operation: "aggregate" }, summary.elapsedMs / 1000);
  return summary;
}

function _checkOptions(timeframes: readonly Timeframe[], session: string | undefined): void {
  for (const tf of timeframes) {
    if (!AGGREGATE_TIMEFRAMES.includes(tf)) {
      throw new RangeError(
        `Cannot aggregate to timeframe "${tf}": expected one of ${AGGREGATE_TIMEFRAMES.join(", ")}`,
      );
    }
  }
  if (session !== undefined && session !== "regular" && session !== "extended") {
    throw new RangeError(`Invalid session "${session}": expected regular or extended`);
  }
}

/**
 * The 1m partitions (symbol, year) in scope: those with a file holding a date in the range. Each
 * gives one target per timeframe, built from all of that year's 1m files.
 */
function _targetsInScope(
  db: DatabaseSync,
  timeframes: readonly Timeframe[],
  options: Pick<AggregatePartitionsOptions, "symbols" | "start" | "end">,
): { symbols: string[]; sources: number; targets: _Target[] } {
  const minuteFiles = _minutePartitions(db, options.symbols);
  const symbols = options.symbols ? [...options.symbols] : [...minuteFiles.keys()];
  const targets: _Target[] = [];
  let sources = 0;
  for (const symbol of symbols) {
    for (const [year, files] of minuteFiles.get(symbol) ?? []) {
      const inRange = files.some((file) =>
        (options.start === undefined || file.lastDate >= options.start) &&
        (options.end === undefined || file.firstDate <= options.end)
      );
      if (!inRange) continue;
      sources++;
      for (const timeframe of timeframes) {
        const key: PartitionKey = { tree: "bars", timeframe, symbol, year };
        targets.push({ key, dir: _dirOf(key), sources: files });
      }
    }
  }
  return { symbols, sources, targets };
}

/** The `aggregation_state` rows: what each target was last built from, and the files it wrote. */
function _stateTable(db: DatabaseSync) {
  const select = db.prepare(
    "SELECT session, sources, target_fingerprint, native_rows FROM aggregation_state WHERE target = ?",
  );
  const upsert = db.prepare(
    `INSERT INTO aggregation_state (target, timeframe, symbol, session, sources, target_fingerprint, rows, native_rows, aggregated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (target) DO UPDATE SET session = excluded.session, sources = excluded.sources,
       target_fingerprint = excluded.target_fingerprint, rows = excluded.rows,
       native_rows = excluded.native_rows, aggregated_at = excluded.aggregated_at`,
  );
  return {
    get(dir: string): _State | undefined {
      const row = select.get(dir);
      return row
        ? {
          session: row.session as string,
          sources: row.sources as string,
          targetFingerprint: row.target_fingerprint as string,
          nativeRows: Number(row.native_rows),
        }
        : undefined;
    },
    put(plan: _Plan, wroteKey: string, written: _Written, at: number): void {
      const { key, dir } = plan.target;
      upsert.run(
        dir,
        key.timeframe,
        key.symbol,
        plan.session,
        plan.sourceKey,
        wroteKey,
        written.rows,
        written.nativeRows,
        at,
      );
    },
  };
}

/**
 * The plan to rebuild `target`, or undefined when it has not changed: the manifest's lists of its
 * 1m files and of its own files are what the last aggregation recorded (a path never changes
 * content), with the same daily session, and its files are on disk.
 */
async function _planTarget(
  dataDir: string,
  db: DatabaseSync,
  target: _Target,
  state: _State | undefined,
  options: Pick<AggregatePartitionsOptions, "force" | "session">,
): Promise<_Plan | undefined> {
  const sourceKey = _filesKey(target.sources);
  const live = listFiles(db, target.key);
  const liveKey = _filesKey(live);
  const session = target.key.timeframe === "1d"
    ? options.session ?? (state?.session as DailySession | undefined) ?? "regular"
    : "all";
  const ours = state !== undefined && state.targetFingerprint === liveKey;
  if (
    !options.force && ours && state.sources === sourceKey && state.session === session &&
    // A file removed by hand (the manifest still lists it) is rebuilt, not read.
    await _allExist(live.map((file) => join(dataDir, file.path)))
  ) {
    return undefined;
  }
  return {
    target,
    sourceKey,
    session,
    liveKey,
    // Provider rows can only be in files we did not write last, or one we wrote with them.
    mayHoldNative: live.length > 0 && !(ours && state.nativeRows === 0),
  };
}

/** Rows a rebuilt target holds, and how many of them are a provider's own. */
interface _Written {
  rows: number;
  nativeRows: number;
}

/** What the batches of one run share. */
interface _Run {
  runId: string;
  ingestedAt: string;
  stagingParent: string;
  /** Targets of one batch written at once. */
  concurrency: number;
  signal?: AbortSignal;
  onRebuilt: (plan: _Plan, written: _Written) => void;
}

/**
 * Rebuild the planned targets in batches of whole symbols, as many batches at once as there are
 * cores, then remove what the run staged and its tables.
 */
async function _rebuild(
  store: AggregationStore,
  plans: readonly _Plan[],
  run: _Run,
): Promise<void> {
  const years = [...new Set(plans.map((p) => p.target.key.year))].sort();
  const prefix = `mp_agg_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const sessionsTable = `${prefix}_sessions`;
  // A private DuckDB instance with one thread per statement, and as many batches at once as
  // there are cores: a single-threaded partitioned COPY writes its files in order and spends
  // half the CPU per file of a multi-threaded one, and the batches keep every core busy.
  const cores = Math.max(2, navigator.hardwareConcurrency || 2);
  const engine = plans.length > 0 ? await openDuckDB({ threads: 1 }) : store.duckdb;
  const writer: PartitionWriter = { dataDir: store.dataDir, duckdb: engine, meta: store.meta };
  // Staged files live in the data directory (so a rename moves them into place) but outside
  // bars/, where no view or glob reads them. The folder's name records this process, so a later
  // run removes it if this one is killed, and never while it runs.
  const stagingRoot = join(run.stagingParent, ownedDirName(run.runId));
  const connection = await engine.connect();
  try {
    if (plans.length > 0) await createSessionsTable(connection, sessionsTable, years);
    let batches = 0;
    await runPool(_batches(plans), cores, async (batchPlans) => {
      run.signal?.throwIfAborted();
      const batch = batches++;
      await _rebuildBatch(writer, batchPlans, run, {
        prefix: `${prefix}_${batch}`,
        sessionsTable,
        staging: join(stagingRoot, `${batch}`),
      });
    }, { signal: run.signal });
  } finally {
    try {
      await Deno.remove(stagingRoot, { recursive: true }).catch(() => {});
      // Only when empty: another process may be staging beside this one.
      await Deno.remove(run.stagingParent).catch(() => {});
      await connection.run(`DROP TABLE IF EXISTS ${sqlIdent(sessionsTable)}`);
    } finally {
      connection.closeSync();
      if (engine !== store.duckdb) engine.closeSync();
    }
  }
}

/**
 * One batch of whole symbols: their 1m files are read once into 5m buckets, each longer frame is
 * rolled up from the one before (buckets nest: every boundary of a longer frame is one of the
 * shorter), and the target files are written from those small tables.
 */
async function _rebuildBatch(
  writer: PartitionWriter,
  plans: readonly _Plan[],
  run: _Run,
  names: { prefix: string; sessionsTable: string; staging: string },
): Promise<void> {
  const db = writer.meta.db;
  const connection = await writer.duckdb.connect();
  let levels: _Levels | undefined;
  try {
    levels = await _buildBatchLevels(
      connection,
      db,
      plans,
      (file) => join(writer.dataDir, file.path),
      { prefix: names.prefix, sessionsTable: names.sessionsTable },
    );
    const barsOf = (level: string, timeframe: Timeframe, where: string) =>
      barsFromLevelSql(level, {
        timeframe,
        source: levels!.source,
        ingestId: run.runId,
        ingestedAt: run.ingestedAt,
        where,
      });
    const levelOf = (plan: _Plan) => _levelOf(levels!.tables, plan);
    const fresh = (plan: _Plan) => {
      const { symbol, year, timeframe } = plan.target.key;
      return barsOf(
        levelOf(plan),
        timeframe,
        `symbol = ${sqlString(symbol)} AND ${_yearFilter(year)}`,
      );
    };
    // Targets that may hold a provider's rows are merged one by one under their lock; the others
    // are written by ONE partitioned COPY into a staging directory (a COPY per file costs more
    // than the work in it), then each file is checked (one per target, sorted by ts) and renamed
    // into place under the target's lock.
    const staged = await _stage(
      connection,
      names.staging,
      plans.filter((p) => !p.mayHoldNative),
      barsOf,
      levelOf,
    );
    await runPool(plans, run.concurrency, async (plan) => {
      const stagedFile = staged.get(plan.target.dir);
      const written = await replacePartition(writer, plan.target.key, async (files) => {
        // Another writer (a provider's own bars) may have changed the target since it was
        // planned: then its rows are read, not overwritten.
        const unchanged = _filesKey(files.live) === plan.liveKey;
        if (stagedFile !== undefined && unchanged) {
          await Deno.rename(stagedFile.path, files.temp);
          return {
            value: { rows: stagedFile.rows, nativeRows: 0 },
            replaces: files.live,
            wrote: true,
          };
        }
        return await _mergeTarget(files, fresh(plan), plan.mayHoldNative || !unchanged);
      }, { signal: run.signal, jobId: run.runId });
      run.onRebuilt(plan, written);
    }, { signal: run.signal });
  } finally {
    try {
      await Deno.remove(names.staging, { recursive: true }).catch(() => {});
      for (const table of levels?.tables.values() ?? []) {
        await connection.run(`DROP TABLE IF EXISTS ${sqlIdent(table)}`);
      }
    } finally {
      connection.closeSync();
    }
  }
}

interface _Plan {
  target: _Target;
  /** The 1m files read, as recorded in the aggregation state. */
  sourceKey: string;
  session: string;
  /** The target's live files when the run was planned. */
  liveKey: string;
  mayHoldNative: boolean;
}

/** Directory (inside the data directory) of files being staged by aggregation runs. */
export const STAGING_DIR = ".staging";

/**
 * Staging directories whose owner cannot be checked (another host, or one from before owners
 * were recorded) and that have not changed for this long belong to a run that died.
 */
const _STALE_STAGING_MS = 6 * 3_600_000;

/** Live 1m files by symbol, then year, from the manifest (of `symbols` only when given). */
function _minutePartitions(
  db: DatabaseSync,
  symbols: readonly string[] | undefined,
): Map<string, Map<number, BarFile[]>> {
  const files = symbols === undefined
    ? listFiles(db, { tree: "bars", timeframe: "1m" })
    : symbols.flatMap((symbol) => listFiles(db, { tree: "bars", timeframe: "1m", symbol }));
  return new Map(
    [...Map.groupBy(files, (file) => file.symbol)]
      .map(([symbol, list]) => [symbol, Map.groupBy(list, (file) => file.year)]),
  );
}

function _dirOf(key: PartitionKey): string {
  return partitionDir(key.timeframe, key.symbol, `${key.year}-01-01`, key.tree);
}

/** A list of files as recorded in the aggregation state: their sorted paths, one per line. */
function _filesKey(files: readonly BarFile[]): string {
  return files.map((file) => file.path).sort().join("\n");
}

/**
 * Keeps the aggregation state in step after a prune cut or removed files of `key` (`before`: its
 * live files until then), inside the prune's manifest transaction: a target built from exactly
 * those 1m files is recorded as built from the ones left, and a coarser partition that held only
 * files of its last aggregation as holding the ones left. So the next run neither cuts the
 * coarser frames down to the 1m days that are left nor rebuilds the pruned days from 1m bars.
 */
export function keepAggregationState(
  db: DatabaseSync,
  key: PartitionKey,
  before: readonly BarFile[],
): void {
  if (key.tree !== "bars") return;
  const after = _filesKey(listFiles(db, key));
  if (key.timeframe === "1m") {
    db.prepare("UPDATE aggregation_state SET sources = ? WHERE symbol = ? AND sources = ?")
      .run(after, key.symbol, _filesKey(before));
  } else {
    db.prepare(
      "UPDATE aggregation_state SET target_fingerprint = ? WHERE target = ? AND target_fingerprint = ?",
    ).run(after, _dirOf(key), _filesKey(before));
  }
}

async function _allExist(paths: readonly string[]): Promise<boolean> {
  return await _firstMissing(paths) === undefined;
}

async function _firstMissing(paths: readonly string[]): Promise<string | undefined> {
  for (const path of paths) if (!(await pathExists(path))) return path;
  return undefined;
}

function _yearFilter(year: number): string {
  return `trading_date BETWEEN DATE '${year}-01-01' AND DATE '${year}-12-31'`;
}

function _levelOf(tables: Map<string, string>, plan: _Plan): string {
  const tf = plan.target.key.timeframe;
  return tables.get(tf === "1d" ? `1d-${plan.session}` : tf)!;
}

/** Plans grouped into batches of whole symbols, about {@link _BATCH_ROWS} 1m bars each. */
function _batches(plans: readonly _Plan[]): _Plan[][] {
  const batches: _Plan[][] = [];
  let current: _Plan[] = [];
  let rows = 0;
  for (const list of Map.groupBy(plans, (plan) => plan.target.key.symbol).values()) {
    current.push(...list);
    rows += _sourceFiles(list).reduce((n, file) => n + file.rows, 0);
    if (rows >= _BATCH_ROWS) {
      batches.push(current);
      current = [];
      rows = 0;
    }
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * 1m bars per batch (48 symbol-months of regular sessions): big enough that statements are few
 * (each partitioned COPY has a fixed cost), small enough to keep memory and the open files of a
 * COPY low.
 */
const _BATCH_ROWS = 400_000;

/** The distinct 1m files the plans read. */
function _sourceFiles(plans: readonly _Plan[]): BarFile[] {
  const byPath = new Map<string, BarFile>();
  for (const plan of plans) for (const file of plan.target.sources) byPath.set(file.path, file);
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Times a batch's 1m files are listed again when a writer replaced some while they were read. */
const _SOURCE_RETRIES = 3;

/**
 * The level tables of a batch. The 1m files are read without their partition's lock, so an
 * ingest may replace (and delete) one meanwhile: then the files are listed again from the
 * manifest and read again. A file that is there and cannot be read is named (repair moves it
 * aside) rather than DuckDB's message about the batch.
 */
async function _buildBatchLevels(
  connection: DuckDBConnection,
  db: DatabaseSync,
  plans: readonly _Plan[],
  pathOf: (file: BarFile) => string,
  options: { prefix: string; sessionsTable: string },
): Promise<_Levels> {
  for (let attempt = 0;; attempt++) {
    const files = _sourceFiles(plans).map(pathOf);
    try {
      return await _buildLevels(connection, {
        ...options,
        files,
        timeframes: new Set(plans.map((p) => p.target.key.timeframe)),
        sessions: new Set(
          plans.filter((p) => p.target.key.timeframe === "1d").map((p) => p.session),
        ),
      });
    } catch (error) {
      if (attempt < _SOURCE_RETRIES && !(await _allExist(files))) {
        const relisted = _minutePartitions(db, [...new Set(plans.map((p) => p.target.key.symbol))]);
        for (const plan of plans) {
          const { symbol, year } = plan.target.key;
          plan.target.sources = relisted.get(symbol)?.get(year) ?? [];
          plan.sourceKey = _filesKey(plan.target.sources);
        }
        // Listed again as they were: a file removed by hand, not replaced by a writer.
        const again = _sourceFiles(plans).map(pathOf);
        if (again.length > 0 && again.join("\n") !== files.join("\n")) continue;
      }
      const missing = await _firstMissing(files);
      if (missing !== undefined) {
        throw new Error(
          `Cannot aggregate ${missing}: the manifest lists it, but it is not on disk`,
          {
            cause: error,
          },
        );
      }
      throw (await corruptFileError(connection, files, error, "Cannot aggregate").catch(
        () => undefined,
      )) ?? error;
    }
  }
}

/**
 * Write the bars of `plans` with one partitioned COPY into `staging`, then check each partition:
 * exactly one file, rows sorted by ts. Returns the good files by target dir; a target missing
 * from the map is written on its own.
 */
async function _stage(
  connection: DuckDBConnection,
  staging: string,
  plans: readonly _Plan[],
  barsOf: (level: string, timeframe: Timeframe, where: string) => string,
  levelOf: (plan: _Plan) => string,
): Promise<Map<string, { path: string; rows: number }>> {
  const out = new Map<string, { path: string; rows: number }>();
  if (plans.length === 0) return out;
  await Deno.mkdir(staging, { recursive: true });
  // One scan per level table, filtered (filters keep the rows' order, joins would not) to the
  // symbols and years wanted; its partitions are named by level, symbol and year.
  const byLevel = new Map<
    string,
    { index: number; timeframe: Timeframe; symbols: Set<string>; first: number; last: number }
  >();
  const planOf = new Map<string, _Plan>();
  for (const plan of plans) {
    const level = levelOf(plan);
    const { timeframe, symbol, year } = plan.target.key;
    let entry = byLevel.get(level);
    if (!entry) {
      entry = { index: byLevel.size, timeframe, symbols: new Set(), first: year, last: year };
      byLevel.set(level, entry);
    }
    entry.symbols.add(symbol);
    if (year < entry.first) entry.first = year;
    if (year > entry.last) entry.last = year;
    planOf.set(`${entry.index}|${symbol}|${year}`, plan);
  }
  const columns = FILE_COLUMNS.map(sqlIdent).join(", ");
  const parts: string[] = [];
  for (const [level, { index, timeframe, symbols, first, last }] of byLevel) {
    parts.push(
      `SELECT ${columns}, ${index} AS _level, symbol AS _symbol,
         CAST(year(trading_date) AS VARCHAR) AS _period FROM (${
        barsOf(
          level,
          timeframe,
          `symbol IN (${
            [...symbols].map(sqlString).join(", ")
          }) AND trading_date BETWEEN DATE '${first}-01-01' AND DATE '${last}-12-31'`,
        )
      })`,
    );
  }
  await connection.run(
    `COPY (${parts.join(" UNION ALL ")}) TO ${
      sqlString(staging)
    } (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (_level, _symbol, _period))`,
  );
  const checked = await connection.runAndReadAll(
    `SELECT filename, count(*), bool_and(sorted) FROM (
       SELECT filename, coalesce(ts >= lag(ts) OVER (PARTITION BY filename ORDER BY file_row_number), true) AS sorted
       FROM read_parquet(${
      sqlString(join(staging, "**", "*.parquet"))
    }, filename = true, file_row_number = true, hive_partitioning = false)
     ) GROUP BY filename`,
  );
  const files = new Map<_Plan, { path: string; rows: number; sorted: boolean }[]>();
  for (const [filename, rows, sorted] of checked.getRowsJS() as [string, bigint, boolean][]) {
    const match = /_level=(\d+)[\\/]_symbol=([^\\/]+)[\\/]_period=(\d+)[\\/]/.exec(filename);
    const plan = match ? planOf.get(`${match[1]}|${match[2]}|${match[3]}`) : undefined;
    if (!plan) continue;
    const list = files.get(plan) ?? [];
    list.push({ path: filename, rows: Number(rows), sorted });
    files.set(plan, list);
  }
  for (const [plan, list] of files) {
    if (list.length === 1 && list[0].sorted) out.set(plan.target.dir, list[0]);
  }
  return out;
}

/**
 * Write one target under its lock from the level table, keeping the rows of the live files that
 * a provider delivered (their trading dates are the provider's); the new file replaces all of
 * the target's live files.
 */
async function _mergeTarget(
  files: PartitionFiles,
  fresh: string,
  readNative: boolean,
): Promise<PartitionChange<_Written>> {
  const columns = FILE_COLUMNS.map(sqlIdent).join(", ");
  let nativeRows = 0;
  let body = `SELECT ${columns} FROM (${fresh})`;
  // A live file removed by hand is gone with its rows; it leaves the manifest with the others.
  const present: string[] = [];
  if (readNative) {
    for (const file of files.live) {
      if (await pathExists(files.pathOf(file))) present.push(files.pathOf(file));
    }
  }
  if (present.length > 0) {
    const nativeFilter = `NOT starts_with(ingest_id, ${sqlString(AGGREGATE_ID_PREFIX)})`;
    const liveSql = `read_parquet([${
      present.map(sqlString).join(", ")
    }], hive_partitioning = false)`;
    const counted = await files.connection.runAndReadAll(
      `SELECT count(*) FROM ${liveSql} WHERE ${nativeFilter}`,
    );
    nativeRows = Number(counted.getRows()[0][0]);
    if (nativeRows > 0) {
      body = `WITH fresh AS (${body}),
        native AS (SELECT ${columns} FROM ${liveSql} WHERE ${nativeFilter})
        SELECT * FROM native
        UNION ALL
        SELECT * FROM fresh WHERE trading_date NOT IN (SELECT trading_date FROM native)`;
    }
  }
  const copied = await files.connection.run(
    `COPY (SELECT ${columns} FROM (${body}) ORDER BY ts) TO ${
      sqlString(files.temp)
    } (FORMAT parquet, COMPRESSION zstd)`,
  );
  return {
    value: { rows: Number(copied.rowsChanged), nativeRows },
    replaces: files.live,
    wrote: true,
  };
}

/** Intraday frames in nesting order: each one's buckets are unions of the previous one's. */
const _CHAIN: readonly Timeframe[] = ["5m", "15m", "30m", "1h", "4h"];

/** The tables of bucket rows of a batch, and its one source when it has only one. */
interface _Levels {
  tables: Map<string, string>;
  source: _Source | undefined;
}

/**
 * Roll the 1m `files` up level by level into tables of bucket rows sorted by symbol and time:
 * `5m`, then each longer frame needed from the one before, and `1d-regular`/`1d-extended` from
 * `4h`, so a target's values never depend on the other targets of its batch.
 */
async function _buildLevels(
  connection: DuckDBConnection,
  options: {
    prefix: string;
    files: readonly string[];
    sessionsTable: string;
    timeframes: ReadonlySet<Timeframe>;
    sessions: ReadonlySet<string>;
  },
): Promise<_Levels> {
  // `symbol` comes from the files' folder names.
  const from = readFilesSql(options.files);
  // One source (provider, feed, adjustment) is the rule: then it is a constant, not a per-bucket
  // arg_max over strings. The files' column statistics tell without reading the rows.
  const stats = (await connection.runAndReadAll(
    `SELECT path_in_schema, min(stats_min_value), max(stats_max_value),
       bool_and(stats_min_value IS NOT NULL AND stats_max_value IS NOT NULL)
     FROM parquet_metadata([${options.files.map(sqlString).join(", ")}])
     WHERE path_in_schema IN ('provider', 'feed', 'adjustment') GROUP BY path_in_schema`,
  )).getRowsJS() as [string, string | null, string | null, boolean][];
  const constant = new Map(
    stats.filter(([, min, max, known]) => known && min !== null && min === max)
      .map(([column, min]) => [column, min!]),
  );
  const source = constant.size === 3
    ? {
      provider: constant.get("provider")!,
      feed: constant.get("feed")!,
      adjustment: constant.get("adjustment")!,
    }
    : undefined;
  // A target's roll-up path must not depend on what else its batch builds: sums of doubles
  // depend on their grouping, so a 1d target rolled up from 5m buckets (when rebuilt alone,
  // e.g. the last one a killed run left) differs in vwap's last bits from one rolled up from 4h.
  // Daily bars always come from the whole chain.
  const longest = options.timeframes.has("1d")
    ? _CHAIN.at(-1)
    : _CHAIN.filter((tf) => options.timeframes.has(tf)).at(-1);
  const chain = _CHAIN.slice(0, Math.max(1, longest ? _CHAIN.indexOf(longest) + 1 : 1));
  const tables = new Map<string, string>();
  let input = `(${minuteLevelSql(from, { withSource: source === undefined })})`;
  const create = async (name: string, table: string, tf: Timeframe, session?: DailySession) => {
    await connection.run(
      `CREATE OR REPLACE TABLE ${sqlIdent(table)} AS SELECT * FROM (${
        levelSql(input, {
          timeframe: tf,
          sessionsTable: options.sessionsTable,
          session,
          withSource: source === undefined,
        })
      }) ORDER BY symbol, t`,
    );
    tables.set(name, table);
    return table;
  };
  for (const tf of chain) input = sqlIdent(await create(tf, `${options.prefix}_${tf}`, tf));
  for (const session of options.sessions) {
    await create(`1d-${session}`, `${options.prefix}_1d_${session}`, "1d", session as DailySession);
  }
  return { tables, source };
}

/** Provider, feed and adjustment shared by every bar of a batch. */
interface _Source {
  provider: string;
  feed: string;
  adjustment: string;
}

/**
 * 1m bars (a relation with the bar columns) as level rows: `symbol`, `t` (bar start, epoch ms), `session`,
 * `trading_date`, prices, `volume`, `pv` (vwap x volume), `vv` (volume of bars with a vwap),
 * `trade_count`, and the source columns when `withSource`.
 */
export function minuteLevelSql(from: string, options: { withSource?: boolean } = {}): string {
  return `SELECT symbol, epoch_ms(ts) AS t, session, trading_date, open, high, low, close, volume,
      vwap * volume AS pv, CASE WHEN vwap IS NOT NULL THEN volume END AS vv,
      trade_count${options.withSource ? ", provider, feed, adjustment" : ""}
    FROM ${from}`;
}

/**
 * Roll level rows (see {@link minuteLevelSql}) up to `timeframe`, with the bucket rule of
 * `core/aggregate.ts`: `open + floor((t - open) / length) * length`, clamped to the start of the
 * row's session (pre-market 04:00, regular 09:30, after-hours the close), from the session
 * instants in `sessionsTable`; daily rows start at midnight New York and cover the regular
 * session unless `session` is `extended`.
 */
export function levelSql(
  input: string,
  options: {
    timeframe: Timeframe;
    sessionsTable: string;
    session?: DailySession;
    withSource?: boolean;
  },
): string {
  const daily = options.timeframe === "1d";
  const length = TIMEFRAME_MINUTES[options.timeframe] * 60_000;
  const bucket = daily ? "s.midnight" : `greatest(
      s.open + CAST(floor((b.t - s.open) / ${length}) AS BIGINT) * ${length},
      CASE b.session WHEN 'regular' THEN s.open WHEN 'pre' THEN s.pre_open ELSE s.close END)`;
  const where = daily && (options.session ?? "regular") === "regular"
    ? "WHERE b.session = 'regular'"
    : "";
  const source = options.withSource
    ? `, arg_max(b.provider, b.t) AS provider, arg_max(b.feed, b.t) AS feed,
       arg_max(b.adjustment, b.t) AS adjustment`
    : "";
  return `SELECT b.symbol AS symbol, ${bucket} AS t,
      ${daily ? "'regular'" : "b.session"} AS session,
      ${daily ? "b.trading_date" : "any_value(b.trading_date)"} AS trading_date,
      arg_min(b.open, b.t) AS open, max(b.high) AS high, min(b.low) AS low,
      arg_max(b.close, b.t) AS close, sum(b.volume) AS volume, sum(b.pv) AS pv, sum(b.vv) AS vv,
      CAST(sum(b.trade_count) AS BIGINT) AS trade_count${source}
    FROM ${input} AS b JOIN ${sqlIdent(options.sessionsTable)} AS s ON s.d = b.trading_date
    ${where}
    GROUP BY b.symbol, ${daily ? "b.trading_date, s.midnight" : `b.session, ${bucket}`}`;
}

/**
 * Level rows as bars with the stored columns in file order; vwap is `pv / vv` (NULL without
 * volume), clamped to [low, high] only within floating-point drift, as `core/aggregate.ts` does.
 */
export function barsFromLevelSql(
  level: string,
  options: {
    timeframe: Timeframe;
    /** The batch's one source; undefined when the level rows carry their own. */
    source?: _Source;
    ingestId: string;
    ingestedAt: string;
    where?: string;
  },
): string {
  const { source } = options;
  return `SELECT symbol, timezone('UTC', epoch_ms(t)) AS ts, open, high, low, close, volume,
      CASE WHEN vv > 0 THEN CASE
        WHEN pv / vv > high AND pv / vv - high <= ${VWAP_DRIFT} * abs(pv / vv) THEN high
        WHEN pv / vv < low AND low - pv / vv <= ${VWAP_DRIFT} * abs(pv / vv) THEN low
        ELSE pv / vv END END AS vwap,
      trade_count, ${sqlString(options.timeframe)} AS timeframe, trading_date, session,
      ${source ? sqlString(source.provider) : "provider"} AS provider,
      ${source ? sqlString(source.feed) : "feed"} AS feed,
      ${source ? sqlString(source.adjustment) : "adjustment"} AS adjustment,
      ${sqlString(options.ingestId)} AS ingest_id,
      CAST(${sqlString(options.ingestedAt)} AS TIMESTAMPTZ) AS ingested_at,
      CAST(${SCHEMA_VERSION} AS INTEGER) AS schema_version
    FROM ${sqlIdent(level)}${options.where ? ` WHERE ${options.where}` : ""}`;
}

/**
 * Create (or replace) a table `name (d DATE, pre_open, open, close BIGINT)` with the session
 * instants in epoch ms of every calendar date of `years`. Closed days get the standard hours,
 * as `core/aggregate.ts` gives them, so bars dated on them are still bucketed the same way.
 */
export async function createSessionsTable(
  connection: DuckDBConnection,
  name: string,
  years: readonly number[],
): Promise<void> {
  await connection.run(
    `CREATE OR REPLACE TABLE ${
      sqlIdent(name)
    } (d DATE, pre_open BIGINT, open BIGINT, close BIGINT, midnight BIGINT)`,
  );
  const appender = await connection.createAppender(name);
  try {
    for (const year of years) {
      for (let day = Date.UTC(year, 0, 1); day < Date.UTC(year + 1, 0, 1); day += 86_400_000) {
        const date = new Date(day).toISOString().slice(0, 10);
        const session = tradingSession(date);
        appender.appendDate(dateValue(day / 86_400_000));
        appender.appendBigInt(BigInt(session?.preOpen ?? zonedTime(date, "04:00")));
        appender.appendBigInt(BigInt(session?.open ?? zonedTime(date, "09:30")));
        appender.appendBigInt(BigInt(session?.close ?? zonedTime(date, "16:00")));
        appender.appendBigInt(BigInt(zonedTime(date, "00:00")));
        appender.endRow();
      }
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}
