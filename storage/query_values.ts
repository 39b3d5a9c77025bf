/**
 * DuckDB values as JSON-safe values, the form every query result takes.
 *
 * @module
 */
import {
  type DuckDBDecimalValue,
  type DuckDBTimestampTZValue,
  DuckDBTypeId,
  type DuckDBValueConverter,
  type Json,
  JsonDuckDBValueConverter,
} from "@duckdb/node-api";

/** DuckDB value -> JSON-safe value; nested values recurse through this same converter. */
export const toJsonSafe: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (value === null) return null;
  switch (type.typeId) {
    // The common bar columns first, without the generic converter's dispatch.
    case DuckDBTypeId.DOUBLE:
    case DuckDBTypeId.FLOAT:
    case DuckDBTypeId.INTEGER:
    case DuckDBTypeId.SMALLINT:
    case DuckDBTypeId.TINYINT:
    case DuckDBTypeId.UINTEGER:
    case DuckDBTypeId.USMALLINT:
    case DuckDBTypeId.UTINYINT:
      return Number.isFinite(value as number) ? value as number : String(value);
    case DuckDBTypeId.VARCHAR:
      return value as string;
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UBIGINT:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT:
    case DuckDBTypeId.BIGNUM: {
      const integer = value as bigint;
      const asNumber = Number(integer);
      return Number.isSafeInteger(asNumber) ? asNumber : integer.toString();
    }
    case DuckDBTypeId.DECIMAL:
      return (value as DuckDBDecimalValue).toDouble();
    case DuckDBTypeId.TIMESTAMP_TZ:
      return _isoTimestamp(value as DuckDBTimestampTZValue);
    case DuckDBTypeId.INTERVAL:
      return String(value);
    default:
      return JsonDuckDBValueConverter(value, type, converter);
  }
};

function _isoTimestamp(value: DuckDBTimestampTZValue): string {
  if (!value.isFinite) return value.micros > 0n ? "infinity" : "-infinity";
  const micros = Number(value.micros);
  if (Number.isSafeInteger(micros)) {
    const date = new Date(Math.floor(micros / 1000));
    if (!Number.isNaN(date.getTime())) return date.toISOString();
  }
  let millis = value.micros / 1000n;
  if (value.micros % 1000n < 0n) millis -= 1n;
  const date = new Date(Number(millis));
  // Beyond JS Date's range (year 275760) fall back to DuckDB's own text.
  return Number.isNaN(date.getTime()) ? value.toString() : date.toISOString();
}
