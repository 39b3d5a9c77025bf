/**
 * The symbol master and universes in the metadata database (migration 8): slowly-changing
 * history rows per source and instrument (`symbol_history`), a log of applied snapshots
 * (`reference_updates`), and named universes with their member intervals (`universes`,
 * `universe_members`). The merge rules live in core/reference.ts, the filter language in
 * core/universe_filter.ts; this module reads and writes rows, always with bound parameters.
 *
 * @module
 */
import type { DatabaseSync, SQLOutputValue } from "node:sqlite";
import { addDays, exchangeDate, isValidDate } from "../core/calendar.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import {
  checkSnapshot,
  type MergeCounts,
  mergeSnapshot,
  type ReferenceSnapshot,
  type ReferenceSource,
  SOURCE_PRIORITY,
  type SymbolVersion,
  TRACKED_FIELDS,
} from "../core/reference.ts";
import { isValidSymbol } from "../core/symbols.ts";
import { type Filter, matchesFilter, parseFilter } from "../core/universe_filter.ts";
import { transaction } from "./sqlite.ts";

/** A universe as `universe list` shows it, with its member count on the date asked for. */
export interface UniverseInfo {
  name: string;
  kind: "list" | "filter";
  /** The filter expression of a filter universe; null for a list. */
  filter: string | null;
  description: string | null;
  createdAt: number;
  updatedAt: number;
  /** Members on the date asked for (today by default). */
  members: number;
}

/** One interval of a universe's membership: from `validFrom` (inclusive) to `validTo` (exclusive). */
export interface MemberInterval {
  symbol: string;
  validFrom: string;
  /** Null while the symbol is still a member. */
  validTo: string | null;
}

/** A part of a date range and the ticker an instrument traded under then. */
export interface TickerSegment {
  ticker: string;
  /** First date, inclusive. */
  start: string;
  /** Last date, inclusive. */
  end: string;
}

/** Universe names: a letter, then letters, digits, `_` or `-`; stored lower-case. */
export const UNIVERSE_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;

const _COLUMNS =
  "source, instrument_id, ticker, name, exchange, asset_class, status, list_date, delist_date, figi, cusip, cik, provider_id, as_of, valid_from, valid_to";
/** The {@link SymbolVersion} field of each of {@link _COLUMNS}, in order (`as_of` is `asOf`). */
const _FIELDS = _COLUMNS.split(", ").map((column) =>
  column.replace(/_(\w)/g, (_, letter: string) => letter.toUpperCase())
) as (keyof SymbolVersion)[];

/** The counts of a merge, in the order of their `reference_updates` columns. */
const _COUNT_KEYS = ["inserted", "changed", "delisted", "unchanged", "skipped"] as const;

type _Row = Record<string, SQLOutputValue>;

/**
 * The symbol master and universes over an open metadata database (migrated, or read-only for
 * the reading methods).
 *
 * @example
 * ```ts
 * const reference = new ReferenceStore(db);
 * reference.applySnapshots(await fetchReference("fake", { asOf: "2024-01-02", env: {} }));
 * reference.history("META"); // the FB rows too
 * reference.members("tech", { asOf: "2022-06-30", today: "2024-01-02" });
 * ```
 */
export class ReferenceStore {
  #db: DatabaseSync;
  #now: () => number;

