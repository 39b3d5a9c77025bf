/**
 * Stored bars exported to files for other tools: symbols, one timeframe and a range of trading
 * dates as Parquet, CSV or Arrow IPC, in one file or one file per symbol. Parquet and CSV are
 * written by DuckDB's own `COPY`, Arrow is streamed chunk by chunk, so memory stays bounded
 * whatever the range; nothing is capped. Everything is written into a staging folder beside the
 * output by the query engine's export sandbox (it can read only `bars/` and write only that
 * folder), then fsynced and renamed into place: a failed export leaves nothing.
 *
 * @module
 */
import type { DuckDBConnection, DuckDBPreparedStatement, DuckDBValue } from "@duckdb/node-api";
import { LIST, listValue, VARCHAR } from "@duckdb/node-api";
import { basename, dirname, join } from "node:path";
import { didYouMean, UsageError } from "../core/errors.ts";
import { isValidSymbol } from "../core/symbols.ts";
import type { Timeframe } from "../core/types.ts";
import { BAR_COLUMNS, sqlIdent, sqlString } from "./duckdb.ts";
import { fsyncDir, fsyncFile, ifFound } from "./fs.ts";
import { checkOutputPath, tempPathBeside } from "./output.ts";
import {
  openQueryEngine,
  type QueryEngine,
  retryReplaced,
  withConnection,
} from "./query_engine.ts";

/** File formats of {@link exportBars}. */
export const EXPORT_FORMATS = ["parquet", "csv", "arrow"] as const;

/** One of {@link EXPORT_FORMATS}. */
export type ExportFormat = typeof EXPORT_FORMATS[number];

/** Which bars {@link exportBars} writes, and how. */
export interface ExportRequest {
  symbols: readonly string[];
  timeframe: Timeframe;
  /** First and last trading date `YYYY-MM-DD`, both inclusive. */
  start: string;
  end: string;
  format: ExportFormat;
  /** Bar columns to write, in this order (default: all of {@link BAR_COLUMNS}). */
  columns?: readonly string[];
  /**
   * CSV only: render `ts` as local time with its offset in this IANA zone, in a column named
   * `ts_<zone>` (default: UTC, column `ts`). Parquet and Arrow always hold UTC instants.
   */
  timeZone?: string;
}

/** How far an export is: rows written (estimated while a file is written) of all rows. */
export interface ExportProgress {
  rows: number;
  totalRows: number;
  files: number;
  totalFiles: number;
}

/** Options of {@link exportBars}. */
export interface ExportBarsOptions {
  /** Write one file per symbol, `<out>/<SYMBOL>.<format>`, instead of one file `out`. */
  perSymbol?: boolean;
  /** More files the output must never be, e.g. a metrics history database elsewhere. */
  protectedFiles?: readonly string[];
  /** DuckDB memory limit of the export (default: the query engine's). */
  memoryLimit?: string;
  /** Most bytes the export may spill (default: the query engine's). */
  tempLimit?: string;
  /** Stops the export; nothing is left behind and the abort reason is thrown. */
  signal?: AbortSignal;
  /** Called as rows are written (every 200 ms while DuckDB writes a file) and per finished file. */
  onProgress?: (progress: ExportProgress) => void;
}

/** What {@link exportBars} wrote. */
export interface ExportSummary {
  rows: number;
  files: { path: string; rows: number; bytes: number }[];
}

/**
 * Checks `--columns` against the bar columns and returns them (every column when `columns` is
 * undefined); throws a {@link UsageError} naming an unknown or repeated column.
 */
export function checkExportColumns(columns: readonly string[] | undefined): string[] {
  const known = BAR_COLUMNS.map((column) => column.name);
  if (columns === undefined) return known;
  if (columns.length === 0) throw new UsageError(`Invalid --columns "": expected column names`);
  const seen = new Set<string>();
  for (const name of columns) {
    if (!known.includes(name)) {
      throw new UsageError(
        `Invalid --columns: unknown column "${name}"${didYouMean(name, known)}; expected some of ${
          known.join(", ")
        }`,
      );
    }
    if (seen.has(name)) throw new UsageError(`Invalid --columns: "${name}" is given twice`);
    seen.add(name);
  }
  return [...columns];
}

