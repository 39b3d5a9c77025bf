/**
 * `marketpipe migrate` on a data directory written by the build before storage v2 (a copy of the
 * committed fixture tests/fixtures/layout-v1), end to end with the real CLI: the conversion keeps
 * every value, a kill -9 at any step and a rerun end like a clean run, a second run has nothing
 * to do, and bad input or a read-only mount get one clear line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openDuckDB } from "../storage/duckdb.ts";
import { MIGRATIONS } from "../storage/migrations.ts";
import { type CliResult, json, listTree, metaQuery, runCli } from "./_cli.ts";
import {
  copyDir,
  copyLayoutV1Fixture,
  digestStored,
  LAYOUT_V1_FIXTURE,
  listFilesUnder,
  type StoredDigest,
} from "./_layout_v1.ts";

/** Files of layout 1 in the fixture. */
const FIXTURE_FILES = 28;

interface Digests {
  bars: StoredDigest;
  quarantine: StoredDigest;
}

interface StatusJson {
  migrations: { version: number; appliedAt: number | null }[];
  layout: { version: 1 | 2 | null; current: number; filesToConvert: number };
}

/** Every value of both trees per timeframe, read as layout `layout`. */
async function digests(dataDir: string, layout: 1 | 2): Promise<Digests> {
  const duckdb = await openDuckDB({ threads: 1 });
  try {
    const connection = await duckdb.connect();
    try {
      return {
        bars: await digestStored(connection, dataDir, "bars", layout),
        quarantine: await digestStored(connection, dataDir, "quarantine", layout),
      };
    } finally {
      connection.closeSync();
    }
  } finally {
    duckdb.closeSync();
  }
}

/** The manifest without the random part of the file names, to compare two conversions. */
function manifest(dataDir: string): string[] {
  return metaQuery(
    dataDir,
    "SELECT path, tree, timeframe, symbol, year, first_date, last_date, rows, min_ts, max_ts FROM bar_files ORDER BY path",
  ).map((row) =>
    Object.values({
      ...row,
      path: String(row.path).replace(/-[0-9a-f]{8}\.parquet$/, "-*.parquet"),
    })
      .join(" ")
  ).sort();
}

/** Everything on disk is what the manifest lists: no old file, month folder or temp file left. */
async function assertConverted(dataDir: string): Promise<void> {
  const files = [
    ...(await listFilesUnder(join(dataDir, "bars"), "bars")),
    ...(await listFilesUnder(join(dataDir, "quarantine"), "quarantine")),
  ];
  const listed = metaQuery(dataDir, "SELECT path FROM bar_files ORDER BY path").map((r) =>
    String(r.path)
  );
  assert.deepEqual(files, listed.sort());
  assert.deepEqual((await listTree(dataDir)).filter((f) => /month=|\.tmp-/.test(f)), []);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(join(dataDir, "layout.json"))), {
    layout: 2,
  });
}

async function status(dataDir: string): Promise<StatusJson> {
  const result = await runCli(["migrate", "--status", "--json", "--data-dir", dataDir]);
  assert.equal(result.code, 0, result.stderr);
  return json<StatusJson>(result);
}

function assertKilled(result: CliResult, what: string): void {
  assert.equal(result.code, 137, `${what} should die of SIGKILL: ${result.stderr}`);
}

