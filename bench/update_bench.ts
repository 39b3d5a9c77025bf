/**
 * `deno task bench:update`: the update benchmark of issue 12. `marketpipe update` of `--symbols`
 * symbols with a month of 1m bars stored and one new session, against ingesting that one session
 * into an empty data directory, both through the real CLI, measured side by side:
 *
 * 1. Set-up (not compared): `ingest` of {@link STORED_START}..{@link STORED_END} in 1m for the
 *    symbols into the stored data directory.
 * 2. `--runs` pairs, their order rotated each run: (a) `marketpipe update` on a hard-linked copy
 *    of the stored directory, (b) `marketpipe ingest --start {@link NEW_SESSION} --end
 *    {@link NEW_SESSION}` of the same symbols into an empty data directory. Every child runs with
 *    `MARKETPIPE_NOW` = {@link NOW}, when {@link NEW_SESSION} is the last closed 1m session. Both
 *    must write the same bars, or the benchmark fails.
 *
 * Bytes written = the sizes of the Parquet files a child created or replaced (listing of the data
 * directory before and after, by path, inode, size and mtime); the kernel's count of every byte
 * the child wrote (`write_bytes`, SQLite included) is shown beside it. Each ratio is the median of
 * the per-pair ratios, printed with their range, against the target (at most 1.3x). Writes the
 * report as JSON to `bench/out/update-<timestamp>.json`. Timing never fails the process.
 *
 * ```sh
 * deno task bench:update                        # 100 symbols, 3 pairs (under a minute on 2 cores)
 * deno task bench:update --symbols 10 --runs 1  # a quick check
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { lastCompletedSession, nextTradingDay, NOW_ENV, tradingDays } from "../core/mod.ts";
import {
  type BenchContext as Context,
  benchSymbols,
  bytesOrNa,
  checkUnchanged,
  childEnv,
  FAKE_GAP_RATE,
  FAKE_SEED,
  formatBytes,
  formatCount,
  formatMs,
  linkCopy,
  listTree,
  machineLine,
  median,
  pairRatios,
  parquetFiles,
  parquetWritten,
  parseFlagsOr,
  positiveInt,
  printAndWriteReport,
  ratioVerdict,
  reportHead,
  rotate,
  runCli,
  runFakeIngest,
  withBenchDirs,
  type WritesRun,
} from "./measure.ts";

/** The stored month: every trading day of November 2024 (Thanksgiving and an early close). */
const STORED_START = "2024-11-01";
const STORED_END = "2024-11-29";
/** The one new session: the trading day after {@link STORED_END}. */
const NEW_SESSION = "2024-12-02";
/** 07:00 ET on 2024-12-03: {@link NEW_SESSION} is the last 1m session that has closed. */
const NOW = "2024-12-03T12:00:00Z";
/** The issue's target: update/ingest at most this much, in wall time and in bytes written. */
const TARGET = 1.3;

const USAGE = `Usage: deno task bench:update [options]

  --symbols N   symbols S000, S001, ... (default 100, the issue's size)
  --runs N      pairs of update and ingest, alternating; medians count (default 3)
  --workers N   workers of both commands (default 4, the CLI default)
  --keep        keep the temporary directory and print where it is

Run time on 2 cores: under a minute at the defaults (the set-up ingest is most of it).`;

interface Workload {
  symbols: string[];
  runs: number;
  workers: number;
}

/** What one update or ingest wrote and how long it took. */
interface Sample {
  wallMs: number;
  barsWritten: number;
  parquetBytes: number;
  parquetFiles: number;
  /** Parquet files that were there before and are gone or replaced after. */
  parquetReplaced: number;
  kernelWriteBytes: number | null;
  peakRssBytes: number | null;
}

/** One compared figure: medians of update and ingest, and the median per-pair ratio. */
interface Figure {
  name: string;
  unit: "bytes" | "ms";
  update: number;
  ingest: number;
  ratio: number;
  /** Per-pair ratios (one per run). */
  ratios: number[];
  /** Highest acceptable ratio, or null for a figure shown for information. */
  target: number | null;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlagsOr(() => _parseFlags(args), USAGE);
  if (typeof flags === "number") return flags;
  const options = {
    symbols: flags.workload.symbols,
    env: { ...childEnv(), [NOW_ENV]: NOW },
    keep: flags.keep,
  };
  return await withBenchDirs(
    "marketpipe-updatebench-",
    options,
    async (context) =>
      printAndWriteReport("update-", await _bench(flags.workload, context), _render),
  );
}