  constructor(db: DatabaseSync, options: { now?: () => number } = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Merge snapshots into the history, in one transaction for all. Each is checked (see
   * core/reference.ts `checkSnapshot`); one older than a snapshot before it in `snapshots` is
   * refused. One older than the latest applied of its source is a replay when it says what the
   * history says on its date (its records count as unchanged, nothing is written), and refused
   * otherwise, with both dates and the first difference named: history is never rewritten.
   * Each merged snapshot is logged in `reference_updates`. With `dryRun` the counts are
   * computed and nothing is written.
   */
  applySnapshots(
    snapshots: readonly ReferenceSnapshot[],
    options: { dryRun?: boolean } = {},
  ): MergeCounts {
    const total: MergeCounts = { inserted: 0, changed: 0, delisted: 0, unchanged: 0, skipped: 0 };
    const latest = new Map<ReferenceSource, string>();
    const stored = new Map<ReferenceSource, string | undefined>();
    const toMerge: ReferenceSnapshot[] = [];
    for (const snapshot of snapshots) {
      checkSnapshot(snapshot);
      const inInput = latest.get(snapshot.source);
      if (inInput !== undefined && snapshot.asOf < inInput) {
        throw new UsageError(
          `Cannot apply the ${snapshot.source} snapshot of ${snapshot.asOf}: the snapshot of ${inInput} is before it in the input; snapshots of a source apply oldest first`,
        );
      }
      latest.set(snapshot.source, snapshot.asOf);
      if (!stored.has(snapshot.source)) {
        stored.set(snapshot.source, this.latestAsOf(snapshot.source));
      }
      const applied = stored.get(snapshot.source);
      if (applied !== undefined && snapshot.asOf < applied) {
        // A source that returns its whole dated history (the fake one) sends old snapshots
        // again: one that matches the history on its date is a replay, and changes nothing.
        const difference = this.#differenceOnDate(snapshot);
        if (difference !== undefined) {
          throw new UsageError(
            `Cannot apply the ${snapshot.source} snapshot of ${snapshot.asOf}: the snapshot of ${applied} is already applied, and this one differs from the history on ${snapshot.asOf} (${difference}); snapshots of a source apply oldest first`,
          );
        }
        total.unchanged += snapshot.records.length;
        total.skipped += snapshot.skipped;
        continue;
      }
      toMerge.push(snapshot);
    }
    const run = () => {
      const prepare = (sql: string) => options.dryRun ? undefined : this.#db.prepare(sql);
      const close = prepare(
        "UPDATE symbol_history SET valid_to = ? WHERE source = ? AND instrument_id = ? AND valid_to IS NULL",
      );
      const insert = prepare(
        `INSERT INTO symbol_history (${_COLUMNS}, recorded_at) VALUES (${"?, ".repeat(16)}?)`,
      );
      const log = prepare(
        "INSERT INTO reference_updates (source, as_of, applied_at, inserted, changed, delisted, unchanged, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      );
      const currents = new Map<ReferenceSource, Map<string, SymbolVersion>>();
      for (const snapshot of toMerge) {
        let current = currents.get(snapshot.source);
        if (current === undefined) {
          current = new Map(
            this.#rows(
              `SELECT ${_COLUMNS} FROM symbol_history WHERE source = ? AND valid_to IS NULL`,
              snapshot.source,
            ).map((row) => [row.instrumentId, row]),
          );
          currents.set(snapshot.source, current);
        }
        const plan = mergeSnapshot(current, snapshot);
        const at = this.#now();
        for (const id of plan.close) {
          close?.run(snapshot.asOf, snapshot.source, id);
          current.delete(id);
        }
        for (const row of plan.open) {
          insert?.run(..._FIELDS.map((field) => row[field]), at);
          current.set(row.instrumentId, row);
        }
        const c = plan.counts;
        log?.run(snapshot.source, snapshot.asOf, at, ..._COUNT_KEYS.map((key) => c[key]));
        for (const key of _COUNT_KEYS) total[key] += c[key];
      }
    };
    if (options.dryRun) run();
    else transaction(this.#db, run);
    return total;
  }

  /**
   * How `snapshot` differs from its source's rows valid on its date, as a phrase naming the
   * first instrument that does, or undefined when it says exactly what those rows say.
   */
  #differenceOnDate(snapshot: ReferenceSnapshot): string | undefined {
    const rows = new Map(
      this.symbolsAsOf({ asOf: snapshot.asOf, source: snapshot.source }).map((
        row,
      ) => [row.instrumentId, row]),
    );
    // What merging the snapshot would plan against those rows: a replay plans nothing.
    const plan = mergeSnapshot(rows, { ...snapshot, skipped: 0 });
    const first = plan.open[0];
    if (first === undefined) return undefined;
    const row = rows.get(first.instrumentId);
    if (row === undefined) return `instrument ${first.instrumentId} "${first.ticker}" is new`;
    const fields = TRACKED_FIELDS.filter((field) => row[field] !== first[field]);
    return `instrument ${first.instrumentId} "${row.ticker}" differs in ${fields.join(", ")}`;
  }

  /** The `asOf` of the latest snapshot applied for `source`, if any. */
  latestAsOf(source: ReferenceSource): string | undefined {
    const row = this.#db.prepare(
      "SELECT max(as_of) AS as_of FROM reference_updates WHERE source = ?",
    ).get(source);
    return row?.as_of === null || row?.as_of === undefined ? undefined : String(row.as_of);
  }

