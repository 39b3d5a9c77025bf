/**
 * The kill -9 matrix: each write command is killed at moments drawn from a seeded generator, run
 * again with the same arguments, and must end with exactly the bars of a run that was never
 * killed (every value compared through a digest), no leftover temp files and no job left running.
 * A failing case prints its seed and delay, so it can be replayed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openQueryEngine, runQuery } from "../storage/mod.ts";
import { json, listTree, metaQuery, runCli, spawnCli } from "./_cli.ts";

const SEED = 20_261_201;

/** A small deterministic generator (mulberry32), so every CI run kills at the same moments. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const SYMBOLS = "AAA,BBB,CCC,DDD,EEE,FFF,GGG,HHH";
const INGEST = ["ingest", "--symbols", SYMBOLS, "--start", "2024-01-02", "--end", "2024-03-28"];
const INGEST_ARGS = [...INGEST, "--workers", "2"];
/** The same days again with other values (another seed), so every stored bar is replaced. */
const FORCE_ARGS = [...INGEST_ARGS, "--force", "--fake-seed", "7"];
const AGGREGATE_ARGS = ["aggregate"];

/** Count, distinct keys and a digest of every value of every stored and quarantined bar. */
async function fingerprint(dataDir: string): Promise<unknown[]> {
  const engine = await openQueryEngine(dataDir, { threads: 1 });
  try {
    const { rows } = await runQuery(
      engine,
      `SELECT timeframe, count(*) AS rows, count(DISTINCT (symbol, ts)) AS keys,
        bit_xor(hash(symbol, ts, open, high, low, close, volume, vwap, trade_count, session,
          trading_date, provider, feed)) AS digest
      FROM bars GROUP BY timeframe ORDER BY timeframe`,
    );
    return rows;
  } finally {
    engine.close();
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) await copyTree(source, target);
    else await Deno.copyFile(source, target);
  }
}

/**
 * Starts `marketpipe args... --data-dir dataDir` and resolves `started` at its first line on
 * stderr (the work begins: planning is done, DuckDB is loaded) and `done` with the exit code.
 */
function startCli(args: string[], dataDir: string) {
  const child = spawnCli([...args, "--data-dir", dataDir]);
  let stderr = "";
  const { promise: started, resolve: markStarted } = Promise.withResolvers<void>();
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      if (stderr.includes("\n")) markStarted();
    }
    markStarted();
  })();
  const stdout = new Response(child.stdout).text();
  const done = (async () => {
    const status = await child.status;
    await drained;
    await stdout;
    return { code: status.code, stderr };
  })();
  return { child, started, done };
}

/** Runs a command to its end; returns how long its work took after its first stderr line. */
async function run(args: string[], dataDir: string): Promise<number> {
  const { started, done } = startCli(args, dataDir);
  await started;
  const from = performance.now();
  const result = await done;
  assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
  return performance.now() - from;
}

interface Case {
  name: string;
  /** Builds the state before the command (a copy of a prepared data directory). */
  before?: string;
  args: string[];
  cases: number;
}

