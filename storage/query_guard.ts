/**
 * The read-only guard of the query engine: which statements user SQL may be, and DuckDB's errors
 * turned into {@link QueryRejectedError} and {@link QuerySqlError} with positions and hints.
 *
 * @module
 */
import {
  type DuckDBConnection,
  type DuckDBPreparedStatement,
  StatementType,
} from "@duckdb/node-api";
import { isTimeframe, TIMEFRAMES } from "../core/types.ts";
import { barViewName } from "./duckdb.ts";
import type { QueryEngine } from "./query_engine.ts";
import { REFERENCE_TABLES } from "./query_reference.ts";

/** What the guard needs of an engine: the timeframes that have a view, for its hints. */
type _EngineViews = Pick<QueryEngine, "timeframes">;

/** A statement the query runner refuses to run: not read-only, or touching files it may not read. */
export class QueryRejectedError extends Error {
  /** Creates the error; `options.cause` holds DuckDB's error when there is one. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "QueryRejectedError";
  }
}

/** DuckDB refused the SQL itself (syntax, unknown table or column, bad types); the message has its position. */
export class QuerySqlError extends Error {
  /** Creates the error; `options.cause` holds DuckDB's error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "QuerySqlError";
  }
}

/** Statement keywords that never start a read-only statement (used when binding fails first). */
const _WRITE_KEYWORDS: ReadonlySet<string> = new Set([
  "ABORT",
  "ALTER",
  "ANALYZE",
  "ATTACH",
  "BEGIN",
  "CALL",
  "CHECKPOINT",
  "COMMENT",
  "COMMIT",
  "COPY",
  "CREATE",
  "DEALLOCATE",
  "DELETE",
  "DETACH",
  "DROP",
  "END",
  "EXECUTE",
  "EXPORT",
  "FORCE",
  "IMPORT",
  "INSERT",
  "INSTALL",
  "LOAD",
  "MERGE",
  "PREPARE",
  "RESET",
  "ROLLBACK",
  "SET",
  "START",
  "TRUNCATE",
  "UPDATE",
  "USE",
  "VACUUM",
]);

/**
 * Prepares `sql` when it is one read-only statement (SELECT, DESCRIBE, SHOW, SUMMARIZE, and with
 * `allowExplain` an EXPLAIN [ANALYZE] of a SELECT, rebuilt around the checked text); throws
 * {@link QueryRejectedError} for anything else and {@link QuerySqlError} for SQL DuckDB refuses.
 */
export async function prepareReadOnly(
  connection: DuckDBConnection,
  engine: _EngineViews,
  sql: string,
  options: { allowExplain: boolean },
): Promise<DuckDBPreparedStatement> {
  const prepared = await _prepareOne(connection, engine, sql);
  const type = prepared.statementType;
  const first = _leadingWords(sql, 1)[0]?.word.toUpperCase();
  if (first === "PRAGMA" || first === "CALL") {
    // DuckDB rewrites `PRAGMA version` into a SELECT; the console accepts only the documented
    // statements (SELECT, WITH, VALUES, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN).
    prepared.destroySync();
    throw new QueryRejectedError(`Only read-only statements are allowed: got ${first}`);
  }
  if (prepared.parameterCount > 0) {
    // Nothing binds them: DuckDB would fail at execution ("Values were not provided").
    prepared.destroySync();
    throw new QueryRejectedError(
      "Query parameters ($1, $name, ?) are not supported: write the values into the SQL",
    );
  }
  if (type === StatementType.SELECT) return prepared;
  prepared.destroySync();
  if (type === StatementType.EXPLAIN && options.allowExplain) {
    return await _prepareExplain(connection, engine, sql);
  }
  const what = type === StatementType.EXPLAIN ? "EXPLAIN" : _statementLabel(sql, type);
  throw new QueryRejectedError(
    options.allowExplain
      ? `Only read-only statements are allowed: got ${what}`
      : `Only a SELECT statement can be written to a file: got ${what}`,
  );
}

async function _prepareOne(
  connection: DuckDBConnection,
  engine: _EngineViews,
  sql: string,
): Promise<DuckDBPreparedStatement> {
  const extracted = await connection.extractStatements(sql).catch(async (error) => {
    throw await toQueryError(connection, engine, sql, error);
  });
  if (extracted.count !== 1) {
    const pivot = /^(UN)?PIVOT$/i.test(_leadingWords(sql, 1)[0]?.word ?? "")
      ? " (a PIVOT without an IN list runs a helper statement: list the values with ON col IN (...))"
      : "";
    throw new QueryRejectedError(
      `Cannot run ${extracted.count} statements: expected one statement${pivot}`,
    );
  }
  try {
    return await extracted.prepare(0);
  } catch (error) {
    // Binding fails before the statement type is known (INSERT into a view, DROP of a missing
    // table, COPY to a path outside the sandbox): name the statement when its keyword already
    // says it is not a query.
    const words = _leadingWords(sql, 3).map(({ word }) => word.toUpperCase());
    const explain = words[0] === "EXPLAIN" ? /^ANALY[SZ]E$/.test(words[1] ?? "") ? 2 : 1 : 0;
    const keyword = words[explain];
    if (keyword !== undefined && _WRITE_KEYWORDS.has(keyword)) {
      const what = explain > 0 ? `EXPLAIN ${keyword}` : keyword;
      throw new QueryRejectedError(`Only read-only statements are allowed: got ${what}`, {
        cause: error,
      });
    }
    throw await toQueryError(connection, engine, sql, error);
  }
}

/**
 * EXPLAIN ANALYZE executes its statement, writes included (`EXPLAIN ANALYZE DROP VIEW bars_1m`
 * drops the view, and so does `EXPLAIN (ANALYZE) ...`), so the statement after EXPLAIN must itself
 * prepare as a SELECT, and what runs is an EXPLAIN rebuilt around that checked text.
 */
async function _prepareExplain(
  connection: DuckDBConnection,
  engine: _EngineViews,
  sql: string,
): Promise<DuckDBPreparedStatement> {
  const words = _leadingWords(sql, 2);
  if (words[0]?.word.toUpperCase() !== "EXPLAIN") throw new QueryRejectedError(_EXPLAIN_ONLY);
  const analyze = /^ANALY[SZ]E$/i.test(words[1]?.word ?? "");
  const inner = sql.slice(analyze ? words[1].end : words[0].end);
  const innerPrepared = await _prepareOne(connection, engine, inner).catch((error) => {
    if (error instanceof QueryRejectedError) {
      throw new QueryRejectedError(error.message.replace(/got /, "got EXPLAIN "), { cause: error });
    }
    // The whole statement was valid, so what follows EXPLAIN is an option list.
    throw new QueryRejectedError(
      "Only EXPLAIN or EXPLAIN ANALYZE followed by a SELECT statement is allowed (no options)",
      { cause: error },
    );
  });
  const innerType = innerPrepared.statementType;
  innerPrepared.destroySync();
  if (innerType !== StatementType.SELECT) {
    throw new QueryRejectedError(
      `Only read-only statements are allowed: got EXPLAIN ${_statementLabel(inner, innerType)}`,
    );
  }
  const rebuilt = await _prepareOne(
    connection,
    engine,
    `EXPLAIN ${analyze ? "ANALYZE " : ""}\n${inner}`,
  );
  if (rebuilt.statementType !== StatementType.EXPLAIN) {
    rebuilt.destroySync();
    throw new QueryRejectedError(_EXPLAIN_ONLY);
  }
  return rebuilt;
}

const _EXPLAIN_ONLY = "Only EXPLAIN [ANALYZE] followed by a SELECT statement is allowed";

function _statementLabel(sql: string, type: StatementType): string {
  const keyword = _leadingWords(sql, 1)[0]?.word.toUpperCase();
  return keyword === undefined || keyword === "WITH" ? StatementType[type] : keyword;
}

const _SQL_ERROR_TYPES = [
  "Parser",
  "Binder",
  "Catalog",
  "Conversion",
  "Invalid Input",
  "Out of Range",
  "Not implemented",
  "Mismatch Type",
  "Invalid type",
  "Syntax",
  // Raised while running user SQL: a file pattern that matches nothing, a division, a decimal
  // overflow, a feature of an extension the sandbox does not load, `duckdb_secrets()` twice.
  "IO",
  "Divide by Zero",
  "Decimal",
  "Unknown Type",
  "Object Size",
  "Missing Extension",
  "Extension Autoloading",
  "Invalid Configuration",
  "Parameter Not Resolved",
  "Parameter Not Allowed",
];

/** Turns a DuckDB error (a plain Error whose message starts with "<Type> Error: ") into ours. */
export async function toQueryError(
  connection: DuckDBConnection,
  engine: _EngineViews,
  sql: string,
  error: unknown,
): Promise<Error> {
  if (!(error instanceof Error)) return new Error(`Cannot run query: ${error}`, { cause: error });
  if (error instanceof QueryRejectedError || error instanceof QuerySqlError) return error;
  if (/^(Invalid (string|array) length|buffer exceeds maximum length)/i.test(error.message)) {
    // V8 refused to build a result value (a string over ~512 MiB): the result is too large.
    return new QueryRejectedError(
      `Cannot return the result: a value is too large (${error.message}); select less`,
      { cause: error },
    );
  }
  let message = error.message.replace(/^Failed to extract statements: /, "");
  if (message === "Error in native callback") {
    // extractStatements has no message for text that parses to no statement at all (a lone "¡"
    // or no-break space): ask DuckDB's parser for one.
    const parsed = await _parserError(connection, sql);
    if (parsed !== undefined) message = `Parser Error: ${parsed.message}`;
  }
  if (message.startsWith("Permission Error: ")) {
    const detail = message.slice("Permission Error: ".length).split("\n")[0];
    return new QueryRejectedError(
      `Reading files outside the data directory is not allowed: ${detail}`,
      { cause: error },
    );
  }
  const type = /^([A-Za-z ]+) Error: /.exec(message)?.[1];
  if (type === undefined || !_SQL_ERROR_TYPES.includes(type)) {
    return new Error(`Cannot run query: ${message}`, { cause: error });
  }
  let text = message;
  if (type === "Parser" && !message.includes("\nLINE ")) {
    const position = (await _parserError(connection, sql))?.position;
    if (position !== undefined) text += `\n\n${_caretLine(sql, position)}`;
  }
  const missing = /Table with name (\w+) does not exist/.exec(message)?.[1];
  if (missing !== undefined) text += `\n${_missingViewHint(engine, missing)}`;
  return new QuerySqlError(text, { cause: error });
}

/** What a query can read instead of the missing table `view`: the bar views and reference tables. */
function _missingViewHint(engine: _EngineViews, view: string): string {
  const available = `views available: ${
    [...engine.timeframes.map(barViewName), "bars"].join(", ")
  }; reference tables: ${REFERENCE_TABLES.join(", ")}`;
  if (!view.startsWith("bars_")) return `Hint: ${available}`;
  const timeframe = view.slice("bars_".length);
  const what = isTimeframe(timeframe)
    ? `no ${timeframe} bars are stored`
    : `"${timeframe}" is not a timeframe (${TIMEFRAMES.join(", ")})`;
  return `Hint: ${what}; ${available}`;
}

/**
 * DuckDB's parser error for `sql` with its byte offset, which the prepare message omits at the
 * end of input (and extractStatements omits entirely when no statement parses).
 */
async function _parserError(
  connection: DuckDBConnection,
  sql: string,
): Promise<{ message: string; position: number | undefined } | undefined> {
  try {
    const reader = await connection.runAndReadAll("SELECT json_serialize_sql($sql::VARCHAR)", {
      sql,
    });
    const parsed = JSON.parse(String(reader.getRows()[0][0]));
    if (parsed.error_type !== "parser") return undefined;
    const position = Number(parsed.position);
    return {
      message: String(parsed.error_message),
      position: Number.isSafeInteger(position) ? position : undefined,
    };
  } catch {
    // Only decoration for a message we already have; the original error is what gets thrown.
    return undefined;
  }
}

/** DuckDB's own format: `LINE 1: SELECT 1 +` and a caret under the offending character. */
function _caretLine(sql: string, byteOffset: number): string {
  const index = new TextDecoder().decode(new TextEncoder().encode(sql).slice(0, byteOffset)).length;
  const lineStart = sql.lastIndexOf("\n", index - 1) + 1;
  const lineEnd = sql.indexOf("\n", index);
  const label = `LINE ${sql.slice(0, lineStart).split("\n").length}: `;
  const line = sql.slice(lineStart, lineEnd === -1 ? undefined : lineEnd);
  return `${label}${line}\n${" ".repeat(label.length + index - lineStart)}^`;
}

/** Refuses SQL with a NUL character or no statement at all (only comments and semicolons). */
export function checkNotEmpty(sql: string): void {
  // DuckDB reads SQL as a C string: it would silently drop everything after a NUL.
  if (sql.includes("\0")) {
    throw new QueryRejectedError("Cannot run a query that contains a NUL character (\\0)");
  }
  // Empty text or only comments and semicolons: DuckDB's extractStatements fails with a bare
  // "Error in native callback" on those. Refused like other statements that cannot run, so the
  // CLI and the API answer a usage error (an unterminated comment is empty too).
  let index = _skipTrivia(sql, 0);
  while (sql[index] === ";") index = _skipTrivia(sql, index + 1);
  if (index >= sql.length) throw new QueryRejectedError("Cannot run an empty query");
}

/** The first `count` words of a statement after whitespace and comments, with their end offsets. */
function _leadingWords(sql: string, count: number): { word: string; end: number }[] {
  const words: { word: string; end: number }[] = [];
  const pattern = /[A-Za-z_][A-Za-z0-9_]*/y;
  while (words.length < count) {
    pattern.lastIndex = _skipTrivia(sql, words.at(-1)?.end ?? 0);
    const found = pattern.exec(sql);
    if (found === null) break;
    words.push({ word: found[0], end: pattern.lastIndex });
  }
  return words;
}

/** Skips whitespace, `-- line` comments and (nested) `/* block *\/` comments. */
function _skipTrivia(sql: string, index: number): number {
  while (index < sql.length) {
    if (/\s/.test(sql[index])) {
      index++;
    } else if (sql.startsWith("--", index)) {
      const end = sql.indexOf("\n", index);
      index = end === -1 ? sql.length : end + 1;
    } else if (sql.startsWith("/*", index)) {
      let depth = 0;
      do {
        const step = sql.startsWith("/*", index) ? 1 : sql.startsWith("*/", index) ? -1 : 0;
        depth += step;
        index += step === 0 ? 1 : 2;
      } while (depth > 0 && index < sql.length);
    } else {
      break;
    }
  }
  return index;
}