  /** Rows valid on `asOf` (default: the current rows), optionally of one source, by ticker. */
  symbolsAsOf(options: { asOf?: string; source?: ReferenceSource } = {}): SymbolVersion[] {
    const where: string[] = [];
    const params: string[] = [];
    if (options.asOf === undefined) {
      where.push("valid_to IS NULL");
    } else {
      _checkDate(options.asOf, "as-of date");
      where.push("valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)");
      params.push(options.asOf, options.asOf);
    }
    if (options.source !== undefined) {
      where.push("source = ?");
      params.push(options.source);
    }
    return this.#rows(
      `SELECT ${_COLUMNS} FROM symbol_history WHERE ${where.join(" AND ")}`,
      ...params,
    )
      .sort((a, b) =>
        _cmp(a.ticker, b.ticker) || _priority(a) - _priority(b) ||
        _cmp(a.instrumentId, b.instrumentId)
      );
  }

  /** Every row of every instrument that ever had `ticker` (any source), oldest first. */
  history(ticker: string): SymbolVersion[] {
    return this.#rows(
      `SELECT ${_COLUMNS}, row_id FROM symbol_history
       WHERE (source, instrument_id) IN (SELECT source, instrument_id FROM symbol_history WHERE ticker = ?)
       ORDER BY valid_from, row_id`,
      ticker.toUpperCase(),
    ).sort((a, b) => _cmp(a.validFrom, b.validFrom) || _priority(a) - _priority(b));
  }

  /**
   * The current row of `ticker`: of the first source in SOURCE_PRIORITY that knows it, a listed
   * instrument before a delisted one that had the ticker too, then the newest.
   */
  lookup(ticker: string): SymbolVersion | undefined {
    return this.#lookupMany([ticker.toUpperCase()]).get(ticker.toUpperCase());
  }

  /**
   * The ticker the bars of `ticker` as of `date` are stored under: the current ticker of the
   * instrument that traded as `ticker` on `date` (META for FB on 2021-06-30; by SOURCE_PRIORITY
   * when several sources know it), or `ticker` itself when the master does not know it then.
   */
  storedTicker(ticker: string, date: string): string {
    _checkDate(date, "date");
    const then = this.#rows(
      `SELECT ${_COLUMNS}, row_id FROM symbol_history
       WHERE ticker = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)`,
      ticker.toUpperCase(),
      date,
      date,
    ).sort((a, b) => _priority(a) - _priority(b))[0];
    if (then === undefined) return ticker.toUpperCase();
    const now = this.#rows(
      `SELECT ${_COLUMNS}, row_id FROM symbol_history
       WHERE source = ? AND instrument_id = ? AND valid_to IS NULL`,
      then.source,
      then.instrumentId,
    )[0];
    return now?.ticker ?? then.ticker;
  }

  /**
   * Listing windows `[listDate, delistDate]` (either end null when unknown) of the symbols the
   * master knows, from their {@link lookup} rows; symbols it does not know are absent.
   */
  listingWindows(
    symbols: readonly string[],
  ): Map<string, { start: string | null; end: string | null }> {
    const rows = this.#lookupMany(symbols.map((s) => s.toUpperCase()));
    return new Map(
      [...rows].map(([symbol, row]) => [symbol, { start: row.listDate, end: row.delistDate }]),
    );
  }

  /**
   * Under which ticker the instrument currently named `symbol` traded on each part of
   * `[start, end]` (inclusive dates), oldest first, covering the range exactly; dates before the
   * master's first row take its first ticker. One segment `{ ticker: symbol }` when the master
   * does not know the symbol or its ticker never changed.
   */
  tickerSegments(symbol: string, start: string, end: string): TickerSegment[] {
    _checkDate(start, "start date");
    _checkDate(end, "end date");
    if (start > end) {
      throw new RangeError(`Cannot split ${start} to ${end} by ticker: start is after end`);
    }
    const ticker = symbol.toUpperCase();
    const row = this.lookup(ticker);
    if (row === undefined) return [{ ticker: symbol, start, end }];
    const rows = this.#rows(
      `SELECT ${_COLUMNS} FROM symbol_history WHERE source = ? AND instrument_id = ?
       ORDER BY valid_from, row_id`,
      row.source,
      row.instrumentId,
    ).filter((r) => r.validTo !== r.validFrom);
    // Where each ticker starts; the first one reaches back before the master knew the instrument.
    const starts: { from: string | null; ticker: string }[] = [];
    for (const r of rows) {
      if (starts.at(-1)?.ticker === r.ticker) continue;
      starts.push({ from: starts.length === 0 ? null : r.validFrom, ticker: r.ticker });
    }
    const segments: TickerSegment[] = [];
    for (let i = 0; i < starts.length; i++) {
      const from = starts[i].from;
      const next = starts[i + 1]?.from;
      const segmentStart = from === null || from < start ? start : from;
      const segmentEnd = next === undefined || next === null ? end : _min(addDays(next, -1), end);
      if (segmentStart <= segmentEnd) {
        segments.push({ ticker: starts[i].ticker, start: segmentStart, end: segmentEnd });
      }
    }
    return segments;
  }

  /**
   * Create a universe: a list of `symbols` (members from `asOf` on) or a `filter` expression,
   * exactly one of them. Refuses a bad or taken name, a filter that does not parse and an
   * invalid symbol, with a {@link UsageError}.
   */
  createUniverse(
    name: string,
    spec: { symbols?: readonly string[]; filter?: string; description?: string; asOf: string },
  ): UniverseInfo {
    const key = _checkName(name);
    _checkDate(spec.asOf, "as-of date");
    if ((spec.symbols === undefined) === (spec.filter === undefined)) {
      throw new UsageError(
        `Cannot create universe "${key}": expected either symbols or a filter${
          spec.symbols === undefined ? "" : ", not both"
        }`,
      );
    }
    if (spec.filter !== undefined) parseFilter(spec.filter);
    const symbols = spec.symbols === undefined ? [] : _checkSymbols(spec.symbols, key);
    const at = this.#now();
    transaction(this.#db, () => {
      if (this.#universeRow(key) !== undefined) {
        throw new UsageError(`Cannot create universe "${key}": it already exists`);
      }
      this.#db.prepare(
        "INSERT INTO universes (name, kind, filter, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
      ).run(
        key,
        spec.filter === undefined ? "list" : "filter",
        spec.filter ?? null,
        spec.description ?? null,
        at,
        at,
      );
      const insert = this.#db.prepare(
        "INSERT INTO universe_members (universe, symbol, valid_from, valid_to, added_at) VALUES (?, ?, ?, NULL, ?)",
      );
      for (const symbol of symbols) insert.run(key, symbol, spec.asOf, at);
    });
    return this.#info(this.#universeRow(key)!, spec.asOf);
  }

  /**
   * Make `symbols` members of list universe `name` from `asOf` on. `already` are those that were
   * members from `asOf` on before (nothing changed for them).
   */
  addMembers(
    name: string,
    symbols: readonly string[],
    asOf: string,
  ): { added: string[]; already: string[] } {
    const { added, same } = this.#changeMembers(name, symbols, asOf, "add");
    return { added, already: same };
  }

  /**
   * End the membership of `symbols` in list universe `name` at `asOf` (they are members before
   * it, not on it). `notMembers` are those that were not members on or after `asOf`.
   */
  removeMembers(
    name: string,
    symbols: readonly string[],
    asOf: string,
  ): { removed: string[]; notMembers: string[] } {
    const { added, same } = this.#changeMembers(name, symbols, asOf, "remove");
    return { removed: added, notMembers: same };
  }

  /** All universes by name, with member counts on `asOf` (default today). */
  listUniverses(options: { asOf?: string } = {}): UniverseInfo[] {
    const asOf = options.asOf ?? this.#today();
    _checkDate(asOf, "as-of date");
    const rows = this.#db.prepare("SELECT * FROM universes ORDER BY name").all();
    const history = rows.some((row) => row.kind === "filter") ? this.#allRows() : [];
    return rows.map((row) => this.#info(row, asOf, history));
  }

  /** The universe `name` (any case) with today's member count, or undefined. */
  getUniverse(name: string): UniverseInfo | undefined {
    const row = this.#universeRow(name.toLowerCase());
    return row === undefined ? undefined : this.#info(row, this.#today());
  }

  /** Delete universe `name` and its members; false when there was none. */
  deleteUniverse(name: string): boolean {
    const key = name.toLowerCase();
    return transaction(this.#db, () => {
      this.#db.prepare("DELETE FROM universe_members WHERE universe = ?").run(key);
      return Number(this.#db.prepare("DELETE FROM universes WHERE name = ?").run(key).changes) > 0;
    });
  }

  /**
   * Membership intervals of universe `name`, by symbol then `validFrom`: the stored rows of a
   * list, the history rows that satisfy the filter of a filter universe (adjacent or overlapping
   * intervals of one ticker merged, any source).
   */
  memberIntervals(name: string): MemberInterval[] {
    return this.#intervals(this.#universeOrThrow(name));
  }

  /**
   * Members of universe `name` on `asOf`, or else at any time in `[start, end]` (inclusive; one
   * end alone is open on the other side), or else on `today`; sorted. Unknown universe: a
   * {@link UsageError} with the closest name.
   */
  members(
    name: string,
    options: {
      asOf?: string;
      start?: string;
      end?: string;
      today: string;
      /** Name each member by the ticker its bars are stored under now ({@link storedTicker}). */
      stored?: boolean;
    },
  ): string[] {
    const row = this.#universeOrThrow(name);
    let from: string | undefined;
    let to: string | undefined;
    if (options.asOf !== undefined) {
      from = to = _checkDate(options.asOf, "as-of date");
    } else if (options.start !== undefined || options.end !== undefined) {
      if (options.start !== undefined) from = _checkDate(options.start, "start date");
      if (options.end !== undefined) to = _checkDate(options.end, "end date");
    } else {
      from = to = _checkDate(options.today, "today");
    }
    const members = new Set<string>();
    for (const interval of this.#intervals(row)) {
      const startsInTime = to === undefined || interval.validFrom <= to;
      const endsInTime = from === undefined || interval.validTo === null ||
        interval.validTo > from;
      if (!startsInTime || !endsInTime) continue;
      const on = from !== undefined && from > interval.validFrom ? from : interval.validFrom;
      members.add(options.stored ? this.storedTicker(interval.symbol, on) : interval.symbol);
    }
    return [...members].sort(_cmp);
  }

  #changeMembers(
    name: string,
    symbols: readonly string[],
    asOf: string,
    action: "add" | "remove",
  ): { added: string[]; same: string[] } {
    const row = this.#universeOrThrow(name);
    const key = String(row.name);
    if (row.kind !== "list") {
      throw new UsageError(
        `Cannot ${action} members ${
          action === "add" ? "to" : "of"
        } universe "${key}": it is a filter universe (${row.filter}); its members follow the filter`,
      );
    }
    _checkDate(asOf, "as-of date");
    const list = _checkSymbols(symbols, key);
    const added: string[] = [];
    const same: string[] = [];
    const at = this.#now();
    transaction(this.#db, () => {
      const select = this.#db.prepare(
        "SELECT valid_from, valid_to, added_at FROM universe_members WHERE universe = ? AND symbol = ? ORDER BY valid_from",
      );
      const remove = this.#db.prepare(
        "DELETE FROM universe_members WHERE universe = ? AND symbol = ?",
      );
      const insert = this.#db.prepare(
        "INSERT INTO universe_members (universe, symbol, valid_from, valid_to, added_at) VALUES (?, ?, ?, ?, ?)",
      );
      for (const symbol of list) {
        const before = select.all(key, symbol).map((r) => ({
          from: String(r.valid_from),
          to: r.valid_to === null ? null : String(r.valid_to),
          addedAt: Number(r.added_at),
        }));
        const after = action === "add" ? _unionFrom(before, asOf) : _cutAt(before, asOf);
        if (_sameIntervals(before, after)) {
          same.push(symbol);
          continue;
        }
        added.push(symbol);
        remove.run(key, symbol);
        for (const interval of after) {
          const kept = before.find((b) => b.from === interval.from);
          insert.run(key, symbol, interval.from, interval.to, kept?.addedAt ?? at);
        }
      }
      if (added.length > 0) {
        this.#db.prepare("UPDATE universes SET updated_at = ? WHERE name = ?").run(at, key);
      }
    });
    return { added, same };
  }

  #intervals(row: _Row, history?: SymbolVersion[]): MemberInterval[] {
    if (row.kind === "list") {
      return this.#db.prepare(
        "SELECT symbol, valid_from, valid_to FROM universe_members WHERE universe = ? ORDER BY symbol, valid_from",
      ).all(String(row.name)).map((r) => ({
        symbol: String(r.symbol),
        validFrom: String(r.valid_from),
        validTo: r.valid_to === null ? null : String(r.valid_to),
      }));
    }
    return _filterIntervals(parseFilter(String(row.filter)), history ?? this.#allRows());
  }

  #info(row: _Row, asOf: string, history?: SymbolVersion[]): UniverseInfo {
    const members = row.kind === "list"
      ? Number(
        this.#db.prepare(
          "SELECT count(DISTINCT symbol) AS n FROM universe_members WHERE universe = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
        ).get(String(row.name), asOf, asOf)!.n,
      )
      : new Set(
        this.#intervals(row, history)
          .filter((i) => i.validFrom <= asOf && (i.validTo === null || i.validTo > asOf))
          .map((i) => i.symbol),
      ).size;
    return {
      name: String(row.name),
      kind: row.kind === "filter" ? "filter" : "list",
      filter: row.filter === null ? null : String(row.filter),
      description: row.description === null ? null : String(row.description),
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
      members,
    };
  }

  #universeRow(key: string): _Row | undefined {
    return this.#db.prepare("SELECT * FROM universes WHERE name = ?").get(key);
  }

  #universeOrThrow(name: string): _Row {
    const row = this.#universeRow(name.toLowerCase());
    if (row !== undefined) return row;
    const names = this.#db.prepare("SELECT name FROM universes").all().map((r) => String(r.name));
    throw new UsageError(
      `Unknown universe "${name}"${didYouMean(name.toLowerCase(), names)}${
        names.length === 0 ? "; none is defined yet, see marketpipe universe create" : ""
      }`,
    );
  }

  #lookupMany(tickers: readonly string[]): Map<string, SymbolVersion> {
    const found = new Map<string, SymbolVersion>();
    if (tickers.length === 0) return found;
    const rows = this.#rows(
      `SELECT ${_COLUMNS} FROM symbol_history
       WHERE valid_to IS NULL AND ticker IN (SELECT value FROM json_each(?))`,
      JSON.stringify([...new Set(tickers)]),
    );
    rows.sort((a, b) =>
      _priority(a) - _priority(b) ||
      Number(a.status === "delisted") - Number(b.status === "delisted") ||
      _cmp(b.validFrom, a.validFrom) || _cmp(a.instrumentId, b.instrumentId)
    );
    for (const row of rows) if (!found.has(row.ticker)) found.set(row.ticker, row);
    return found;
  }

  /** Every history row that covers at least one day. */
  #allRows(): SymbolVersion[] {
    return this.#rows(
      `SELECT ${_COLUMNS} FROM symbol_history WHERE valid_to IS NULL OR valid_to > valid_from`,
    );
  }

  #rows(sql: string, ...params: string[]): SymbolVersion[] {
    return this.#db.prepare(sql).all(...params).map(_toVersion);
  }

  #today(): string {
    return exchangeDate(this.#now());
  }
}

