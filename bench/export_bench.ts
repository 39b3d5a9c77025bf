/**
 * The export benchmark. Writes fake 1m bars (all sessions; 50 symbols x 209 days, about 10M
 * bars, by default) into a data directory with our partition writer, then times, alternating:
 *
 * 1. ours: `marketpipe export` of every symbol and day to one file through the real CLI;
 * 2. the baseline, in a fresh process: DuckDB's own `COPY` of the same query (the same files in
 *    the same order, so the same rows by symbol and ts, format and compression) with DuckDB's
 *    default settings, and nothing else.
 *
 * Prints rows/s, peak RSS and the median of the per-pair wall-time ratios with their range,
 * against the targets (at most 1.5x the baseline's time, peak RSS under 1 GiB), and writes the
 * report as JSON to `bench/out/export-<timestamp>.json`. Timing never fails the process.
 *
 * ```sh
 * deno task bench:export                                  # 50 symbols, 10M bars, parquet
 * deno run -A bench/export_bench.ts --format csv          # the same as CSV
 * deno run -A bench/export_bench.ts --symbols 5 --bars 500000 --runs 1   # a quick check
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { tradingDays } from "../core/mod.ts";
import {
  BAR_COLUMNS,
  listFiles,
  META_FILE,
  openDatabase,
  openDuckDB,
  sqlIdent,
  sqlString,
} from "../storage/mod.ts";
import {
  benchSymbols,
  childEnv,
  type ChildRun,
  denoRun,
  formatBytes,
  formatCount,
  formatMs,
  MAIN,
  median,
  reportHead,
  ROOT,
  rotate,
  runMeasured,
  runSample,
  wholeNumberFlags,
  withTempDir,
  writeFakeBars,
  writeReport,
} from "./measure.ts";

const SELF = fileURLToPath(import.meta.url);
const FIRST_DAY = "2024-01-02";
/** Bars the fake provider makes of one symbol and day (04:00-20:00, a few left out). */
const BARS_PER_DAY = 950;
const TARGETS = { timeRatio: 1.5, peakRssBytes: 2 ** 30 } as const;

const USAGE =
  `Usage: deno run -A bench/export_bench.ts [--symbols N] [--bars N] [--runs N] [--format F]

  --symbols N   symbols (default 50)
  --bars N      about this many 1m bars in all, spread over the symbols (default 10000000)
  --runs N      ours + baseline pairs, alternating; medians count (default 3)
  --format F    parquet or csv (default parquet)`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      symbols: { type: "string", default: "50" },
      bars: { type: "string", default: "10000000" },
      runs: { type: "string", default: "3" },
      format: { type: "string", default: "parquet" },
      baseline: { type: "string" },
      out: { type: "string" },
      start: { type: "string" },
      end: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const format = values.format;
  if (format !== "parquet" && format !== "csv") {
    console.error(`error: --format must be parquet or csv\n\n${USAGE}`);
    return 2;
  }
  if (values.baseline !== undefined) {
    return await _baseline(values.baseline, values.out!, {
      format,
      start: values.start!,
      end: values.end!,
    });
  }
  const sizes = wholeNumberFlags(
    { symbols: values.symbols, bars: values.bars, runs: values.runs },
    USAGE,
  );
  if (sizes === null) return 2;
  return await withTempDir("marketpipe-exportbench-", async (temp) => {
    const report = await _bench({ ...sizes, format }, temp);
    await writeReport("export-", report.startedAt, report);
    return 0;
  });
}

