/**
 * The server's read side over one data directory: a sandboxed query engine that is reopened when
 * the set of stored timeframes changes (its views are fixed when it opens), and a cached summary
 * of what is stored, refreshed when any process records job progress.
 *
 * @module
 */
import { exchangeDate } from "../core/calendar.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import type { Timeframe } from "../core/types.ts";
import {
  type CorruptSeriesFile,
  manifestVersion,
  type MetaStore,
  openQueryEngine,
  type QueryEngine,
  referenceVersion,
  type StoredBarSeries,
  type StoredInventory,
  storedInventory,
} from "../storage/mod.ts";

/** The read side of the server. */
export interface DataSource {
  readonly dataDir: string;
  readonly meta: MetaStore;
  /** Runs `fn` with an engine whose views match the stored timeframes; the engine stays open until `fn` ends. */
  withEngine<T>(fn: (engine: QueryEngine) => Promise<T>): Promise<T>;
  /** Stored (symbol, timeframe) series, cached until the data changes; unreadable files left out. */
  series(): Promise<StoredBarSeries[]>;
  /** Stored files that cannot be read (left out of `series()`), from the same cached scan. */
  corruptFiles(): Promise<CorruptSeriesFile[]>;
  /** Timeframes the current engine has views for. */
  timeframes(): readonly Timeframe[];
  /** Forget caches now (after a job of this process ended). */
  invalidate(): void;
  /** Closes the engine once running queries end. */
  close(): void;
}

/** Options of {@link openDataSource}. */
export interface DataSourceOptions {
  /** Directory the engine may write Parquet exports to. */
  exportDir?: string;
  /** DuckDB worker threads (default: all cores). */
  threads?: number;
  /** DuckDB memory limit such as `"2GB"`. */
  memoryLimit?: string;
  /** Most bytes DuckDB may spill to its private temp folder, such as `"4GB"`. */
  tempLimit?: string;
  /** Look at the data version at most this often. Default 500 ms. */
  checkEveryMs?: number;
  /** Re-read everything at least this often, for writes made outside jobs. Default 30 s. */
  maxAgeMs?: number;
  now?: () => number;
  /** Decides "today" for the reference tables' member counts; default the system clock. */
  clock?: Clock;
}

interface _Holder {
  engine: QueryEngine;
  /** The manifest version the engine's views were made from. */
  files: number;
  /** The reference data the engine's tables were copied from (see referenceVersion). */
  reference: string;
  uses: number;
  retired: boolean;
}

/**
 * Opens the read side of a data directory.
 *
 * @example
 * ```ts
 * const data = await openDataSource("./data", store.meta);
 * const rows = await data.withEngine((engine) => runQuery(engine, "SELECT 1"));
 * ```
 */
export async function openDataSource(
  dataDir: string,
  meta: MetaStore,
  options: DataSourceOptions = {},
): Promise<DataSource> {
  const now = options.now ?? Date.now;
  const checkEveryMs = options.checkEveryMs ?? 500;
  const maxAgeMs = options.maxAgeMs ?? 30_000;
  const open = () =>
    openQueryEngine(dataDir, {
      exportDir: options.exportDir,
      threads: options.threads,
      memoryLimit: options.memoryLimit,
      tempLimit: options.tempLimit,
      today: exchangeDate((options.clock ?? systemClock)()),
    });
  const openHolder = async (): Promise<_Holder> => {
    // The version first: a commit between the two makes the next check reopen, never miss it.
    const files = manifestVersion(meta.db);
    const reference = referenceVersion(meta.db);
    return { engine: await open(), files, reference, uses: 0, retired: false };
  };
  let holder = await openHolder();
  let version = meta.dataVersion();
  let checkedAt = now();
  let fullCheckAt = now();
  let dirty = false;
  let refreshing: Promise<void> | undefined;
  let seriesCache: { version: string; value: Promise<StoredInventory> } | undefined;
  let closed = false;
  let sawCorrupt = false;

  const retire = (old: _Holder) => {
    old.retired = true;
    if (old.uses === 0) old.engine.close();
  };

  const refresh = async () => {
    const at = now();
    if (!dirty && at - checkedAt < checkEveryMs) return;
    checkedAt = at;
    const current = meta.dataVersion();
    if (!dirty && current === version && at - fullCheckAt < maxAgeMs) return;
    dirty = false;
    version = current;
    fullCheckAt = at;
    seriesCache = undefined;
    // The views list the files of the manifest when the engine opened: reopen when it changed.
    // While files are known to be unreadable the views may be a snapshot that leaves them out
    // (see createBarViews): reopen too, so a repaired or rewritten file is seen.
    // The reference tables are a copy made at open: reopen when symbols or universes changed.
    if (
      manifestVersion(meta.db) === holder.files && referenceVersion(meta.db) === holder.reference &&
      !sawCorrupt
    ) {
      return;
    }
    const next = await openHolder();
    if (closed) {
      next.engine.close();
      return;
    }
    const old = holder;
    holder = next;
    retire(old);
  };

  const ensureFresh = async () => {
    refreshing ??= refresh().finally(() => refreshing = undefined);
    await refreshing;
  };

  const withEngine = async <T>(fn: (engine: QueryEngine) => Promise<T>): Promise<T> => {
    if (closed) throw new Error("Cannot read data: the server is shutting down");
    await ensureFresh();
    const current = holder;
    current.uses++;
    try {
      return await fn(current.engine);
    } finally {
      current.uses--;
      if (current.retired && current.uses === 0) current.engine.close();
    }
  };

  const inventory = async (): Promise<StoredInventory> => {
    await ensureFresh();
    if (seriesCache?.version !== version) {
      // Shared by concurrent requests, so no request's signal may abort it.
      const value = withEngine((engine) => storedInventory(engine));
      value.then((found) => sawCorrupt = found.corrupt.length > 0, () => {});
      const entry = { version, value };
      seriesCache = entry;
      // A failed read is not cached.
      value.catch(() => {
        if (seriesCache === entry) seriesCache = undefined;
      });
    }
    return await seriesCache!.value;
  };

  return {
    dataDir,
    meta,
    withEngine,
    async series() {
      return (await inventory()).series;
    },
    async corruptFiles() {
      return (await inventory()).corrupt;
    },
    timeframes: () => holder.engine.timeframes,
    invalidate() {
      dirty = true;
      seriesCache = undefined;
    },
    close() {
      closed = true;
      retire(holder);
    },
  };
}
