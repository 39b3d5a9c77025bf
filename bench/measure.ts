/**
 * Measuring helpers of the benchmarks: run a child process while recording its wall time, peak
 * RSS and bytes written, list and copy data directories, sum up a directory tree, take medians,
 * format figures, parse flags and write reports.
 *
 * @module
 */
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { formatBytes, formatCount } from "../core/format.ts";
import type { Bar } from "../core/mod.ts";
import { generateFakeDay } from "../providers/mod.ts";
import { isFile, pathExists } from "../storage/fs.ts";
import {
  META_FILE,
  MetaStore,
  migrate,
  openDatabase,
  openDuckDB,
  writeBars,
  writeLayoutFile,
} from "../storage/mod.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, where the benchmarks run their children. */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** The CLI's entry point. */
export const MAIN = join(ROOT, "main.ts");
/** The fake provider's seed in the benches that ingest through the CLI. */
export const FAKE_SEED = 0;
/** The fake provider's gap rate in the benches that ingest through the CLI. */
export const FAKE_GAP_RATE = 0.01;
const _OUT_DIR = fileURLToPath(new URL("./out/", import.meta.url));

/** What {@link runMeasured} saw of one child process. */
export interface ChildRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, measured by the parent. */
  wallMs: number;
  /** Peak resident set size of the child in bytes, or null when it cannot be measured here. */
  peakRssBytes: number | null;
  /** User + system CPU seconds of the child (only with `/usr/bin/time`). */
  cpuSeconds: number | null;
  /** How the peak RSS was measured. */
  rssMethod: "/usr/bin/time -v" | "/proc VmHWM polling" | "unavailable";
}

/** Options of {@link runMeasured}. */
export interface RunMeasuredOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Kills the child when aborted. */
  signal?: AbortSignal;
  /** Where `/usr/bin/time -o` may write its report; required to use `/usr/bin/time`. */
  scratchDir?: string;
}

const _GNU_TIME = "/usr/bin/time";

/**
 * Run `command args...` to completion, piping its output, and measure its wall time and peak RSS:
 * under GNU `/usr/bin/time -v` when installed, otherwise by polling `/proc/<pid>/status` VmHWM.
 */
export async function runMeasured(
  command: string,
  args: string[],
  options: RunMeasuredOptions = {},
): Promise<ChildRun> {
  const useTime = options.scratchDir !== undefined && await isFile(_GNU_TIME);
  const report = useTime ? join(options.scratchDir!, `time-${crypto.randomUUID()}.txt`) : "";
  const child = new Deno.Command(useTime ? _GNU_TIME : command, {
    args: useTime ? ["-v", "-o", report, command, ...args] : args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.env !== undefined,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: options.signal,
  });
  const started = performance.now();
  const process = child.spawn();
  let peakKb = 0;
  let polling = !useTime;
  const poller = polling
    ? _pollHighWaterMark(process.pid, (kb) => peakKb = kb, () => polling)
    : undefined;
  const output = await process.output();
  const wallMs = performance.now() - started;
  polling = false;
  await poller;
  const decoder = new TextDecoder();
  const run: ChildRun = {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    wallMs,
    peakRssBytes: null,
    cpuSeconds: null,
    rssMethod: "unavailable",
  };
  if (useTime) {
    const text = await Deno.readTextFile(report);
    await Deno.remove(report);
    const rssKb = _timeField(text, "Maximum resident set size (kbytes)");
    if (rssKb === undefined) {
      throw new Error(`Cannot read the peak RSS from ${_GNU_TIME} -v: got ${JSON.stringify(text)}`);
    }
    run.peakRssBytes = rssKb * 1024;
    const user = _timeField(text, "User time (seconds)");
    const system = _timeField(text, "System time (seconds)");
    run.cpuSeconds = user !== undefined && system !== undefined ? user + system : null;
    run.rssMethod = "/usr/bin/time -v";
  } else if (peakKb > 0) {
    run.peakRssBytes = peakKb * 1024;
    run.rssMethod = "/proc VmHWM polling";
  }
  return run;
}

