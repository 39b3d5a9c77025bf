import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { join } from "node:path";
import type { JobSpec, SourceKey, TaskResult } from "../core/jobs.ts";
import {
  META_FILE,
  MetaStore,
  migrate,
  migrationStatus,
  newJobId,
  openDatabase,
  parseSourceLabel,
  processStartMarker,
  sourceLabel,
} from "./meta.ts";
import { type Migration, MIGRATIONS } from "./migrations.ts";

/** Run `fn` with a fresh temp directory, removed afterwards. */
async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "marketpipe-meta-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Open and migrate the metadata database of `dir` as a new MetaStore (a "process"). */
function openMeta(dir: string, options: { now?: () => number } = {}): MetaStore {
  const db = openDatabase(join(dir, META_FILE));
  try {
    migrate(db);
  } catch (error) {
    db.close();
    throw error;
  }
  return new MetaStore(db, { command: "test", ...options });
}

/** Run `fn` with a MetaStore on a temp directory, closing both afterwards. */
async function withMeta(
  fn: (meta: MetaStore, dir: string) => Promise<void> | void,
  options: { now?: () => number } = {},
): Promise<void> {
  await withDir(async (dir) => {
    const meta = openMeta(dir, options);
    try {
      await fn(meta, dir);
    } finally {
      meta.close();
    }
  });
}

/** The pid of a process that has exited: spawn `true` and wait for it. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true", { stdout: "null", stderr: "null" }).spawn();
  const status = await child.status;
  assert.ok(status.success);
  return child.pid;
}

/** Insert a `processes` row as another process on this host would have, returning its id. */
function insertProcess(
  meta: MetaStore,
  fields: { pid: number; startMarker?: string | null; hostname?: string; heartbeatAt?: number },
): string {
  const id = crypto.randomUUID();
  meta.db.prepare(
    "INSERT INTO processes (id, pid, hostname, start_marker, command, started_at, heartbeat_at) VALUES (?, ?, ?, ?, 'ingest', ?, ?)",
  ).run(
    id,
    fields.pid,
    fields.hostname ?? meta.process.hostname,
    fields.startMarker === undefined ? "12345" : fields.startMarker,
    0,
    fields.heartbeatAt ?? Date.now(),
  );
  return id;
}

/** Make `processId` (with `pid`) the owner of a job, as if that process had claimed it. */
function setOwner(meta: MetaStore, jobId: string, processId: string, pid: number): void {
  meta.db.prepare("UPDATE jobs SET process_id = ?, pid = ? WHERE id = ?").run(
    processId,
    pid,
    jobId,
  );
}

function lockOwner(meta: MetaStore, partition: string): string | undefined {
  return meta.db.prepare("SELECT process_id FROM partition_locks WHERE partition = ?").get(
    partition,
  )
    ?.process_id as string | undefined;
}

const SPEC: JobSpec = {
  provider: "fake",
  feed: "sip",
  adjustment: "raw",
  timeframe: "1m",
  symbols: ["AAPL", "MSFT"],
  start: "2024-03-04",
  end: "2024-03-05",
  params: { seed: 7 },
};

const SOURCE: SourceKey = {
  provider: "fake",
  feed: "sip",
  adjustment: "raw",
  timeframe: "1m",
  params: { seed: 7 },
};

const TASKS = [
  { symbol: "AAPL", start: "2024-03-04", end: "2024-03-05", days: 2 },
  { symbol: "MSFT", start: "2024-03-04", end: "2024-03-05", days: 2 },
];

const RESULT: TaskResult = {
  barsFetched: 800,
  barsWritten: 780,
  barsReplaced: 0,
  quarantined: 0,
  findings: {},
  dayCounts: { "2024-03-04": 390, "2024-03-05": 390 },
};

const PARTITION = "bars/timeframe=1m/symbol=AAPL/year=2024/month=03";

// ---------------------------------------------------------------------------------------------
// Migrations

