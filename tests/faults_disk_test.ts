/**
 * Disk faults, end to end on real file systems: an ingest that fills a small tmpfs, a data
 * directory on a read-only mount, and a resume after a kill -9 that landed between a partition's
 * rename and its task's checkpoint. Mounting needs root (CI runs as root); without it these tests
 * fail with a message saying so rather than skip.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { finish, json, metaQuery, runCli, spawnCli } from "./_cli.ts";

const FINGERPRINT = `SELECT symbol, count(*) AS rows, count(DISTINCT ts) AS keys,
  bit_xor(hash(ts, open, high, low, close, volume, vwap, trade_count, session, trading_date))
    AS digest
  FROM bars_1m GROUP BY symbol ORDER BY symbol`;

interface Summary {
  status: string;
  job: { id: string; status: string; error: string | null } | null;
  barsWritten: number;
  barsReplaced: number;
}

interface JobJson {
  id: string;
  status: string;
  error: string | null;
  tasks: { seq: number; symbol: string; start: string; status: string; error: string | null }[];
}

function requireRoot(): void {
  if (Deno.uid() !== 0) {
    throw new Error(
      "tests/faults_disk_test.ts mounts tmpfs and read-only bind mounts: run it as root (CI does)",
    );
  }
}

async function sh(...args: string[]): Promise<void> {
  const output = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(`${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
}

/** A tmpfs of `size` at a new directory; `dispose` unmounts it and removes everything. */
async function tmpfs(size: string): Promise<{ dir: string } & AsyncDisposable> {
  requireRoot();
  const root = await Deno.makeTempDir({ prefix: "mp-disk-" });
  const dir = join(root, "mnt");
  await Deno.mkdir(dir);
  await sh("mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir);
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await sh("umount", "-l", dir);
      await Deno.remove(root, { recursive: true });
    },
  };
}

async function fingerprint(dataDir: string): Promise<unknown> {
  const result = await runCli(["query", FINGERPRINT, "--json", "--data-dir", dataDir]);
  assert.equal(result.code, 0, result.stderr);
  return json(result);
}

const DISK_ARGS = [
  "ingest",
  "--symbols",
  "AAA,BBB,CCC,DDD",
  "--start",
  "2024-01-02",
  "--end",
  "2024-04-30",
  "--workers",
  "2",
];

