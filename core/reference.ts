/**
 * Reference data: what a symbol is (the symbol master) and how that changed over time, as plain
 * types, plus the pure merge that turns a source's snapshot into slowly-changing-dimension rows.
 * Storage keeps the rows (storage/reference.ts); sources produce snapshots (providers/).
 *
 * @module
 */
import { isValidDate } from "./calendar.ts";
import { UsageError } from "./errors.ts";
import { isValidSymbol } from "./symbols.ts";

/** Kinds of instrument the master knows; sources map their own codes onto these. */
export const ASSET_CLASSES = [
  "stock",
  "etf",
  "adr",
  "preferred",
  "warrant",
  "right",
  "unit",
  "fund",
  "other",
] as const;

/** One of {@link ASSET_CLASSES}. */
export type AssetClass = typeof ASSET_CLASSES[number];

/** Trading status of an instrument. */
export const SYMBOL_STATUSES = ["active", "delisted", "suspended"] as const;

/** One of {@link SYMBOL_STATUSES}. */
export type SymbolStatus = typeof SYMBOL_STATUSES[number];

/** Reference sources `symbols update --source` accepts. */
export const REFERENCE_SOURCES = ["alpaca", "polygon", "nasdaq", "fake"] as const;

/** One of {@link REFERENCE_SOURCES}. */
export type ReferenceSource = typeof REFERENCE_SOURCES[number];

/**
 * Which source answers first when several know a ticker: Polygon (FIGIs and history), Alpaca,
 * the Nasdaq directory, then the fake source.
 */
export const SOURCE_PRIORITY = [
  "polygon",
  "alpaca",
  "nasdaq",
  "fake",
] as const satisfies readonly ReferenceSource[];

/**
 * One instrument as a source describes it on one date. `instrumentId` is the identity that
 * survives ticker changes within the source: the composite FIGI when the source has one, else the
 * provider's asset id, else the ticker itself (then a ticker change reads as a delisting and a
 * listing). Dates are `YYYY-MM-DD`; unknown fields are null.
 */
export interface SymbolRecord {
  instrumentId: string;
  ticker: string;
  name: string | null;
  /** ISO 10383 market identifier code of the primary listing, e.g. XNAS, XNYS, ARCX. */
  exchange: string | null;
  assetClass: AssetClass;
  status: SymbolStatus;
  listDate: string | null;
  delistDate: string | null;
  figi: string | null;
  cusip: string | null;
  cik: string | null;
  /** The source's own id of the instrument (Alpaca's asset UUID), when it has one. */
  providerId: string | null;
}

/**
 * What one source said on one date. `complete` means the snapshot lists every instrument the
 * source knows (active ones at least), so an instrument of this source missing from it is
 * delisted; a partial snapshot changes only what it lists.
 */
export interface ReferenceSnapshot {
  source: ReferenceSource;
  /** The date the snapshot describes, `YYYY-MM-DD`. */
  asOf: string;
  records: SymbolRecord[];
  complete: boolean;
  /** Rows of the input left out on purpose (test issues, tickers MarketPipe cannot store). */
  skipped: number;
}

/**
 * One row of the master's history: a record valid from `validFrom` (inclusive) until `validTo`
 * (exclusive; null while current). Rows are never edited except to close them.
 */
export interface SymbolVersion extends SymbolRecord {
  source: ReferenceSource;
  /** The `asOf` of the snapshot that opened this row. */
  asOf: string;
  validFrom: string;
  validTo: string | null;
}

/** What applying snapshots did, per outcome. */
export interface MergeCounts {
  /** Instruments seen for the first time. */
  inserted: number;
  /** Instruments whose fields (ticker included) changed; a relisting counts here. */
  changed: number;
  /** Instruments that became delisted (said so, or missing from a complete snapshot). */
  delisted: number;
  /** Instruments that the snapshot described as they already were. */
  unchanged: number;
  /** Input rows left out by the source ({@link ReferenceSnapshot.skipped}). */
  skipped: number;
}

/** The rows to close and open for one snapshot; see {@link mergeSnapshot}. */
export interface MergePlan {
  /** Instrument ids whose current row closes at the snapshot's `asOf`. */
  close: string[];
  /** New current rows (each with `validFrom` = `asOf`, `validTo` null). */
  open: SymbolVersion[];
  counts: MergeCounts;
}

/** The fields a change is judged on (everything of {@link SymbolRecord} but the identity). */
export const TRACKED_FIELDS = [
  "ticker",
  "name",
  "exchange",
  "assetClass",
  "status",
  "listDate",
  "delistDate",
  "figi",
  "cusip",
  "cik",
  "providerId",
] as const satisfies readonly (keyof SymbolRecord)[];

/**
 * Check a snapshot before it is merged: a known source, `YYYY-MM-DD` dates, tickers MarketPipe can
 * store, known asset classes and statuses, and no instrument id twice. A ticker may appear twice
 * only when all but one of its records are delisted (a ticker reused after a delisting). Throws a
 * {@link UsageError} naming the offending record.
 */