Deno.test("migrate() applies every migration once and nothing on a second call", async () => {
  await withDir((dir) => {
    const db = openDatabase(join(dir, META_FILE));
    try {
      assert.deepEqual(migrate(db).map((m) => m.version), MIGRATIONS.map((m) => m.version));
      assert.deepEqual(migrate(db), []);
      const count = db.prepare("SELECT count(*) AS n FROM schema_migrations").get()!;
      assert.equal(Number(count.n), MIGRATIONS.length);
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .all()
        .map((row) => row.name);
      for (const table of ["ingested_days", "jobs", "partition_locks", "processes", "tasks"]) {
        assert.ok(tables.includes(table), `missing table ${table}`);
      }
    } finally {
      db.close();
    }
  });
});

Deno.test("migrate() from a second connection applies nothing already applied", async () => {
  await withDir((dir) => {
    const first = openDatabase(join(dir, META_FILE));
    const second = openDatabase(join(dir, META_FILE));
    try {
      assert.equal(migrate(first).length, MIGRATIONS.length);
      assert.deepEqual(migrate(second), []);
    } finally {
      first.close();
      second.close();
    }
  });
});

Deno.test("migrationStatus() lists pending migrations before and applied ones after migrate()", async () => {
  await withDir((dir) => {
    assert.deepEqual(
      migrationStatus(null),
      MIGRATIONS.map((m) => ({ version: m.version, name: m.name, appliedAt: null })),
    );
    const db = openDatabase(join(dir, META_FILE));
    try {
      assert.ok(migrationStatus(db).every((m) => m.appliedAt === null));
      const before = Date.now();
      migrate(db);
      const status = migrationStatus(db);
      assert.deepEqual(
        status.map((m) => [m.version, m.name]),
        MIGRATIONS.map((m) => [m.version, m.name]),
      );
      for (const m of status) {
        assert.ok(
          m.appliedAt !== null && m.appliedAt >= before && m.appliedAt <= Date.now(),
          `${m.appliedAt}`,
        );
      }
    } finally {
      db.close();
    }
  });
});

Deno.test("migrate() applies a later migration on top of earlier ones", async () => {
  await withDir((dir) => {
    const db = openDatabase(join(dir, META_FILE));
    try {
      migrate(db);
      const next: Migration = {
        version: MIGRATIONS.length + 1,
        name: "notes",
        sql: "CREATE TABLE notes (text TEXT)",
      };
      assert.deepEqual(migrate(db, [...MIGRATIONS, next]), [next]);
      assert.equal(migrationStatus(db, [...MIGRATIONS, next]).at(-1)!.appliedAt !== null, true);
    } finally {
      db.close();
    }
  });
});

Deno.test("migrate() rolls back a failing migration and names it", async () => {
  await withDir((dir) => {
    const db = openDatabase(join(dir, META_FILE));
    try {
      const broken: Migration = {
        version: MIGRATIONS.length + 1,
        name: "broken",
        sql: "CREATE TABLE half_done (a INTEGER); THIS IS NOT SQL;",
      };
      assert.throws(() => migrate(db, [...MIGRATIONS, broken]), {
        message: `Cannot apply migration ${broken.version} (broken)`,
      });
      const table = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").get();
      assert.equal(table, undefined, "the failed migration left a table behind");
      assert.equal(migrationStatus(db, [...MIGRATIONS, broken]).at(-1)!.appliedAt, null);
      // The earlier migrations stay applied.
      assert.deepEqual(migrate(db), []);
    } finally {
      db.close();
    }
  });
});

