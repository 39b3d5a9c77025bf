/**
 * Removing stored bars: what `marketpipe prune` (trading dates before a cutoff, per timeframe)
 * and `marketpipe delete` (whole symbols) run. Every partition changes through
 * {@link replacePartition}: a file that holds only bars that go leaves the manifest and is then
 * deleted; a file that holds some is rewritten without them; and the ingested-day records of the
 * removed days (coverage and known-empty days), the freshness of the series and the aggregation
 * state change in the same SQLite transaction as the manifest. A kill at any moment leaves each
 * partition as it was or as it is meant to be, and running the same prune again finishes it.
 *
 * @module
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { join } from "node:path";
import type { Timeframe } from "../core/types.ts";
import { keepAggregationState } from "./aggregate.ts";
import { sqlString } from "./duckdb.ts";
import { subdirs } from "./fs.ts";
import {
  BARS_DIR,
  parsePartitionPath,
  partitionDir,
  type PartitionTree,
  QUARANTINE_DIR,
  TEMP_PREFIX,
  timeframeDir,
} from "./layout.ts";
import { type BarFile, listFiles } from "./manifest.ts";
import { type PartitionKey, type PartitionWriter, replacePartition } from "./partitions.ts";
import { transaction } from "./sqlite.ts";

/** Which bars go: per timeframe, the first trading date kept; `symbols` and `provider` narrow. */
export interface PruneSelection {
  /**
   * Timeframes in scope, each with the first trading date it keeps (bars of earlier dates go),
   * or undefined for every date. Timeframes absent are kept whole.
   */
  cutoffs: ReadonlyMap<Timeframe, string | undefined>;
  /** Only these symbols (default: all). */
  symbols?: readonly string[];
  /** Only bars from this provider (default: any). */
  provider?: string;
}

/** What goes (or went) from one partition. */
export interface PrunedPartition {
  tree: PartitionTree;
  timeframe: Timeframe;
  symbol: string;
  year: number;
  /** Bars that go. */
  rows: number;
  /** First and last trading date of the bars that go. */
  firstDate: string;
  lastDate: string;
  /** Files removed whole. */
  removed: number;
  /** Files rewritten without the bars that go. */
  rewritten: number;
  /** Bars left in the partition. */
  kept: number;
}

/** What {@link pruneBars} did (or, with `dryRun`, would do). */
export interface PruneSummary {
  partitions: PrunedPartition[];
  /** Bars removed from `bars/` (quarantined bars are counted per partition only). */
  rows: number;
  /** Ingested-day records forgotten (stored and known-empty days, per source). */
  days: number;
}

