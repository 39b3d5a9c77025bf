/**
 * Measuring helpers of the benchmarks: run a child process while recording its wall time and
 * peak RSS, sum up a directory tree, take medians, format figures.
 *
 * @module
 */
import { formatBytes, formatCount } from "../core/format.ts";
import { isFile } from "../storage/fs.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const _ROOT = fileURLToPath(new URL("../", import.meta.url));

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
      stats.allocatedBytes = stats.allocatedBytes === null || inner.allocatedBytes === null
        ? null
        : stats.allocatedBytes + inner.allocatedBytes;
    } else if (entry.isFile && filter(entry.name)) {
      const info = await Deno.stat(path);
      stats.files++;
      stats.bytes += info.size;
      stats.allocatedBytes = stats.allocatedBytes === null || info.blocks === null
        ? null
        : stats.allocatedBytes + info.blocks * 512;
    }
  }
  return stats;
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

/** `git describe --always --dirty` of the tree under test, or null without git. */
export async function gitRevision(): Promise<string | null> {
  try {
    const output = await new Deno.Command("git", {
      args: ["describe", "--always", "--dirty"],
      cwd: _ROOT,
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
