import type { DatabaseSync } from "node:sqlite";
import type { SeriesValue } from "../core/metrics.ts";
import { sqliteWrite, transaction } from "./sqlite.ts";

/** One stored series: its cumulative total over all processes. */
export interface StoredSeries {
  id: number;
  name: string;
  family: string;
  kind: "counter" | "histogram";
  labels: Record<string, string>;
  value: number;
  updatedAt: number;
}

/** A point of a series' history: the cumulative total at `ts`. */
export interface MetricSample {
  ts: number;
  value: number;
}

const _HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];

function _familyOf(name: string, kind: string): string {
  if (kind !== "histogram") return name;
  const suffix = _HISTOGRAM_SUFFIXES.find((s) => name.endsWith(s));
  return suffix ? name.slice(0, -suffix.length) : name;
}

function _labelsText(labels: Record<string, string>): string {
  return JSON.stringify(
    Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  );
}

/**
 * Add a process's metric increases to the shared totals and record the new totals as history
 * samples, in one transaction. Totals only grow, so counters stay monotonic across restarts of
 * any process. A zero delta creates a missing series (at 0, with one sample) and leaves an
 * existing one alone, so that each process announcing its known series at 0 writes nothing once
 * they exist.
 */
export function addMetricDeltas(
  db: DatabaseSync,
  deltas: readonly SeriesValue[],
  now: number,
): void {
  if (deltas.length === 0) return;
  transaction(db, () => {
    const upsert = db.prepare(
      `INSERT INTO metric_series (name, labels, kind, value, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value, updated_at = excluded.updated_at
       RETURNING id, value`,
    );
    const create = db.prepare(
      `INSERT INTO metric_series (name, labels, kind, value, updated_at) VALUES (?, ?, ?, 0, ?)
       ON CONFLICT (name, labels) DO NOTHING RETURNING id, value`,
    );
    const sample = db.prepare(
      "INSERT INTO metric_samples (series_id, ts, value) VALUES (?, ?, ?) ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value",
    );
    for (const delta of deltas) {
      const labels = _labelsText(delta.labels);
      const row = delta.value === 0
        ? create.get(delta.name, labels, delta.kind, now)
        : upsert.get(delta.name, labels, delta.kind, delta.value, now);
      if (row) sample.run(Number(row.id), now, Number(row.value));
    }
  });
}

/** Every stored series with its cumulative total. */
export function readMetricTotals(db: DatabaseSync): StoredSeries[] {
  return db.prepare(
    "SELECT id, name, labels, kind, value, updated_at FROM metric_series ORDER BY name, labels",
  )
    .all().map((row) => ({
      id: Number(row.id),
      name: row.name as string,
      family: _familyOf(row.name as string, row.kind as string),
      kind: row.kind as StoredSeries["kind"],
      labels: JSON.parse(row.labels as string),
      value: Number(row.value),
      updatedAt: Number(row.updated_at),
    }));
}

/** History of one series since `since` (epoch ms), oldest first. */
export function readMetricSamples(
  db: DatabaseSync,
  seriesId: number,
  since: number,
): MetricSample[] {
  return db.prepare(
    "SELECT ts, value FROM metric_samples WHERE series_id = ? AND ts >= ? ORDER BY ts",
  )
    .all(seriesId, since).map((row) => ({ ts: Number(row.ts), value: Number(row.value) }));
}

/** The last sample of a series at or before `ts`, if any. */
export function sampleAtOrBefore(
  db: DatabaseSync,
  seriesId: number,
  ts: number,
): MetricSample | undefined {
  const row = db.prepare(
    "SELECT ts, value FROM metric_samples WHERE series_id = ? AND ts <= ? ORDER BY ts DESC LIMIT 1",
  ).get(seriesId, ts);
  return row ? { ts: Number(row.ts), value: Number(row.value) } : undefined;
}

/** Number of history samples per series id. */
export function sampleCounts(db: DatabaseSync): Map<number, number> {
  return new Map(
    db.prepare("SELECT series_id, count(*) AS n FROM metric_samples GROUP BY series_id").all()
      .map((row) => [Number(row.series_id), Number(row.n)]),
  );
}

/**
 * Delete history samples older than `before`; totals are kept, and so is each series' last
 * sample before `before`: it is the value a history window starting after `before` counts its
 * increase from. Returns how many were deleted.
 */
export function pruneMetricSamples(db: DatabaseSync, before: number): number {
  return Number(
    db.prepare(
      `DELETE FROM metric_samples WHERE ts < $before AND ts < (
         SELECT max(newest.ts) FROM metric_samples AS newest
         WHERE newest.series_id = metric_samples.series_id AND newest.ts < $before)`,
    ).run({ $before: before }).changes,
  );
}

/** Record the newest bar time of a symbol and timeframe (kept if older than the stored one). */
export function recordFreshness(
  db: DatabaseSync,
  entries: readonly { symbol: string; timeframe: string; lastTs: number }[],
  now: number,
): void {
  sqliteWrite(db, () => {
    const upsert = db.prepare(
      `INSERT INTO series_freshness (symbol, timeframe, last_ts, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (symbol, timeframe) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts), updated_at = excluded.updated_at`,
    );
    for (const entry of entries) upsert.run(entry.symbol, entry.timeframe, entry.lastTs, now);
  });
}

/** Newest bar time per symbol and timeframe, most recently updated first, at most `limit`. */
export function readFreshness(
  db: DatabaseSync,
  limit: number,
): { symbol: string; timeframe: string; lastTs: number }[] {
  return db.prepare(
    "SELECT symbol, timeframe, last_ts FROM series_freshness ORDER BY updated_at DESC, symbol LIMIT ?",
  )
    .all(limit).map((row) => ({
      symbol: row.symbol as string,
      timeframe: row.timeframe as string,
      lastTs: Number(row.last_ts),
    }));
}

/** Freshness of one timeframe over all its symbols: a summary that does not grow with them. */
export interface FreshnessSummary {
  timeframe: string;
  /** Symbols with a stored newest bar. */
  series: number;
  /** The stalest symbol's newest bar (epoch ms). */
  oldestLastTs: number;
  /** The freshest symbol's newest bar (epoch ms). */
  newestLastTs: number;
}

/** Per-timeframe summary of the newest bar times, ordered by timeframe. */
export function readFreshnessSummary(db: DatabaseSync): FreshnessSummary[] {
  return db.prepare(
    `SELECT timeframe, count(*) AS n, min(last_ts) AS oldest, max(last_ts) AS newest
     FROM series_freshness GROUP BY timeframe ORDER BY timeframe`,
  )
    .all().map((row) => ({
      timeframe: row.timeframe as string,
      series: Number(row.n),
      oldestLastTs: Number(row.oldest),
      newestLastTs: Number(row.newest),
    }));
}

/** Count jobs currently running (after dead ones were reaped). */
export function countRunningJobs(db: DatabaseSync, now: number = Date.now()): number {
  // A job counts while its process still beats (every 5 s); a killed ingest drops out after 30 s
  // even before another command marks it failed.
  return Number(
    db.prepare(
      `SELECT count(*) AS n FROM jobs j JOIN processes p ON p.id = j.process_id
       WHERE j.status = 'running' AND p.heartbeat_at >= ?`,
    ).get(now - 30_000)!.n,
  );
}