function _toVersion(row: _Row): SymbolVersion {
  const text = (value: SQLOutputValue) => (value === null ? null : String(value));
  return {
    source: String(row.source) as ReferenceSource,
    instrumentId: String(row.instrument_id),
    ticker: String(row.ticker),
    name: text(row.name),
    exchange: text(row.exchange),
    assetClass: String(row.asset_class) as SymbolVersion["assetClass"],
    status: String(row.status) as SymbolVersion["status"],
    listDate: text(row.list_date),
    delistDate: text(row.delist_date),
    figi: text(row.figi),
    cusip: text(row.cusip),
    cik: text(row.cik),
    providerId: text(row.provider_id),
    asOf: String(row.as_of),
    validFrom: String(row.valid_from),
    validTo: text(row.valid_to),
  };
}

/** Intervals of the rows satisfying `filter`, merged per ticker, by ticker then start. */
function _filterIntervals(filter: Filter, rows: readonly SymbolVersion[]): MemberInterval[] {
  const byTicker = Map.groupBy(
    rows.filter((row) => row.validTo !== row.validFrom && matchesFilter(filter, row)),
    (row) => row.ticker,
  );
  const intervals: MemberInterval[] = [];
  for (const ticker of [...byTicker.keys()].sort(_cmp)) {
    const list = byTicker.get(ticker)!.map((row) => ({ from: row.validFrom, to: row.validTo }))
      .sort((a, b) => _cmp(a.from, b.from));
    let current: _Interval | undefined;
    for (const next of list) {
      if (current !== undefined && (current.to === null || next.from <= current.to)) {
        if (current.to !== null && (next.to === null || next.to > current.to)) current.to = next.to;
        continue;
      }
      if (current) intervals.push({ symbol: ticker, validFrom: current.from, validTo: current.to });
      current = { ...next };
    }
    if (current) intervals.push({ symbol: ticker, validFrom: current.from, validTo: current.to });
  }
  return intervals;
}

