/**
 * End to end: `marketpipe prune` and `marketpipe delete` through the real CLI with the fake
 * provider. What a dry run lists is what goes, counted with `marketpipe query`; afterwards `gaps`
 * and `ingest` agree on the removed days; a prune killed at any moment and run again ends as a
 * clean one; bad input exits 2 and writes nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { addDays, tradingDays } from "../core/calendar.ts";
import { json, listTree, metaQuery, runCli, spawnCli, waitFor } from "./_cli.ts";

const SYMBOLS = "AAA,BBB,CCC";
const START = "2024-02-26";
const END = "2024-03-08";
const CUTOFF = "2024-03-04";

/** A data directory with 1m bars of {@link SYMBOLS} from START to END, quarantined bars, and every frame aggregated. */
async function prepared(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mp-prune-" });
  const data = join(dir, "data");
  await cli([
    "ingest",
    "--symbols",
    SYMBOLS,
    "--start",
    START,
    "--end",
    END,
    "--fake-corrupt-rate",
    "0.002",
    "--data-dir",
    data,
  ]);
  await cli(["aggregate", "--data-dir", data]);
  return data;
}

async function cli(args: string[], expectCode = 0) {
  const result = await runCli(args);
  assert.equal(result.code, expectCode, `${args.join(" ")}: ${result.stdout}\n${result.stderr}`);
  return result;
}

async function count(data: string, sql: string): Promise<Record<string, unknown>[]> {
  return json<Record<string, unknown>[]>(
    await cli(["query", sql, "--format", "json", "--data-dir", data]),
  );
}

/** Bars per timeframe and symbol, with their first trading date. */
async function inventory(data: string) {
  return await count(
    data,
    `SELECT timeframe, symbol, count(*) AS n, CAST(min(trading_date) AS VARCHAR) AS first
     FROM bars GROUP BY ALL ORDER BY ALL`,
  );
}

/** What a command could change: the tree and the metadata of files and days. */
async function snapshot(data: string) {
  return {
    // The database's WAL and index files come and go with every reader.
    tree: (await listTree(data)).filter((path) => !/\.db-(wal|shm)$/.test(path)),
    files: metaQuery(data, "SELECT path, rows FROM bar_files ORDER BY path"),
    days: metaQuery(data, "SELECT * FROM ingested_days ORDER BY source, symbol, trading_date"),
    freshness: metaQuery(
      data,
      "SELECT symbol, timeframe, last_ts FROM series_freshness ORDER BY 1, 2",
    ),
  };
}

function leftovers(data: string, tree: string[]): void {
  assert.deepEqual(tree.filter((path) => /(^|\/)\.tmp-/.test(path)), [], "temp files left");
  for (const root of ["bars", "quarantine"]) {
    assert.deepEqual(
      tree.filter((path) => path.startsWith(`${root}/`) && path.endsWith(".parquet")),
      metaQuery(data, `SELECT path FROM bar_files WHERE tree = '${root}' ORDER BY path`)
        .map((row) => String(row.path)),
      `${root}: the files on disk are exactly the manifest's`,
    );
  }
}

Deno.test("prune --dry-run lists exactly what goes and changes nothing; prune removes exactly that", async () => {
  const data = await prepared();
  try {
    const before = await inventory(data);
    const [{ n: going }] = await count(
      data,
      `SELECT count(*) AS n FROM bars_1m WHERE trading_date < DATE '${CUTOFF}'`,
    );
    assert.ok(Number(going) > 0);
    const state = await snapshot(data);
    const args = ["prune", "--before", CUTOFF, "--timeframe", "1m", "--data-dir", data];
    const dry = await cli([...args, "--dry-run"]);
    const dryJson = json<{ rows: number; days: number; partitions: { tree: string }[] }>(
      await cli([...args, "--dry-run", "--json"]),
    );
    assert.deepEqual(await snapshot(data), state, "a dry run changes nothing");
    assert.equal(dryJson.rows, going);
    assert.equal(dryJson.days, 3 * tradingDays(START, addDays(CUTOFF, -1)).length);
    assert.ok(dryJson.partitions.some((p) => p.tree === "quarantine"), "quarantine pruned too");

    const run = await cli([...args, "--yes"]);
    assert.equal(
      run.stdout,
      dry.stdout.replaceAll("would remove", "removed").replace("Would remove", "Removed")
        .replace("and forget", "and forgot")
        .replace("; nothing was changed.", "; marketpipe ingest fetches those days again."),
      "the run prints what the dry run listed",
    );
    const after = await inventory(data);
    for (const row of before) {
      const now = after.find((r) => r.timeframe === row.timeframe && r.symbol === row.symbol)!;
      if (row.timeframe !== "1m") {
        assert.deepEqual(now, row, "other timeframes are kept");
        continue;
      }
      assert.equal(now.first, CUTOFF);
    }
    assert.equal(
      after.filter((r) => r.timeframe === "1m").reduce((sum, r) => sum + Number(r.n), 0),
      before.filter((r) => r.timeframe === "1m").reduce((sum, r) => sum + Number(r.n), 0) -
        Number(going),
    );
    const [{ n: quarantined }] = await count(
      data,
      `SELECT count(*) AS n FROM read_parquet('${data}/quarantine/**/*.parquet') WHERE trading_date < DATE '${CUTOFF}'`,
    );
    assert.equal(quarantined, 0);
    // The coarser frames outlive their 1m bars: aggregate does not cut them down to what is left.
    await cli(["aggregate", "--data-dir", data]);
    assert.deepEqual(await inventory(data), after);
    leftovers(data, await listTree(data));
    assert.match((await cli([...args, "--yes"])).stdout, /^Nothing to remove/);
  } finally {
    await Deno.remove(join(data, ".."), { recursive: true });
  }
});

