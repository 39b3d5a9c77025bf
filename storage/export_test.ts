import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import { generateFakeDay } from "../providers/fake.ts";
import { BAR_COLUMNS, openDuckDB } from "./duckdb.ts";
import { checkExportColumns, exportBars, type ExportRequest } from "./export.ts";
import { META_FILE, MetaStore, migrate, openDatabase } from "./meta.ts";
import { writeLayoutFile } from "./migrate_layout.ts";
import { writeBars } from "./partitions.ts";

/**
 * A data directory with fake 1m bars of AAPL and MSFT: two days, or with `interleaved` three
 * days of AAPL in two files that overlap in time (the 4th and 6th, then the 5th).
 */
async function fakeStore(interleaved = false): Promise<{ root: string; dataDir: string }> {
  const root = await Deno.makeTempDir({ prefix: "mp-export-unit-" });
  const dataDir = join(root, "data");
  await Deno.mkdir(dataDir);
  await writeLayoutFile(dataDir);
  const db = openDatabase(join(dataDir, META_FILE));
  migrate(db);
  const meta = new MetaStore(db, { command: "test" });
  const duckdb = await openDuckDB({ threads: 1 });
  try {
    const writes: [string, string[]][] = interleaved
      ? [["AAPL", ["2024-03-04", "2024-03-06"]], ["AAPL", ["2024-03-05"]]]
      : [["AAPL", ["2024-03-04", "2024-03-05"]]];
    writes.push(["MSFT", ["2024-03-04", "2024-03-05"]]);
    for (const [i, [symbol, days]] of writes.entries()) {
      const bars = days.flatMap((day) => generateFakeDay(symbol, day));
      await writeBars({ dataDir, duckdb, meta }, bars, { jobId: `job-${i}` });
    }
  } finally {
    meta.close();
    duckdb.closeSync();
  }
  return { root, dataDir };
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name).sort();
}

const REQUEST: ExportRequest = {
  symbols: ["AAPL", "MSFT"],
  timeframe: "1m",
  start: "2024-03-04",
  end: "2024-03-05",
  format: "parquet",
};

Deno.test("checkExportColumns() defaults to every bar column and names an unknown one", () => {
  assert.deepEqual(checkExportColumns(undefined), BAR_COLUMNS.map((column) => column.name));
  assert.deepEqual(checkExportColumns(["close", "ts"]), ["close", "ts"]);
  assert.throws(
    () => checkExportColumns(["ts", "volum"]),
    (error) =>
      error instanceof UsageError && /unknown column "volum" \(did you mean "volume"/.test(
        error.message,
      ),
  );
  assert.throws(() => checkExportColumns(["ts", "ts"]), /"ts" is given twice/);
});

Deno.test("exportBars() writes under <data>/exports/ and per symbol into an existing folder", async () => {
  const { root, dataDir } = await fakeStore();
  await Deno.mkdir(join(dataDir, "exports"));
  const one = await exportBars(dataDir, REQUEST, join(dataDir, "exports", "all.parquet"));
  const day = generateFakeDay("AAPL", "2024-03-04").length;
  assert.ok(one.rows > 4 * day - 100 && one.rows <= 4 * day + 100, `rows ${one.rows}`);
  assert.deepEqual(await names(join(dataDir, "exports")), ["all.parquet"]);

  const folder = join(root, "per");
  await Deno.mkdir(folder);
  await Deno.writeTextFile(join(folder, "notes.txt"), "kept\n");
  const per = await exportBars(dataDir, { ...REQUEST, format: "csv" }, folder, {
    perSymbol: true,
  });
  assert.deepEqual(per.files.map((file) => file.path), [
    join(folder, "AAPL.csv"),
    join(folder, "MSFT.csv"),
  ]);
  assert.equal(per.rows, one.rows);
  assert.deepEqual(await names(folder), ["AAPL.csv", "MSFT.csv", "notes.txt"]);
});

Deno.test("exportBars() stopped midway leaves nothing and the old file intact", async () => {
  const { root, dataDir } = await fakeStore();
  const out = join(root, "bars.arrow");
  await Deno.writeTextFile(out, "old\n");
  const controller = new AbortController();
  await assert.rejects(
    exportBars(dataDir, { ...REQUEST, format: "arrow" }, out, {
      signal: controller.signal,
      onProgress: () => controller.abort(new Error("stopped by the test")),
    }),
    /stopped by the test/,
  );
  assert.equal(await Deno.readTextFile(out), "old\n");
  assert.deepEqual(await names(root), ["bars.arrow", "data"]);

  await assert.rejects(
    exportBars(dataDir, REQUEST, join(root, "fresh"), {
      perSymbol: true,
      signal: AbortSignal.abort(new Error("stopped before")),
    }),
    /stopped before/,
  );
  assert.deepEqual(await names(root), ["bars.arrow", "data"]);
});

Deno.test("exportBars() sorts by symbol and ts when a symbol's files overlap in time", async () => {
  const { root, dataDir } = await fakeStore(true);
  const out = join(root, "bars.csv");
  const summary = await exportBars(dataDir, {
    ...REQUEST,
    end: "2024-03-06",
    format: "csv",
    columns: ["ts", "close"],
    timeZone: "America/New_York",
  }, out);
  const lines = (await Deno.readTextFile(out)).trimEnd().split("\n").slice(1);
  assert.equal(lines.length, summary.rows);
  const instants = lines.map((line) => Date.parse(line.split(",")[0]));
  const aapl = instants.slice(0, instants.findIndex((t, i) => i > 0 && t < instants[i - 1]));
  assert.deepEqual(aapl, [...aapl].sort((a, b) => a - b));
  assert.deepEqual([...new Set(lines.slice(0, aapl.length).map((l) => l.slice(0, 10)))], [
    "2024-03-04",
    "2024-03-05",
    "2024-03-06",
  ]);
});
