/**
 * What the gap report needs from storage: bars per trading day (all and regular-session) from the
 * Parquet files, and the days a provider answered with no bars from the coverage table.
 *
 * @module
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import type { Timeframe } from "../core/types.ts";
import { type DayCount, findGaps, type SymbolGaps } from "../core/validate_gaps.ts";
import { corruptFileError } from "./corrupt.ts";
import { openDuckDB, readFilesSql, sqlString } from "./duckdb.ts";
import { pathExists } from "./fs.ts";
import { listFilePaths, listPartitionFiles, listStoredSymbols } from "./manifest.ts";
import { META_FILE, migrationStatus, openReadOnlyDatabase } from "./meta.ts";
import { ReferenceStore } from "./reference.ts";

/** The widest span of trading dates the calendar knows. */
const _ALL_DATES = { start: "1990-01-01", end: "2100-12-31" };

/** Options of {@link findStoredGaps}. */
export interface FindStoredGapsOptions {
  timeframe: Timeframe;
  /** Symbols to judge; default every symbol with `timeframe` bars or coverage. */
  symbols?: readonly string[];
  /** Dates to judge; default each symbol's own stored range, from its first stored session. */
  range?: { start: string; end: string };
  /** Last date that can be judged: later sessions have not closed, so they are never gaps. */
  until?: string;
  /** Smallest acceptable share of a regular session's bars, 0-1; default 0.9. */
  minCoverage?: number;
  signal?: AbortSignal;
}

/** Gaps of one symbol over the dates judged (`start`/`end` absent when it has nothing stored). */
export interface StoredGaps extends SymbolGaps {
  start?: string;
  end?: string;
  /**
   * The symbol's listing window from the symbol master, when it cut the dates judged: days
   * before its listing or after its delisting are never gaps.
   */
  listing?: { start: string | null; end: string | null };
}

/**
 * The gap report of a data directory, read without creating or migrating anything: per symbol,
 * the trading days with no bar and those with too little of their regular session, judged over
 * `range` or each symbol's own stored range (bars or coverage, any source), cut to the symbol's
 * listing window when the symbol master knows it.
 *
 * @example
 * ```ts
 * const gaps = await findStoredGaps("./data", { timeframe: "1m" });
 * for (const g of gaps) console.log(g.symbol, g.start, g.end, g.missing);
 * ```
 */
export async function findStoredGaps(
  dataDir: string,
  options: FindStoredGapsOptions,
): Promise<StoredGaps[]> {
  const { timeframe, range, until } = options;
  const span = range ?? _ALL_DATES;
  let knownEmpty = new Map<string, Set<string>>();
  let covered = new Map<string, { first: string; last: string }>();
  // Each symbol's files, listed while the manifest is open rather than reopening it per symbol.
  let files = new Map<string, string[]>();
  let windows = new Map<string, { start: string | null; end: string | null }>();
  let symbols = options.symbols
    ? [...options.symbols]
    : await listStoredSymbols(dataDir, "bars", timeframe);
  const metaPath = join(dataDir, META_FILE);
  if (await pathExists(metaPath)) {
    const db = openReadOnlyDatabase(metaPath);
    try {
      covered = _coverageRanges(db, timeframe);
      if (!options.symbols) symbols = [...new Set([...symbols, ...covered.keys()])].sort();
      knownEmpty = readKnownEmptyDays(db, timeframe, symbols, span.start, span.end);
      windows = _listingWindows(db, symbols);
      files = new Map(symbols.map((symbol) => [
        symbol,
        listFilePaths(db, dataDir, {
          tree: "bars",
          timeframe,
          symbol,
          start: span.start,
          end: span.end,
        }),
      ]));
    } finally {
      db.close();
    }
  }
  const duckdb = await openDuckDB({});
  const results: StoredGaps[] = [];
  try {
    const connection = await duckdb.connect();
    try {
      for (const symbol of symbols) {
        options.signal?.throwIfAborted();
        const counts = await _countDays(
          connection,
          files.get(symbol) ?? [],
          timeframe,
          symbol,
          span.start,
          span.end,
        );
        let start = range?.start;
        let end = range?.end;
        if (range === undefined) {
          const dates = [
            covered.get(symbol)?.first,
            covered.get(symbol)?.last,
            counts[0]?.date,
            counts.at(-1)?.date,
          ]
            .filter((d): d is string => d !== undefined).sort();
          start = dates[0];
          end = dates.at(-1);
        }
        if (end !== undefined && until !== undefined && end > until) end = until;
        const listing = windows.get(symbol);
        const cut = listing !== undefined && start !== undefined && end !== undefined &&
          ((listing.start !== null && listing.start > start) ||
            (listing.end !== null && listing.end < end));
        if (cut) {
          if (listing.start !== null && listing.start > start!) start = listing.start;
          if (listing.end !== null && listing.end < end!) end = listing.end;
        }
        const extra = cut ? { listing } : {};
        if (start === undefined || end === undefined || start > end) {
          const none = { tradingDays: 0, daysWithData: 0, missing: [], knownEmpty: [] };
          results.push({ symbol, ...none, lowCoverage: [], start, end, ...extra });
          continue;
        }
        results.push({
          ...findGaps(symbol, start, end, counts, {
            timeframe,
            minCoverage: options.minCoverage,
            knownEmpty: knownEmpty.get(symbol),
          }),
          start,
          end,
          ...extra,
        });
      }
    } finally {
      connection.closeSync();
    }
  } finally {
    duckdb.closeSync();
  }
  return results;
}

/** The listing windows the symbol master holds for `symbols` (none before its migration). */
function _listingWindows(
  db: DatabaseSync,
  symbols: readonly string[],
): Map<string, { start: string | null; end: string | null }> {
  const reference = migrationStatus(db).find((m) => m.version === 8);
  if (reference?.appliedAt === null || reference === undefined) return new Map();
  return new ReferenceStore(db).listingWindows(symbols);
}

/** First and last trading date each symbol's `timeframe` coverage holds, from any source. */
function _coverageRanges(
  db: DatabaseSync,
  timeframe: Timeframe,
): Map<string, { first: string; last: string }> {
  return new Map(
    db.prepare(
      `SELECT symbol, min(trading_date) AS first, max(trading_date) AS last FROM ingested_days
       WHERE timeframe = ? GROUP BY symbol`,
    ).all(timeframe).map((row) => [
      row.symbol as string,
      { first: row.first as string, last: row.last as string },
    ]),
  );
}

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
  return await _countDays(connection, files, timeframe, symbol, start, end);
}

async function _countDays(
  connection: DuckDBConnection,
  files: readonly string[],
  timeframe: Timeframe,
  symbol: string,
  start: string,
  end: string,
): Promise<DayCount[]> {
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
  const statement = db.prepare(
    `SELECT trading_date FROM ingested_days WHERE timeframe = ? AND symbol = ?
       AND trading_date BETWEEN ? AND ? GROUP BY trading_date HAVING max(bars) = 0`,
  );
  return new Map(symbols.map((symbol) => [
    symbol,
    new Set(statement.all(timeframe, symbol, start, end).map((row) => row.trading_date as string)),
  ]));
}
