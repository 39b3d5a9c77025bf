/**
 * Query results as text: an aligned table, CSV or JSON.
 *
 * @module
 */
import type { QueryResult } from "./query.ts";

/** Renders a result as an aligned text table with a header rule and a row-count footer. */
export function formatTable(result: QueryResult): string {
  const numeric = result.columns.map((column) => _isNumericType(column.type));
  const cells = result.rows.map((row) => row.map(_tableCell));
  const widths = result.columns.map((column, index) =>
    Math.max(column.name.length, ...cells.map((row) => row[index].length))
  );
  const line = (values: string[]) =>
    values.map((value, index) =>
      numeric[index] ? value.padStart(widths[index]) : value.padEnd(widths[index])
    ).join("  ").trimEnd();
  const lines = [
    line(result.columns.map((column) => column.name)),
    widths.map((width) => "-".repeat(width)).join("  "),
    ...cells.map(line),
  ];
  const count = result.rowCount === 1 ? "1 row" : `${result.rowCount} rows`;
  lines.push(
    result.truncated ? `(${count} shown, more available: raise --limit)` : `(${count})`,
  );
  return lines.join("\n") + "\n";
}

/** Renders a result as CSV: a header line, RFC 4180 quoting, empty fields for NULL. */
export function formatCsv(result: QueryResult): string {
  const lines = [result.columns.map((column) => _csvField(column.name)).join(",")];
  for (const row of result.rows) lines.push(row.map(_csvField).join(","));
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

function _tableCell(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  const text = typeof value === "string"
    ? value
    : typeof value === "object"
    ? JSON.stringify(value)
    : String(value);
  // Keep one row per line.
  return text.replaceAll("\r", "\\r").replaceAll("\n", "\\n").replaceAll("\t", "\\t");
}

function _csvField(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string"
    ? value
    : typeof value === "object"
    ? JSON.stringify(value)
    : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