async function _bench(
  options: { symbols: number; bars: number; runs: number; format: "parquet" | "csv" },
  temp: string,
) {
  const startedAt = new Date().toISOString();
  const dataDir = join(temp, "data");
  const symbols = benchSymbols(options.symbols);
  const dayCount = Math.max(1, Math.round(options.bars / options.symbols / BARS_PER_DAY));
  const days = tradingDays(FIRST_DAY, "2026-12-31").slice(0, dayCount);
  const [start, end] = [days[0], days.at(-1)!];

  // The workload: written with our partition writer, not timed.
  console.error(
    `Writing ${symbols.length} symbols x ${days.length} days of fake 1m bars to ${dataDir} ...`,
  );
  const duckdb = await openDuckDB();
  let bars: number;
  try {
    bars = await writeFakeBars(dataDir, symbols, days, { duckdb });
  } finally {
    duckdb.closeSync();
  }

  const ours: ChildRun[] = [];
  const baseline: ChildRun[] = [];
  const ratios: number[] = [];
  const sizes = { ours: 0, baseline: 0 };
  const symbolsFile = join(temp, "symbols.txt");
  await Deno.writeTextFile(symbolsFile, symbols.join("\n") + "\n");
  for (let run = 1; run <= options.runs; run++) {
    // Alternating, and each pair in a different order, so that load from elsewhere hits both.
    const pair = {} as Record<"ours" | "baseline", ChildRun>;
    for (const who of rotate(["ours", "baseline"] as const, run - 1)) {
      const out = join(temp, `${who}.${options.format}`);
      await Deno.remove(out).catch(() => {});
      console.error(`Run ${run} of ${options.runs}: ${who} ...`);
      const args = who === "ours"
        ? denoRun(MAIN, [
          "export",
          `--data-dir=${dataDir}`,
          `--symbols-file=${symbolsFile}`,
          `--start=${start}`,
          `--end=${end}`,
          `--format=${options.format}`,
          `--out=${out}`,
          "--json",
        ])
        : denoRun(SELF, [
          `--baseline=${dataDir}`,
          `--start=${start}`,
          `--end=${end}`,
          `--out=${out}`,
          `--format=${options.format}`,
        ]);
      const child = await runMeasured(Deno.execPath(), args, {
        cwd: who === "ours" ? temp : ROOT,
        env: childEnv({ TZ: "UTC" }),
        scratchDir: temp,
      });
      if (child.code !== 0) {
        throw new Error(`${who} failed with exit code ${child.code}: ${child.stderr.trim()}`);
      }
      const { rows } = JSON.parse(child.stdout) as { rows: number };
      if (rows !== bars) throw new Error(`${who} wrote ${rows} rows, expected ${bars}`);
      sizes[who] = (await Deno.stat(out)).size;
      pair[who] = child;
      (who === "ours" ? ours : baseline).push(child);
    }
    ratios.push(pair.ours.wallMs / pair.baseline.wallMs);
  }

  const oursMs = median(ours.map((r) => r.wallMs));
  const baseMs = median(baseline.map((r) => r.wallMs));
  const ratio = median(ratios);
  const rss = Math.max(...ours.map((r) => r.peakRssBytes ?? 0));
  const baseRss = Math.max(...baseline.map((r) => r.peakRssBytes ?? 0));
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
  console.log(
    `\nexport of ${formatCount(bars)} bars as ${options.format} (${options.runs} pair(s))`,
  );
  console.log(
    `  ours      ${formatMs(oursMs).padStart(9)}  ${
      formatCount(Math.round(bars / (oursMs / 1000)))
    } rows/s  peak RSS ${formatBytes(rss)}  file ${formatBytes(sizes.ours)}`,
  );
  console.log(
    `  DuckDB    ${formatMs(baseMs).padStart(9)}  ${
      formatCount(Math.round(bars / (baseMs / 1000)))
    } rows/s  peak RSS ${formatBytes(baseRss)}  file ${formatBytes(sizes.baseline)}`,
  );
  console.log(
    `  time ratio ${ratio.toFixed(2)}x (range ${Math.min(...ratios).toFixed(2)}-${
      Math.max(...ratios).toFixed(2)
    }), target <= ${TARGETS.timeRatio}x: ${verdict(ratio <= TARGETS.timeRatio)}`,
  );
  console.log(
    `  peak RSS ${formatBytes(rss)}, target < ${formatBytes(TARGETS.peakRssBytes)}: ${
      verdict(rss > 0 && rss < TARGETS.peakRssBytes)
    } (${ours[0].rssMethod})`,
  );
  return {
    benchmark: "export",
    ...await reportHead(startedAt),
    workload: { symbols: symbols.length, days: days.length, bars, format: options.format },
    targets: TARGETS,
    ours: ours.map(runSample),
    baseline: baseline.map(runSample),
    ratios,
    medians: { oursMs, baselineMs: baseMs, ratio },
    peakRssBytes: { ours: rss, baseline: baseRss },
    fileBytes: sizes,
  };
}

/**
 * The baseline: a fresh process that opens DuckDB with its defaults and runs one `COPY` of the
 * same files and rows, in the same order, format and compression; prints `{ rows }`.
 */
async function _baseline(
  dataDir: string,
  out: string,
  { format, start, end }: { format: "parquet" | "csv"; start: string; end: string },
): Promise<number> {
  const db = openDatabase(join(dataDir, META_FILE));
  // The statement `export` runs: the files by symbol and first bar, read in that order (each is
  // sorted by ts and none overlap, so the rows come by symbol and ts without a sort).
  const files = listFiles(db, { tree: "bars", timeframe: "1m" })
    .sort((a, b) => a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : a.minTs - b.minTs)
    .map((f) => join(dataDir, f.path));
  db.close();
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(":memory:");
  const connection = await instance.connect();
  const options = format === "csv" ? "FORMAT csv, HEADER true" : "FORMAT parquet, COMPRESSION zstd";
  const result = await connection.run(
    `COPY (SELECT ${BAR_COLUMNS.map((c) => sqlIdent(c.name)).join(", ")}
        FROM read_parquet([${files.map(sqlString).join(", ")}],
          hive_partitioning = true, hive_types_autocast = false)
        WHERE trading_date BETWEEN DATE ${sqlString(start)} AND DATE ${sqlString(end)})
      TO ${sqlString(out)} (${options})`,
  );
  console.log(JSON.stringify({ rows: Number(result.rowsChanged) }));
  connection.closeSync();
  instance.closeSync();
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
