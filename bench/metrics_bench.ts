/**
 * The monitoring benchmark (issue 6). Two figures against their targets:
 *
 * 1. **Scrape latency** of `/metrics` served by the real `marketpipe metrics --port` (spawned on a
 *    free port on 127.0.0.1) over a data directory holding 1,000 symbols' freshness series plus
 *    the MarketPipe metric set: p50/p99 over a bounded number of requests, idle and while a
 *    separate `marketpipe ingest` process writes to the same data directory. The limit is
 *    prom-client's own `register.metrics()` in this process, for a registry holding the same
 *    series (the freshness gauges, the same counter and histogram label sets, the live gauges and
 *    the default process metrics), timed alternately with our requests so both see the same load.
 *    Target: our p99 under 3x the limit, read two ways: against the limit's p99 (like for like)
 *    and, stricter, against its median. For context, each round also times the same scrape done
 *    in-process (`openTelemetry` + `scrape()`, no HTTP) and the transport floor: a trivial server
 *    in another process answering a fixed body of the same size.
 * 2. **Recording overhead**: the ingest engine in-process (`ingest()` with `openStore` and the fake
 *    provider), the same workload with `metrics: undefined` ("off": the CLI has no off switch) and
 *    with a Telemetry's metrics and its flush timer running ("on", its final flush included),
 *    alternating runs on fresh data directories, medians. Target: under 5% less throughput.
 *    Also reported: the median of per-pair ratios and the overhead in CPU time per bar, which
 *    other work on a shared machine moves far less than wall time.
 *
 * Prints each figure, the limit, the ratio and PASS/MISS, and writes the report as JSON to
 * `bench/out/metrics-<timestamp>.json`. Timing never fails the process.
 *
 * ```sh
 * deno run -A bench/metrics_bench.ts
 * deno run -A bench/metrics_bench.ts --requests 100 --runs 3     # a quicker run
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { collectDefaultMetrics, type Counter, Gauge, type Histogram } from "prom-client";
import { tradingDays } from "../core/mod.ts";
import { createMetrics } from "../core/metrics.ts";
import { ingest, type IngestRequest } from "../core/ingest.ts";
import { fake } from "../providers/mod.ts";
import {
  META_FILE,
  migrate,
  openDatabase,
  openStore,
  openTelemetry,
  readFreshness,
  readMetricTotals,
  recordFreshness,
} from "../storage/mod.ts";
import {
  childEnv,
  denoRun,
  formatCount,
  formatMs,
  freePort,
  type machineInfo,
  MAIN,
  median,
  parseFlagsOr,
  printAndWriteReport,
  reportHead,
  ROOT,
  rotate,
} from "./measure.ts";

/** Targets of the issue. */
const TARGETS = { scrapeRatio: 3, overhead: 0.05 } as const;

/** First trading day of every workload; each concurrent ingest takes the next run of days. */
const FIRST_DAY = "2024-03-01";
const FAKE_PARAMS = { seed: 0, gapRate: 0.01 };

const USAGE = `Usage: deno run -A bench/metrics_bench.ts [options]

  --series N            stored symbols with a freshness series (default 1000)
  --requests N          timed scrapes per phase, each paired with a limit call (default 300)
  --ingest-symbols N    symbols of each concurrent CLI ingest (default 40)
  --ingest-days N       trading days of each concurrent CLI ingest (default 10)
  --runs N              overhead runs per side (metrics on, off), alternating (default 7)
  --overhead-symbols N  symbols of the in-process overhead workload (default 20)
  --overhead-days N     trading days of the in-process overhead workload (default 10)`;

interface Flags {
  series: number;
  requests: number;
  ingestSymbols: number;
  ingestDays: number;
  runs: number;
  overheadSymbols: number;
  overheadDays: number;
}

/** Latency figures of one side of a phase, in milliseconds. */
interface Latency {
  samples: number;
  p50: number;
  p99: number;
  max: number;
}

/** Timings of one phase; each round times every side once, in this order. */
interface Rounds {
  /** `GET /metrics` of `marketpipe metrics --port`, body read. */
  ours: number[];
  /** The same scrape in this process: `telemetry.scrape()` over the same data directory. */
  inProcess: number[];
  /** `GET` of a fixed body of the same size from a trivial server in another process. */
  transport: number[];
  /** prom-client `register.metrics()` in this process. */
  limit: number[];
}

