/**
 * The roll-up after an ingest: what `marketpipe ingest --aggregate` and web jobs with
 * `aggregate: true` run once the 1m bars of a job are stored.
 *
 * @module
 */
import type { Metrics } from "../core/metrics.ts";
import type { Timeframe } from "../core/types.ts";
import { aggregatePartitions, type AggregationSummary } from "./aggregate.ts";
import type { Store } from "./store.ts";

/** The range an ingest wrote: its timeframe, symbols and trading dates. */
export interface IngestedRange {
  timeframe: Timeframe;
  symbols: readonly string[];
  start: string;
  end: string;
}

/** Options of {@link aggregateIngested}. */
export interface AggregateIngestedOptions {
  metrics?: Metrics;
  signal?: AbortSignal;
  /** Called as target partitions are checked. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Roll the 1m partitions an ingest touched up to every higher timeframe (5m ... 1d). Throws a
 * `RangeError` for a range that is not 1m: aggregation rolls up 1m bars only.
 *
 * @example
 * ```ts
 * const summary = await ingest(deps, request);
 * if (summary.job) await aggregateIngested(store, summary.job, { signal });
 * ```
 */
export async function aggregateIngested(
  store: Store,
  range: IngestedRange,
  options: AggregateIngestedOptions = {},
): Promise<AggregationSummary> {
  if (range.timeframe !== "1m") {
    throw new RangeError(
      `Cannot aggregate a ${range.timeframe} ingest: aggregation rolls up 1m bars`,
    );
  }
  return await aggregatePartitions(
    { dataDir: store.dataDir, duckdb: await store.duckdb(), meta: store.meta },
    // Every timeframe of AGGREGATE_TIMEFRAMES, the default.
    { ...options, symbols: range.symbols, start: range.start, end: range.end },
  );
}
