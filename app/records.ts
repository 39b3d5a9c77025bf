/**
 * The one JSON shape of each record, shared by `--json` output and the REST API: snake_case
 * keys, times as ISO 8601 strings (null when not yet), counts as numbers. The README's
 * "JSON records" section documents every field.
 *
 * @module
 */
import { join } from "node:path";
import type { JobRecord, TaskRecord } from "../core/jobs.ts";
import type { SymbolVersion } from "../core/reference.ts";
import type { PruneSummary, UniverseInfo, ValidationReportRecord } from "../storage/mod.ts";

/** A job as `jobs list --json`, `jobs show --json` and `/api/jobs` show it. */
export function jobJson(job: JobRecord) {
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    provider: job.provider,
    feed: job.feed,
    adjustment: job.adjustment,
    // A prune or delete of every timeframe (or date) records none.
    timeframe: job.timeframe || null,
    symbols: job.symbols,
    start: job.start === "" ? null : job.start,
    end: job.end === "" ? null : job.end,
    params: job.params,
    bars_written: job.barsWritten,
    created_at: _isoTime(job.createdAt),
    started_at: _isoTime(job.startedAt),
    finished_at: _isoTime(job.finishedAt),
    pid: job.pid,
    error: job.error,
    result: job.result,
  };
}

/**
 * What a prune or delete removes (with `dry_run`, would remove), as `/api/prune`, `/api/delete`
 * and the `result` of their jobs show it: per partition, then the bars and ingested days in all.
 */
export function pruneJson(summary: PruneSummary) {
  return {
    partitions: summary.partitions.map((p) => ({
      tree: p.tree,
      timeframe: p.timeframe,
      symbol: p.symbol,
      year: p.year,
      first_date: p.firstDate,
      last_date: p.lastDate,
      bars_removed: p.rows,
      bars_kept: p.kept,
      files_removed: p.removed,
      files_rewritten: p.rewritten,
    })),
    bars: summary.rows,
    days: summary.days,
  };
}

/** A task of a job as `jobs show --json` and `/api/jobs/{id}` show it. */
export function taskJson(task: TaskRecord) {
  return {
    seq: task.seq,
    symbol: task.symbol,
    start: task.start,
    end: task.end,
    days: task.days,
    status: task.status,
    attempts: task.attempts,
    bars_fetched: task.barsFetched,
    bars_written: task.barsWritten,
    bars_replaced: task.barsReplaced,
    quarantined: task.quarantined,
    findings: task.findings,
    error: task.error,
    duration_ms: task.startedAt && task.finishedAt ? task.finishedAt - task.startedAt : null,
  };
}

/**
 * A validation report as `validate --json`, `validate --list --json`, `validate --show --json`
 * and `/api/validation/reports` show it; `path` is its directory under `dataDir` (default: relative
 * to the data directory).
 */
export function reportJson(report: ValidationReportRecord, dataDir = "") {
  return {
    id: report.id,
    created_at: _isoTime(report.createdAt),
    job_id: report.jobId,
    timeframe: report.timeframe,
    symbols: report.symbols,
    start: report.start,
    end: report.end,
    cross_check: report.crossCheck,
    bars_checked: report.bars,
    findings: report.errors + report.warnings + report.infos,
    errors: report.errors,
    warnings: report.warnings,
    infos: report.infos,
    quarantined: report.quarantined,
    rules: report.rules,
    settings: report.settings,
    path: join(dataDir, report.path),
  };
}

/** A symbol master row as `symbols list|show|history --json` show it. */
export function symbolJson(row: SymbolVersion) {
  return {
    ticker: row.ticker,
    ...masterJson(row),
    cusip: row.cusip,
    cik: row.cik,
    provider_id: row.providerId,
    instrument_id: row.instrumentId,
    as_of: row.asOf,
    valid_from: row.validFrom,
    valid_to: row.validTo,
  };
}

/**
 * The symbol master's fields of a ticker, as `/api/symbols`, universe members (`universe show
 * --json`, `/api/universes/{name}`) and {@link symbolJson} show them; all null when the master
 * does not know it.
 */
export function masterJson(row: SymbolVersion | undefined) {
  return {
    name: row?.name ?? null,
    exchange: row?.exchange ?? null,
    asset_class: row?.assetClass ?? null,
    status: row?.status ?? null,
    list_date: row?.listDate ?? null,
    delist_date: row?.delistDate ?? null,
    figi: row?.figi ?? null,
    source: row?.source ?? null,
  };
}

/**
 * A universe as `universe create|list|show --json` and `/api/universes` show it; `members` is
 * its member count on the date asked for.
 */
export function universeJson(info: UniverseInfo) {
  return {
    name: info.name,
    kind: info.kind,
    filter: info.filter,
    description: info.description,
    members: info.members,
    created_at: _isoTime(info.createdAt),
    updated_at: _isoTime(info.updatedAt),
  };
}

function _isoTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
