/**
 * Polygon.io (Massive) reference tickers, `/v3/reference/tickers`, on a given date, active and
 * inactive, paged by `next_url` (providers/REFERENCE.md, "polygon").
 *
 * @module
 */
import { isValidDate } from "../core/calendar.ts";
import type { AssetClass, ReferenceSnapshot, SymbolRecord } from "../core/reference.ts";
import { isValidSymbol } from "../core/symbols.ts";
import {
  baseUrlFromEnv,
  createHttpClient,
  cursorGuard,
  injectedClientOptions,
  requireCredentials,
} from "./http.ts";
import { isObject, jsonKind } from "./http_normalize.ts";
import {
  POLYGON_BASE_URL,
  POLYGON_RATE_LIMIT,
  polygonErrorText,
  polygonNextPath,
} from "./polygon.ts";
import type { ReferenceFetchOptions } from "./reference.ts";

/** Largest `limit` of `/v3/reference/tickers`. */
export const POLYGON_TICKERS_LIMIT = 1000;

const _KEY_VARS = ["POLYGON_API_KEY"] as const;
const _PATH = "/v3/reference/tickers";

/** Polygon `type` codes to asset classes; any other code (or none) is `other`. */
export const POLYGON_TYPES: Readonly<Record<string, AssetClass>> = {
  CS: "stock",
  OS: "stock",
  ETF: "etf",
  ETV: "etf",
  ETS: "etf",
  ADRC: "adr",
  GDR: "adr",
  NYRS: "adr",
  ADRP: "preferred",
  PFD: "preferred",
  WARRANT: "warrant",
  ADRW: "warrant",
  RIGHT: "right",
  ADRR: "right",
  UNIT: "unit",
  FUND: "fund",
};

/** Throw a `UsageError` when the key is missing or `POLYGON_BASE_URL` is bad. */
export function checkPolygonReference(env: Record<string, string | undefined>): void {
  requireCredentials("polygon", env, [_KEY_VARS]);
  baseUrlFromEnv(env, "POLYGON_BASE_URL", POLYGON_BASE_URL);
}

/**
 * Every stock ticker Polygon lists on `options.asOf`: `active=true`, then `active=false` (those
 * delisted by then), 1,000 a page, following `next_url` with the key appended again. One
 * instrument per composite FIGI (else `polygon:TICKER`); when one appears twice the active row
 * wins, then the latest delisting; of two active instruments under one ticker the one with a
 * FIGI stays. What is left out counts as skipped. A complete snapshot.
 */
export async function fetchPolygonReference(
  options: ReferenceFetchOptions,
): Promise<ReferenceSnapshot> {
  const [apiKey] = requireCredentials("polygon", options.env, [_KEY_VARS]);
  const http = createHttpClient({
    provider: "polygon",
    baseUrl: baseUrlFromEnv(options.env, "POLYGON_BASE_URL", POLYGON_BASE_URL)!,
    perMinute: options.rateLimit ?? POLYGON_RATE_LIMIT,
    secrets: [apiKey],
    ...injectedClientOptions(options),
    explainError: (status) =>
      status === 401
        ? { hint: "the key was refused: check POLYGON_API_KEY", fatal: true }
        : status === 403
        ? { hint: "the plan does not include reference data" }
        : undefined,
  });
  const fetched: SymbolRecord[] = [];
  let skipped = 0;
  for (const active of [true, false]) {
    let path = _PATH;
    let query: Record<string, string | number | boolean> = {
      market: "stocks",
      active,
      date: options.asOf,
      order: "asc",
      sort: "ticker",
      limit: POLYGON_TICKERS_LIMIT,
      apiKey,
    };
    const checkNext = cursorGuard(http, "next_url");
    for (;;) {
      const page = await http.get(path, {
        query,
        signal: options.signal,
        parse: (body) => _parsePage(body, active),
      });
      skipped += page.skipped;
      for (const record of page.records) fetched.push(record);
      if (page.next === undefined) break;
      checkNext(page.next, _PATH);
      path = page.next;
      // next_url carries the other parameters in its cursor, but never the key.
      query = { apiKey };
    }
  }
  // Two active instruments under one ticker cannot both be current: the one with a FIGI stays.
  const activeTicker = new Map<string, SymbolRecord>();
  for (const record of fetched) {
    if (record.status !== "active") continue;
    const other = activeTicker.get(record.ticker);
    if (other === undefined || (other.figi === null && record.figi !== null)) {
      activeTicker.set(record.ticker, record);
    }
  }
  const byInstrument = new Map<string, SymbolRecord>();
  for (const record of fetched) {
    if (record.status === "active" && activeTicker.get(record.ticker) !== record) {
      skipped++;
      continue;
    }
    const other = byInstrument.get(record.instrumentId);
    if (other !== undefined) skipped++;
    if (other === undefined || _prefer(record, other)) {
      byInstrument.set(record.instrumentId, record);
    }
  }
  const records = [...byInstrument.values()].sort((a, b) =>
    a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : a.instrumentId < b.instrumentId ? -1 : 1
  );
  return { source: "polygon", asOf: options.asOf, records, complete: true, skipped };
}