Deno.test("prune then gaps and ingest agree: the pruned days are missing and fetched again", async () => {
  const data = await prepared();
  try {
    const before = await inventory(data);
    await cli(["prune", "--before", CUTOFF, "--data-dir", data, "--yes"]);
    const range = ["--symbols", SYMBOLS, "--start", START, "--end", END, "--data-dir", data];
    const pruned = tradingDays(START, addDays(CUTOFF, -1));
    const gaps = json<{ symbols: { missing: string[] }[] }>(
      await cli(["gaps", ...range, "--json"]),
    );
    for (const symbol of gaps.symbols) assert.deepEqual(symbol.missing, pruned);
    const ingest = json<{ symbols: { daysFetched: number; daysSkipped: number }[] }>(
      await cli(["ingest", ...range, "--fake-corrupt-rate", "0.002", "--json"]),
    );
    for (const symbol of ingest.symbols) {
      assert.equal(symbol.daysFetched, pruned.length);
      assert.equal(symbol.daysSkipped, tradingDays(START, END).length - pruned.length);
    }
    const after = json<{ symbols: { missing: string[] }[] }>(
      await cli(["gaps", ...range, "--json"]),
    );
    for (const symbol of after.symbols) assert.deepEqual(symbol.missing, []);
    await cli(["aggregate", "--data-dir", data]);
    assert.deepEqual(await inventory(data), before, "the same bars as before the prune");
  } finally {
    await Deno.remove(join(data, ".."), { recursive: true });
  }
});

Deno.test("delete --symbols removes every bar of the symbols and nothing else", async () => {
  const data = await prepared();
  try {
    const before = await inventory(data);
    const dry = json<{ rows: number }>(
      await cli(["delete", "--symbols", "BBB", "--dry-run", "--json", "--data-dir", data]),
    );
    const [{ n }] = await count(data, "SELECT count(*) AS n FROM bars WHERE symbol = 'BBB'");
    assert.equal(dry.rows, n);
    await cli(["delete", "--symbols", "BBB", "--yes", "--data-dir", data]);
    assert.deepEqual(await inventory(data), before.filter((row) => row.symbol !== "BBB"));
    assert.equal(
      metaQuery(data, "SELECT count(*) AS n FROM ingested_days WHERE symbol = 'BBB'")[0].n,
      0,
    );
    assert.equal(
      metaQuery(data, "SELECT count(*) AS n FROM bar_files WHERE symbol = 'BBB'")[0].n,
      0,
      "its quarantine goes too",
    );
    const range = ["--symbols", "BBB", "--start", START, "--end", END, "--data-dir", data];
    const ingest = json<{ symbols: { daysFetched: number }[] }>(
      await cli(["ingest", ...range, "--json"]),
    );
    assert.equal(ingest.symbols[0].daysFetched, tradingDays(START, END).length);
    leftovers(data, await listTree(data));
  } finally {
    await Deno.remove(join(data, ".."), { recursive: true });
  }
});

Deno.test("prune --policy applies the configured retention per timeframe", async () => {
  const data = await prepared();
  try {
    const before = await inventory(data);
    // On 2024-04-03 in New York, 30 days keep 2024-03-04 onwards; 5m is kept a century.
    const config = join(data, "..", "config.yaml");
    await Deno.writeTextFile(config, "retention:\n  1m: 30d\n  5m: 100y\n");
    const result = await runCli(
      ["prune", "--policy", "--config", config, "--data-dir", data, "--yes"],
      { env: { MARKETPIPE_NOW: "2024-04-03T15:00:00Z" } },
    );
    assert.equal(result.code, 0, result.stderr);
    const after = await inventory(data);
    for (const row of after) {
      if (row.timeframe === "1m") assert.equal(row.first, CUTOFF);
      else {assert.deepEqual(
          row,
          before.find((r) => r.timeframe === row.timeframe && r.symbol === row.symbol),
        );}
    }
  } finally {
    await Deno.remove(join(data, ".."), { recursive: true });
  }
});

