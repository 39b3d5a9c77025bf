/**
 * The reference tables of the query engine: the symbol master and the universes, copied from the
 * metadata database into the engine's DuckDB instance when it opens, so that user SQL can join
 * bars with what a symbol is (`JOIN symbols s ON s.ticker = b.symbol`).
 *
 * @module
 */
import {
  dateValue,
  type DuckDBAppender,
  type DuckDBConnection,
  timestampTZValue,
} from "@duckdb/node-api";
import type { DatabaseSync } from "node:sqlite";
import { sqlIdent } from "./duckdb.ts";
import { ReferenceStore } from "./reference.ts";

/** Names of the reference tables every query engine has (empty when nothing is recorded). */
export const REFERENCE_TABLES = [
  "symbols",
  "symbols_history",
  "universes",
  "universe_members",
] as const;

type _Type = "VARCHAR" | "DATE" | "TIMESTAMPTZ" | "INTEGER";
type _Value = string | number | null;

/** Columns of `symbols` and `symbols_history`, as the metadata's symbol_history names them. */
const _SYMBOL_COLUMNS: readonly (readonly [string, _Type])[] = [
  ["source", "VARCHAR"],
  ["instrument_id", "VARCHAR"],
  ["ticker", "VARCHAR"],
  ["name", "VARCHAR"],
  ["exchange", "VARCHAR"],
  ["asset_class", "VARCHAR"],
  ["status", "VARCHAR"],
  ["list_date", "DATE"],
  ["delist_date", "DATE"],
  ["figi", "VARCHAR"],
  ["cusip", "VARCHAR"],
  ["cik", "VARCHAR"],
  ["provider_id", "VARCHAR"],
  ["as_of", "DATE"],
  ["valid_from", "DATE"],
  ["valid_to", "DATE"],
  ["recorded_at", "TIMESTAMPTZ"],
];

const _UNIVERSE_COLUMNS: readonly (readonly [string, _Type])[] = [
  ["name", "VARCHAR"],
  ["kind", "VARCHAR"],
  ["filter", "VARCHAR"],
  ["description", "VARCHAR"],
  ["members", "INTEGER"],
  ["created_at", "TIMESTAMPTZ"],
  ["updated_at", "TIMESTAMPTZ"],
];

const _MEMBER_COLUMNS: readonly (readonly [string, _Type])[] = [
  ["universe", "VARCHAR"],
  ["symbol", "VARCHAR"],
  ["valid_from", "DATE"],
  ["valid_to", "DATE"],
];

/** The rows of each reference table, read from the metadata database (see {@link readReferenceData}). */
export interface ReferenceData {
  /** symbol_history rows in {@link _SYMBOL_COLUMNS} order, by ticker, source, valid_from. */
  history: _Value[][];
  universes: _Value[][];
  members: _Value[][];
}

/** Reference data of a data directory with nothing recorded. */
export const NO_REFERENCE_DATA: ReferenceData = { history: [], universes: [], members: [] };

/**
 * The symbol master's rows and the universes of a metadata database (read-only or migrated),
 * with each universe's member count on `today` and its member intervals (a filter universe's
 * evaluated over the history). A database from before the symbol master has none.
 */
export function readReferenceData(db: DatabaseSync, today: string): ReferenceData {
  if (!_hasReferenceTables(db)) return NO_REFERENCE_DATA;
  const columns = _SYMBOL_COLUMNS.map(([name]) => name).join(", ");
  const history = db.prepare(
    `SELECT ${columns} FROM symbol_history ORDER BY ticker, source, instrument_id, valid_from`,
  ).all().map((row) => _SYMBOL_COLUMNS.map(([name]) => row[name] as _Value));
  const store = new ReferenceStore(db);
  const listed = store.listUniverses({ asOf: today });
  const universes = listed.map((universe) => [
    universe.name,
    universe.kind,
    universe.filter,
    universe.description,
    universe.members,
    universe.createdAt,
    universe.updatedAt,
  ]);
  const members = listed.flatMap(({ name }) =>
    store.memberIntervals(name).map((m) => [name, m.symbol, m.validFrom, m.validTo])
  );
  return { history, universes, members };
}