async function _pollHighWaterMark(
  pid: number,
  onValue: (kb: number) => void,
  keepGoing: () => boolean,
): Promise<void> {
  const path = `/proc/${pid}/status`;
  while (keepGoing()) {
    try {
      const match = /^VmHWM:\s+(\d+) kB/m.exec(await Deno.readTextFile(path));
      if (match) onValue(Number(match[1]));
    } catch (error) {
      // The child has exited (or this is not Linux): the last value read is the peak.
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function _timeField(text: string, label: string): number | undefined {
  const line = text.split("\n").find((l) => l.trim().startsWith(label + ":"));
  if (line === undefined) return undefined;
  const value = Number(line.slice(line.indexOf(":") + 1).trim());
  return Number.isFinite(value) ? value : undefined;
}

/** Files and bytes under a directory. */
export interface TreeStats {
  files: number;
  /** Sum of file sizes. */
  bytes: number;
  /** Sum of allocated blocks (what `du` reports), or null where the OS does not say. */
  allocatedBytes: number | null;
}

/** Count the files under `dir` whose name passes `filter`, with their sizes. */
export async function treeStats(
  dir: string,
  filter: (name: string) => boolean = () => true,
): Promise<TreeStats> {
  const stats: TreeStats = { files: 0, bytes: 0, allocatedBytes: 0 };
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      const inner = await treeStats(path, filter);
      stats.files += inner.files;
      stats.bytes += inner.bytes;
      stats.allocatedBytes = sumOrNull(stats.allocatedBytes, inner.allocatedBytes);
    } else if (entry.isFile && filter(entry.name)) {
      const info = await Deno.stat(path);
      stats.files++;
      stats.bytes += info.size;
      stats.allocatedBytes = sumOrNull(stats.allocatedBytes, info.blocks && info.blocks * 512);
    }
  }
  return stats;
}

/** `a + b`, or null when either is null (a figure the OS does not give everywhere). */
export function sumOrNull(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : a + b;
}

/** The highest value, or null when any is null. */
export function maxOrNull(values: readonly (number | null)[]): number | null {
  return values.some((v) => v === null) ? null : Math.max(...(values as number[]));
}

/** For `.catch()` of a removal: a missing path is fine, any other error is thrown. */
export function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}

/** `items` rotated left by `by`: each run starts with another contender. */
export function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/** The figures of one child run that a report keeps per sample. */
export function runSample(run: ChildRun) {
  return { wallMs: run.wallMs, peakRssBytes: run.peakRssBytes, cpuSeconds: run.cpuSeconds };
}