/**
 * Exports stored bars to `out` (a file, or with `perSymbol` a folder that is created when
 * missing). `out` follows the rules of `query --output` ({@link checkOutputPath}). Refuses (a
 * {@link UsageError}, nothing written) a bad request and symbols without bars in the range.
 * Rows are ordered by symbol, then `ts`.
 *
 * @example
 * ```ts
 * const { rows } = await exportBars("./data", {
 *   symbols: ["AAPL", "MSFT"], timeframe: "1m", start: "2024-01-02", end: "2024-12-31",
 *   format: "parquet",
 * }, "bars.parquet");
 * ```
 */
export async function exportBars(
  dataDir: string,
  request: ExportRequest,
  out: string,
  options: ExportBarsOptions = {},
): Promise<ExportSummary> {
  const columns = _checkRequest(request);
  const perSymbol = options.perSymbol ?? false;
  const ext = request.format;
  const check = (path: string) =>
    checkOutputPath(dataDir, path, { label: "--out", protectedFiles: options.protectedFiles });
  // Where the files go: one target per output, staged in a folder beside (or inside) the output.
  let targets: { symbols: readonly string[]; name: string; path: string }[];
  let stage: string;
  let intoFreshDir: string | undefined;
  if (!perSymbol) {
    const path = await check(out);
    stage = tempPathBeside(path);
    targets = [{ symbols: request.symbols, name: basename(path), path }];
  } else {
    // A folder may be named with its trailing slash.
    if (/[^/\\][/\\]+$/.test(out)) out = out.replace(/[/\\]+$/, "");
    const info = await ifFound(Deno.stat(out));
    if (info !== undefined && !info.isDirectory) {
      throw new UsageError(
        `Cannot write --out "${out}": it is a file; --per-symbol writes one file per symbol into a folder`,
      );
    }
    const names = request.symbols.map((symbol) => `${symbol}.${ext}`);
    const paths: string[] = [];
    if (info === undefined) {
      intoFreshDir = await check(out);
      stage = tempPathBeside(intoFreshDir);
      for (const name of names) paths.push(join(intoFreshDir, name));
    } else {
      for (const name of names) paths.push(await check(join(out, name)));
      stage = tempPathBeside(join(dirname(paths[0]), "export"));
    }
    targets = request.symbols.map((symbol, i) => ({
      symbols: [symbol],
      name: names[i],
      path: paths[i],
    }));
  }
  using engine = await openQueryEngine(dataDir, {
    exportDir: stage,
    memoryLimit: options.memoryLimit,
    tempLimit: options.tempLimit,
  });
  const counts = await _countRows(engine, request, options.signal);
  const missing = request.symbols.filter((symbol) => !counts.has(symbol));
  if (missing.length > 0) {
    throw new UsageError(
      `No stored ${request.timeframe} bars of ${
        missing.join(", ")
      } from ${request.start} to ${request.end}`,
    );
  }
  const totalRows = [...counts.values()].reduce((a, b) => a + b, 0);
  const summary: ExportSummary = { rows: 0, files: [] };
  await Deno.mkdir(stage, { mode: 0o700 });
  try {
    for (const target of targets) {
      const staged = join(stage, target.name);
      const expected = target.symbols.reduce((n, symbol) => n + counts.get(symbol)!, 0);
      const done = summary.rows;
      const report = (rows: number) =>
        options.onProgress?.({
          rows: done + Math.min(Math.round(rows), expected),
          totalRows,
          files: summary.files.length,
          totalFiles: targets.length,
        });
      const rows = await retryReplaced(
        engine,
        () =>
          _writeFile(engine, request, columns, target.symbols, staged, {
            expected,
            report,
            signal: options.signal,
          }),
      );
      await fsyncFile(staged);
      summary.rows += rows;
      summary.files.push({ path: target.path, rows, bytes: (await Deno.stat(staged)).size });
      report(expected);
    }
    if (intoFreshDir !== undefined) {
      await fsyncDir(stage);
      await Deno.rename(stage, intoFreshDir);
      await fsyncDir(join(intoFreshDir, ".."));
    } else {
      for (const target of targets) await Deno.rename(join(stage, target.name), target.path);
      await Deno.remove(stage);
      await fsyncDir(join(targets[0].path, ".."));
    }
    return summary;
  } catch (error) {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
    throw error;
  }
}

