import assert from "node:assert/strict";
import { join } from "node:path";
import type { Finding } from "../core/validate.ts";
import { META_FILE, migrate, openDatabase } from "./meta.ts";
import {
  findValidationReport,
  listValidationReports,
  parseCsv,
  readValidationReport,
  REPORT_CSV_HEADER,
  saveValidationReport,
} from "./reports.ts";

function finding(fields: Partial<Finding> = {}): Finding {
  return {
    symbol: "AAPL",
    timeframe: "1m",
    ts: Date.UTC(2024, 2, 4, 15, 0),
    tradingDate: "2024-03-04",
    rule: "extreme_move",
    severity: "warn",
    detail: "close 150 is 50.0% above the previous close 100",
    ...fields,
  };
}

async function withDb(fn: (dataDir: string, db: ReturnType<typeof openDatabase>) => Promise<void>) {
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-reports-" });
  const db = openDatabase(join(dataDir, META_FILE));
  migrate(db);
  try {
    await fn(dataDir, db);
  } finally {
    db.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("saveValidationReport() writes one CSV per symbol and a summary row", async () => {
  await withDb(async (dataDir, db) => {
    const tricky = finding({ rule: "vwap_range", detail: 'vwap "x", quoted\nand on two lines' });
    const record = await saveValidationReport(db, dataDir, {
      createdAt: Date.UTC(2024, 2, 10, 12),
      jobId: "20240310-120000-ab12",
      timeframe: "1m",
      symbols: ["AAPL", "MSFT"],
      start: "2024-03-04",
      end: "2024-03-08",
      crossCheck: false,
      bars: 1000,
      errors: 0,
      warnings: 2,
      infos: 0,
      quarantined: 0,
      rules: { extreme_move: 1, vwap_range: 1 },
      settings: {},
      findings: new Map([["AAPL", [finding(), tricky]], ["MSFT", []]]),
    });
    assert.match(record.id, /^v20240310-120000-[0-9a-f]{4}$/);
    const dir = join(dataDir, "reports", "validation", record.id);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["AAPL.csv", "MSFT.csv"],
    );
    assert.equal(await Deno.readTextFile(join(dir, "MSFT.csv")), `${REPORT_CSV_HEADER}\n`);
    const aapl = parseCsv(await Deno.readTextFile(join(dir, "AAPL.csv")));
    assert.deepEqual(aapl[0], ["symbol", "ts", "rule", "severity", "detail"]);
    assert.deepEqual(aapl[2], [
      "AAPL",
      "2024-03-04T15:00:00.000Z",
      "vwap_range",
      "warn",
      'vwap "x", quoted\nand on two lines',
    ]);
    const rows = await readValidationReport(dataDir, record);
    assert.deepEqual(rows.map((r) => r.rule), ["extreme_move", "vwap_range"]);
    assert.deepEqual(listValidationReports(db).map((r) => r.id), [record.id]);
    assert.equal(findValidationReport(db, record.id)?.warnings, 2);
    assert.equal(findValidationReport(db, "20240310-120000-ab12")?.id, record.id);
    assert.equal(findValidationReport(db, record.id.slice(0, 8))?.id, record.id);
    assert.equal(findValidationReport(db, "nope"), undefined);
    // No temp directory is left behind.
    assert.deepEqual(
      [...Deno.readDirSync(join(dataDir, "reports", "validation"))].map((e) => e.name),
      [record.id],
    );
  });
});

Deno.test("listValidationReports() lists the newest first", async () => {
  await withDb(async (dataDir, db) => {
    const base = {
      jobId: null,
      timeframe: "1m" as const,
      symbols: ["AAPL"],
      start: "2024-03-04",
      end: "2024-03-04",
      crossCheck: false,
      bars: 1,
      errors: 0,
      warnings: 0,
      infos: 0,
      quarantined: 0,
      rules: {},
      settings: {},
      findings: new Map([["AAPL", []]]),
    };
    const older = await saveValidationReport(db, dataDir, { ...base, createdAt: 1_000 });
    const newer = await saveValidationReport(db, dataDir, { ...base, createdAt: 2_000 });
    assert.deepEqual(listValidationReports(db).map((r) => r.id), [newer.id, older.id]);
    assert.deepEqual(listValidationReports(db, { limit: 1 }).map((r) => r.id), [newer.id]);
    // A prefix of both is ambiguous: no report, and the caller hears the matches, newest first.
    let matches: string[] = [];
    const found = findValidationReport(db, "v19700101-00000", {
      onAmbiguous: (ids) => matches = ids,
    });
    assert.equal(found, undefined);
    assert.deepEqual(matches, [newer.id, older.id]);
    assert.equal(findValidationReport(db, "v19700101-000001")?.id, older.id);
  });
});

Deno.test("parseCsv() reads quoted fields, doubled quotes and CRLF", () => {
  assert.deepEqual(parseCsv('a,"b,c","d""e"\r\nx,,y\n'), [["a", "b,c", 'd"e'], ["x", "", "y"]]);
});