/**
 * A fingerprint of what {@link readReferenceData} reads from `db`: it changes with every symbols
 * update that changes a row, and every universe created, deleted or whose members change. An
 * engine opened under another fingerprint holds stale reference tables (they are copied once).
 */
export function referenceVersion(db: DatabaseSync): string {
  if (!_hasReferenceTables(db)) return "none";
  const row = db.prepare(
    `SELECT (SELECT count(*) || ':' || coalesce(max(row_id), 0) || ':' ||
               coalesce(sum(valid_to IS NULL), 0) FROM symbol_history) AS history,
            (SELECT count(*) || ':' || coalesce(max(updated_at), 0) FROM universes) AS universes,
            (SELECT count(*) || ':' || coalesce(max(added_at), 0) || ':' ||
               coalesce(sum(valid_to IS NULL), 0) || ':' || coalesce(max(valid_to), '')
             FROM universe_members) AS members`,
  ).get();
  return `${row?.history}|${row?.universes}|${row?.members}`;
}

function _hasReferenceTables(db: DatabaseSync): boolean {
  const found = db.prepare(
    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('symbol_history', 'universes', 'universe_members')",
  ).get();
  return Number(found?.n) === 3;
}

/**
 * Creates the tables {@link REFERENCE_TABLES} on `connection` and fills them from `data`:
 * `symbols` holds the current rows (one per source and instrument), `symbols_history` every
 * row, `universes` one row per universe with its members today, `universe_members` the member
 * intervals (valid_from inclusive, valid_to exclusive, null while a member). They are plain
 * tables, filled once: user SQL can only read them (the guard runs read-only statements only).
 */
export async function createReferenceTables(
  connection: DuckDBConnection,
  data: ReferenceData,
): Promise<void> {
  const current = data.history.filter((row) => row[_VALID_TO] === null);
  await _createTable(connection, "symbols", _SYMBOL_COLUMNS, current);
  await _createTable(connection, "symbols_history", _SYMBOL_COLUMNS, data.history);
  await _createTable(connection, "universes", _UNIVERSE_COLUMNS, data.universes);
  await _createTable(connection, "universe_members", _MEMBER_COLUMNS, data.members);
}

const _VALID_TO = _SYMBOL_COLUMNS.findIndex(([name]) => name === "valid_to");

async function _createTable(
  connection: DuckDBConnection,
  table: string,
  columns: readonly (readonly [string, _Type])[],
  rows: readonly _Value[][],
): Promise<void> {
  const list = columns.map(([name, type]) => `${sqlIdent(name)} ${type}`).join(", ");
  await connection.run(`CREATE OR REPLACE TABLE ${sqlIdent(table)} (${list})`);
  if (rows.length === 0) return;
  const appender = await connection.createAppender(table);
  try {
    for (const row of rows) {
      for (const [index, [name, type]] of columns.entries()) {
        _append(appender, type, row[index], `${table}.${name}`);
      }
      appender.endRow();
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

function _append(appender: DuckDBAppender, type: _Type, value: _Value, column: string): void {
  if (value === null || value === undefined) return appender.appendNull();
  switch (type) {
    case "VARCHAR":
      return appender.appendVarchar(String(value));
    case "INTEGER":
      return appender.appendInteger(Number(value));
    case "DATE": {
      const match = typeof value === "string" ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(value) : null;
      if (match === null) {
        throw new TypeError(`Invalid ${column} ${JSON.stringify(value)}: expected YYYY-MM-DD`);
      }
      const [year, month, day] = match.slice(1).map(Number);
      return appender.appendDate(dateValue({ year, month, day }));
    }
    case "TIMESTAMPTZ": {
      const ms = Number(value);
      if (!Number.isSafeInteger(ms)) {
        throw new TypeError(`Invalid ${column} ${JSON.stringify(value)}: expected epoch ms`);
      }
      return appender.appendTimestampTZ(timestampTZValue(BigInt(ms) * 1000n));
    }
  }
}