function _checkRequest(request: ExportRequest): string[] {
  if (request.symbols.length === 0) throw new UsageError("Missing --symbols: nothing to export");
  for (const symbol of request.symbols) {
    if (!isValidSymbol(symbol)) {
      throw new UsageError(`Invalid symbol "${symbol}": expected a ticker like AAPL`);
    }
  }
  if (!(EXPORT_FORMATS as readonly string[]).includes(request.format)) {
    throw new UsageError(
      `Invalid --format "${request.format}"${didYouMean(request.format, EXPORT_FORMATS)}: ` +
        `expected one of ${EXPORT_FORMATS.join(", ")}`,
    );
  }
  if (request.start > request.end) {
    throw new UsageError(`Invalid range: --start ${request.start} is after --end ${request.end}`);
  }
  if (request.timeZone !== undefined) {
    if (request.format !== "csv") {
      throw new UsageError(
        `Invalid --tz for --format ${request.format}: ${request.format} keeps ts as UTC instants; --tz applies to csv`,
      );
    }
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: request.timeZone });
    } catch (error) {
      throw new UsageError(
        `Invalid --tz "${request.timeZone}": expected an IANA time zone like America/New_York`,
        { cause: error },
      );
    }
  }
  return checkExportColumns(request.columns);
}

/** Stored rows per symbol of the request (symbols without any are absent). */
async function _countRows(
  engine: QueryEngine,
  request: ExportRequest,
  signal: AbortSignal | undefined,
): Promise<Map<string, number>> {
  return await retryReplaced(
    engine,
    () =>
      withConnection(engine, undefined, signal, async (connection) => {
        const { files } = _files(engine, request, request.symbols);
        if (files.length === 0) return new Map<string, number>();
        const prepared = await connection.prepare(
          `SELECT symbol, count(*)::DOUBLE FROM ${_SOURCE} GROUP BY symbol`,
        );
        try {
          _bind(prepared, request, files);
          return new Map((await prepared.runAndReadAll()).getRows() as [string, number][]);
        } finally {
          prepared.destroySync();
        }
      }),
  );
}

/**
 * The live files of `symbols` that hold a trading date of the request (absolute paths), by
 * symbol and first bar. Each file is sorted by `ts`, so when no two files of a symbol overlap in
 * time (`inOrder`), reading them in this order gives the rows by symbol and `ts` without a sort,
 * which would hold every row in memory or spill it.
 */
function _files(
  engine: QueryEngine,
  request: ExportRequest,
  symbols: readonly string[],
): { files: string[]; inOrder: boolean } {
  const live = symbols.flatMap((symbol) =>
    engine._liveFiles({
      tree: "bars",
      timeframe: request.timeframe,
      symbol,
      start: request.start,
      end: request.end,
    })
  ).sort((a, b) => a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : a.minTs - b.minTs);
  const inOrder = live.every((file, i) =>
    i === 0 || file.symbol !== live[i - 1].symbol || file.minTs > live[i - 1].maxTs
  );
  return { files: live.map((file) => join(engine.dataDir, file.path)), inOrder };
}

/** The rows of an export: the listed files (one per symbol and part) within the dates. */
const _SOURCE = `read_parquet($files, hive_partitioning = true, hive_types_autocast = false)
    AS stored WHERE trading_date BETWEEN $start::DATE AND $end::DATE`;

function _bind(
  prepared: DuckDBPreparedStatement,
  request: ExportRequest,
  files: string[],
  { timeZone = false } = {},
): void {
  const values: Record<string, DuckDBValue> = {
    files: listValue(files),
    start: request.start,
    end: request.end,
  };
  if (timeZone && request.timeZone !== undefined) values.tz = request.timeZone;
  prepared.bind(values, { files: LIST(VARCHAR) });
}

