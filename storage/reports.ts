/**
 * Validation audit reports: one CSV per symbol (`symbol,ts,rule,severity,detail`) under
 * `<data>/reports/validation/<report>/`, written atomically, plus a summary row in SQLite.
 *
 * @module
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { join } from "node:path";
import { parseTimeframe, type Timeframe } from "../core/types.ts";
import type { Finding, Severity } from "../core/validate.ts";
import { fsyncFile } from "./fs.ts";
import { newJobId } from "./meta.ts";

/** Directory of validation reports inside the data directory. */
export const REPORTS_DIR = join("reports", "validation");

/** Header of every report CSV. */
export const REPORT_CSV_HEADER = "symbol,ts,rule,severity,detail";

/** The summary row of one validation run. */
export interface ValidationReportRecord {
  id: string;
  createdAt: number;
  /** The ingest job that was validated, when validated by job. */
  jobId: string | null;
  timeframe: Timeframe;
  symbols: string[];
  start: string;
  end: string;
  crossCheck: boolean;
  /** Stored bars checked. */
  bars: number;
  errors: number;
  warnings: number;
  infos: number;
  /** Quarantined bars listed in the report. */
  quarantined: number;
  /** Findings per rule id. */
  rules: Record<string, number>;
  /** Rule settings that differed from the defaults. */
  settings: Record<string, unknown>;
  /** Report directory, relative to the data directory. */
  path: string;
}

/** What {@link saveValidationReport} stores. */
export interface NewValidationReport extends Omit<ValidationReportRecord, "id" | "path"> {
  /** Findings of each symbol checked (a symbol without findings gets a header-only CSV). */
  findings: Map<string, Finding[]>;
}

/**
 * Write the CSVs of a report into a temp directory, rename it into place, then insert the summary
 * row; returns the record. A failure leaves neither the directory nor the row behind.
 */
