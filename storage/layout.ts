import { join } from "node:path";
import type { Timeframe } from "../core/types.ts";

/** Name of the one live Parquet file of a partition. */
export const PARTITION_FILE = "data.parquet";

/** Prefix of temporary files in partition directories; they never end in `.parquet`. */
export const TEMP_PREFIX = ".tmp-";

/** Where bars of a timeframe, symbol and trading date live, relative to the data directory. */
export function partitionDir(timeframe: Timeframe, symbol: string, tradingDate: string): string {
  const year = tradingDate.slice(0, 4);
  const base = join("bars", `timeframe=${timeframe}`, `symbol=${symbol}`, `year=${year}`);
  return timeframe === "1d" ? base : join(base, `month=${tradingDate.slice(5, 7)}`);
}

/** Directory of all partitions of a timeframe. */
export function timeframeDir(dataDir: string, timeframe: Timeframe): string {
  return join(dataDir, "bars", `timeframe=${timeframe}`);
}