/** Whether `a` should replace `b` for one instrument: active first, then the later delisting. */
function _prefer(a: SymbolRecord, b: SymbolRecord): boolean {
  if (a.status !== b.status) return a.status === "active";
  return (a.delistDate ?? "") > (b.delistDate ?? "");
}

/** Check one page and map its rows; `TypeError`s name the JSON path, e.g. `results[3].ticker`. */
function _parsePage(
  body: unknown,
  active: boolean,
): { records: SymbolRecord[]; skipped: number; next?: string } {
  if (!isObject(body)) throw new TypeError("expected a JSON object");
  if (body.status !== "OK" && body.status !== "DELAYED") {
    throw new TypeError(
      `status is ${JSON.stringify(body.status)} ${polygonErrorText(body)}`.trim(),
    );
  }
  // An empty answer may leave "results" out, but then says count 0.
  const results = body.results === undefined && body.count === 0 ? [] : body.results;
  if (!Array.isArray(results)) {
    throw new TypeError(`results is ${_kind(results)}, expected an array`);
  }
  const records: SymbolRecord[] = [];
  let skipped = 0;
  results.forEach((row: unknown, i: number) => {
    const at = `results[${i}]`;
    if (!isObject(row)) throw new TypeError(`${at} is ${_kind(row)}, expected an object`);
    const ticker = row.ticker;
    if (typeof ticker !== "string" || ticker.trim() === "") {
      throw new TypeError(`${at}.ticker is ${JSON.stringify(ticker)}, expected a ticker string`);
    }
    const name = _optionalString(row, "name", at);
    const type = _optionalString(row, "type", at);
    const exchange = _optionalString(row, "primary_exchange", at);
    const figi = _optionalString(row, "composite_figi", at);
    const cik = _optionalString(row, "cik", at);
    const listDate = _optionalString(row, "list_date", at);
    if (listDate !== null && !isValidDate(listDate)) {
      throw new TypeError(`${at}.list_date is ${JSON.stringify(listDate)}, expected YYYY-MM-DD`);
    }
    const delisted = _optionalString(row, "delisted_utc", at);
    const delistDate = delisted === null ? null : delisted.slice(0, 10);
    if (delistDate !== null && !isValidDate(delistDate)) {
      throw new TypeError(
        `${at}.delisted_utc is ${JSON.stringify(delisted)}, expected an RFC 3339 time`,
      );
    }
    if (!isValidSymbol(ticker)) {
      skipped++;
      return;
    }
    records.push({
      instrumentId: figi ?? `polygon:${ticker}`,
      ticker,
      name,
      exchange,
      assetClass: type === null ? "other" : POLYGON_TYPES[type] ?? "other",
      status: active ? "active" : "delisted",
      listDate,
      delistDate: active ? null : delistDate,
      figi,
      cusip: null,
      cik,
      providerId: null,
    });
  });
  const next = body.next_url;
  if (next === undefined || next === null || next === "") return { records, skipped };
  if (typeof next !== "string") throw new TypeError(`next_url is ${_kind(next)}, expected a URL`);
  return { records, skipped, next: polygonNextPath(next, _PATH) };
}

function _optionalString(row: Record<string, unknown>, key: string, at: string): string | null {
  const value = row[key];
  if (value === undefined || value === null || value === "") return null;
  if (typeof value !== "string") {
    throw new TypeError(`${at}.${key} is ${JSON.stringify(value)}, expected a string`);
  }
  return value;
}

function _kind(value: unknown): string {
  return value === undefined ? "missing" : jsonKind(value);
}