/** Options of {@link pruneBars}. */
export interface PruneOptions {
  /** Only work out what would go; nothing changes. */
  dryRun?: boolean;
  /** Recorded as the writer of rewritten files. */
  jobId?: string;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Remove the stored and quarantined bars that `selection` names, partition by partition, and
 * forget their days so that `gaps` lists them as missing and `ingest` fetches them again.
 *
 * @example
 * ```ts
 * const store = await openStore("./data");
 * const writer = { dataDir: store.dataDir, duckdb: await store.duckdb(), meta: store.meta };
 * const cutoffs = new Map([["1m", "2024-01-01"]] as const);
 * const summary = await pruneBars(writer, { cutoffs }, { dryRun: true });
 * console.log(summary.rows, summary.days);
 * ```
 */
export async function pruneBars(
  writer: PartitionWriter,
  selection: PruneSelection,
  options: PruneOptions = {},
): Promise<PruneSummary> {
  const db = writer.meta.db;
  const symbols = selection.symbols ? new Set(selection.symbols) : undefined;
  // The partitions with a file that holds bars that go.
  const groups = new Map<string, PartitionKey>();
  for (const [timeframe, before] of selection.cutoffs) {
    for (const file of listFiles(db, { timeframe })) {
      if (symbols && !symbols.has(file.symbol)) continue;
      if (before !== undefined && file.firstDate >= before) continue;
      const dir = partitionDir(file.timeframe, file.symbol, `${file.year}`, file.tree);
      if (!groups.has(dir)) {
        groups.set(dir, { tree: file.tree, timeframe, symbol: file.symbol, year: file.year });
      }
    }
  }
  const summary: PruneSummary = { partitions: [], rows: 0, days: 0 };
  const add = (plan: _Plan | undefined) => {
    if (plan === undefined || plan.rows === 0) return;
    summary.partitions.push(plan.partition);
    if (plan.partition.tree === "bars") summary.rows += plan.rows;
  };
  const due = [...groups.values()];
  let done = 0;
  if (options.dryRun) {
    const connection = await writer.duckdb.connect();
    try {
      for (const key of due) {
        options.signal?.throwIfAborted();
        // Every live file of the partition, as the real run sees it, so the bars kept agree.
        add(await _plan(connection, listFiles(db, key), _criteria(selection, key, writer.dataDir)));
        options.onProgress?.(++done, due.length);
      }
    } finally {
      connection.closeSync();
    }
    summary.days = _forgetDays(db, selection, { dryRun: true });
    return summary;
  }
  for (const key of due) {
    options.signal?.throwIfAborted();
    const criteria = _criteria(selection, key, writer.dataDir);
    add(
      await replacePartition(writer, key, async ({ connection, live, pathOf, temp }) => {
        const plan = await _plan(connection, live, criteria);
        if (plan.rows === 0) return { value: undefined, replaces: [], wrote: false };
        if (plan.cut.length > 0) {
          const sources = plan.cut.map((file) => sqlString(pathOf(file))).join(", ");
          await connection.run(
            `COPY (SELECT * FROM read_parquet([${sources}], hive_partitioning = false,
               union_by_name = true) WHERE NOT (${criteria.predicate}) ORDER BY ts)
             TO ${sqlString(temp)} (FORMAT parquet, COMPRESSION zstd)`,
          );
        }
        return {
          value: plan,
          replaces: [...plan.whole, ...plan.cut],
          wrote: plan.cut.length > 0,
          metadata: () => {
            if (key.tree !== "bars") return;
            summary.days += _forgetDays(db, selection, { partition: key });
            _refreshFreshness(db, key);
            keepAggregationState(db, key, live);
          },
        };
      }, { signal: options.signal, jobId: options.jobId }),
    );
    options.onProgress?.(++done, due.length);
  }
  // Days recorded without files (known-empty days, days a killed run left) and what a killed
  // prune left in folders it had emptied.
  summary.days += _forgetDays(db, selection, {});
  await _removeLeftovers(writer, selection, options);
  return summary;
}

interface _Plan {
  partition: PrunedPartition;
  rows: number;
  /** Files whose every bar goes, and files that keep some. */
  whole: BarFile[];
  cut: BarFile[];
}

/** What goes from one partition: its key, the cutoff, the provider, as an SQL condition too. */
interface _Criteria {
  key: PartitionKey;
  before?: string;
  provider?: string;
  /** SQL condition on a file's rows for the bars that go. */
  predicate: string;
  pathOf: (file: BarFile) => string;
}

function _criteria(selection: PruneSelection, key: PartitionKey, dataDir: string): _Criteria {
  const before = selection.cutoffs.get(key.timeframe);
  const { provider } = selection;
  const parts: string[] = [];
  if (before !== undefined) parts.push(`trading_date < DATE ${sqlString(before)}`);
  if (provider !== undefined) parts.push(`provider = ${sqlString(provider)}`);
  return {
    key,
    before,
    provider,
    predicate: parts.length === 0 ? "true" : parts.join(" AND "),
    pathOf: (file) => join(dataDir, file.path),
  };
}

/** Which of a partition's files go whole, which are cut, and the bars that go. */
async function _plan(
  connection: DuckDBConnection,
  files: readonly BarFile[],
  criteria: _Criteria,
): Promise<_Plan> {
  const { key, before, predicate } = criteria;
  const partition = {
    ...key,
    rows: 0,
    firstDate: "",
    lastDate: "",
    removed: 0,
    rewritten: 0,
    kept: 0,
  };
  const plan: _Plan = { partition, rows: 0, whole: [], cut: [] };
  const take = (rows: number, first: string, last: string) => {
    plan.rows += rows;
    if (partition.firstDate === "" || first < partition.firstDate) partition.firstDate = first;
    if (last > partition.lastDate) partition.lastDate = last;
  };
  for (const file of files) {
    partition.kept += file.rows;
    if (before !== undefined && file.firstDate >= before) continue;
    if (criteria.provider === undefined && (before === undefined || file.lastDate < before)) {
      // Every bar of the file goes: the manifest says so, no need to read it.
      plan.whole.push(file);
      take(file.rows, file.firstDate, file.lastDate);
      continue;
    }
    const reader = await connection.runAndReadAll(
      `SELECT count(*) FILTER (WHERE ${predicate}),
         strftime(min(trading_date) FILTER (WHERE ${predicate}), '%Y-%m-%d'),
         strftime(max(trading_date) FILTER (WHERE ${predicate}), '%Y-%m-%d')
       FROM read_parquet(${sqlString(criteria.pathOf(file))}, hive_partitioning = false)`,
    );
    const [count, first, last] = reader.getRows()[0];
    const rows = Number(count);
    if (rows === 0) continue;
    (rows === file.rows ? plan.whole : plan.cut).push(file);
    take(rows, String(first), String(last));
  }
  partition.rows = plan.rows;
  partition.kept -= plan.rows;
  partition.removed = plan.whole.length;
  partition.rewritten = plan.cut.length;
  return plan;
}

/**
 * Forget the ingested-day records `selection` names (of one partition's year, or all), for the
 * selected provider's sources or every source; returns how many (with `dryRun`, would).
 */
function _forgetDays(
  db: DatabaseSync,
  selection: PruneSelection,
  options: { partition?: PartitionKey; dryRun?: boolean },
): number {
  const run = () => {
    let count = 0;
    for (const [timeframe, before] of selection.cutoffs) {
      if (options.partition && options.partition.timeframe !== timeframe) continue;
      const where = ["timeframe = ?"];
      const values: SQLInputValue[] = [timeframe];
      if (before !== undefined) {
        where.push("trading_date < ?");
        values.push(before);
      }
      if (options.partition) {
        where.push("trading_date BETWEEN ? AND ?");
        values.push(`${options.partition.year}-01-01`, `${options.partition.year}-12-31`);
      }
      if (selection.provider !== undefined) {
        where.push("source LIKE ? ESCAPE '\\'");
        values.push(`${selection.provider.replace(/[\\%_]/g, "\\$&")}/%`);
      }
      const symbols = options.partition
        ? [options.partition.symbol]
        : selection.symbols ?? [undefined];
      const statement = db.prepare(
        `${options.dryRun ? "SELECT count(*) AS n" : "DELETE"} FROM ingested_days
         WHERE ${[...where, ...(symbols[0] === undefined ? [] : ["symbol = ?"])].join(" AND ")}`,
      );
      for (const symbol of symbols) {
        const args = symbol === undefined ? values : [...values, symbol];
        count += options.dryRun
          ? Number(statement.get(...args)?.n ?? 0)
          : Number(statement.run(...args).changes);
      }
    }
    return count;
  };
  // Inside a partition's manifest transaction already, or a transaction of its own.
  return options.partition || options.dryRun ? run() : transaction(db, run);
}

/** The newest bar of a series is what its files still hold; a series with none is forgotten. */
function _refreshFreshness(db: DatabaseSync, key: PartitionKey): void {
  const row = db.prepare(
    "SELECT max(max_ts) AS ts FROM bar_files WHERE tree = 'bars' AND timeframe = ? AND symbol = ?",
  ).get(key.timeframe, key.symbol);
  if (row?.ts === null || row?.ts === undefined) {
    db.prepare("DELETE FROM series_freshness WHERE timeframe = ? AND symbol = ?")
      .run(key.timeframe, key.symbol);
  } else {
    db.prepare(
      "UPDATE series_freshness SET last_ts = min(last_ts, ?) WHERE timeframe = ? AND symbol = ?",
    ).run(Math.floor(Number(row.ts) / 1000), key.timeframe, key.symbol);
  }
}

/**
 * Partition folders in scope that hold no live file any more, or files no manifest row lists (a
 * prune killed between its commit and its deletes): under the partition's lock, the leftovers go
 * and so does a folder left empty.
 */
async function _removeLeftovers(
  writer: PartitionWriter,
  selection: PruneSelection,
  options: PruneOptions,
): Promise<void> {
  const symbols = selection.symbols ? new Set(selection.symbols) : undefined;
  for (const [timeframe, before] of selection.cutoffs) {
    for (const tree of [BARS_DIR, QUARANTINE_DIR] as const) {
      const root = timeframeDir(writer.dataDir, timeframe, tree);
      for (const symbolDir of await subdirs(root)) {
        for (const yearDir of await subdirs(join(root, symbolDir))) {
          const relative = join(tree, `timeframe=${timeframe}`, symbolDir, yearDir);
          const at = parsePartitionPath(relative);
          if (at === undefined || (symbols && !symbols.has(at.symbol))) continue;
          if (before !== undefined && at.start >= before) continue;
          const key: PartitionKey = { tree, timeframe, symbol: at.symbol, year: at.year };
          const live = listFiles(writer.meta.db, key);
          if (live.length > 0 && !(await _hasLeftovers(join(writer.dataDir, relative), live))) {
            continue;
          }
          options.signal?.throwIfAborted();
          await replacePartition(writer, key, async ({ live }) => {
            // Leftovers are gone by now (the writer removes them under the lock); an empty
            // folder goes too, one with files stays.
            if (live.length === 0) {
              await Deno.remove(join(writer.dataDir, relative)).catch(() => {});
            }
            return { value: undefined, replaces: [], wrote: false };
          }, { signal: options.signal, jobId: options.jobId });
        }
      }
    }
  }
}

async function _hasLeftovers(dir: string, live: readonly BarFile[]): Promise<boolean> {
  const keep = new Set(live.map((file) => file.path.slice(file.path.lastIndexOf("/") + 1)));
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(TEMP_PREFIX)) return true;
    if (entry.isFile && entry.name.endsWith(".parquet") && !keep.has(entry.name)) return true;
  }
  return false;
}
