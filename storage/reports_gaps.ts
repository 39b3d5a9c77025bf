/**
 * What the gap report needs from storage: bars per trading day (all and regular-session) from the
 * Parquet files, and the days a provider answered with no bars from the coverage table.
 *
 * @module
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { DatabaseSync } from "node:sqlite";
import type { Timeframe } from "../core/types.ts";
import type { DayCount } from "../core/validate_gaps.ts";
import { corruptFileError } from "./corrupt.ts";
import { readFilesSql, sqlString } from "./duckdb.ts";
import { listPartitionFiles } from "./manifest.ts";

/** Bars per trading date of `symbol` within [start, end] (dates without bars are absent). */
export async function readDayCounts(
  connection: DuckDBConnection,
  dataDir: string,
  timeframe: Timeframe,
  symbol: string,
  start: string,
  end: string,
): Promise<DayCount[]> {
  const files = await listPartitionFiles(dataDir, "bars", timeframe, symbol, { start, end });
  if (files.length === 0) return [];
  let reader;
  try {
    reader = await connection.runAndReadAll(
      `SELECT CAST(trading_date AS VARCHAR) AS date, CAST(count(*) AS INTEGER) AS bars,
       CAST(count(*) FILTER (WHERE session = 'regular') AS INTEGER) AS regular
     FROM ${readFilesSql(files)}
     WHERE trading_date BETWEEN DATE ${sqlString(start)} AND DATE ${sqlString(end)}
     GROUP BY trading_date ORDER BY trading_date`,
    );
  } catch (error) {
    throw (await corruptFileError(
      connection,
      files,
      error,
      `Cannot count the ${timeframe} bars of ${symbol} in`,
    )) ?? error;
  }
  return (reader.getRowsJS() as [string, number, number][]).map(([date, bars, regular]) => ({
    date,
    bars,
    regular,
  }));
}

/**
 * Trading dates per symbol within [start, end] that a provider answered with no bars (recorded
 * by ingest with 0 bars), from any source, unless some source stored bars for them.
 */
export function readKnownEmptyDays(
  db: DatabaseSync,
  timeframe: Timeframe,
  symbols: readonly string[],
  start: string,
  end: string,
): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const statement = db.prepare(
    `SELECT trading_date FROM ingested_days WHERE timeframe = ? AND symbol = ?
       AND trading_date BETWEEN ? AND ? GROUP BY trading_date HAVING max(bars) = 0`,
  );
  for (const symbol of symbols) {
    const days = new Set<string>();
    for (const row of statement.all(timeframe, symbol, start, end)) {
      days.add(row.trading_date as string);
    }
    out.set(symbol, days);
  }
  return out;
}