type Report = Awaited<ReturnType<typeof _bench>>;

async function _bench(workload: Workload, context: Context) {
  const startedAt = new Date().toISOString();
  const { symbols, runs, workers } = workload;
  const closed = lastCompletedSession(Date.parse(NOW), { extendedHours: true });
  if (nextTradingDay(STORED_END) !== NEW_SESSION || closed !== NEW_SESSION) {
    throw new Error(
      `Cannot benchmark: at ${NOW} the last closed 1m session is ${closed}, expected ` +
        `${NEW_SESSION}, the trading day after ${STORED_END}`,
    );
  }
  const stored = join(context.temp, "stored");
  console.error(
    `Set-up: ingest 1m ${STORED_START}..${STORED_END} (${symbols.length} symbols)...`,
  );
  const setup = await _ingest(context, stored, STORED_START, STORED_END, workers);
  const storedListing = await listTree(stored);

  const samples = { update: [] as Sample[], ingest: [] as Sample[] };
  for (let run = 0; run < runs; run++) {
    for (const kind of rotate(["update", "ingest"] as const, run)) {
      console.error(
        `${
          kind === "update" ? "update on a copy of the stored month" : `ingest ${NEW_SESSION} ` +
            "into an empty store"
        } (run ${run + 1} of ${runs})...`,
      );
      const dir = join(context.temp, kind);
      if (kind === "update") await linkCopy(stored, dir);
      const before = await listTree(dir);
      const measured = kind === "update"
        ? await _update(context, dir, workers)
        : await _ingest(context, dir, NEW_SESSION, NEW_SESSION, workers);
      samples[kind].push({
        wallMs: measured.wallMs,
        barsWritten: measured.barsWritten,
        ...parquetWritten(before, await listTree(dir)),
        kernelWriteBytes: measured.kernelWriteBytes,
        peakRssBytes: measured.peakRssBytes,
      });
      await Deno.remove(dir, { recursive: true });
    }
    // The copies share the stored Parquet files by hard link: a write in place would have
    // changed them, and every later run with them.
    await checkUnchanged(stored, storedListing);
    const update = samples.update[run].barsWritten;
    const ingest = samples.ingest[run].barsWritten;
    if (update !== ingest || update !== samples.update[0].barsWritten || update === 0) {
      throw new Error(
        `Cannot benchmark: in run ${run + 1} update wrote ${update} bars and ingest ${ingest} ` +
          `(run 1: ${samples.update[0].barsWritten}); both must write the same bars of ` +
          NEW_SESSION,
      );
    }
  }

  const paired = (name: string, unit: Figure["unit"], key: "wallMs" | "parquetBytes") =>
    _paired(
      name,
      unit,
      samples.update.map((s) => s[key]),
      samples.ingest.map((s) => s[key]),
      TARGET,
    );
  const figures: Figure[] = [
    paired("wall time", "ms", "wallMs"),
    paired("Parquet bytes written", "bytes", "parquetBytes"),
  ];
  const kernel = samples.update.map((s) => s.kernelWriteBytes);
  const kernelIngest = samples.ingest.map((s) => s.kernelWriteBytes);
  if (kernel.every((v) => v !== null) && kernelIngest.every((v) => v !== null && v > 0)) {
    figures.push(
      _paired(
        "kernel write_bytes, all files",
        "bytes",
        kernel as number[],
        kernelIngest as number[],
        null,
      ),
    );
  }
  return {
    ...await reportHead(startedAt),
    workload: {
      symbols: symbols.length,
      storedStart: STORED_START,
      storedEnd: STORED_END,
      storedDays: tradingDays(STORED_START, STORED_END).length,
      newSession: NEW_SESSION,
      now: NOW,
      seed: FAKE_SEED,
      gapRate: FAKE_GAP_RATE,
      workers,
      runs,
    },
    setup: {
      bars: setup.barsWritten,
      wallMs: setup.wallMs,
      parquetFiles: parquetFiles(storedListing).length,
      parquetBytes: parquetFiles(storedListing).reduce((sum, [, state]) => sum + state.size, 0),
    },
    samples,
    figures: figures.map((f) => ({ ...f, pass: f.target === null ? null : f.ratio <= f.target })),
  };
}