Deno.test("marketpipe migrate converts a layout-1 directory in place, verified, and a second run has nothing to do", async () => {
  const dataDir = await copyLayoutV1Fixture();
  try {
    const before = await digests(dataDir, 1);
    // Reading the database may add its -shm/-wal beside it (SQLite's WAL mode); nothing else.
    const files = async () => (await listTree(dataDir)).filter((f) => !/\.db-(shm|wal)$/.test(f));
    const tree = await files();

    const pending = await status(dataDir);
    assert.deepEqual(
      [pending.layout.version, pending.layout.current, pending.layout.filesToConvert],
      [1, 2, FIXTURE_FILES],
    );
    assert.equal(pending.migrations.at(-1)?.appliedAt, null, "migration 6 is pending");
    const text = await runCli(["migrate", "--status", "--data-dir", dataDir]);
    assert.match(
      text.stdout,
      new RegExp(
        `Storage layout: 1, ${FIXTURE_FILES} file\\(s\\) \\([\\d.]+ KiB\\) left to convert; run "marketpipe migrate --data-dir ${dataDir}" to convert them\\n$`,
      ),
    );

    const dry = await runCli(["migrate", "--dry-run", "--data-dir", dataDir]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^Would apply migration 6: storage v2/);
    assert.match(
      dry.stdout,
      new RegExp(`Would convert ${FIXTURE_FILES} file\\(s\\) of storage layout 1`),
    );
    assert.match(
      dry.stdout,
      /\n {2}bars\/timeframe=1d\/symbol=AAPL\/year=2023\/data\.parquet -> bars\/timeframe=1d\/symbol=AAPL\/year=2023\/\n/,
    );
    assert.match(dry.stdout, /Would clear 22 aggregation state\(s\)/);
    assert.deepEqual(await files(), tree, "--dry-run and --status change nothing");

    const run = await runCli(["migrate", "--data-dir", dataDir]);
    assert.equal(run.code, 0, run.stderr);
    const rows = Object.values(before.bars).reduce((sum, d) => sum + d.rows, 0) + 1;
    assert.match(run.stdout, /^Applied migration 6: storage v2/);
    assert.match(
      run.stdout,
      new RegExp(
        `Converted ${FIXTURE_FILES} of ${FIXTURE_FILES} file\\(s\\): ${
          rows.toLocaleString("en-US")
        } rows verified \\(row count and a checksum of every value\\), [\\d.]+ KiB before, [\\d.]+ KiB after\\.`,
      ),
    );
    assert.match(
      run.stdout,
      /Cleared 22 aggregation state\(s\) that named layout-1 folders: the next "marketpipe aggregate" rebuilds every target once\./,
    );
    assert.match(run.stdout, /now uses storage layout 2\.\n$/);
    assert.match(run.stderr, new RegExp(`100% ${FIXTURE_FILES} of ${FIXTURE_FILES} files: `));
    assert.deepEqual(await digests(dataDir, 2), before, "every value kept");
    await assertConverted(dataDir);
    assert.equal(metaQuery(dataDir, "SELECT count(*) AS n FROM aggregation_state")[0].n, 0);

    const done = await status(dataDir);
    assert.deepEqual([done.layout.version, done.layout.filesToConvert], [2, 0]);
    const again = await runCli(["migrate", "--data-dir", dataDir]);
    assert.equal(again.code, 0, again.stderr);
    const latest = MIGRATIONS.at(-1)!.version;
    assert.match(
      again.stdout,
      new RegExp(
        `is up to date \\(schema version ${latest}\\); nothing applied\\.\n.* uses storage layout 2; nothing to migrate\\.\n$`,
      ),
    );
    const quiet = await runCli(["migrate", "--json", "--data-dir", dataDir]);
    assert.equal(quiet.code, 0, quiet.stderr);
    const { layout } = json<{ layout: { converted: number; layoutBefore: number } }>(quiet);
    assert.deepEqual([layout.layoutBefore, layout.converted], [2, 0]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("marketpipe migrate killed with SIGKILL at any step and run again ends like a clean run", async () => {
  const clean = await copyLayoutV1Fixture();
  const root = await Deno.makeTempDir({ prefix: "marketpipe-migrate-kill-" });
  try {
    const before = await digests(clean, 1);
    assert.equal((await runCli(["migrate", "--data-dir", clean])).code, 0);
    const reference = manifest(clean);
    assert.equal(reference.length, FIXTURE_FILES);

    // Each case: the kill points of successive runs, then a run that finishes.
    const cases: [string[], number][] = [
      [["written:1"], FIXTURE_FILES],
      [["renamed:7"], FIXTURE_FILES - 6],
      [["committed:14"], FIXTURE_FILES - 13],
      [["deleted:27"], 1],
      // Every file converted, killed before the month folders and layout.json.
      [["deleted:28"], 0],
      // Killed twice in a row: the second run finishes the file the first left committed, then
      // dies writing the next one.
      [["committed:3", "written:1"], FIXTURE_FILES - 3],
    ];
    for (const [points, left] of cases) {
      const what = points.join(" then ");
      const dataDir = join(root, what.replaceAll(/[: ]/g, "-"));
      await copyDir(LAYOUT_V1_FIXTURE, dataDir);
      for (const point of points) {
        const killed = await runCli(["migrate", "--data-dir", dataDir], {
          env: { MARKETPIPE_TEST_KILL_AT: point },
        });
        assertKilled(killed, what);
      }
      const midway = await status(dataDir);
      assert.deepEqual(
        [midway.layout.version, midway.layout.filesToConvert],
        [1, left],
        `${what}: files left`,
      );
      // A write command of this build would be refused now (the lead's openStore calls
      // assertLayoutCurrent); `migrate` itself must finish the job.
      const rerun = await runCli(["migrate", "--data-dir", dataDir]);
      assert.equal(rerun.code, 0, `${what}: ${rerun.stderr}`);
      assert.match(rerun.stdout, /now uses storage layout 2\./, what);
      assert.deepEqual(await digests(dataDir, 2), before, `${what}: every value, once`);
      assert.deepEqual(manifest(dataDir), reference, `${what}: the same files as a clean run`);
      await assertConverted(dataDir);
    }
  } finally {
    await Deno.remove(clean, { recursive: true });
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("marketpipe migrate rejects bad input with one line and exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "marketpipe-migrate-input-" });
  try {
    const file = join(dir, "file");
    await Deno.writeTextFile(file, "");
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["migrate", "extra"], {}, /^error: Unexpected argument "extra" for "marketpipe migrate"/],
      [["migrate", "--status", "--dry-run"], {}, /^error: Invalid --dry-run with --status/],
      [
        ["migrate", "--data-dir", file],
        {},
        /^error: Invalid --data-dir ".*\/file": not a directory\n$/,
      ],
      [
        ["migrate"],
        { MARKETPIPE_TEST_KILL_AT: "later" },
        /^error: Invalid MARKETPIPE_TEST_KILL_AT "later"/,
      ],
    ];
    for (const [args, env, message] of cases) {
      const result = await runCli([
        ...args,
        ...(args.includes("--data-dir") ? [] : ["--data-dir", join(dir, "d")]),
      ], { env });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trimEnd().split("\n").length, 1, result.stderr);
      assert.equal(result.stdout, "");
    }
    assert.deepEqual(await listTree(dir), ["file"], "nothing created");

    // A new directory: migrate records layout 2 and has nothing else to do.
    const fresh = await runCli(["migrate", "--data-dir", join(dir, "new")]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(
      fresh.stdout,
      /Recorded storage layout 2 in .*layout\.json \(no bars stored yet\)\.\n$/,
    );
    assert.equal((await status(join(dir, "new"))).layout.version, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function sh(...args: string[]): Promise<void> {
  const output = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(`${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
}

Deno.test("marketpipe migrate on a read-only mount: --status and --dry-run work, converting names the cause", async () => {
  if (Deno.uid() !== 0) {
    throw new Error("this test mounts a tmpfs read-only: run it as root (CI does)");
  }
  const root = await Deno.makeTempDir({ prefix: "marketpipe-migrate-ro-" });
  const mount = join(root, "mnt");
  await Deno.mkdir(mount);
  await sh("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mount);
  try {
    const dataDir = join(mount, "data");
    await copyDir(LAYOUT_V1_FIXTURE, dataDir);
    await sh("mount", "-o", "remount,ro", mount);
    const shown = await status(dataDir);
    assert.deepEqual([shown.layout.version, shown.layout.filesToConvert], [1, FIXTURE_FILES]);
    const dry = await runCli(["migrate", "--dry-run", "--data-dir", dataDir]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /Would convert 28 file\(s\)/);
    const run = await runCli(["migrate", "--data-dir", dataDir]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(
      run.stderr.split("\n")[0],
      `error: Cannot open ${join(dataDir, "marketpipe.db")} for writing: read-only file system`,
    );
    assert.equal((await listFilesUnder(dataDir)).length, FIXTURE_FILES + 1, "nothing changed");
  } finally {
    await sh("umount", "-l", mount);
    await Deno.remove(root, { recursive: true });
  }
});