export async function saveValidationReport(
  db: DatabaseSync,
  dataDir: string,
  report: NewValidationReport,
): Promise<ValidationReportRecord> {
  const id = `v${newJobId(report.createdAt)}`;
  const path = join(REPORTS_DIR, id);
  const root = join(dataDir, REPORTS_DIR);
  await Deno.mkdir(root, { recursive: true });
  const temp = join(root, `.tmp-${id}`);
  const final = join(dataDir, path);
  await Deno.mkdir(temp);
  try {
    for (const [symbol, findings] of report.findings) {
      const lines = [REPORT_CSV_HEADER, ...findings.map(reportCsvLine)];
      const file = join(temp, `${symbol}.csv`);
      await Deno.writeTextFile(file, lines.join("\n") + "\n");
      await fsyncFile(file);
    }
    await Deno.rename(temp, final);
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw new Error(`Cannot write validation report ${path}`, { cause: error });
  }
  const record: ValidationReportRecord = { ...report, id, path };
  try {
    db.prepare(
      `INSERT INTO validation_reports (id, created_at, job_id, timeframe, symbols, start_date, end_date, cross_check, bars, errors, warnings, infos, quarantined, rules, settings, path)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      id,
      record.createdAt,
      record.jobId,
      record.timeframe,
      JSON.stringify(record.symbols),
      record.start,
      record.end,
      record.crossCheck ? 1 : 0,
      record.bars,
      record.errors,
      record.warnings,
      record.infos,
      record.quarantined,
      JSON.stringify(record.rules),
      JSON.stringify(record.settings),
      path,
    );
  } catch (error) {
    await Deno.remove(final, { recursive: true }).catch(() => {});
    throw new Error(`Cannot record validation report ${id}`, { cause: error });
  }
  return record;
}

/** Reports, newest first. */
export function listValidationReports(
  db: DatabaseSync,
  options: { limit?: number; jobId?: string } = {},
): ValidationReportRecord[] {
  const where = options.jobId === undefined ? "" : "WHERE job_id = ?";
  const params: SQLInputValue[] = options.jobId === undefined ? [] : [options.jobId];
  return db.prepare(
    `SELECT * FROM validation_reports ${where} ORDER BY created_at DESC, id DESC LIMIT ?`,
  ).all(...params, options.limit ?? 20).map(_recordFrom);
}

/** Options of {@link findValidationReport}. */
export interface FindValidationReportOptions {
  /** Called with the matching ids (at most 10, newest first) when `ref` is a prefix of several. */
  onAmbiguous?: (ids: string[]) => void;
}

/**
 * A report by id, unique id prefix, or the id of the job it validated (its newest report);
 * undefined when none matches, or when a prefix matches several (after `onAmbiguous`).
 */
export function findValidationReport(
  db: DatabaseSync,
  ref: string,
  options: FindValidationReportOptions = {},
): ValidationReportRecord | undefined {
  const exact = db.prepare("SELECT * FROM validation_reports WHERE id = ?").get(ref);
  if (exact) return _recordFrom(exact);
  const byJob = db.prepare(
    "SELECT * FROM validation_reports WHERE job_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
  ).get(ref);
  if (byJob) return _recordFrom(byJob);
  const prefixed = db.prepare(
    `SELECT * FROM validation_reports WHERE id LIKE ? ESCAPE '\\'
     ORDER BY created_at DESC, id DESC LIMIT 10`,
  ).all(ref.replace(/[\\%_]/g, "\\$&") + "%");
  if (prefixed.length === 1) return _recordFrom(prefixed[0]);
  if (prefixed.length > 1) options.onAmbiguous?.(prefixed.map((row) => row.id as string));
  return undefined;
}

/** A row of a report CSV. */
export interface ReportRow {
  symbol: string;
  /** ISO-8601 UTC start of the bar. */
  ts: string;
  rule: string;
  severity: Severity;
  detail: string;
}

/** The rows of every CSV of a report, by symbol then file order. */
export async function readValidationReport(
  dataDir: string,
  record: ValidationReportRecord,
): Promise<ReportRow[]> {
  const dir = join(dataDir, record.path);
  const names = (await Array.fromAsync(Deno.readDir(dir)))
    .filter((entry) => entry.isFile && entry.name.endsWith(".csv")).map((entry) => entry.name)
    .sort();
  const rows: ReportRow[] = [];
  for (const name of names) {
    const lines = parseCsv(await Deno.readTextFile(join(dir, name)));
    if (lines.length === 0 || lines[0].join(",") !== REPORT_CSV_HEADER) {
      throw new Error(`Cannot read validation report ${join(record.path, name)}: bad header`);
    }
    for (const line of lines.slice(1)) {
      rows.push({
        symbol: line[0],
        ts: line[1],
        rule: line[2],
        severity: line[3] as Severity,
        detail: line[4] ?? "",
      });
    }
  }
  return rows;
}

/** One CSV line of a finding. */
export function reportCsvLine(finding: Finding): string {
  return [
    finding.symbol,
    new Date(finding.ts).toISOString(),
    finding.rule,
    finding.severity,
    finding.detail,
  ].map(_csvField).join(",");
}

function _csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** Parse RFC 4180 CSV text into rows of fields (no trailing empty row). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
    i++;
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function _recordFrom(row: Record<string, SQLInputValue>): ValidationReportRecord {
  return {
    id: row.id as string,
    createdAt: Number(row.created_at),
    jobId: row.job_id as string | null,
    timeframe: parseTimeframe(row.timeframe),
    symbols: JSON.parse(row.symbols as string),
    start: row.start_date as string,
    end: row.end_date as string,
    crossCheck: Number(row.cross_check) === 1,
    bars: Number(row.bars),
    errors: Number(row.errors),
    warnings: Number(row.warnings),
    infos: Number(row.infos),
    quarantined: Number(row.quarantined),
    rules: JSON.parse(row.rules as string),
    settings: JSON.parse(row.settings as string),
    path: row.path as string,
  };
}
