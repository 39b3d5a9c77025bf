/**
 * Query results as text: an aligned table, CSV or JSON.
 *
 * @module
 */
import {
  formatIsoInZone,
  formatIsoTime,
  formatPrices,
  type TimeZoneSetting,
} from "../core/format.ts";
import type { QueryResult } from "./query.ts";

/** Options of {@link formatTable} and {@link formatCsv}. */
export interface FormatOptions {
  /**
   * Zone of TIMESTAMPTZ values (ISO UTC text in a result): a table shows them as
   * `2024-03-04 09:30:00 ET`, CSV as ISO 8601 with the zone's offset. Default: ISO UTC as stored.
   */
  tz?: TimeZoneSetting;
}

/**
 * Renders a result as an aligned text table with a header rule and a row-count footer. Each
 * floating-point column prints every value with the same decimals (the most any needs, see
 * {@link formatPrices}); with `tz`, TIMESTAMPTZ values are shown in that zone, named.
 */
export function formatTable(result: QueryResult, options: FormatOptions = {}): string {
  const numeric = result.columns.map((column) => _isNumericType(column.type));
  const cells = result.rows.map((row) => row.map(_tableCell));
  result.columns.forEach((column, index) => {
    if (_isFractionalType(column.type)) {
      const values = result.rows.map((row) => row[index]);
      const texts = formatPrices(values.filter((v): v is number => typeof v === "number"));
      let next = 0;
      values.forEach((value, r) => {
        if (typeof value === "number") cells[r][index] = texts[next++];
      });
    } else if (options.tz !== undefined && _isTimestampTz(column.type)) {
      for (const [r, row] of result.rows.entries()) {
        if (typeof row[index] === "string") cells[r][index] = formatIsoTime(row[index], options.tz);
      }
    }
  });
  const widths = result.columns.map((column, index) =>
    Math.max(column.name.length, ...cells.map((row) => row[index].length))
  );
  const line = (values: string[]) =>
    values.map((value, index) =>
      numeric[index] ? value.padStart(widths[index]) : value.padEnd(widths[index])
    ).join("  ").trimEnd();
  const count = result.rowCount === 1 ? "1 row" : `${result.rowCount} rows`;
  return [
    line(result.columns.map((column) => column.name)),
    widths.map((width) => "-".repeat(width)).join("  "),
    ...cells.map(line),
    result.truncated ? `(${count} shown, more available: raise --limit)` : `(${count})`,
  ].join("\n") + "\n";
}

/**
 * Renders a result as CSV: a header line, RFC 4180 quoting, empty fields for NULL; with `tz`,
 * TIMESTAMPTZ values as ISO 8601 with that zone's offset (`2024-03-04T09:30:00.000-05:00`).
 */
export function formatCsv(result: QueryResult, options: FormatOptions = {}): string {
  const lines = [result.columns.map((column) => _csvField(column.name)).join(",")];
  const zoned = options.tz === undefined || options.tz === "utc"
    ? []
    : result.columns.flatMap((column, index) => _isTimestampTz(column.type) ? [index] : []);
  for (const row of result.rows) {
    const values = zoned.length === 0 ? row : [...row];
    for (const index of zoned) {
      const value = values[index];
      const ms = typeof value === "string" ? Date.parse(value) : NaN;
      if (Number.isFinite(ms)) values[index] = formatIsoInZone(ms, options.tz!);
    }
    lines.push(values.map(_csvField).join(","));
  }
  return lines.join("\n") + "\n";
}

/** Renders a result as a JSON array with one object per row, one row per line. */
export function formatJson(result: QueryResult): string {
  if (result.rows.length === 0) return "[]\n";
  const names = result.columns.map((column) => column.name);
  const objects = result.rows.map((row) =>
    JSON.stringify(Object.fromEntries(names.map((name, index) => [name, row[index]])))
  );
  return `[\n${objects.map((object) => `  ${object}`).join(",\n")}\n]\n`;
}

function _isNumericType(type: string): boolean {
  return /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL|BIGNUM|VARINT)\b/
    .test(type);
}

function _isFractionalType(type: string): boolean {
  return /^(FLOAT|DOUBLE|DECIMAL)\b/.test(type);
}

function _isTimestampTz(type: string): boolean {
  return type === "TIMESTAMP WITH TIME ZONE" || type === "TIMESTAMPTZ";
}

function _tableCell(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  // Keep one row per line.
  return _text(value).replaceAll("\r", "\\r").replaceAll("\n", "\\n").replaceAll("\t", "\\t");
}

function _csvField(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = _text(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function _text(value: unknown): string {
  if (typeof value === "string") return value;
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}
