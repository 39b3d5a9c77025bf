import assert from "node:assert/strict";
import { join } from "node:path";
import { parseSchedulesConfig } from "../core/schedule.ts";
import { MetaStore, openMigrated } from "../storage/meta.ts";
import { createScheduleStore } from "../storage/schedule_store.ts";
import { readStatus } from "./status.ts";

function openMeta(): MetaStore {
  const { db } = openMigrated(join(Deno.makeTempDirSync(), "marketpipe.db"));
  return new MetaStore(db, { command: "test" });
}

function storeDays(meta: MetaStore, symbol: string, timeframe: string, dates: string[]): void {
  const insert = meta.db.prepare(
    "INSERT INTO ingested_days (source, timeframe, symbol, trading_date, bars, job_id, ingested_at) VALUES ('fake/sip/raw', ?, ?, ?, 390, 'j', 0)",
  );
  for (const date of dates) insert.run(timeframe, symbol, date);
}

Deno.test("readStatus() reports stale series and failing schedules", () => {
  const meta = openMeta();
  try {
    storeDays(meta, "AAPL", "1d", ["2024-07-01", "2024-07-02"]);
    storeDays(meta, "MSFT", "1d", ["2024-07-05"]);
    const runs = createScheduleStore(meta);
    const failed = runs.startRun({
      schedule: "nightly",
      command: "update",
      trigger: "schedule",
      plannedAt: Date.parse("2024-07-05T20:30:00Z"),
    });
    runs.finishRun(failed, { status: "failed", error: "HTTP 503" });
    const { schedules } = parseSchedulesConfig({
      schedules: [
        { name: "nightly", command: "update", when: { "after-close": "30m" } },
        { name: "weekly", command: "compact", when: { cron: "0 3 * * 6" } },
      ],
    }, "test");
    const report = readStatus(meta, { now: Date.parse("2024-07-05T21:00:00Z"), schedules });
    assert.deepEqual(
      report.stale.map((s) => [s.symbol, s.timeframe, s.last, s.expected, s.missedSessions]),
      [["AAPL", "1d", "2024-07-02", "2024-07-05", 2]],
    );
    assert.equal(report.series.length, 2);
    assert.deepEqual(
      report.schedules.map((s) => [s.name, s.failing, s.lastRun?.error ?? null]),
      [["nightly", true, "HTTP 503"], ["weekly", false, null]],
    );
    assert.equal(report.scheduler, undefined);
    runs.acquireLease();
    assert.equal(readStatus(meta, { now: 0 }).scheduler?.pid, Deno.pid);
  } finally {
    meta.close();
  }
});