Deno.test("an ingest that fills the disk names the cause, fails the job and resumes to a clean run's bars", async () => {
  await using disk = await tmpfs("3m");
  const data = join(disk.dir, "data");
  const clean = await Deno.makeTempDir({ prefix: "mp-disk-clean-" });
  try {
    const reference = await runCli([...DISK_ARGS, "--json", "--data-dir", clean]);
    assert.equal(reference.code, 0, reference.stderr);
    const expected = json<Summary>(reference);
    assert.ok(expected.barsWritten > 300_000, "the ingest must be larger than the disk");

    const full = await runCli([...DISK_ARGS, "--verbose", "--data-dir", data]);
    assert.equal(full.code, 1, full.stderr);
    assert.doesNotMatch(full.stderr, /cannot rollback/);
    const firstError = full.stderr.split("\n").find((line) => line.startsWith("error: ")) ?? "";
    assert.match(
      firstError,
      new RegExp(
        `^error: Job \\S+ stopped after \\d+ of 16 task\\(s\\): No space left on device while writing ${data}/`,
      ),
    );
    // --verbose keeps each failed task's reason, not only "Cannot write partition".
    assert.match(full.stderr, /task \d+ \w+ \S+: failed: .*No space left on device while writing/);

    // Read the job as the failed process left it: no other command has reaped it.
    await sh("mount", "-o", "remount,size=64m", disk.dir);
    const [job] = metaQuery(data, "SELECT id, status, error FROM jobs");
    assert.ok(
      ["failed", "partial", "cancelled"].includes(job.status as string),
      String(job.status),
    );
    assert.match(String(job.error), /No space left on device while writing/);

    const shown = json<JobJson>(
      await runCli(["jobs", "show", String(job.id), "--json", "--data-dir", data]),
    );
    const failed = shown.tasks.filter((t) => t.status === "failed");
    assert.ok(failed.length > 0, JSON.stringify(shown.tasks));
    for (const task of failed) {
      assert.match(task.error ?? "", /No space left on device while writing/);
    }
    assert.ok(
      shown.tasks.some((t) => t.status === "done"),
      "some tasks ran before the disk filled",
    );

    const resumed = await runCli([
      "ingest",
      "--resume",
      String(job.id),
      "--json",
      "--data-dir",
      data,
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const summary = json<Summary>(resumed);
    assert.equal(summary.status, "succeeded");
    assert.equal(summary.barsWritten, expected.barsWritten);
    assert.equal(summary.barsReplaced, 0);
    assert.deepEqual(await fingerprint(data), await fingerprint(clean));
  } finally {
    await Deno.remove(clean, { recursive: true });
  }
});

Deno.test("reading commands work on a read-only data directory; writing ones name the path and the cause", async () => {
  await using disk = await tmpfs("16m");
  const data = join(disk.dir, "data");
  const db = join(data, "marketpipe.db");
  const day = ["--start", "2024-03-04", "--end", "2024-03-05"];
  const setup = await runCli(["ingest", "--symbols", "AAPL", ...day, "--data-dir", data]);
  assert.equal(setup.code, 0, setup.stderr);
  const report = await runCli(["validate", "--symbols", "AAPL", ...day, "--data-dir", data]);
  assert.ok([0, 1].includes(report.code), report.stderr);
  await sh("mount", "-o", "remount,ro", disk.dir);

  const jobs = await runCli(["jobs", "list", "--json", "--data-dir", data]);
  assert.equal(jobs.code, 0, jobs.stderr);
  const [job] = json<JobJson[]>(jobs);
  assert.equal(job.status, "succeeded");
  const shown = await runCli(["jobs", "show", job.id, "--json", "--data-dir", data]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.deepEqual(json<JobJson>(shown).tasks.map((t) => t.status), ["done"]);
  const gaps = await runCli(["gaps", ...day, "--json", "--data-dir", data]);
  assert.equal(gaps.code, 0, gaps.stderr);
  const reports = await runCli(["validate", "--list", "--json", "--data-dir", data]);
  assert.equal(reports.code, 0, reports.stderr);
  assert.equal(json<unknown[]>(reports).length, 1);
  const status = await runCli(["migrate", "--status", "--json", "--data-dir", data]);
  assert.equal(status.code, 0, status.stderr);
  const { migrations } = json<{ migrations: { appliedAt: number | null }[] }>(status);
  assert.ok(migrations.every((m) => m.appliedAt !== null));
  const query = await runCli([
    "query",
    "SELECT count(*) AS n FROM bars_1m",
    "--json",
    "--data-dir",
    data,
  ]);
  assert.equal(query.code, 0, query.stderr);

  const refusal = `error: Cannot open ${db} for writing: read-only file system`;
  for (
    const args of [
      ["ingest", "--symbols", "MSFT", ...day],
      ["migrate"],
      ["serve", "--port", "0"],
    ]
  ) {
    const result = await runCli([...args, "--data-dir", data]);
    assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(result.stderr.split("\n")[0], refusal, args.join(" "));
  }
  const cleanup = await runCli(["jobs", "cleanup", "--older-than", "0d", "--data-dir", data]);
  assert.equal(cleanup.code, 1);
  assert.equal(cleanup.stderr.split("\n")[0], `error: Cannot write ${db}: read-only file system`);

  // A write-ahead log left by a process that died: read through it, not around it.
  await sh("mount", "-o", "remount,rw", disk.dir);
  const writer = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { DatabaseSync } from "node:sqlite";
       const db = new DatabaseSync(${JSON.stringify(db)});
       db.exec("UPDATE jobs SET error = 'only in the WAL'");
       Deno.kill(Deno.pid, "SIGKILL");`,
    ],
  }).output();
  assert.equal(writer.signal, "SIGKILL");
  assert.ok(Deno.statSync(`${db}-wal`).size > 0, "the killed writer leaves its WAL");
  await sh("mount", "-o", "remount,ro", disk.dir);
  const walJobs = await runCli(["jobs", "list", "--json", "--data-dir", data]);
  assert.equal(walJobs.code, 0, walJobs.stderr);
  assert.equal(json<JobJson[]>(walJobs)[0].error, "only in the WAL");

  // Without the WAL index beside it the log cannot be read on a read-only mount: say so.
  await sh("mount", "-o", "remount,rw", disk.dir);
  await Deno.remove(`${db}-shm`);
  await sh("mount", "-o", "remount,ro", disk.dir);
  const noIndex = await runCli(["jobs", "list", "--data-dir", data]);
  assert.equal(noIndex.code, 1);
  assert.match(
    noIndex.stderr.split("\n")[0],
    new RegExp(`^error: Cannot read ${db}: read-only file system, and its write-ahead log`),
  );
});

/** The state letter of process `pid` in /proc: `T` once SIGSTOP is delivered, `Z` after exit. */
function processState(pid: number): string {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
}

const RESUME_ARGS = [
  "ingest",
  "--symbols",
  "AAA,BBB,CCC,DDD,EEE,FFF",
  "--start",
  "2024-01-02",
  "--end",
  "2024-04-30",
  "--workers",
  "4",
];

/**
 * Run an ingest and SIGKILL it at a moment when some task's partition file is already renamed
 * into place but the task is not yet marked done. The child is frozen with SIGSTOP to look;
 * returns the job id, or undefined when the ingest finished before such a moment came.
 */
async function killAfterRenameBeforeCheckpoint(data: string): Promise<string | undefined> {
  const child = spawnCli([...RESUME_ARGS, "--data-dir", data]);
  const pid = child.pid;
  try {
    for (let probe = 0; probe < 5_000; probe++) {
      await new Promise((resolve) => setTimeout(resolve, 2 + (probe % 7)));
      try {
        Deno.kill(pid, "SIGSTOP");
      } catch {
        return undefined; // it has exited
      }
      const deadline = Date.now() + 5_000;
      for (let state = processState(pid); !/^[Tt]$/.test(state); state = processState(pid)) {
        if (/^[ZX]$/.test(state)) return undefined; // it has exited
        if (Date.now() > deadline) throw new Error("the ingest did not stop on SIGSTOP");
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      let hit: string | undefined;
      try {
        // A task whose file is committed to the manifest but that is not yet marked done.
        const [found] = metaQuery(
          data,
          `SELECT t.job_id FROM tasks t JOIN bar_files f ON f.tree = 'bars' AND f.job_id = t.job_id
             AND f.symbol = t.symbol AND f.first_date <= t.end_date AND f.last_date >= t.start_date
           WHERE t.status <> 'done' LIMIT 1`,
        );
        if (found !== undefined) hit = String(found.job_id);
      } catch {
        // The database does not exist yet.
      }
      if (hit) {
        Deno.kill(pid, "SIGKILL");
        return hit;
      }
      Deno.kill(pid, "SIGCONT");
    }
    return undefined;
  } finally {
    try {
      Deno.kill(pid, "SIGCONT");
    } catch {
      // gone
    }
    await finish(child);
  }
}

Deno.test("a resumed ingest reports the bars its killed attempt stored as new, as a clean run does", async () => {
  const root = await Deno.makeTempDir({ prefix: "mp-resume-" });
  try {
    const reference = await runCli([...RESUME_ARGS, "--json", "--data-dir", join(root, "clean")]);
    assert.equal(reference.code, 0, reference.stderr);
    const expected = json<Summary>(reference);
    assert.equal(expected.barsReplaced, 0);

    let data = "";
    let jobId: string | undefined;
    for (let attempt = 0; attempt < 5 && jobId === undefined; attempt++) {
      data = join(root, `killed-${attempt}`);
      jobId = await killAfterRenameBeforeCheckpoint(data);
    }
    assert.ok(jobId, "no kill landed between a partition's rename and its task's checkpoint");

    const resumed = await runCli(["ingest", "--resume", jobId, "--json", "--data-dir", data]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const summary = json<Summary>(resumed);
    assert.equal(summary.status, "succeeded");
    assert.deepEqual(
      { new: summary.barsWritten, updated: summary.barsReplaced },
      { new: expected.barsWritten, updated: 0 },
    );
    assert.deepEqual(await fingerprint(data), await fingerprint(join(root, "clean")));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