Deno.test("migrate() refuses a database written by a newer build", async () => {
  await withDir((dir) => {
    const db = openDatabase(join(dir, META_FILE));
    try {
      const future: Migration = {
        version: MIGRATIONS.length + 1,
        name: "future",
        sql: "CREATE TABLE future (a)",
      };
      migrate(db, [...MIGRATIONS, future]);
      assert.throws(() => migrate(db), { message: /newer MarketPipe .*upgrade marketpipe$/ });
    } finally {
      db.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Jobs and tasks

Deno.test("MetaStore.createJob() records a pending job owned by this process with its tasks", async () => {
  const now = Date.UTC(2024, 2, 4, 15, 30, 12);
  await withMeta((meta) => {
    const job = meta.createJob(SPEC, "key-1", TASKS);
    assert.match(job.id, /^20240304-153012-[0-9a-f]{4}$/);
    assert.equal(job.status, "pending");
    assert.equal(job.requestKey, "key-1");
    assert.deepEqual(job.symbols, ["AAPL", "MSFT"]);
    assert.deepEqual(job.params, { seed: 7 });
    assert.equal(job.start, "2024-03-04");
    assert.equal(job.pid, Deno.pid);
    assert.equal(job.createdAt, now);
    assert.equal(job.startedAt, null);
    const tasks = meta.listTasks(job.id);
    assert.deepEqual(
      tasks.map((t) => [t.seq, t.symbol, t.start, t.end, t.days, t.status, t.attempts]),
      [[0, "AAPL", "2024-03-04", "2024-03-05", 2, "pending", 0], [
        1,
        "MSFT",
        "2024-03-04",
        "2024-03-05",
        2,
        "pending",
        0,
      ]],
    );
  }, { now: () => now });
});

Deno.test("MetaStore.claimJob() marks the job running and failed tasks pending again", async () => {
  await withMeta((meta) => {
    const job = meta.createJob(SPEC, "key", TASKS);
    meta.failTask(job.id, 1, "HTTP 500");
    const claimed = meta.claimJob(job.id);
    assert.equal(claimed.status, "running");
    assert.notEqual(claimed.startedAt, null);
    assert.equal(claimed.error, null);
    assert.deepEqual(meta.listTasks(job.id).map((t) => t.status), ["pending", "pending"]);
  });
});

Deno.test("MetaStore.claimJob() throws for an unknown job", async () => {
  await withMeta((meta) => {
    assert.throws(() => meta.claimJob("nope"), { message: 'Cannot run job "nope": no such job' });
  });
});

Deno.test("MetaStore.completeTask() marks the task done and records coverage and counts", async () => {
  await withMeta((meta) => {
    const job = meta.claimJob(meta.createJob(SPEC, "key", TASKS).id);
    meta.startTask(job.id, 0);
    assert.deepEqual(meta.listTasks(job.id).map((t) => [t.status, t.attempts]), [["running", 1], [
      "pending",
      0,
    ]]);
    meta.completeTask(job.id, 0, SOURCE, RESULT);
    const [task] = meta.listTasks(job.id);
    assert.equal(task.status, "done");
    assert.deepEqual([task.barsFetched, task.barsWritten, task.barsReplaced], [800, 780, 0]);
    assert.notEqual(task.finishedAt, null);
    assert.equal(meta.getJob(job.id)!.barsWritten, 780);
    const covered = meta.coveredDays(SOURCE, ["AAPL", "MSFT"], "2024-03-01", "2024-03-31");
    assert.deepEqual([...covered.get("AAPL")!].sort(), ["2024-03-04", "2024-03-05"]);
    assert.deepEqual([...covered.get("MSFT")!], []);
  });
});

Deno.test("MetaStore.completeTask() records nothing when part of the checkpoint fails", async () => {
  await withMeta((meta) => {
    const job = meta.claimJob(meta.createJob(SPEC, "key", TASKS).id);
    meta.startTask(job.id, 0);
    // A null bar count violates NOT NULL on the second day, after the task row was updated.
    const broken = {
      ...RESULT,
      dayCounts: { "2024-03-04": 390, "2024-03-05": null as unknown as number },
    };
    assert.throws(() => meta.completeTask(job.id, 0, SOURCE, broken));
    assert.equal(meta.listTasks(job.id)[0].status, "running");
    assert.equal(meta.getJob(job.id)!.barsWritten, 0);
    assert.deepEqual([
      ...meta.coveredDays(SOURCE, ["AAPL"], "2024-03-04", "2024-03-05").get("AAPL")!,
    ], []);
  });
});

Deno.test("MetaStore.coveredDays() separates sources by feed and data-changing params", async () => {
  await withMeta((meta) => {
    const job = meta.claimJob(meta.createJob(SPEC, "key", TASKS).id);
    meta.startTask(job.id, 0);
    meta.completeTask(job.id, 0, SOURCE, RESULT);
    const days = (source: SourceKey) =>
      meta.coveredDays(source, ["AAPL"], "2024-03-04", "2024-03-05").get("AAPL")!.size;
    assert.equal(days(SOURCE), 2);
    assert.equal(days({ ...SOURCE, params: { seed: 8 } }), 0);
    assert.equal(days({ ...SOURCE, feed: "iex" }), 0);
    assert.equal(days({ ...SOURCE, timeframe: "5m" }), 0);
    assert.equal(
      meta.coveredDays(SOURCE, ["AAPL"], "2024-03-05", "2024-03-05").get("AAPL")!.size,
      1,
    );
  });
});

Deno.test("sourceLabel() orders params so equal sources get equal labels", () => {
  assert.equal(
    sourceLabel({ provider: "fake", feed: "sip", adjustment: "raw", params: {} }),
    "fake/sip/raw",
  );
  assert.equal(
    sourceLabel({ provider: "fake", feed: "sip", adjustment: "raw", params: { b: 2, a: "x" } }),
    "fake/sip/raw?a=x&b=2",
  );
});

Deno.test("MetaStore.failTask() and releaseTask() set the task status", async () => {
  await withMeta((meta) => {
    const job = meta.claimJob(meta.createJob(SPEC, "key", TASKS).id);
    meta.startTask(job.id, 0);
    meta.startTask(job.id, 1);
    meta.failTask(job.id, 0, "HTTP 403");
    meta.releaseTask(job.id, 1);
    const tasks = meta.listTasks(job.id);
    assert.deepEqual(tasks.map((t) => [t.status, t.error]), [["failed", "HTTP 403"], [
      "pending",
      null,
    ]]);
    // Releasing a task that is not running changes nothing.
    meta.releaseTask(job.id, 0);
    assert.equal(meta.listTasks(job.id)[0].status, "failed");
  });
});

Deno.test("MetaStore.finishJob() releases the job and puts running tasks back to pending", async () => {
  await withMeta((meta) => {
    const job = meta.claimJob(meta.createJob(SPEC, "key", TASKS).id);
    meta.startTask(job.id, 0);
    const finished = meta.finishJob(job.id, "cancelled", "interrupted by the user");
    assert.equal(finished.status, "cancelled");
    assert.equal(finished.error, "interrupted by the user");
    assert.notEqual(finished.finishedAt, null);
    assert.deepEqual(meta.listTasks(job.id).map((t) => t.status), ["pending", "pending"]);
    const row = meta.db.prepare("SELECT process_id FROM jobs WHERE id = ?").get(job.id)!;
    assert.equal(row.process_id, null);
  });
});

Deno.test("MetaStore.findResumableJob() returns the newest unfinished job of the request", async () => {
  let now = 1_000_000;
  await withMeta((meta) => {
    const older = meta.createJob(SPEC, "key", TASKS);
    meta.finishJob(older.id, "cancelled");
    now += 1_000;
    const newer = meta.createJob(SPEC, "key", TASKS);
    meta.finishJob(newer.id, "partial", "1 of 2 tasks failed");
    now += 1_000;
    const done = meta.createJob(SPEC, "key", TASKS);
    meta.finishJob(done.id, "succeeded");
    meta.finishJob(meta.createJob(SPEC, "other", TASKS).id, "cancelled");
    assert.equal(meta.findResumableJob("key")?.id, newer.id);
    assert.equal(meta.findResumableJob("missing"), undefined);
  }, { now: () => now });
});

Deno.test("MetaStore.findResumableJob() skips a job a live process still runs", async () => {
  await withDir((dir) => {
    const a = openMeta(dir);
    const b = openMeta(dir);
    try {
      const job = b.claimJob(b.createJob(SPEC, "key", TASKS).id);
      assert.equal(a.findResumableJob("key"), undefined);
      b.finishJob(job.id, "cancelled");
      assert.equal(a.findResumableJob("key")?.id, job.id);
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("MetaStore.claimJob() refuses a job another live process runs", async () => {
  await withDir((dir) => {
    const a = openMeta(dir);
    const b = openMeta(dir);
    try {
      const job = b.claimJob(b.createJob(SPEC, "key", TASKS).id);
      assert.throws(() => a.claimJob(job.id), {
        message: `Cannot run job "${job.id}": another marketpipe process is running it`,
      });
      assert.equal(a.getJob(job.id)!.status, "running");
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("MetaStore.getJob() finds a job by a unique id prefix only", async () => {
  let now = Date.UTC(2024, 2, 4, 15, 30, 12);
  await withMeta((meta) => {
    const first = meta.createJob(SPEC, "key", TASKS);
    assert.equal(meta.getJob(first.id)?.id, first.id);
    assert.equal(meta.getJob(first.id.slice(0, 17))?.id, first.id);
    now += 86_400_000;
    const second = meta.createJob(SPEC, "key", TASKS);
    assert.equal(meta.getJob("2024030")?.id, undefined, "an ambiguous prefix matched a job");
    assert.equal(meta.getJob("20240305")?.id, second.id);
    assert.equal(meta.getJob("2024030_"), undefined, "_ was treated as a wildcard");
    assert.equal(meta.getJob("%"), undefined, "% was treated as a wildcard");
  }, { now: () => now });
});

Deno.test("MetaStore.listJobs() lists newest first, filtered by status and limited", async () => {
  let now = 1_000_000;
  await withMeta((meta) => {
    const ids: string[] = [];
    for (const status of ["succeeded", "partial", "succeeded"] as const) {
      const job = meta.createJob(SPEC, "key", TASKS);
      meta.finishJob(job.id, status);
      ids.push(job.id);
      now += 1_000;
    }
    assert.deepEqual(meta.listJobs().map((j) => j.id), [...ids].reverse());
    assert.deepEqual(meta.listJobs({ status: "succeeded" }).map((j) => j.id), [ids[2], ids[0]]);
    assert.deepEqual(meta.listJobs({ limit: 1 }).map((j) => j.id), [ids[2]]);
  }, { now: () => now });
});

Deno.test("MetaStore.deleteJobsBefore() deletes finished old jobs and their tasks only", async () => {
  let now = 1_000_000;
  await withMeta((meta) => {
    const old = meta.createJob(SPEC, "key", TASKS);
    meta.finishJob(old.id, "succeeded");
    const oldRunning = meta.claimJob(meta.createJob(SPEC, "key", TASKS).id);
    now = 5_000_000;
    const recent = meta.createJob(SPEC, "key", TASKS);
    meta.finishJob(recent.id, "failed");

    const preview = meta.deleteJobsBefore(3_000_000, { dryRun: true });
    assert.deepEqual(preview.map((j) => j.id), [old.id]);
    assert.ok(meta.getJob(old.id), "dry run deleted a job");

    const deleted = meta.deleteJobsBefore(3_000_000);
    assert.deepEqual(deleted.map((j) => j.id), [old.id]);
    assert.equal(meta.getJob(old.id), undefined);
    assert.deepEqual(meta.listTasks(old.id), []);
    assert.ok(meta.getJob(oldRunning.id), "a running job was deleted");
    assert.ok(meta.getJob(recent.id), "a recent job was deleted");
    assert.deepEqual(meta.deleteJobsBefore(3_000_000), []);
  }, { now: () => now });
});

// ---------------------------------------------------------------------------------------------
// Processes: liveness, reaping, partition locks

Deno.test("processStartMarker() is known for this process and null for an exited one", async () => {
  assert.notEqual(processStartMarker(Deno.pid), null);
  assert.equal(processStartMarker(await deadPid()), null);
});

Deno.test("MetaStore.isAlive() tells live, exited and reused-pid processes apart", async () => {
  const pid = await deadPid();
  await withDir((dir) => {
    const a = openMeta(dir);
    const b = openMeta(dir);
    try {
      assert.equal(a.isAlive(null), false);
      assert.equal(a.isAlive(a.process.id), true);
      assert.equal(a.isAlive(b.process.id), true, "same pid and start marker is alive");
      assert.equal(a.isAlive("no-such-process"), false);
      assert.equal(a.isAlive(insertProcess(a, { pid })), false, "exited pid counted as alive");
      assert.equal(
        a.isAlive(insertProcess(a, { pid: Deno.pid, startMarker: "1" })),
        false,
        "a reused pid with another start marker counted as alive",
      );
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("MetaStore.isAlive() judges processes on other hosts by their heartbeat", async () => {
  let now = 10_000_000;
  await withMeta((meta) => {
    const fresh = insertProcess(meta, { pid: 1, hostname: "elsewhere", heartbeatAt: now - 5_000 });
    const stale = insertProcess(meta, { pid: 1, hostname: "elsewhere", heartbeatAt: now - 60_000 });
    assert.equal(meta.isAlive(fresh), true);
    assert.equal(meta.isAlive(stale), false);
    now += 60_000;
    assert.equal(meta.isAlive(fresh), false, "a heartbeat a minute old counted as alive");
  }, { now: () => now });
});

Deno.test("MetaStore.heartbeat() records the current time", async () => {
  let now = 1_000;
  await withMeta((meta) => {
    now = 99_000;
    meta.heartbeat();
    const row = meta.db.prepare("SELECT heartbeat_at FROM processes WHERE id = ?").get(
      meta.process.id,
    )!;
    assert.equal(Number(row.heartbeat_at), 99_000);
  }, { now: () => now });
});

Deno.test("MetaStore.reapDeadJobs() fails a job of a dead process and puts its running tasks back", async () => {
  const pid = await deadPid();
  await withMeta((meta) => {
    const job = meta.claimJob(meta.createJob(SPEC, "key", TASKS).id);
    meta.startTask(job.id, 0);
    meta.completeTask(job.id, 0, SOURCE, RESULT);
    meta.startTask(job.id, 1);
    setOwner(meta, job.id, insertProcess(meta, { pid }), pid);

    meta.reapDeadJobs();
    const reaped = meta.getJob(job.id)!;
    assert.equal(reaped.status, "failed");
    assert.equal(
      reaped.error,
      `interrupted: process ${pid} stopped without finishing; run the same command again or use --resume ${job.id}`,
    );
    assert.notEqual(reaped.finishedAt, null);
    assert.deepEqual(meta.listTasks(job.id).map((t) => t.status), ["done", "pending"]);
    assert.equal(meta.findResumableJob("key")?.id, job.id);
    // Another process can now take the job over.
    assert.equal(meta.claimJob(job.id).status, "running");
  });
});

Deno.test("MetaStore.reapDeadJobs() leaves jobs of live processes and finished jobs alone", async () => {
  await withDir((dir) => {
    const a = openMeta(dir);
    const b = openMeta(dir);
    try {
      const live = b.claimJob(b.createJob(SPEC, "live", TASKS).id);
      b.startTask(live.id, 0);
      const pending = b.createJob(SPEC, "pending", TASKS);
      const finished = b.createJob(SPEC, "finished", TASKS);
      b.finishJob(finished.id, "cancelled");
      a.reapDeadJobs();
      assert.equal(a.getJob(live.id)!.status, "running");
      assert.equal(a.listTasks(live.id)[0].status, "running");
      assert.equal(a.getJob(pending.id)!.status, "pending");
      assert.equal(a.getJob(finished.id)!.status, "cancelled");
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("MetaStore.reapDeadJobs() forgets long-dead processes that own nothing", async () => {
  const pid = await deadPid();
  const now = 100 * 86_400_000;
  await withMeta((meta) => {
    const old = insertProcess(meta, { pid, heartbeatAt: now - 2 * 86_400_000 });
    const recent = insertProcess(meta, { pid, heartbeatAt: now - 3_600_000 });
    meta.reapDeadJobs();
    const ids = meta.db.prepare("SELECT id FROM processes").all().map((row) => row.id);
    assert.ok(!ids.includes(old), "a process row two days old was kept");
    assert.ok(ids.includes(recent));
    assert.ok(ids.includes(meta.process.id));
  }, { now: () => now });
});

Deno.test("MetaStore.close() removes this process's row and locks", async () => {
  await withDir(async (dir) => {
    const a = openMeta(dir);
    const b = openMeta(dir);
    try {
      await b.lockPartition(PARTITION);
      const id = b.process.id;
      b.close();
      assert.equal(lockOwner(a, PARTITION), undefined);
      assert.equal(a.db.prepare("SELECT 1 FROM processes WHERE id = ?").get(id), undefined);
    } finally {
      a.close();
    }
  });
});

Deno.test("MetaStore.lockPartition() takes a free partition and unlockPartition() frees it", async () => {
  await withMeta(async (meta) => {
    await meta.lockPartition(PARTITION);
    assert.equal(lockOwner(meta, PARTITION), meta.process.id);
    meta.unlockPartition(PARTITION);
    assert.equal(lockOwner(meta, PARTITION), undefined);
  });
});

Deno.test("MetaStore.lockPartition() refuses to lock twice from the same process", async () => {
  await withMeta(async (meta) => {
    await meta.lockPartition(PARTITION);
    await assert.rejects(meta.lockPartition(PARTITION), {
      message: `Partition ${PARTITION} is already locked by this process`,
    });
    assert.equal(lockOwner(meta, PARTITION), meta.process.id);
  });
});

Deno.test("MetaStore.lockPartition() takes over a lock held by a dead process", async () => {
  const pid = await deadPid();
  await withMeta(async (meta) => {
    const dead = insertProcess(meta, { pid });
    meta.db.prepare(
      "INSERT INTO partition_locks (partition, process_id, acquired_at) VALUES (?, ?, 0)",
    )
      .run(PARTITION, dead);
    await meta.lockPartition(PARTITION);
    assert.equal(lockOwner(meta, PARTITION), meta.process.id);
  });
});

Deno.test("MetaStore.lockPartition() waits while a live process holds the lock, then takes it", async () => {
  await withDir(async (dir) => {
    const holder = openMeta(dir);
    const waiter = openMeta(dir);
    const clock = FakeTimers.withGlobal(globalThis).install({
      toFake: ["setTimeout", "clearTimeout"],
    });
    try {
      await holder.lockPartition(PARTITION);
      let acquired = false;
      const waiting = waiter.lockPartition(PARTITION).then(() => acquired = true);
      // A minute of (fake) polling: the live holder keeps the lock.
      await clock.tickAsync(60_000);
      assert.equal(acquired, false, "took a lock a live process holds");
      assert.equal(lockOwner(waiter, PARTITION), holder.process.id);
      holder.unlockPartition(PARTITION);
      // The poll interval is capped at 250 ms.
      await clock.tickAsync(250);
      await waiting;
      assert.equal(acquired, true);
      assert.equal(lockOwner(waiter, PARTITION), waiter.process.id);
    } finally {
      clock.uninstall();
      waiter.close();
      holder.close();
    }
  });
});

Deno.test("MetaStore.lockPartition() gives up after timeoutMs naming the partition", async () => {
  await withDir(async (dir) => {
    const clock = FakeTimers.withGlobal(globalThis).install({
      toFake: ["setTimeout", "clearTimeout"],
    });
    const holder = openMeta(dir);
    const waiter = openMeta(dir, { now: () => clock.now });
    try {
      await holder.lockPartition(PARTITION);
      let settled = false;
      const waiting = waiter.lockPartition(PARTITION, { timeoutMs: 5_000 });
      waiting.then(() => settled = true, () => settled = true);
      await clock.tickAsync(4_000);
      assert.equal(settled, false, "gave up before the timeout");
      await clock.tickAsync(2_000);
      assert.equal(settled, true, "still waiting after the timeout");
      await assert.rejects(waiting, {
        message: `Cannot lock partition ${PARTITION}: another marketpipe process holds it`,
      });
      assert.equal(lockOwner(waiter, PARTITION), holder.process.id);
    } finally {
      clock.uninstall();
      waiter.close();
      holder.close();
    }
  });
});

Deno.test("MetaStore.lockPartition() stops waiting when the signal aborts", async () => {
  await withDir(async (dir) => {
    const holder = openMeta(dir);
    const waiter = openMeta(dir);
    const clock = FakeTimers.withGlobal(globalThis).install({
      toFake: ["setTimeout", "clearTimeout"],
    });
    try {
      await holder.lockPartition(PARTITION);
      const controller = new AbortController();
      let outcome: unknown;
      const waiting = waiter.lockPartition(PARTITION, { signal: controller.signal }).catch((
        error,
      ) => outcome = error);
      await clock.tickAsync(1_000);
      const reason = new Error("Ctrl-C");
      controller.abort(reason);
      await clock.tickAsync(250);
      await waiting;
      assert.equal(outcome, reason);
      assert.equal(lockOwner(waiter, PARTITION), holder.process.id);
    } finally {
      clock.uninstall();
      waiter.close();
      holder.close();
    }
  });
});

Deno.test("newJobId() is a sortable UTC date-time with a random suffix", () => {
  const id = newJobId(Date.UTC(2024, 10, 25, 19, 15, 0));
  assert.match(id, /^20241125-191500-[0-9a-f]{4}$/);
  assert.ok(newJobId(Date.UTC(2024, 10, 25, 19, 15, 1)) > id);
});

Deno.test("MetaStore.storedSeries() lists each source's symbols with their coverage range", async () => {
  await withMeta((meta) => {
    const insert = meta.db.prepare(
      "INSERT INTO ingested_days (source, timeframe, symbol, trading_date, bars, job_id, ingested_at) VALUES (?, ?, ?, ?, 1, 'j', 0)",
    );
    const fake = {
      provider: "fake",
      feed: "sip",
      adjustment: "raw",
      params: { seed: 7, gapRate: 0.01 },
    };
    for (const day of ["2024-03-04", "2024-03-05", "2024-03-08"]) {
      insert.run(sourceLabel(fake), "1m", "AAPL", day);
    }
    insert.run(sourceLabel(fake), "1d", "AAPL", "2024-03-01");
    insert.run("alpaca/iex/split", "1m", "MSFT", "2024-03-06");
    assert.deepEqual(meta.storedSeries({ timeframe: "1m" }), [
      {
        source: {
          provider: "alpaca",
          feed: "iex",
          adjustment: "split",
          params: {},
          timeframe: "1m",
        },
        symbol: "MSFT",
        first: "2024-03-06",
        last: "2024-03-06",
      },
      {
        source: { ...fake, timeframe: "1m" },
        symbol: "AAPL",
        first: "2024-03-04",
        last: "2024-03-08",
      },
    ]);
    assert.deepEqual(meta.storedSeries({ symbols: ["AAPL"] }).map((s) => s.source.timeframe), [
      "1d",
      "1m",
    ]);
    // The label is read back exactly: the same text, numbers as numbers.
    const [series] = meta.storedSeries({ timeframe: "1d" });
    assert.equal(sourceLabel(series.source), sourceLabel(fake));
    assert.equal(series.source.params.seed, 7);
    assert.throws(() => parseSourceLabel("fake/sip"), /expected provider\/feed\/adjustment/);
  });
});