async function _ingest(
  context: Context,
  dataDir: string,
  start: string,
  end: string,
  workers: number,
): Promise<WritesRun & { barsWritten: number }> {
  return await runFakeIngest(context, dataDir, { start, end, timeframe: "1m", workers });
}

/** `marketpipe update`, which must run one job that fetches exactly {@link NEW_SESSION}. */
async function _update(
  context: Context,
  dataDir: string,
  workers: number,
): Promise<WritesRun & { barsWritten: number }> {
  const run = await runCli(
    context,
    ["update", `--workers=${workers}`, `--data-dir=${dataDir}`, "--json"],
    "marketpipe update",
  );
  const summary = JSON.parse(run.stdout) as {
    status: string;
    jobs: { barsWritten: number; symbols: { daysFetched: number }[] }[];
  };
  const days = summary.jobs.flatMap((job) => job.symbols.map((s) => s.daysFetched));
  if (summary.status !== "succeeded" || days.some((n) => n !== 1)) {
    throw new Error(
      `Cannot benchmark: update ended ${summary.status} with ${summary.jobs.length} job(s) ` +
        `fetching ${days.join(",")} day(s) per symbol, expected 1 (${NEW_SESSION})\n${run.stderr}`,
    );
  }
  return { ...run, barsWritten: summary.jobs.reduce((sum, job) => sum + job.barsWritten, 0) };
}

function _paired(
  name: string,
  unit: Figure["unit"],
  update: number[],
  ingest: number[],
  target: number | null,
): Figure {
  const { ratio, ratios } = pairRatios(update, ingest);
  return { name, unit, update: median(update), ingest: median(ingest), ratio, ratios, target };
}

function _render(report: Report): string {
  const { workload, setup, samples } = report;
  const show = (value: number, unit: Figure["unit"]) =>
    unit === "ms" ? formatMs(value) : formatBytes(value);
  const part = (s: Sample) =>
    `${formatCount(s.barsWritten)} bars, ${s.parquetFiles} Parquet files written, ` +
    `${s.parquetReplaced} replaced, ${formatBytes(s.parquetBytes)} ` +
    `(kernel ${bytesOrNa(s.kernelWriteBytes)}) in ${formatMs(s.wallMs)}`;
  const lines = [
    "",
    `MarketPipe update benchmark, ${report.startedAt}, tree ${report.revision ?? "unknown"}`,
    machineLine(report.machine),
    `workload  ${workload.symbols} symbols, 1m; stored ${workload.storedStart}..` +
    `${workload.storedEnd} (${workload.storedDays} trading days, ${formatCount(setup.bars)} bars ` +
    `in ${setup.parquetFiles} files, ${formatBytes(setup.parquetBytes)}, ingested in ` +
    `${formatMs(setup.wallMs)}); new session ${workload.newSession}, ${NOW_ENV}=${workload.now}; ` +
    `fake seed ${workload.seed}, gapRate ${workload.gapRate}, ${workload.workers} workers, ` +
    `${workload.runs} runs`,
    "pairs     update on a hard-linked copy of the stored month vs ingest of the new session " +
    "into an empty store (CLI children); bytes = sizes of the Parquet files they created or " +
    "replaced; kernel = write_bytes of the child, all files",
    `          run 1, update: ${part(samples.update[0])}`,
    `          run 1, ingest: ${part(samples.ingest[0])}`,
    "",
  ];
  for (const figure of report.figures) {
    const { spread, verdict } = ratioVerdict(figure);
    lines.push(
      `update, ${figure.name}: update ${show(figure.update, figure.unit)} vs ingest into an ` +
        `empty store ${show(figure.ingest, figure.unit)} = ${figure.ratio.toFixed(2)}x${spread} ` +
        `(${verdict})`,
    );
  }
  lines.push("", "PASS/MISS is information, not a test: the process exits 0 either way.");
  return lines.join("\n");
}

function _parseFlags(args: string[]): "help" | { workload: Workload; keep: boolean } {
  const { values } = parseArgs({
    args,
    options: {
      symbols: { type: "string", default: "100" },
      runs: { type: "string", default: "3" },
      workers: { type: "string", default: "4" },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return "help";
  const symbolCount = positiveInt(values.symbols, "--symbols", 10_000);
  return {
    keep: values.keep,
    workload: {
      symbols: benchSymbols(symbolCount),
      runs: positiveInt(values.runs, "--runs", 100),
      workers: positiveInt(values.workers, "--workers", 64),
    },
  };
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
