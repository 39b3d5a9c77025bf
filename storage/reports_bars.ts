/**
 * Reading stored bars back into {@link Bar} objects for validation, cross-checks and gap reports:
 * find the partition files of a symbol and date range, and read their rows in ts order.
 *
 * @module
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { type Bar, parseTimeframe, type Session } from "../core/types.ts";
import { readFilesSql, sqlString } from "./duckdb.ts";

/** Options of {@link readBarRows}. */
export interface ReadStoredBarsOptions {
  /** First trading date to read, inclusive. */
  start?: string;
  /** Last trading date to read, inclusive. */
  end?: string;
  /** Extra SQL condition on the file's columns (built by storage/ code only, never user text). */
  where?: string;
  /** Extra VARCHAR columns to read per row (e.g. `rule`, `detail`, `ingest_id`). */
  extra?: readonly string[];
}

/** A stored bar, plus the extra columns asked for. */
export interface StoredRow {
  bar: Bar;
  extra: (string | null)[];
}

const _SESSIONS: readonly Session[] = ["pre", "regular", "post"];
const _DAY_MS = 86_400_000;

/**
 * Read the bars of partition `files` (one symbol and timeframe, as {@link listPartitionFiles}
 * returns them) in ts order. Numbers are read column by column from DuckDB's vectors; the
 * strings that repeat (source, session, date) are decoded once, not per row.
 */
export async function readBarRows(
  connection: DuckDBConnection,
  files: readonly string[],
  options: ReadStoredBarsOptions = {},
): Promise<StoredRow[]> {
  if (files.length === 0) return [];
  return await readBarsFrom(
    connection,
    readFilesSql(files),
    options,
  );
}

/** Like {@link readBarRows}, from any relation with the bar columns (a table, a subquery). */
export async function readBarsFrom(
  connection: DuckDBConnection,
  from: string,
  options: ReadStoredBarsOptions = {},
): Promise<StoredRow[]> {
  const conditions: string[] = [];
  if (options.start) conditions.push(`trading_date >= DATE ${sqlString(options.start)}`);
  if (options.end) conditions.push(`trading_date <= DATE ${sqlString(options.end)}`);
  if (options.where) conditions.push(`(${options.where})`);
  const where = conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : "";
  // Sources (symbol, timeframe, provider, feed, adjustment) are few: number them first.
  const sourceReader = await connection.runAndReadAll(
    `SELECT DISTINCT symbol, timeframe, provider, feed, adjustment FROM ${from} ${where}`,
  );
  const sources = sourceReader.getRowsJS() as string[][];
  if (sources.length === 0) return [];
  const sourceCase = sources.length === 1
    ? "0"
    : `CASE ${
      sources.map((s, i) =>
        `WHEN symbol = ${sqlString(s[0])} AND timeframe = ${sqlString(s[1])} AND provider = ${
          sqlString(s[2])
        } AND feed = ${sqlString(s[3])} AND adjustment = ${sqlString(s[4])} THEN ${i}`
      ).join(" ")
    } END`;
  const extra = options.extra ?? [];
  const result = await connection.run(
    `SELECT CAST(epoch_ms(ts) AS DOUBLE), open, high, low, close, volume, vwap,
       CAST(trade_count AS DOUBLE), CAST(trading_date - DATE '1970-01-01' AS INTEGER),
       CAST(CASE session WHEN 'pre' THEN 0 WHEN 'regular' THEN 1 ELSE 2 END AS UTINYINT),
       CAST(${sourceCase} AS INTEGER)${extra.map((c) => `, CAST(${c} AS VARCHAR)`).join("")}
     FROM ${from} ${where} ORDER BY ts`,
  );
  const dates = new Map<number, string>();
  const rows: StoredRow[] = [];
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    const n = chunk.rowCount;
    const v = Array.from({ length: chunk.columnCount }, (_, i) => chunk.getColumnVector(i));
    for (let k = 0; k < n; k++) {
      const day = v[8].getItem(k) as number;
      let date = dates.get(day);
      if (date === undefined) {
        date = new Date(day * _DAY_MS).toISOString().slice(0, 10);
        dates.set(day, date);
      }
      const source = sources[v[10].getItem(k) as number];
      rows.push({
        bar: {
          symbol: source[0],
          timeframe: parseTimeframe(source[1]),
          ts: v[0].getItem(k) as number,
          open: v[1].getItem(k) as number,
          high: v[2].getItem(k) as number,
          low: v[3].getItem(k) as number,
          close: v[4].getItem(k) as number,
          volume: v[5].getItem(k) as number,
          vwap: v[6].getItem(k) as number | null,
          tradeCount: v[7].getItem(k) as number | null,
          tradingDate: date,
          session: _SESSIONS[v[9].getItem(k) as number],
          provider: source[2],
          feed: source[3],
          adjustment: source[4],
        },
        extra: extra.map((_, e) => v[11 + e].getItem(k) as string | null),
      });
    }
  }
  return rows;
}