Deno.test("prune and delete refuse bad input with exit 2 and write nothing", async () => {
  const data = await prepared();
  try {
    const state = await snapshot(data);
    const bad = join(data, "..", "bad.yaml");
    await Deno.writeTextFile(bad, "retention:\n  1m: 2x\n");
    const cases: [string[], RegExp][] = [
      [["prune", "--before", "2024-13-01"], /Invalid --before "2024-13-01"/],
      [["prune", "--before", "03/01/2024"], /expected YYYY-MM-DD/],
      [["prune", "--before", "2099-01-02"], /Invalid --before 2099-01-02: it is after today/],
      [
        ["prune", "--before", "2024-03-12"],
        /2024-03-12: it is after today \(2024-03-11 in New York\)/,
      ],
      [["prune", "--before", CUTOFF, "--timeframe", "2m"], /Invalid --timeframe "2m"/],
      [["prune", "--policy", "--retention-policy", "1m=2x"], /Invalid retention for 1m "2x"/],
      [["prune", "--policy", "--config", bad], /Invalid retention for 1m "2x" in config file/],
      [["prune", "--policy"], /Missing retention for --policy/],
      [["prune", "--before", CUTOFF, "--policy"], /either --before or --policy/],
      [["prune"], /Missing --before DATE or --policy/],
      [["prune", "--before", CUTOFF, "--provider", "fakee"], /Unknown --provider "fakee"/],
      // stdin is not a terminal: without --yes nothing may start.
      [["prune", "--before", CUTOFF], /Refusing to prune without --yes/],
      [["delete", "--symbols", "AAA"], /Refusing to delete without --yes/],
      [["delete", "--yes"], /Missing --symbols/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli([...args, "--data-dir", data], {
        env: { MARKETPIPE_NOW: "2024-03-11T15:00:00Z" },
      });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, message, args.join(" "));
      assert.equal(result.stderr.trim().split("\n").length, 1, `one line: ${result.stderr}`);
    }
    assert.deepEqual(await snapshot(data), state, "nothing was written");
    const missing = join(data, "..", "missing");
    const result = await runCli(["prune", "--before", CUTOFF, "--yes", "--data-dir", missing]);
    assert.equal(result.code, 2);
    assert.deepEqual(await listTree(missing), [], "no data directory is created");
  } finally {
    await Deno.remove(join(data, ".."), { recursive: true });
  }
});

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyTree(join(from, entry.name), join(to, entry.name));
    else await Deno.copyFile(join(from, entry.name), join(to, entry.name));
  }
}

/** Every value of every stored bar, and the metadata prune changes. */
async function outcome(data: string) {
  const [bars] = await count(
    data,
    `SELECT count(*) AS n, bit_xor(hash(symbol, timeframe, ts, open, high, low, close, volume,
       vwap, trade_count, session, trading_date, provider)) AS digest FROM bars`,
  );
  return {
    bars,
    days: metaQuery(
      data,
      "SELECT source, timeframe, symbol, trading_date, bars FROM ingested_days ORDER BY 1, 2, 3, 4",
    ),
    freshness: metaQuery(
      data,
      "SELECT symbol, timeframe, last_ts FROM series_freshness ORDER BY 1, 2",
    ),
    files: metaQuery(
      data,
      "SELECT tree, timeframe, symbol, year, first_date, last_date, rows FROM bar_files ORDER BY 1, 2, 3, 4, 5",
    ),
  };
}

Deno.test("prune killed with SIGKILL mid-way and run again ends identical to a clean run", async () => {
  const data = await prepared();
  const root = join(data, "..");
  try {
    const args = ["prune", "--before", CUTOFF, "--yes"];
    const clean = join(root, "clean");
    await copyTree(data, clean);
    await cli([...args, "--data-dir", clean]);
    const expected = await outcome(clean);
    const partitions = Number(
      metaQuery(
        data,
        `SELECT count(DISTINCT tree || timeframe || symbol || year) AS n FROM bar_files`,
      )[0].n,
    );
    for (const [i, landing] of ["after the first partition", "at startup"].entries()) {
      const dir = join(root, `case-${i}`);
      await copyTree(data, dir);
      const child = spawnCli([...args, "--data-dir", dir]);
      const output = child.output();
      if (i === 0) {
        // Kill right after the first partition's commit: some partitions are pruned, not all.
        await waitFor(
          () =>
            metaQuery(dir, "SELECT count(*) AS n FROM bar_files WHERE job_id LIKE 'prune-%'")[0]
              .n !== 0,
          60_000,
          "the first pruned partition",
        );
      } else {
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      try {
        child.kill("SIGKILL");
      } catch {
        // It had already finished: the rerun must then change nothing.
      }
      await output;
      if (i === 0) {
        const state = await outcome(dir);
        assert.notDeepEqual(state.files, expected.files, `killed ${landing}: not finished`);
        const left = Number(
          metaQuery(dir, `SELECT count(*) AS n FROM bar_files WHERE first_date < '${CUTOFF}'`)[0].n,
        );
        assert.ok(
          left > 0 && left < partitions,
          `killed ${landing}: ${left} of ${partitions} partitions left`,
        );
      }
      await cli([...args, "--data-dir", dir]);
      assert.deepEqual(await outcome(dir), expected, `killed ${landing}, then run again`);
      leftovers(dir, await listTree(dir));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