export function checkSnapshot(snapshot: ReferenceSnapshot): void {
  const where = `the ${snapshot.source} snapshot of ${snapshot.asOf}`;
  if (!(REFERENCE_SOURCES as readonly string[]).includes(snapshot.source)) {
    throw new UsageError(
      `Invalid reference source "${snapshot.source}": expected one of ${
        REFERENCE_SOURCES.join(", ")
      }`,
    );
  }
  if (!isValidDate(snapshot.asOf)) {
    throw new UsageError(
      `Invalid as-of date "${snapshot.asOf}" of the ${snapshot.source} snapshot: expected YYYY-MM-DD`,
    );
  }
  const ids = new Set<string>();
  const listed = new Map<string, string>();
  for (const record of snapshot.records) {
    const what = `record "${record.ticker}" (instrument ${record.instrumentId}) of ${where}`;
    if (typeof record.instrumentId !== "string" || record.instrumentId === "") {
      throw new UsageError(`Invalid record "${record.ticker}" of ${where}: empty instrument id`);
    }
    if (ids.has(record.instrumentId)) {
      throw new UsageError(
        `Invalid ${where}: instrument id "${record.instrumentId}" appears twice (ticker "${record.ticker}")`,
      );
    }
    ids.add(record.instrumentId);
    if (typeof record.ticker !== "string" || !isValidSymbol(record.ticker)) {
      throw new UsageError(
        `Invalid ticker "${record.ticker}" in ${where}: expected an upper-case ticker like AAPL or BRK.B`,
      );
    }
    if (!(ASSET_CLASSES as readonly string[]).includes(record.assetClass)) {
      throw new UsageError(
        `Invalid asset class "${record.assetClass}" of ${what}: expected one of ${
          ASSET_CLASSES.join(", ")
        }`,
      );
    }
    if (!(SYMBOL_STATUSES as readonly string[]).includes(record.status)) {
      throw new UsageError(
        `Invalid status "${record.status}" of ${what}: expected one of ${
          SYMBOL_STATUSES.join(", ")
        }`,
      );
    }
    for (const field of ["listDate", "delistDate"] as const) {
      const value = record[field];
      if (value !== null && !isValidDate(value)) {
        throw new UsageError(`Invalid ${field} "${value}" of ${what}: expected YYYY-MM-DD`);
      }
    }
    if (record.status !== "delisted") {
      const other = listed.get(record.ticker);
      if (other !== undefined) {
        throw new UsageError(
          `Invalid ${where}: ticker "${record.ticker}" is listed twice (instruments ${other} and ${record.instrumentId})`,
        );
      }
      listed.set(record.ticker, record.instrumentId);
    }
  }
}

/**
 * Merge one snapshot into a source's current rows (`current`, keyed by instrument id): which
 * rows close at `snapshot.asOf` and which open there. Pure; the store writes the plan.
 *
 * - an instrument not in `current` opens a row (`inserted`);
 * - a record equal to its current row on {@link TRACKED_FIELDS} changes nothing (`unchanged`);
 * - otherwise the current row closes and the record opens a new one: `delisted` when the record
 *   says delisted and the row did not, else `changed` (a new ticker or a relisting included);
 * - in a `complete` snapshot, an instrument with a current row that is not delisted and no record
 *   gets a delisted copy of that row (`delisted`), with `delistDate` kept or else `asOf`.
 *
 * A delisted record without a delisting date keeps the date already known, or takes `asOf` when
 * it delists now, so the same input twice changes nothing. Throws a {@link UsageError} for an
 * invalid snapshot (see {@link checkSnapshot}) or one older than a current row.
 *
 * @example
 * ```ts
 * const plan = mergeSnapshot(new Map(), { source: "fake", asOf: "2024-01-02", records, complete: true, skipped: 0 });
 * plan.counts.inserted === records.length;
 * ```
 */
export function mergeSnapshot(
  current: ReadonlyMap<string, SymbolVersion>,
  snapshot: ReferenceSnapshot,
): MergePlan {
  checkSnapshot(snapshot);
  const { source, asOf } = snapshot;
  const counts: MergeCounts = {
    inserted: 0,
    changed: 0,
    delisted: 0,
    unchanged: 0,
    skipped: snapshot.skipped,
  };
  const close: string[] = [];
  const open: SymbolVersion[] = [];
  const version = (record: SymbolRecord): SymbolVersion => ({
    ..._pick(record),
    source,
    asOf,
    validFrom: asOf,
    validTo: null,
  });
  const checkOrder = (row: SymbolVersion) => {
    if (row.validFrom > asOf) {
      throw new UsageError(
        `Cannot apply the ${source} snapshot of ${asOf}: instrument ${row.instrumentId} ("${row.ticker}") already has a row from ${row.validFrom}; snapshots of a source apply oldest first`,
      );
    }
  };
  const seen = new Set<string>();
  for (const input of snapshot.records) {
    seen.add(input.instrumentId);
    const row = current.get(input.instrumentId);
    if (row === undefined) {
      open.push(version(input));
      counts.inserted++;
      continue;
    }
    checkOrder(row);
    const record = input.status === "delisted" && input.delistDate === null
      ? { ...input, delistDate: row.status === "delisted" ? row.delistDate : asOf }
      : input;
    if (TRACKED_FIELDS.every((field) => record[field] === row[field])) {
      counts.unchanged++;
      continue;
    }
    close.push(row.instrumentId);
    open.push(version(record));
    if (record.status === "delisted" && row.status !== "delisted") counts.delisted++;
    else counts.changed++;
  }
  if (snapshot.complete) {
    for (const row of current.values()) {
      if (seen.has(row.instrumentId) || row.status === "delisted") continue;
      checkOrder(row);
      close.push(row.instrumentId);
      open.push(version({ ...row, status: "delisted", delistDate: row.delistDate ?? asOf }));
      counts.delisted++;
    }
  }
  return { close, open, counts };
}

/** The {@link SymbolRecord} fields of `record`, and nothing else. */
function _pick(record: SymbolRecord): SymbolRecord {
  const tracked = Object.fromEntries(TRACKED_FIELDS.map((field) => [field, record[field]]));
  return { instrumentId: record.instrumentId, ...tracked } as SymbolRecord;
}