/** Writes the rows of `symbols` to `path` and returns how many. */
async function _writeFile(
  engine: QueryEngine,
  request: ExportRequest,
  columns: readonly string[],
  symbols: readonly string[],
  path: string,
  progress: { expected: number; report: (rows: number) => void; signal?: AbortSignal },
): Promise<number> {
  const { expected, report } = progress;
  return await withConnection(engine, undefined, progress.signal, async (connection) => {
    const { files, inOrder } = _files(engine, request, symbols);
    const select = columns.map((name) => _columnSql(name, request)).join(", ");
    // DuckDB keeps the order of the files and their rows (preserve_insertion_order is on).
    const query = `SELECT ${select} FROM ${_SOURCE}${
      inOrder ? "" : " ORDER BY stored.symbol, stored.ts"
    }`;
    if (request.format === "arrow") {
      return await _writeArrow(connection, request, files, query, columns, path, report);
    }
    const format = request.format === "csv"
      ? "FORMAT csv, HEADER true"
      : "FORMAT parquet, COMPRESSION zstd";
    // The path is ours (the staging folder); every request value is a bound parameter.
    const prepared = await connection.prepare(`COPY (${query}) TO ${sqlString(path)} (${format})`);
    try {
      _bind(prepared, request, files, { timeZone: true });
      const running = prepared.run();
      return Number((await _withProgress(connection, running, expected, report)).rowsChanged);
    } finally {
      prepared.destroySync();
    }
  }, { exporter: true });
}

/** Reports DuckDB's progress of `running` (of `expected` rows) every 200 ms until it settles. */
async function _withProgress<T>(
  connection: DuckDBConnection,
  running: Promise<T>,
  expected: number,
  report: (rows: number) => void,
): Promise<T> {
  let settled = false;
  const outcome = running.finally(() => (settled = true));
  while (!settled) {
    await Promise.race([outcome.catch(() => {}), new Promise((r) => setTimeout(r, 200))]);
    if (settled) break;
    const { percentage } = connection.progress;
    if (percentage >= 0) report(expected * Math.min(percentage, 100) / 100);
  }
  return await outcome;
}

/**
 * One column of the SELECT. CSV times are ISO 8601 like `query --format csv` (UTC with `Z`, or
 * with `timeZone` the local time with its offset, in a column named after the zone); Arrow reads
 * times as epoch microseconds and dates as epoch days, the Arrow types' own units.
 */
function _columnSql(name: string, request: ExportRequest): string {
  const type = BAR_COLUMNS.find((column) => column.name === name)!.type;
  const ident = sqlIdent(name);
  if (request.format === "arrow") {
    if (type === "TIMESTAMPTZ") return `epoch_us(${ident}) AS ${ident}`;
    if (type === "DATE") return `(${ident} - DATE '1970-01-01')::INTEGER AS ${ident}`;
    return ident;
  }
  if (request.format !== "csv" || type !== "TIMESTAMPTZ") return ident;
  if (name !== "ts" || request.timeZone === undefined) {
    return `strftime(${ident}, '%Y-%m-%dT%H:%M:%S.%gZ') AS ${ident}`;
  }
  const local = `(${ident} AT TIME ZONE $tz)`;
  const offset = `((epoch(${local}) - epoch(${ident})) // 60)::INTEGER`;
  return `strftime(${local}, '%Y-%m-%dT%H:%M:%S.%g') || ` +
    `CASE WHEN ${offset} < 0 THEN '-' ELSE '+' END || ` +
    `printf('%02d:%02d', abs(${offset}) // 60, abs(${offset}) % 60) AS ${
      sqlIdent(`ts_${request.timeZone}`)
    }`;
}

/** Streams the query into an Arrow IPC file (the encoder is loaded only for Arrow exports). */
async function _writeArrow(
  connection: DuckDBConnection,
  request: ExportRequest,
  files: string[],
  query: string,
  columns: readonly string[],
  path: string,
  report: (rows: number) => void,
): Promise<number> {
  const { writeArrowFile } = await import("./export_arrow.ts");
  const prepared = await connection.prepare(query);
  try {
    _bind(prepared, request, files);
    const fields = columns.map((name) => BAR_COLUMNS.find((column) => column.name === name)!);
    return await writeArrowFile(await prepared.stream(), fields, path, report);
  } finally {
    prepared.destroySync();
  }
}