interface _Interval {
  from: string;
  to: string | null;
}

/** `intervals` united with `[asOf, open)`. */
function _unionFrom(intervals: readonly _Interval[], asOf: string): _Interval[] {
  const kept = intervals.filter((i) => i.to !== null && i.to < asOf);
  const from = intervals.filter((i) => !(i.to !== null && i.to < asOf))
    .reduce((min, i) => _min(min, i.from), asOf);
  return [...kept, { from, to: null }];
}

/** `intervals` without `[asOf, open)`. */
function _cutAt(intervals: readonly _Interval[], asOf: string): _Interval[] {
  return intervals.filter((i) => i.from < asOf).map((i) => ({
    from: i.from,
    to: i.to === null || i.to > asOf ? asOf : i.to,
  }));
}

function _sameIntervals(a: readonly _Interval[], b: readonly _Interval[]): boolean {
  return a.length === b.length && a.every((i, n) => i.from === b[n].from && i.to === b[n].to);
}

function _checkName(name: string): string {
  const key = name.toLowerCase();
  if (!UNIVERSE_NAME_PATTERN.test(key)) {
    throw new UsageError(
      `Invalid universe name "${name}": expected a letter, then up to 63 letters, digits, _ or -`,
    );
  }
  return key;
}

function _checkSymbols(symbols: readonly string[], universe: string): string[] {
  const list: string[] = [];
  for (const input of symbols) {
    const symbol = input.trim().toUpperCase();
    if (!isValidSymbol(symbol)) {
      throw new UsageError(
        `Invalid symbol "${input}" for universe "${universe}": expected a ticker like AAPL or BRK.B`,
      );
    }
    if (!list.includes(symbol)) list.push(symbol);
  }
  return list;
}

function _checkDate(date: string, what: string): string {
  if (!(/^\d{4}-\d{2}-\d{2}$/.test(date) && isValidDate(date))) {
    throw new UsageError(`Invalid ${what} "${date}": expected YYYY-MM-DD`);
  }
  return date;
}

function _priority(row: SymbolVersion): number {
  const index = (SOURCE_PRIORITY as readonly string[]).indexOf(row.source);
  return index === -1 ? SOURCE_PRIORITY.length : index;
}

function _cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function _min(a: string, b: string): string {
  return a < b ? a : b;
}
