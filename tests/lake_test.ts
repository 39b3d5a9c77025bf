/**
 * Storage v2 end to end: appends leave history untouched, a correction replaces only the files
 * holding its days, and readers of the manifest see every row exactly once while `compact` runs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { listFiles, openQueryEngine, runQuery } from "../storage/mod.ts";
import { openReadOnlyDatabase } from "../storage/meta.ts";
import { finish, json, runCli, spawnCli } from "./_cli.ts";
import { copyLayoutV1Fixture, listFilesUnder } from "./_layout_v1.ts";

interface FileState {
  path: string;
  mtime: number;
}

/** The live files of the manifest with their modification times. */
async function liveFiles(dataDir: string): Promise<FileState[]> {
  const db = openReadOnlyDatabase(join(dataDir, "marketpipe.db"));
  try {
    const out: FileState[] = [];
    for (const file of listFiles(db, { tree: "bars" })) {
      const info = await Deno.stat(join(dataDir, file.path));
      out.push({ path: file.path, mtime: info.mtime!.getTime() });
    }
    return out;
  } finally {
    db.close();
  }
}

async function ingest(dataDir: string, ...args: string[]): Promise<void> {
  const result = await runCli(["ingest", ...args, "--data-dir", dataDir]);
  assert.equal(result.code, 0, result.stderr);
}

Deno.test("appends never rewrite history; a correction replaces only the files holding its days", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "mp-lake-" });
  try {
    const base = ["--symbols", "AAPL", "--no-compact"];
    await ingest(dataDir, ...base, "--start", "2024-03-04", "--end", "2024-03-05");
    const [first] = await liveFiles(dataDir);
    const firstBytes = await Deno.readFile(join(dataDir, first.path));
    await ingest(dataDir, ...base, "--start", "2024-03-06", "--end", "2024-03-07");
    await ingest(dataDir, ...base, "--start", "2024-03-08");
    const appended = await liveFiles(dataDir);
    assert.equal(appended.length, 3);
    assert.deepEqual(appended[0], first, "the first file is untouched");
    assert.deepEqual(await Deno.readFile(join(dataDir, first.path)), firstBytes);
    assert.match(appended[1].path, /\/2024-03-06_2024-03-07-[0-9a-f]{8}\.parquet$/);

    // --force of one day of the second file: that file is replaced, the others stay.
    await ingest(dataDir, ...base, "--start", "2024-03-07", "--force", "--fake-seed", "3");
    const corrected = await liveFiles(dataDir);
    assert.equal(corrected.length, 3);
    assert.ok(corrected.some((file) => file.path === first.path));
    assert.ok(corrected.some((file) => file.path === appended[2].path));
    assert.ok(!corrected.some((file) => file.path === appended[1].path));

    const counts = await runCli([
      "query",
      "SELECT trading_date, count(*) AS n, count(DISTINCT ts) AS keys FROM bars_1m GROUP BY 1 ORDER BY 1",
      "--json",
      "--data-dir",
      dataDir,
    ]);
    const rows = json<{ trading_date: string; n: number; keys: number }[]>(counts);
    assert.equal(rows.length, 5);
    assert.ok(rows.every((row) => row.n === row.keys && row.n > 900), JSON.stringify(rows));

    // compact: one file, the same rows and values.
    const digest =
      "SELECT count(*) AS n, bit_xor(hash(symbol, ts, open, close, volume, ingest_id)) AS d FROM bars";
    const before = await runCli(["query", digest, "--json", "--data-dir", dataDir]);
    const compacted = await runCli(["compact", "--data-dir", dataDir]);
    assert.equal(compacted.code, 0, compacted.stderr);
    assert.match(compacted.stdout, /^Compacted 1 partition\(s\): 3 files, /);
    assert.equal((await liveFiles(dataDir)).length, 1);
    const after = await runCli(["query", digest, "--json", "--data-dir", dataDir]);
    assert.deepEqual(json(after), json(before));
    const again = await runCli(["compact", "--data-dir", dataDir]);
    assert.equal(again.stdout.trim(), "Nothing to compact: every partition holds one file.");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("readers see every row exactly once while compact replaces files, old snapshots included", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "mp-lake-read-" });
  try {
    const days = [
      "2024-03-04",
      "2024-03-05",
      "2024-03-06",
      "2024-03-07",
      "2024-03-08",
      "2024-03-11",
      "2024-03-12",
      "2024-03-13",
    ];
    for (const day of days) {
      await ingest(dataDir, "--symbols", "AAA,BBB,CCC,DDD", "--start", day, "--no-compact");
    }
    assert.equal((await liveFiles(dataDir)).length, 32);
    const sql = "SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS keys FROM bars_1m";
    const old = await openQueryEngine(dataDir, { threads: 1 });
    try {
      const [[expected]] = (await runQuery(old, sql)).rows as number[][];
      assert.ok(expected > 30_000);
      const child = spawnCli(["compact", "--data-dir", dataDir]);
      let reads = 0;
      let done = false;
      const exited = finish(child).then((result) => {
        done = true;
        return result;
      });
      while (!done || reads < 3) {
        // A fresh engine each time, and the one opened before compact started.
        const fresh = await openQueryEngine(dataDir, { threads: 1 });
        try {
          assert.deepEqual((await runQuery(fresh, sql)).rows, [[expected, expected]]);
        } finally {
          fresh.close();
        }
        assert.deepEqual((await runQuery(old, sql)).rows, [[expected, expected]]);
        reads++;
      }
      const result = await exited;
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await liveFiles(dataDir)).length, 4);
      assert.deepEqual((await runQuery(old, sql)).rows, [[expected, expected]]);
    } finally {
      old.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("commands on a layout-1 directory say to run migrate and write nothing; after it, ingest works", async () => {
  const dataDir = await copyLayoutV1Fixture("mp-lake-v1-");
  try {
    const before = await listFilesUnder(dataDir);
    for (
      const args of [
        ["ingest", "--symbols", "AAPL", "--start", "2024-02-05"],
        ["aggregate"],
        ["compact"],
        ["query", "SELECT count(*) FROM bars"],
      ]
    ) {
      const result = await runCli([...args, "--data-dir", dataDir]);
      assert.equal(result.code, 2, `${args[0]}: ${result.stderr}`);
      assert.match(
        result.stderr,
        /^error: .* uses storage layout 1; run "marketpipe migrate --data-dir .*" to convert it \(nothing was written\)\n$/,
      );
    }
    assert.deepEqual(await listFilesUnder(dataDir), before, "nothing was written");
    const migrated = await runCli(["migrate", "--data-dir", dataDir]);
    assert.equal(migrated.code, 0, migrated.stderr);
    await ingest(dataDir, "--symbols", "AAPL", "--start", "2024-02-05");
    const counts = await runCli([
      "query",
      "SELECT count(*) AS n, count(DISTINCT ts) AS keys FROM bars_1m WHERE symbol = 'AAPL'",
      "--json",
      "--data-dir",
      dataDir,
    ]);
    const [row] = json<{ n: number; keys: number }[]>(counts);
    assert.equal(row.n, row.keys);
    assert.ok(row.n > 4 * 900, `the fixture's days plus the new one: ${row.n}`);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