/** Run `body` on a connection of a fresh DuckDB instance (`openDuckDB`), both closed after. */
export async function withDuckDB<T>(
  body: (connection: DuckDBConnection) => Promise<T>,
): Promise<T> {
  const instance = await openDuckDB();
  const connection = await instance.connect();
  try {
    return await body(connection);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("Cannot take the median of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Milliseconds as `850 ms`, `12.3 ms` or `6.06 s`. */
export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

export { formatBytes, formatCount };

/** {@link formatBytes}, or `n/a` for a figure that could not be measured. */
export function bytesOrNa(bytes: number | null): string {
  return bytes === null ? "n/a" : formatBytes(bytes);
}

/** `git describe --always --dirty` of the tree under test, or null without git. */
export async function gitRevision(): Promise<string | null> {
  try {
    const output = await new Deno.Command("git", {
      args: ["describe", "--always", "--dirty"],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return output.success ? new TextDecoder().decode(output.stdout).trim() : null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** The machine a benchmark ran on, for its report. */
export async function machineInfo() {
  let cpu = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1].trim() ?? cpu;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return {
    cores: navigator.hardwareConcurrency,
    cpu,
    memoryBytes: Deno.systemMemoryInfo().total,
    os: `${Deno.build.os} ${Deno.osRelease()} ${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    /** 1, 5 and 15 minute load averages when the run started: other work skews every figure. */
    loadAverage: Deno.loadavg(),
  };
}

/** A child run of {@link runDenoChild}: with the bytes the kernel says it wrote. */
export interface WritesRun extends ChildRun {
  /** `write_bytes` of the child (Linux; counted when pages are dirtied), or null. */
  kernelWriteBytes: number | null;
}

async function _kernelWriteBytes(): Promise<number | null> {
  try {
    const match = /^write_bytes:\s+(\d+)$/m.exec(await Deno.readTextFile("/proc/self/io"));
    return match ? Number(match[1]) : null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      return null;
    }
    throw error;
  }
}

/** Throw unless the child exited 0, with its stderr; `what` names it. */
export function checkChild(run: ChildRun, what: string): void {
  if (run.code !== 0) {
    throw new Error(
      `Cannot benchmark: ${what} exited with code ${run.code}\n${run.stderr}${run.stdout}`,
    );
  }
}

/**
 * A private folder on tmpfs when there is one, so that its writes never reach `write_bytes`;
 * `prefix` starts its name (`<prefix>scratch-` when it is not on tmpfs). The caller removes it.
 */
export async function scratchDir(prefix: string): Promise<string> {
  try {
    if ((await Deno.stat("/dev/shm")).isDirectory) {
      return await Deno.makeTempDir({ dir: "/dev/shm", prefix });
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return await Deno.makeTempDir({ prefix: `${prefix}scratch-` });
}

/**
 * A small, explicit environment for a child: nothing like MARKETPIPE_CONFIG may change the
 * workload. `NO_COLOR=1`, then `extra`, then PATH, HOME, DENO_DIR, TMPDIR and
 * DENO_NO_UPDATE_CHECK where set.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1", ...extra };
  for (const key of ["PATH", "HOME", "DENO_DIR", "TMPDIR", "DENO_NO_UPDATE_CHECK"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  return env;
}

/** A file of a data directory as seen by {@link listTree}. */
export interface FileState {
  ino: number | null;
  size: number;
  mtime: number;
}

/** Files by path relative to the listed directory, `/`-separated. */
export type Listing = Map<string, FileState>;

/** Every file under `dir` by path relative to it, with inode, size and mtime; none if missing. */
export async function listTree(
  dir: string,
  prefix = "",
  out: Listing = new Map(),
): Promise<Listing> {
  if (prefix === "" && !(await pathExists(dir))) return out;
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) {
      await listTree(dir, path, out);
    } else if (entry.isFile) {
      const info = await Deno.stat(join(dir, path));
      out.set(path, { ino: info.ino, size: info.size, mtime: info.mtime?.getTime() ?? 0 });
    }
  }
  return out;
}

/** The Parquet files of a listing whose path starts with `under` (all by default). */
export function parquetFiles(files: Listing, under = ""): [string, FileState][] {
  return [...files].filter(([path]) => path.startsWith(under) && path.endsWith(".parquet"));
}

/** Parquet files that are new or replaced in `after`, and those of `before` gone or replaced. */
export function parquetWritten(before: Listing, after: Listing) {
  let parquetBytes = 0;
  let parquetFiles = 0;
  let parquetReplaced = 0;
  for (const [path, now] of after) {
    if (!path.endsWith(".parquet")) continue;
    const old = before.get(path);
    if (
      old === undefined || old.ino !== now.ino || old.size !== now.size || old.mtime !== now.mtime
    ) {
      parquetBytes += now.size;
      parquetFiles++;
      if (old !== undefined) parquetReplaced++;
    }
  }
  for (const path of before.keys()) {
    if (path.endsWith(".parquet") && !after.has(path)) parquetReplaced++;
  }
  return { parquetBytes, parquetFiles, parquetReplaced };
}

/** Throw if a Parquet file of `files` (a listing of `dir`) is gone or changed in `dir` now. */
export async function checkUnchanged(dir: string, files: Listing): Promise<void> {
  const now = await listTree(dir);
  for (const [path, state] of parquetFiles(files)) {
    const seen = now.get(path);
    if (seen === undefined || seen.size !== state.size || seen.mtime !== state.mtime) {
      throw new Error(
        `Cannot benchmark: ${join(dir, path)} changed while a hard-linked copy was written to; ` +
          "stored Parquet files must be immutable",
      );
    }
  }
}

/**
 * Copy a data directory: Parquet files as hard links (they are immutable; a writer replaces them,
 * never edits them, and {@link checkUnchanged} verifies it), everything else as real copies.
 */
export async function linkCopy(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) await linkCopy(source, target);
    else if (entry.isFile && entry.name.endsWith(".parquet")) await Deno.link(source, target);
    else if (entry.isFile) await Deno.copyFile(source, target);
    else throw new Error(`Cannot copy ${source}: neither a file nor a folder`);
  }
}

/** The per-pair ratios `ours[i] / baseline[i]` and their median. */
export function pairRatios(
  ours: readonly number[],
  baseline: readonly number[],
): { ratio: number; ratios: number[] } {
  const ratios = ours.map((value, i) => value / baseline[i]);
  return { ratio: median(ratios), ratios };
}

/**
 * A bench's flags from `parse()`, or its exit code once handled: 0 after printing `usage` for
 * `"help"`, 2 after printing the error and `usage` when `parse` throws.
 */
export function parseFlagsOr<T extends object>(parse: () => T | "help", usage: string): T | number {
  let flags;
  try {
    flags = parse();
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  if (flags === "help") {
    console.log(usage);
    return 0;
  }
  return flags;
}

/** A whole number from 1 to `max` of flag `name`, or a RangeError naming it. */
export function positiveInt(text: string, name: string, max: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new RangeError(`Invalid ${name} "${text}": expected a whole number from 1 to ${max}`);
  }
  return value;
}

/**
 * Write `report` as JSON to `bench/out/<prefix><startedAt>.json` (colons as dashes, whole
 * seconds) and print `Report written to <file>` after a blank line.
 */
export async function writeReport(
  prefix: string,
  startedAt: string,
  report: unknown,
): Promise<void> {
  await Deno.mkdir(_OUT_DIR, { recursive: true });
  const file = join(
    _OUT_DIR,
    `${prefix}${startedAt.replaceAll(":", "-").replace(/\.\d+Z$/, "Z")}.json`,
  );
  await Deno.writeTextFile(file, JSON.stringify(report, null, 2) + "\n");
  console.log(`\nReport written to ${file}`);
}

/** What {@link withBenchDirs} gives a bench of CLI children. */
export interface BenchContext {
  temp: string;
  /** Where `/usr/bin/time` writes its reports: tmpfs when there is one, so no block I/O. */
  scratch: string;
  /** `symbols.txt` in `temp`: the symbols, one a line. */
  symbolsFile: string;
  env: Record<string, string>;
  /** Aborted by SIGINT. */
  signal: AbortSignal;
}

/**
 * Run `body` with a fresh temporary folder and a {@link scratchDir} (both named from `prefix`),
 * `symbols` written to `symbols.txt`, and SIGINT aborting the signal. Returns what `body` returns,
 * or 1 after printing the error (and its cause) it threw. Removes both folders after, but with
 * `keep` prints `Kept <temp>` instead of removing the temporary one.
 */
export async function withBenchDirs(
  prefix: string,
  options: { symbols: readonly string[]; env: Record<string, string>; keep: boolean },
  body: (context: BenchContext) => Promise<number>,
): Promise<number> {
  const controller = new AbortController();
  const onInterrupt = () => controller.abort(new Error("Interrupted"));
  Deno.addSignalListener("SIGINT", onInterrupt);
  const temp = await Deno.makeTempDir({ prefix });
  const scratch = await scratchDir(prefix);
  try {
    const symbolsFile = join(temp, "symbols.txt");
    await Deno.writeTextFile(symbolsFile, options.symbols.join("\n") + "\n");
    return await body({ temp, scratch, symbolsFile, env: options.env, signal: controller.signal });
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    if ((error as Error).cause !== undefined) console.error("caused by:", (error as Error).cause);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await Deno.remove(scratch, { recursive: true });
    if (options.keep) console.error(`Kept ${temp}`);
    else await Deno.remove(temp, { recursive: true });
  }
}

/** `deno run -A --quiet <script> args...`: the arguments of a Deno child running `script`. */
export function denoRun(script: string, args: string[]): string[] {
  return ["run", "-A", "--quiet", script, ...args];
}

/** The synthetic symbols S000, S001, ... of a workload of `count` symbols. */
export function benchSymbols(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `S${String(i).padStart(3, "0")}`);
}

/**
 * {@link runMeasured} of a Deno child (`deno args...`) in {@link ROOT} with `context` that must
 * exit 0 (else it throws, naming it `what`), with the bytes it wrote from the kernel: Linux adds a
 * reaped child's I/O counters to its parent's, so `/proc/self/io` before and after (this process
 * must write nothing meanwhile, hence the tmpfs `context.scratch`, see {@link scratchDir}).
 */
export async function runDenoChild(
  context: BenchContext,
  args: string[],
  what: string,
): Promise<WritesRun> {
  const before = await _kernelWriteBytes();
  const run = await runMeasured(Deno.execPath(), args, {
    cwd: ROOT,
    env: context.env,
    signal: context.signal,
    scratchDir: context.scratch,
  });
  const after = await _kernelWriteBytes();
  context.signal.throwIfAborted();
  checkChild(run, what);
  return { ...run, kernelWriteBytes: before === null || after === null ? null : after - before };
}

/** `marketpipe args...` (the real CLI, a Deno child) under {@link runDenoChild}. */
export async function runCli(
  context: BenchContext,
  args: string[],
  what: string,
): Promise<WritesRun> {
  return await runDenoChild(context, denoRun(MAIN, args), what);
}

/** What {@link runFakeIngest} ingests. */
export interface FakeIngest {
  start: string;
  end: string;
  timeframe: "1m" | "1d";
  workers: number;
  /** More flags of `ingest`. */
  extra?: string[];
}

/**
 * Run `marketpipe ingest` of the fake provider ({@link FAKE_SEED}, {@link FAKE_GAP_RATE}, the
 * symbols of `context.symbolsFile`) into `dataDir` and check that it succeeded; returns the run
 * with the bars it wrote.
 */
export async function runFakeIngest(
  context: BenchContext,
  dataDir: string,
  request: FakeIngest,
): Promise<WritesRun & { barsWritten: number }> {
  const run = await runCli(context, [
    "ingest",
    "--provider=fake",
    `--symbols-file=${context.symbolsFile}`,
    `--start=${request.start}`,
    `--end=${request.end}`,
    `--timeframe=${request.timeframe}`,
    `--fake-seed=${FAKE_SEED}`,
    `--fake-gap-rate=${FAKE_GAP_RATE}`,
    `--workers=${request.workers}`,
    `--data-dir=${dataDir}`,
    "--json",
    ...request.extra ?? [],
  ], `marketpipe ingest ${request.timeframe} ${request.start}..${request.end}`);
  const summary = JSON.parse(run.stdout) as { status: string; barsWritten: number };
  if (summary.status !== "succeeded") {
    throw new Error(`Cannot benchmark: an ingest ended ${summary.status}\n${run.stderr}`);
  }
  return { ...run, barsWritten: summary.barsWritten };
}

/**
 * The set-up of a benchmark over stored bars (not timed): fake 1m bars of every symbol and day
 * (those `keep` passes) written into `dataDir` with our partition writer, one `writeBars` a
 * symbol, with a fresh metadata database. Prints how long it took; returns the bars written.
 */
export async function writeFakeBars(
  dataDir: string,
  symbols: readonly string[],
  days: readonly string[],
  options: { duckdb: DuckDBInstance; keep?: (bar: Bar) => boolean },
): Promise<number> {
  const keep = options.keep ?? (() => true);
  // As openStore does for a new data directory: without it the bars read as layout 1.
  await Deno.mkdir(dataDir, { recursive: true });
  await writeLayoutFile(dataDir);
  const db = openDatabase(join(dataDir, META_FILE));
  migrate(db);
  const meta = new MetaStore(db, { command: "bench" });
  let bars = 0;
  const started = performance.now();
  try {
    for (const symbol of symbols) {
      const symbolBars = days.flatMap((day) => generateFakeDay(symbol, day).filter(keep));
      bars += symbolBars.length;
      await writeBars({ dataDir, duckdb: options.duckdb, meta }, symbolBars, { jobId: "bench" });
    }
  } finally {
    meta.close();
  }
  console.error(`  ${formatCount(bars)} bars in ${formatMs(performance.now() - started)}`);
  return bars;
}

/** `startedAt`, the tree's revision and the machine: how every report begins. */
export async function reportHead(startedAt: string) {
  return { startedAt, revision: await gitRevision(), machine: await machineInfo() };
}

/** The `machine` line of a rendered report, with the load average at the start. */
export function machineLine(machine: Awaited<ReturnType<typeof machineInfo>>): string {
  return `machine   ${machine.cores} cores, ${formatBytes(machine.memoryBytes)} RAM, ` +
    `${machine.os}, deno ${machine.deno}; load ` +
    `${machine.loadAverage.map((l) => l.toFixed(2)).join(" ")} at the start` +
    (machine.loadAverage[0] > 0.5 ? " (busy: the timings are noisy)" : "");
}

/**
 * How a compared figure is judged, for its rendered line: ` [median of N pairs, lo-hix]` when
 * there are several per-pair ratios (else empty), and the verdict against the target.
 */
export function ratioVerdict(
  figure: { ratios: readonly number[]; target: number | null; pass: boolean | null },
): { spread: string; verdict: string } {
  const spread = figure.ratios.length > 1
    ? ` [median of ${figure.ratios.length} pairs, ${Math.min(...figure.ratios).toFixed(2)}-${
      Math.max(...figure.ratios).toFixed(2)
    }x]`
    : "";
  const verdict = figure.target === null
    ? "no target"
    : `target <= ${figure.target}x, ${figure.pass ? "PASS" : "MISS"}`;
  return { spread, verdict };
}

/**
 * Flags that must be whole numbers above 0, by name without the dashes, as numbers; or null after
 * printing `error: --a, --b and --c must be whole numbers above 0` and `usage`.
 */
export function wholeNumberFlags<K extends string>(
  flags: Record<K, string>,
  usage: string,
): Record<K, number> | null {
  const names = Object.keys(flags) as K[];
  const values = Object.fromEntries(names.map((name) => [name, Number(flags[name])]));
  if (!Object.values<number>(values).every((n) => Number.isInteger(n) && n > 0)) {
    const listed = names.map((name) => `--${name}`);
    const list = listed.length > 1
      ? `${listed.slice(0, -1).join(", ")} and ${listed.at(-1)}`
      : listed[0];
    console.error(`error: ${list} must be whole numbers above 0\n\n${usage}`);
    return null;
  }
  return values as Record<K, number>;
}

/** Run `body` with a fresh temporary folder (named from `prefix`), removed after. */
export async function withTempDir<T>(
  prefix: string,
  body: (temp: string) => Promise<T>,
): Promise<T> {
  const temp = await Deno.makeTempDir({ prefix });
  try {
    return await body(temp);
  } finally {
    await Deno.remove(temp, { recursive: true });
  }
}

/**
 * The end of a bench's run: print `render(report)`, write the report (see {@link writeReport})
 * and return the exit code 0.
 */
export async function printAndWriteReport<R extends { startedAt: string }>(
  prefix: string,
  report: R,
  render: (report: R) => string,
): Promise<number> {
  console.log(render(report));
  await writeReport(prefix, report.startedAt, report);
  return 0;
}
