/**
 * Validation reports for the dashboard and the API, read from what `marketpipe validate` stores:
 * a summary row per report in SQLite and one CSV per symbol under `<data>/reports/validation/`.
 *
 * @module
 */
import { join } from "node:path";
import { VALIDATION_RULES } from "../core/validate.ts";
import {
  findValidationReport,
  listValidationReports,
  type MetaStore,
  readValidationReport,
  type ValidationReportRecord,
} from "../storage/mod.ts";
import type { ValidationSource } from "./context.ts";
import type { ValidationReportSummary } from "./views.ts";

/** Offending bars a report detail carries at most (the CSVs hold all of them). */
export const MAX_REPORT_ROWS = 2_000;

/** The validation reports stored in a data directory. */
export function storedValidationReports(dataDir: string, meta: MetaStore): ValidationSource {
  return {
    listReports: ({ limit }) =>
      Promise.resolve(listValidationReports(meta.db, { limit }).map(_summary)),
    async getReport(id) {
      const record = findValidationReport(meta.db, id);
      if (!record) return undefined;
      const rows = await readValidationReport(dataDir, record);
      const severityOf = new Map<string, string>(
        VALIDATION_RULES.map((rule) => [rule.id, rule.severity]),
      );
      for (const row of rows) if (!severityOf.has(row.rule)) severityOf.set(row.rule, row.severity);
      return {
        ..._summary(record),
        rules: Object.entries(record.rules)
          .map(([rule, count]) => ({ rule, severity: severityOf.get(rule) ?? "-", count }))
          .sort((a, b) => b.count - a.count || a.rule.localeCompare(b.rule)),
        bars: rows.slice(0, MAX_REPORT_ROWS),
        barsTotal: rows.length,
        files: record.symbols.map((symbol) => join(record.path, `${symbol}.csv`)),
      };
    },
  };
}

function _summary(record: ValidationReportRecord): ValidationReportSummary {
  return {
    id: record.id,
    createdAt: record.createdAt,
    jobId: record.jobId,
    timeframe: record.timeframe,
    symbols: record.symbols,
    start: record.start,
    end: record.end,
    barsChecked: record.bars,
    findings: record.errors + record.warnings + record.infos,
    errors: record.errors,
    warnings: record.warnings,
    infos: record.infos,
    quarantined: record.quarantined,
    record,
  };
}
