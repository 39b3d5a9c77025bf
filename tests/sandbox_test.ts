/**
 * The read-only side's promises, kept as a permanent table: no statement reads outside the data
 * directory's bars/ and quarantine/ trees (the spill folder and the server's export folder
 * included), none writes anything, and `query --output` can never replace a managed file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  exportBarsParquet,
  openQueryEngine,
  QueryRejectedError,
  QuerySqlError,
  runQuery,
  sqlString,
} from "../storage/mod.ts";
import { runCli } from "./_cli.ts";

const SECRET = "s3cr3t-must-not-leak";

/** Every file under `dir` with its SHA-256, sorted. */
async function treeHashes(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = join(path, entry.name);
      if (entry.isDirectory) await walk(full);
      else if (entry.isFile) {
        const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(full));
        out.push(`${full} ${Array.from(new Uint8Array(digest), (b) => b.toString(16)).join("")}`);
      } else out.push(`${full} (link)`);
    }
  };
  await walk(dir);
  return out.sort();
}

/** A data directory with 1m AAPL bars, plus secrets next to it that queries try to reach. */
async function fixture(): Promise<{ root: string; data: string; outside: string }> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "mp-sandbox-" }));
  const data = join(root, "data");
  const result = await runCli([
    "ingest",
    "--symbols",
    "AAPL",
    "--start",
    "2024-03-04",
    "--data-dir",
    data,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const outside = join(root, "outside");
  await Deno.mkdir(join(outside, ".tmp"), { recursive: true });
  await Deno.writeTextFile(join(outside, "secret.txt"), SECRET);
  await Deno.writeTextFile(join(outside, ".tmp", "s.txt"), SECRET);
  await Deno.writeTextFile(join(outside, "secret.csv"), `a\n${SECRET}\n`);
  // Links inside the readable trees that point out of them.
  await Deno.symlink(outside, join(data, "bars", "evil"));
  await Deno.mkdir(join(data, "quarantine"), { recursive: true });
  await Deno.symlink(join(outside, "secret.txt"), join(data, "quarantine", "link.txt"));
  return { root, data, outside };
}

Deno.test("the query sandbox refuses every escape in the table and leaks nothing", async (t) => {
  const { root, data, outside } = await fixture();
  const exportDir = join(root, "exports-private");
  await Deno.mkdir(exportDir);
  await Deno.writeTextFile(join(exportDir, "bars-other-user.csv"), `a\n${SECRET}\n`);
  const engine = await openQueryEngine(data, { threads: 1, exportDir });
  const q = sqlString;
  const reads = [
    `read_text(${q(join(outside, "secret.txt"))})`,
    `read_text(${q(join(outside, ".tmp", "s.txt"))})`,
    `read_text('.tmp/s.txt')`,
    `read_text(${q(join(data, "bars", "evil", "secret.txt"))})`,
    `read_text(${q(`${data}/bars/../../outside/secret.txt`)})`,
    `read_text(${q(`${data}/bars/../marketpipe.db`)})`,
    `read_text(${q(`${data}/bars/evil/../../../outside/secret.txt`)})`,
    `read_text(${q(`${data}/quarantine/./../../outside/secret.txt`)})`,
    `read_text(${q(join(data, "quarantine", "link.txt"))})`,
    `read_text(${q(join(data, "marketpipe.db"))})`,
    `read_blob(${q(join(data, "marketpipe.db"))})`,
    `read_text(${q(join(exportDir, "bars-other-user.csv"))})`,
    `read_csv(${q(join(exportDir, "*.csv"))})`,
    `glob(${q(join(exportDir, "*"))})`,
    `read_csv(${q(join(outside, "secret.csv"))})`,
    `read_csv_auto(${q(join(outside, "secret.csv"))})`,
    `read_json(${q(join(outside, "secret.txt"))})`,
    `read_json_auto(${q(join(outside, "secret.txt"))})`,
    `read_ndjson(${q(join(outside, "secret.txt"))})`,
    `read_parquet(${q(join(outside, "secret.txt"))})`,
    `parquet_metadata(${q(join(outside, "secret.txt"))})`,
    `parquet_schema(${q(join(outside, "secret.txt"))})`,
    `sniff_csv(${q(join(outside, "secret.csv"))})`,
    `sniff_csv('/etc/passwd')`,
    `read_text('/etc/passwd')`,
    `read_text('/proc/self/environ')`,
    `read_blob('/proc/self/cmdline')`,
    `read_text('file://${join(outside, "secret.txt")}')`,
    `read_text('http://127.0.0.1:9/secret')`,
    `read_text('https://127.0.0.1:9/secret')`,
    `read_text('s3://bucket/secret')`,
    `glob('/etc/*')`,
    `glob(${q(join(root, "*"))})`,
    `glob(${q(join(data, "*"))})`,
    `glob(${q(join(data, "bars", "evil", "*"))})`,
    `duckdb_secrets()`,
    `which_secret('s3://bucket/a', 's3')`,
    `duckdb_extensions()`,
    `read_text(${
      q(join(data, "bars", "timeframe=1m", "symbol=AAPL"))
    } || '/../../../outside/secret.txt')`,
  ];
  const statements = [
    ...reads.map((read) => `SELECT * FROM ${read}`),
    `COPY (SELECT 1) TO ${q(join(outside, "w.csv"))}`,
    `COPY (SELECT 1) TO ${q(join(data, "bars", "w.parquet"))} (FORMAT parquet)`,
    `COPY bars_1m TO ${q(join(outside, "w.csv"))}`,
    `EXPORT DATABASE ${q(join(outside, "db"))}`,
    `ATTACH ${q(join(outside, "w.db"))} AS w`,
    `ATTACH ${q(join(data, "marketpipe.db"))} AS meta (TYPE sqlite)`,
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "SET temp_directory = '/tmp'",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "CREATE TABLE t AS SELECT 1",
    "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "DROP VIEW bars_1m",
    "SELECT 1; DROP VIEW bars_1m",
    `SELECT 1; COPY (SELECT 1) TO ${q(join(outside, "w2.csv"))}`,
    `WITH x AS (SELECT 1) COPY (SELECT 1) TO ${q(join(outside, "w3.csv"))}`,
    `EXPLAIN ANALYZE COPY (SELECT 1) TO ${q(join(outside, "w4.csv"))}`,
    `SELECT * FROM query(${q(`COPY (SELECT 1) TO ${q(join(outside, "w5.csv"))}`)})`,
    "CHECKPOINT",
    "VACUUM",
    "DETACH memory",
    "USE system",
  ];
  const before = await treeHashes(root);
  try {
    for (const sql of statements) {
      await t.step(sql, async () => {
        await assert.rejects(runQuery(engine, sql), (error: Error) => {
          assert.ok(
            error instanceof QueryRejectedError || error instanceof QuerySqlError,
            `${error.name}: ${error.message}`,
          );
          assert.ok(!error.message.includes(SECRET), error.message);
          assert.equal(error.message.split("\n")[0].length > 0, true);
          return true;
        });
      });
    }
    await t.step("nothing was written, and the engine still answers", async () => {
      assert.deepEqual(await treeHashes(root), before);
      assert.deepEqual((await runQuery(engine, "SELECT count(*) > 0 FROM bars_1m")).rows, [[true]]);
    });
    await t.step("Parquet downloads still work, through the export instance", async () => {
      const exported = await exportBarsParquet(engine, {
        symbol: "AAPL",
        timeframe: "1m",
        limit: 10,
      });
      assert.equal(exported.rows, 10);
      const bytes = new Uint8Array(await new Response(exported.stream).arrayBuffer());
      assert.equal(new TextDecoder().decode(bytes.slice(0, 4)), "PAR1");
      assert.deepEqual([...Deno.readDirSync(exportDir)].map((e) => e.name), [
        "bars-other-user.csv",
      ]);
    });
    await t.step("spills go to a private folder within the limits", async () => {
      const { rows } = await runQuery(
        engine,
        "SELECT current_setting('temp_directory'), current_setting('max_temp_directory_size')",
      );
      const [tempDir, tempLimit] = rows[0] as string[];
      assert.ok(!tempDir.startsWith(Deno.cwd()) && !tempDir.endsWith(".tmp"), tempDir);
      assert.match(tempDir, /marketpipe-spill-/);
      assert.equal(tempLimit, "4.0 GiB");
    });
  } finally {
    engine.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("query --output refuses managed files for every format and leaves them intact", async () => {
  const { root, data } = await fixture();
  try {
    const [partition] = (await treeHashes(join(data, "bars")))
      .map((line) => line.split(" ")[0])
      .filter((path) => path.endsWith(".parquet"));
    await Deno.symlink(join(data, "bars"), join(root, "bars-link"));
    await Deno.symlink(join(data, "marketpipe.db"), join(root, "db-link"));
    const targets = [
      partition,
      join(data, "marketpipe.db"),
      join(data, "marketpipe.db-wal"),
      join(data, "bars", "new.csv"),
      join(data, "quarantine", "q.parquet"),
      join(root, "bars-link", "x.csv"),
      join(root, "db-link"),
    ];
    const before = await treeHashes(data);
    for (const format of ["csv", "json", "table", "parquet"]) {
      for (const target of targets) {
        const result = await runCli([
          "query",
          "SELECT 1 AS a",
          "--format",
          format,
          "--output",
          target,
          "--data-dir",
          data,
        ]);
        assert.equal(result.code, 2, `${format} ${target}: ${result.stderr}`);
        assert.match(result.stderr, /^error: Cannot write --output ".*": it is inside the data/);
        assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      }
    }
    assert.deepEqual(await treeHashes(data), before);
    // The one folder that is allowed, and a path outside: written whole.
    await Deno.mkdir(join(data, "exports"));
    for (const out of [join(data, "exports", "a.csv"), join(root, "a.csv")]) {
      const ok = await runCli([
        "query",
        "SELECT 1 AS a",
        "-f",
        "csv",
        "-o",
        out,
        "--data-dir",
        data,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(await Deno.readTextFile(out), "a\n1\n");
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("query cannot read the working directory's .tmp and takes bounded limits", async () => {
  const { root, data, outside } = await fixture();
  try {
    const read = await runCli(
      ["query", "SELECT content FROM read_text('.tmp/s.txt')", "--data-dir", data],
      { cwd: outside },
    );
    assert.equal(read.code, 2, read.stderr);
    assert.match(read.stderr, /not allowed/);
    assert.ok(!read.stdout.includes(SECRET) && !read.stderr.includes(SECRET));
    const settings = await runCli([
      "query",
      "SELECT current_setting('memory_limit') AS m, current_setting('max_temp_directory_size') AS t",
      "--format",
      "csv",
      "--memory-limit",
      "512MiB",
      "--temp-limit",
      "1GB",
      "--data-dir",
      data,
    ], { cwd: outside });
    assert.equal(settings.code, 0, settings.stderr);
    assert.equal(settings.stdout, "m,t\n512.0 MiB,953.6 MiB\n");
    const fromEnv = await runCli(
      ["query", "SELECT current_setting('memory_limit') AS m", "-f", "csv", "--data-dir", data],
      { env: { MARKETPIPE_QUERY_MEMORY_LIMIT: "300MiB" } },
    );
    assert.equal(fromEnv.stdout, "m\n300.0 MiB\n", fromEnv.stderr);
    for (
      const [flag, value] of [
        ["--memory-limit", "3x"],
        ["--memory-limit", "1KB"],
        ["--memory-limit", "900%"],
        ["--temp-limit", "1..5GB"],
        ["--temp-limit", "lots"],
      ]
    ) {
      const bad = await runCli(["query", "SELECT 1", flag, value, "--data-dir", data]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, new RegExp(`^error: Invalid ${flag} "${value}": expected a size`));
    }
    assert.deepEqual(
      [...Deno.readDirSync(outside)].map((e) => e.name).sort(),
      [".tmp", "secret.csv", "secret.txt"],
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("symbols files and config files are capped, read as streams", async () => {
  const root = await Deno.makeTempDir({ prefix: "mp-caps-" });
  try {
    const data = join(root, "data");
    const zero = await runCli([
      "ingest",
      "--symbols-file",
      "/dev/zero",
      "--start",
      "2024-03-04",
      "--data-dir",
      data,
    ]);
    assert.equal(zero.code, 2, zero.stderr);
    assert.equal(
      zero.stderr,
      "error: Cannot read --symbols-file /dev/zero: it is larger than the limit of 4.0 MiB\n",
    );
    const many = join(root, "many.txt");
    await Deno.writeTextFile(
      many,
      Array.from({ length: 50_001 }, (_, i) => `S${i.toString(36).toUpperCase()}`).join("\n"),
    );
    const tooMany = await runCli([
      "validate",
      "--symbols-file",
      many,
      "--start",
      "2024-03-04",
      "--data-dir",
      data,
    ]);
    assert.equal(tooMany.code, 2, tooMany.stderr);
    assert.match(
      tooMany.stderr,
      /^error: Too many symbols in symbols file .*: more than the limit of 50,000\n$/,
    );
    const config = await runCli(["jobs", "list", "--config", "/dev/zero", "--data-dir", data]);
    assert.equal(config.code, 2, config.stderr);
    assert.equal(
      config.stderr,
      "error: Cannot read config file /dev/zero: it is larger than the limit of 1.0 MiB\n",
    );
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["many.txt"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
