import assert from "node:assert/strict";
import { join } from "node:path";
import { MetaStore, openDatabase, openMigrated } from "./meta.ts";
import { createScheduleStore, hasScheduleTables } from "./schedule_store.ts";
import { startLeaseHolder } from "../tests/_lease.ts";

/** A migrated metadata database in a temp dir. */
function openScheduleDb(dir: string, command = "test"): MetaStore {
  const path = join(dir, "marketpipe.db");
  const { db } = openMigrated(path);
  return new MetaStore(db, { command });
}

function reopen(dir: string, command = "test"): MetaStore {
  const db = openDatabase(join(dir, "marketpipe.db"));
  return new MetaStore(db, { command });
}

Deno.test("createScheduleStore() records runs and lists them newest first", () => {
  const dir = Deno.makeTempDirSync();
  const meta = openScheduleDb(dir);
  let t = 1_000;
  const runs = createScheduleStore(meta, { now: () => t });
  try {
    assert.equal(hasScheduleTables(meta), true);
    assert.equal(runs.lastPlanned("nightly"), undefined);
    const first = runs.startRun({
      schedule: "nightly",
      command: "update",
      trigger: "schedule",
      plannedAt: 900,
    });
    assert.equal(runs.getRun(first)?.status, "running");
    assert.equal(runs.liveRun("nightly")?.id, first);
    t = 2_000;
    runs.finishRun(first, { status: "failed", error: "exit 1" });
    assert.equal(runs.liveRun("nightly"), undefined);
    t = 3_000;
    const retry = runs.startRun({
      schedule: "nightly",
      command: "update",
      trigger: "retry",
      plannedAt: 900,
      attempt: 2,
    });
    t = 4_000;
    runs.finishRun(retry, { status: "succeeded", jobIds: ["job-a", "job-b"] });
    t = 5_000;
    runs.recordSkipped({
      schedule: "weekly",
      command: "compact",
      trigger: "catch-up",
      plannedAt: 4_500,
      reason: "catch-up: none",
    });
    const listed = runs.listRuns();
    assert.deepEqual(listed.map((r) => [r.schedule, r.status, r.attempt]), [
      ["weekly", "skipped", 1],
      ["nightly", "succeeded", 2],
      ["nightly", "failed", 1],
    ]);
    assert.deepEqual(listed[1].jobIds, ["job-a", "job-b"]);
    assert.deepEqual(listed[1], {
      ...listed[1],
      trigger: "retry",
      plannedAt: 900,
      startedAt: 3_000,
      finishedAt: 4_000,
      pid: Deno.pid,
      error: null,
    });
    assert.deepEqual(runs.listRuns({ schedule: "nightly", limit: 1 }).map((r) => r.id), [retry]);
    assert.equal(runs.lastPlanned("nightly"), 900);
    assert.deepEqual(
      [...runs.latestRuns()].map(([name, run]) => [name, run.status]),
      [["nightly", "succeeded"], ["weekly", "skipped"]],
    );
  } finally {
    meta.close();
  }
});

Deno.test("reapDeadRuns() fails runs whose process closed without finishing them", () => {
  const dir = Deno.makeTempDirSync();
  const meta = openScheduleDb(dir);
  const other = reopen(dir, "serve");
  try {
    const id = createScheduleStore(other).startRun({
      schedule: "nightly",
      command: "update",
      trigger: "schedule",
      plannedAt: 1,
    });
    const runs = createScheduleStore(meta);
    assert.equal(runs.liveRun("nightly")?.id, id);
    assert.equal(runs.reapDeadRuns(), 0);
    other.close();
    assert.equal(runs.liveRun("nightly"), undefined);
    assert.equal(runs.reapDeadRuns(), 1);
    const run = runs.getRun(id)!;
    assert.equal(run.status, "failed");
    assert.match(run.error!, /^interrupted: process \d+ stopped before the run finished$/);
  } finally {
    meta.close();
  }
});

Deno.test("acquireLease() lets one process hold the scheduler lease until it stops", () => {
  const dir = Deno.makeTempDirSync();
  const a = openScheduleDb(dir, "serve");
  const b = reopen(dir, "serve");
  try {
    const leaseA = createScheduleStore(a);
    const leaseB = createScheduleStore(b);
    assert.equal(leaseA.acquireLease(), true);
    assert.equal(leaseA.acquireLease(), true, "taking it again is a no-op");
    assert.equal(leaseB.acquireLease(), false);
    assert.equal(leaseB.leaseHolder()?.processId, a.process.id);
    assert.equal(leaseB.leaseHolder()?.alive, true);
    assert.equal(leaseA.renewLease(), true);
    assert.equal(leaseB.renewLease(), false);
    leaseA.releaseLease();
    assert.equal(leaseB.acquireLease(), true);
    assert.equal(leaseA.renewLease(), false, "a lease taken over is lost");
    assert.equal(leaseA.acquireLease(), false);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("acquireLease() takes the lease over from a killed process", async () => {
  const dir = Deno.makeTempDirSync();
  const meta = openScheduleDb(dir);
  const runs = createScheduleStore(meta);
  const holder = await startLeaseHolder(dir);
  try {
    assert.equal(holder.said, "held");
    assert.equal(runs.acquireLease(), false);
    assert.equal(runs.leaseHolder()?.pid, holder.child.pid);
  } finally {
    await holder.kill();
  }
  try {
    assert.equal(runs.leaseHolder()?.alive, false);
    assert.equal(runs.acquireLease(), true);
    assert.equal(runs.leaseHolder()?.pid, Deno.pid);
  } finally {
    meta.close();
  }
});
