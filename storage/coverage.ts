/**
 * Coverage of stored bars for the server: bars per trading day counted from the Parquet files of
 * one symbol and timeframe, the same counts `marketpipe gaps` uses.
 *
 * @module
 */
import type { Timeframe } from "../core/types.ts";
import type { DayCount } from "../core/validate_gaps.ts";
import type { QueryEngine } from "./query_engine.ts";
import { readDayCounts } from "./reports_gaps.ts";

/**
 * Bars per trading date (all and regular-session) of `symbol`'s stored `timeframe` within
 * [start, end], read through the sandboxed query engine; dates without bars are absent.
 */
export async function readStoredDayCounts(
  engine: QueryEngine,
  timeframe: Timeframe,
  symbol: string,
  range: { start: string; end: string },
): Promise<DayCount[]> {
  const connection = await engine._connect();
  try {
    return await readDayCounts(
      connection,
      engine.dataDir,
      timeframe,
      symbol,
      range.start,
      range.end,
    );
  } finally {
    connection.closeSync();
  }
}
