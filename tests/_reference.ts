/** Builders of symbol master test data: symbol records and reference snapshots. */
import type { ReferenceSnapshot, SymbolRecord } from "../core/reference.ts";

/**
 * A symbol record: instrument `id-TICKER`, named "TICKER Inc.", an active XNAS stock with no
 * dates and no identifiers, and then `fields` over those.
 */
export function symbolRecord(ticker: string, fields: Partial<SymbolRecord> = {}): SymbolRecord {
  return {
    instrumentId: `id-${ticker}`,
    ticker,
    name: `${ticker} Inc.`,
    exchange: "XNAS",
    assetClass: "stock",
    status: "active",
    listDate: null,
    delistDate: null,
    figi: null,
    cusip: null,
    cik: null,
    providerId: null,
    ...fields,
  };
}

/** A complete `fake` snapshot of `records` as of `asOf` with nothing skipped, and `fields` over that. */
export function snapshot(
  asOf: string,
  records: SymbolRecord[],
  fields: Partial<ReferenceSnapshot> = {},
): ReferenceSnapshot {
  return { source: "fake", asOf, records, complete: true, skipped: 0, ...fields };
}