Deno.test("kill -9 at seeded moments of ingest, force, aggregate and compact; reruns end identical", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "mp-kill-" });
  try {
    // Reference states, each made by runs that were never killed.
    const ingested = join(root, "ingested");
    const ingestMs = await run(INGEST_ARGS, ingested);
    const forced = join(root, "forced");
    await copyTree(ingested, forced);
    const forceMs = await run(FORCE_ARGS, forced);
    const aggregated = join(root, "aggregated");
    await copyTree(ingested, aggregated);
    const aggregateMs = await run(AGGREGATE_ARGS, aggregated);
    const compacted = join(root, "compacted");
    await copyTree(ingested, compacted);
    const compactMs = await run(["compact"], compacted);
    assert.equal(liveFileCount(compacted), 8, "one file per symbol-year after compact");
    assert.ok(liveFileCount(ingested) > 8, "the ingest leaves several files per symbol-year");
    const expected = {
      ingest: await fingerprint(ingested),
      force: await fingerprint(forced),
      aggregate: await fingerprint(aggregated),
    };
    assert.notDeepEqual(expected.force, expected.ingest, "the forced run must change values");
    assert.equal(expected.aggregate.length, 7, "every timeframe is stored after aggregate");

    const matrix: (Case & { key: keyof typeof expected; ms: number })[] = [
      { name: "ingest", key: "ingest", args: INGEST_ARGS, cases: 4, ms: ingestMs },
      {
        name: "ingest --force",
        key: "force",
        before: ingested,
        args: FORCE_ARGS,
        cases: 3,
        ms: forceMs,
      },
      {
        name: "aggregate",
        key: "aggregate",
        before: ingested,
        args: AGGREGATE_ARGS,
        cases: 3,
        ms: aggregateMs,
      },
      // The ingest leaves one file per task in each symbol-year: compact merges them.
      {
        name: "compact",
        key: "ingest",
        before: ingested,
        args: ["compact"],
        cases: 3,
        ms: compactMs,
      },
    ];
    const landings: Record<string, string[]> = Object.fromEntries(
      matrix.map((entry) => [entry.name, []]),
    );
    const next = random(SEED);
    let index = 0;
    console.log(
      `clean runs: ingest ${Math.round(ingestMs)} ms, force ${Math.round(forceMs)} ms, ` +
        `aggregate ${Math.round(aggregateMs)} ms`,
    );
    for (const entry of matrix) {
      // Moments inside the work: after the first progress line, within a clean run's length; and
      // one right after the command's first manifest commit, which is always inside a write.
      const moments: (number | "first commit")[] = [];
      for (let i = 0; i < entry.cases; i++) moments.push(Math.round(next() * entry.ms));
      moments.push("first commit");
      for (const moment of moments) {
        const dir = join(root, `case-${index++}`);
        const when = moment === "first commit"
          ? "right after its first manifest commit"
          : `${moment} ms into the work (seed ${SEED})`;
        await t.step(
          `${entry.name}: SIGKILL ${when}`,
          async () => {
            if (entry.before !== undefined) await copyTree(entry.before, dir);
            const initial = Math.max(manifestVersion(dir), 0);
            const { child, started, done } = startCli(entry.args, dir);
            await started;
            if (moment === "first commit") {
              let finished = false;
              done.then(() => (finished = true));
              while (!finished && manifestVersion(dir) <= initial) {
                await new Promise((resolve) => setTimeout(resolve, 2));
              }
            } else {
              await new Promise((resolve) => setTimeout(resolve, moment));
            }
            try {
              child.kill("SIGKILL");
            } catch {
              // It had already finished: the rerun must then do nothing and change nothing.
            }
            await done;
            // Where the kill landed: before any write, after the last one, or in between.
            const state = await fingerprint(dir);
            const before = entry.before === undefined ? [] : expected.ingest; // the clean ingest
            // compact keeps every value: where it landed shows in the number of live files.
            const landed = entry.name === "compact"
              ? _compactLanding(liveFileCount(dir), liveFileCount(ingested))
              : _sameRows(state, expected[entry.key])
              ? "after"
              : _sameRows(state, before)
              ? "before"
              : "mid";
            landings[entry.name].push(landed);
            await run(entry.args, dir);
            assert.deepEqual(await fingerprint(dir), expected[entry.key]);
            const left = (await listTree(dir)).filter((path) =>
              /(^|\/)\.tmp-|\.tmp-[0-9a-f]{8}|staging-/.test(path)
            );
            assert.deepEqual(left, [], "temp files left behind");
            assert.deepEqual(
              (await listTree(join(dir, "bars"))).filter((path) => path.endsWith(".parquet"))
                .map((path) => `bars/${path}`),
              metaQuery(dir, "SELECT path FROM bar_files WHERE tree = 'bars' ORDER BY path")
                .map((row) => String(row.path)),
              "the files on disk are exactly the manifest's: no orphan left",
            );
            const jobs = json<{ status: string }[]>(
              await runCli(["jobs", "list", "--json", "--data-dir", dir]),
            );
            assert.ok(
              jobs.every((job) => job.status !== "running"),
              `no job stays running: ${JSON.stringify(jobs)}`,
            );
            // Run once more: nothing left to do, nothing changes.
            await run(entry.args, dir);
            assert.deepEqual(await fingerprint(dir), expected[entry.key]);
            await Deno.remove(dir, { recursive: true });
          },
        );
      }
    }
    await t.step("the kills landed inside the work, not only around it", () => {
      console.log(`kill landings: ${JSON.stringify(landings)}`);
      for (const [name, landed] of Object.entries(landings)) {
        assert.ok(landed.includes("mid"), `${name}: ${landed.join(", ")}`);
      }
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function _sameRows(a: unknown[], b: unknown[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The manifest's version (one more per commit), or -1 before the database exists. */
function manifestVersion(dataDir: string): number {
  try {
    return Number(metaQuery(dataDir, "SELECT version FROM manifest_version")[0].version);
  } catch {
    return -1;
  }
}

function liveFileCount(dataDir: string): number {
  return Number(metaQuery(dataDir, "SELECT count(*) AS n FROM bar_files WHERE tree = 'bars'")[0].n);
}

function _compactLanding(files: number, before: number): string {
  return files === before ? "before" : files === 8 ? "after" : "mid";
}