interface ScrapePhase {
  ours: Latency;
  inProcess: Latency;
  transport: Latency;
  limit: Latency;
  /** Concurrent ingest processes run during the phase (0 when idle). */
  ingests: number;
  /** Scrapes discarded because no ingest job was running when they were answered. */
  discarded: number;
}

interface OverheadSide {
  runsMs: number[];
  medianMs: number;
  barsPerSecond: number;
  /** CPU seconds (user + system, all threads of this process) per run. */
  cpuSeconds: number[];
  /** Bars per CPU second at the median CPU time: barely moved by other work on the machine. */
  barsPerCpuSecond: number;
}

interface Check {
  name: string;
  ours: number;
  limit: number;
  ratio: number;
  target: string;
  pass: boolean;
}

async function main(args: string[]): Promise<number> {
  const flags = parseFlagsOr(() => _parseFlags(args), USAGE);
  if (typeof flags === "number") return flags;
  const head = await reportHead(new Date().toISOString());
  const temp = await Deno.makeTempDir({ prefix: "marketpipe-metrics-bench-" });
  try {
    console.error(`Scrape latency: ${flags.series} freshness series, ${flags.requests} requests`);
    const scrape = await _scrapeBench(flags, join(temp, "scrape"));
    console.error(
      `Recording overhead: ${flags.overheadSymbols} symbols x ${flags.overheadDays} days, ` +
        `${flags.runs} runs per side`,
    );
    const overhead = await _overheadBench(flags, join(temp, "overhead"));
    const checks: Check[] = [
      _ratioCheck("idle p99 / limit p99", scrape.idle.ours.p99, scrape.idle.limit.p99),
      _ratioCheck("idle p99 / limit p50", scrape.idle.ours.p99, scrape.idle.limit.p50),
      _ratioCheck("ingest p99 / limit p99", scrape.busy.ours.p99, scrape.busy.limit.p99),
      _ratioCheck("ingest p99 / limit p50", scrape.busy.ours.p99, scrape.busy.limit.p50),
      {
        name: "recording overhead",
        ours: overhead.on.barsPerSecond,
        limit: overhead.off.barsPerSecond,
        ratio: overhead.overhead,
        target: `< ${TARGETS.overhead * 100}%`,
        pass: overhead.overhead < TARGETS.overhead,
      },
    ];
    const report = {
      ...head,
      /** 1, 5 and 15 minute load averages at the end: a busy machine makes every figure noisy. */
      loadAverageAtEnd: Deno.loadavg(),
      flags,
      scrape,
      overhead,
      targets: TARGETS,
      checks,
    };
    return await printAndWriteReport("metrics-", report, _render);
  } finally {
    await Deno.remove(temp, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Scrape latency

async function _scrapeBench(flags: Flags, dataDir: string) {
  const symbols = _tickers(flags.series);
  // The MarketPipe metric set: one real ingest writes counters, histograms and a job outcome.
  await _runCli(_ingestArgs(dataDir, symbols.slice(0, 2), _days(0, 1)));
  const db = openDatabase(join(dataDir, META_FILE));
  try {
    migrate(db);
    const now = Date.now();
    recordFreshness(
      db,
      symbols.map((symbol, i) => ({ symbol, timeframe: "1m", lastTs: now - i * 60_000 })),
      now,
    );
  } finally {
    db.close();
  }

  const server = await _startServer(dataDir);
  const inProcess = await openTelemetry(dataDir);
  let floor: Awaited<ReturnType<typeof _startTransportFloor>> | undefined;
  try {
    const first = await _timedScrape(server.url);
    floor = await _startTransportFloor(first.text, dataDir);
    const limit = _limitRegistry(dataDir);
    const limitText = await limit.metrics();
    const shape = {
      freshnessSeries: _countSamples(first.text, "mp_data_last_bar_timestamp_seconds"),
      oursSeries: _countSamples(first.text),
      limitSeries: _countSamples(limitText),
      oursBytes: first.text.length,
      limitBytes: limitText.length,
    };
    if (shape.freshnessSeries !== flags.series) {
      throw new Error(
        `Cannot benchmark: the scrape shows ${shape.freshnessSeries} freshness series, expected ${flags.series}`,
      );
    }
    const round = async (rounds: Rounds, keep: (scrape: string) => boolean) => {
      const ours = await _timedScrape(server.url);
      const transport = await _timedScrape(floor!.url);
      const local = await _time(() => inProcess.scrape());
      const limitMs = await _time(() => limit.metrics());
      if (!keep(ours.text)) return false;
      rounds.ours.push(ours.ms);
      rounds.transport.push(transport.ms);
      rounds.inProcess.push(local);
      rounds.limit.push(limitMs);
      return true;
    };
    const newRounds = (): Rounds => ({ ours: [], inProcess: [], transport: [], limit: [] });
    // Warm-up of every side (JIT, prepared statements, connection reuse).
    const warmUp = newRounds();
    for (let i = 0; i < 20; i++) await round(warmUp, () => true);

    const idle = newRounds();
    while (idle.ours.length < flags.requests) await round(idle, () => true);

    const busy = newRounds();
    let ingests = 0;
    let discarded = 0;
    const maxIngests = 20;
    while (busy.ours.length < flags.requests) {
      if (ingests === maxIngests) {
        throw new Error(
          `Cannot benchmark: ${maxIngests} concurrent ingests gave only ${busy.ours.length} scrapes while a job ran; raise --ingest-days`,
        );
      }
      const days = _days(1 + ingests * flags.ingestDays, flags.ingestDays);
      const child = _spawnCli(
        _ingestArgs(dataDir, symbols.slice(0, flags.ingestSymbols), days),
      );
      ingests++;
      let exited = false;
      // Read its output as it comes, so a full pipe never stalls the ingest.
      const output = child.output().finally(() => exited = true);
      while (!exited && busy.ours.length < flags.requests) {
        // Only rounds answered while the other process held a running job count.
        const kept = await round(busy, (text) => _sampleValue(text, "mp_jobs_running") >= 1);
        if (!kept) discarded++;
      }
      const result = await output;
      if (result.code !== 0) {
        throw new Error(
          `Cannot benchmark: the ingest exited with code ${result.code}\n${
            new TextDecoder().decode(result.stderr)
          }`,
        );
      }
    }
    return {
      shape,
      idle: _phase(idle, 0, 0),
      busy: _phase(busy, ingests, discarded),
    };
  } finally {
    await floor?.stop();
    await inProcess.close();
    await server.stop();
  }
}

function _phase(rounds: Rounds, ingests: number, discarded: number): ScrapePhase {
  return {
    ours: _latency(rounds.ours),
    inProcess: _latency(rounds.inProcess),
    transport: _latency(rounds.transport),
    limit: _latency(rounds.limit),
    ingests,
    discarded,
  };
}

function _latency(values: number[]): Latency {
  return {
    samples: values.length,
    p50: _percentile(values, 0.5),
    p99: _percentile(values, 0.99),
    max: Math.max(...values),
  };
}

/** Nearest-rank percentile. */
function _percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

async function _timedScrape(url: string): Promise<{ ms: number; text: string }> {
  const started = performance.now();
  const response = await fetch(url);
  const text = await response.text();
  const ms = performance.now() - started;
  if (!response.ok) throw new Error(`Cannot scrape ${url}: HTTP ${response.status}\n${text}`);
  return { ms, text };
}

async function _time(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** The transport floor: another Deno process answering every request with a fixed body. */
async function _startTransportFloor(body: string, dir: string) {
  const bodyFile = join(dir, "floor-body.txt");
  const script = join(dir, "floor-server.ts");
  await Deno.writeTextFile(bodyFile, body);
  await Deno.writeTextFile(
    script,
    `const body = await Deno.readTextFile(Deno.args[0]);
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.serve({ hostname: "127.0.0.1", port: Number(Deno.args[1]), onListen() {} }, () =>
  new Response(body, { headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" } }));
`,
  );
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      `--allow-read=${bodyFile}`,
      script,
      bodyFile,
      String(port),
    ],
    env: childEnv({ TZ: "UTC" }),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return await _waitUntilUp(`http://127.0.0.1:${port}/`, child, "the transport-floor server");
}

/**
 * The limit: a prom-client registry holding what a scrape of this data directory holds, the
 * MarketPipe metric set with the stored label sets, the freshness gauges, the live gauges and
 * the default process metrics.
 */
function _limitRegistry(dataDir: string) {
  const db = openDatabase(join(dataDir, META_FILE));
  let totals, freshness;
  try {
    totals = readMetricTotals(db);
    freshness = readFreshness(db, 1_000_000);
  } finally {
    db.close();
  }
  const metrics = createMetrics();
  const registers = [metrics.registry];
  const byName = new Map<string, Counter<string> | Histogram<string>>();
  for (const [key, metric] of Object.entries(metrics)) {
    if (key === "registry") continue;
    const m = metric as Counter<string> | Histogram<string>;
    byName.set((m as unknown as { name: string }).name, m);
  }
  for (const series of totals) {
    const metric = byName.get(series.family);
    if (!metric) continue;
    if (series.kind === "counter") (metric as Counter<string>).inc(series.labels, series.value);
    else if (series.name.endsWith("_count")) {
      (metric as Histogram<string>).observe(series.labels, 0.1);
    }
  }
  const fresh = new Gauge({
    name: "mp_data_last_bar_timestamp_seconds",
    help: "Start of the newest stored bar per symbol and timeframe (Unix seconds)",
    labelNames: ["symbol", "timeframe"],
    registers,
  });
  for (const f of freshness) {
    fresh.set({ symbol: f.symbol, timeframe: f.timeframe }, f.lastTs / 1000);
  }
  new Gauge({ name: "mp_jobs_running", help: "Ingest jobs running now", registers }).set(0);
  new Gauge({ name: "marketpipe_event_loop_lag_seconds", help: "Event-loop lag", registers }).set(
    0,
  );
  collectDefaultMetrics({ register: metrics.registry });
  return metrics.registry;
}

/** Sample lines of an exposition, all or of one name. */
function _countSamples(text: string, name?: string): number {
  return text.split("\n").filter((line) =>
    line !== "" && !line.startsWith("#") &&
    (name === undefined || line.startsWith(name + "{") || line.startsWith(name + " "))
  ).length;
}

function _sampleValue(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : NaN;
}

async function _startServer(dataDir: string) {
  const port = freePort();
  const child = _spawnCli(["metrics", "--port", String(port), "--data-dir", dataDir]);
  await child.stdout.cancel();
  return await _waitUntilUp(`http://127.0.0.1:${port}/metrics`, child, "the metrics server");
}

/** Poll `url` until it answers 200 (30 s at most); `stop()` ends the child and checks its exit. */
async function _waitUntilUp(url: string, child: Deno.ChildProcess, what: string) {
  const stop = async () => {
    child.kill("SIGTERM");
    const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
    return { code: status.code, stderr };
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.ok) break;
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // connection refused: not up yet
    }
    if (Date.now() > deadline) {
      const { stderr } = await stop();
      throw new Error(`Cannot benchmark: ${what} did not answer within 30 s\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    async stop() {
      const { code, stderr } = await stop();
      if (code !== 0) throw new Error(`${what} exited with code ${code}\n${stderr}`);
    },
  };
}

function _ingestArgs(dataDir: string, symbols: string[], days: string[]): string[] {
  return [
    "ingest",
    "--provider=fake",
    `--symbols=${symbols.join(",")}`,
    `--start=${days[0]}`,
    `--end=${days.at(-1)}`,
    `--data-dir=${dataDir}`,
  ];
}

function _spawnCli(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: denoRun(MAIN, args),
    cwd: ROOT,
    env: childEnv({ TZ: "UTC" }),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function _runCli(args: string[]): Promise<void> {
  const output = await _spawnCli(args).output();
  if (output.code !== 0) {
    throw new Error(
      `Cannot benchmark: marketpipe ${args[0]} exited with code ${output.code}\n${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Recording overhead

async function _overheadBench(flags: Flags, root: string) {
  const symbols = _tickers(flags.overheadSymbols);
  const days = _days(0, flags.overheadDays);
  const request: IngestRequest = {
    provider: "fake",
    feed: "sip",
    adjustment: "raw",
    timeframe: "1m",
    params: FAKE_PARAMS,
    symbols,
    start: days[0],
    end: days.at(-1)!,
    workers: 4,
    force: false,
  };
  let bars = 0;
  let run = 0;
  const once = async (withMetrics: boolean): Promise<{ ms: number; cpu: number }> => {
    const dataDir = join(root, `run-${run++}`);
    const store = await openStore(dataDir, { command: "bench" });
    try {
      const provider = fake({ seed: FAKE_PARAMS.seed, gapRate: FAKE_PARAMS.gapRate });
      const started = performance.now();
      const cpuStarted = cpuUsage();
      // "On" is what the CLI does: open telemetry, pass its metrics, close (final flush) at the end.
      const telemetry = withMetrics ? await openTelemetry(dataDir) : undefined;
      try {
        const summary = await ingest({ provider, store, metrics: telemetry?.metrics }, request);
        if (summary.status !== "succeeded") {
          throw new Error(`Cannot benchmark: the ingest ended ${summary.status}`);
        }
        bars = summary.barsWritten;
      } finally {
        await telemetry?.close();
      }
      const cpu = cpuUsage(cpuStarted);
      return { ms: performance.now() - started, cpu: (cpu.user + cpu.system) / 1e6 };
    } finally {
      store.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  };
  // Warm-up: DuckDB loads, the JIT settles.
  await once(false);
  await once(true);
  const off: { ms: number; cpu: number }[] = [];
  const on: { ms: number; cpu: number }[] = [];
  for (let i = 0; i < flags.runs; i++) {
    // Alternate which side goes first, so a drift in machine load hits both alike.
    for (const withMetrics of rotate([false, true], i)) {
      (withMetrics ? on : off).push(await once(withMetrics));
    }
  }
  const side = (runs: { ms: number; cpu: number }[]): OverheadSide => {
    const runsMs = runs.map((r) => r.ms);
    const cpuSeconds = runs.map((r) => r.cpu);
    const medianMs = median(runsMs);
    return {
      runsMs,
      medianMs,
      barsPerSecond: bars / (medianMs / 1000),
      cpuSeconds,
      barsPerCpuSecond: bars / median(cpuSeconds),
    };
  };
  const offSide = side(off);
  const onSide = side(on);
  return {
    workload: { symbols: symbols.length, days: days.length, bars, workers: request.workers },
    off: offSide,
    on: onSide,
    /** Throughput lost to metric recording: 1 - on/off of the medians (the verdict). */
    overhead: 1 - onSide.barsPerSecond / offSide.barsPerSecond,
    /** The same from each alternating pair (less sensitive to drifting machine load): median. */
    pairedOverhead: median(off.map((r, i) => 1 - r.ms / on[i].ms)),
    /** The same in CPU time per bar (medians). */
    cpuOverhead: 1 - onSide.barsPerCpuSecond / offSide.barsPerCpuSecond,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

function _ratioCheck(name: string, ours: number, limit: number): Check {
  const ratio = ours / limit;
  return {
    name,
    ours,
    limit,
    ratio,
    target: `< ${TARGETS.scrapeRatio}x limit`,
    pass: ratio < TARGETS.scrapeRatio,
  };
}

function _render(report: {
  machine: Awaited<ReturnType<typeof machineInfo>>;
  loadAverageAtEnd: number[];
  revision: string | null;
  scrape: Awaited<ReturnType<typeof _scrapeBench>>;
  overhead: Awaited<ReturnType<typeof _overheadBench>>;
  checks: Check[];
}): string {
  const { scrape, overhead, machine } = report;
  const lines = [
    `MarketPipe monitoring benchmark (${
      report.revision ?? "unknown revision"
    }, ${machine.cores} cores, ${machine.cpu}, load ${
      machine.loadAverage.map((n) => n.toFixed(2)).join(" ")
    }, at the end ${report.loadAverageAtEnd.map((n) => n.toFixed(2)).join(" ")})`,
  ];
  if (Math.max(machine.loadAverage[0], report.loadAverageAtEnd[0]) > machine.cores / 2) {
    lines.push(
      `warning: the machine was busy (1-minute load above ${machine.cores / 2}); figures are noisy`,
    );
  }
  lines.push(
    "",
    `Scrape of /metrics: ${formatCount(scrape.shape.oursSeries)} samples (${
      formatCount(scrape.shape.freshnessSeries)
    } freshness), ${formatCount(scrape.shape.oursBytes)} bytes; limit registry ${
      formatCount(scrape.shape.limitSeries)
    } samples, ${formatCount(scrape.shape.limitBytes)} bytes`,
    "",
    "phase          side                                      p50        p99        max",
  );
  const phase = (name: string, p: ScrapePhase) => {
    const row = (side: string, l: Latency) =>
      lines.push(
        `${name.padEnd(13)}  ${side.padEnd(38)}  ${formatMs(l.p50).padStart(8)}   ${
          formatMs(l.p99).padStart(8)
        }   ${formatMs(l.max).padStart(8)}`,
      );
    row("ours: GET /metrics (metrics --port)", p.ours);
    row("  same scrape in-process, no HTTP", p.inProcess);
    row("  transport floor: fixed body over HTTP", p.transport);
    row("limit: prom-client register.metrics()", p.limit);
    lines.push(
      `${"".padEnd(13)}  ${p.ours.samples} rounds${
        p.ingests
          ? `, ${p.ingests} concurrent ingest(s); ${p.discarded} round(s) outside a running job dropped`
          : ""
      }`,
    );
  };
  phase("idle", scrape.idle);
  phase("during ingest", scrape.busy);
  lines.push(
    "",
    `Ingest engine in-process, ${overhead.workload.symbols} symbols x ${overhead.workload.days} days (${
      formatCount(overhead.workload.bars)
    } bars), median of ${overhead.on.runsMs.length} alternating runs per side:`,
    `  metrics off  ${formatMs(overhead.off.medianMs).padStart(8)}  ${
      formatCount(overhead.off.barsPerSecond)
    } bars/s   runs ${overhead.off.runsMs.map((ms) => ms.toFixed(0)).join(" ")} ms`,
    `  metrics on   ${formatMs(overhead.on.medianMs).padStart(8)}  ${
      formatCount(overhead.on.barsPerSecond)
    } bars/s   runs ${overhead.on.runsMs.map((ms) => ms.toFixed(0)).join(" ")} ms`,
    `  overhead ${(overhead.overhead * 100).toFixed(1)}% (medians), ${
      (overhead.pairedOverhead * 100).toFixed(1)
    }% (median of pairs), ${(overhead.cpuOverhead * 100).toFixed(1)}% in CPU time per bar (${
      formatCount(overhead.off.barsPerCpuSecond)
    } vs ${formatCount(overhead.on.barsPerCpuSecond)} bars per CPU second)`,
    "",
    "check                         ours        limit       ratio     target          verdict",
  );
  for (const c of report.checks) {
    const isOverhead = c.name === "recording overhead";
    const fmt = (n: number) => isOverhead ? `${formatCount(n)}/s` : formatMs(n);
    lines.push(
      `${c.name.padEnd(28)}  ${fmt(c.ours).padEnd(10)}  ${fmt(c.limit).padEnd(10)}  ${
        (isOverhead ? `${(c.ratio * 100).toFixed(1)}%` : `${c.ratio.toFixed(2)}x`).padEnd(8)
      }  ${c.target.padEnd(14)}  ${c.pass ? "PASS" : "MISS"}`,
    );
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Workload helpers

/** `count` distinct valid tickers: AAAA, AAAB, ... */
function _tickers(count: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    let text = "";
    for (let n = i, k = 0; k < 4; k++, n = Math.floor(n / 26)) {
      text = String.fromCharCode(65 + (n % 26)) + text;
    }
    return text;
  });
}

/** `count` trading days starting `offset` trading days after FIRST_DAY. */
function _days(offset: number, count: number): string[] {
  const days = tradingDays(FIRST_DAY, "2030-12-31").slice(offset, offset + count);
  if (days.length < count) throw new RangeError(`Cannot plan ${count} days at offset ${offset}`);
  return days;
}

function _parseFlags(args: string[]): Flags | "help" {
  const { values, positionals } = parseArgs({
    args,
    options: {
      series: { type: "string", default: "1000" },
      requests: { type: "string", default: "300" },
      "ingest-symbols": { type: "string", default: "40" },
      "ingest-days": { type: "string", default: "10" },
      runs: { type: "string", default: "7" },
      "overhead-symbols": { type: "string", default: "20" },
      "overhead-days": { type: "string", default: "10" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) return "help";
  if (positionals.length > 0) throw new TypeError(`Unexpected argument "${positionals[0]}"`);
  return {
    series: _positiveInt(values.series, "--series", 100_000),
    requests: _positiveInt(values.requests, "--requests", 100_000),
    ingestSymbols: _positiveInt(values["ingest-symbols"], "--ingest-symbols", 1_000),
    ingestDays: _positiveInt(values["ingest-days"], "--ingest-days", 100),
    runs: _positiveInt(values.runs, "--runs", 100),
    overheadSymbols: _positiveInt(values["overhead-symbols"], "--overhead-symbols", 1_000),
    overheadDays: _positiveInt(values["overhead-days"], "--overhead-days", 250),
  };
}

function _positiveInt(text: string, name: string, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new RangeError(`Invalid ${name} "${text}": expected an integer from 1 to ${max}`);
  }
  return n;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
