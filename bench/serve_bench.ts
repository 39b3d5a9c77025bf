/**
 * Benchmark of `marketpipe serve` against its limit, measured in the same run: a bare
 * `Deno.serve` handler that runs the same DuckDB read and the same serialization (no Hono, no
 * validation, no limits, no security headers). Load comes from wrk (Debian package) on
 * 127.0.0.1; each scenario runs for a bounded duration.
 *
 * Scenarios: `/api/bars` for one symbol-day of 1m bars and one symbol-year of 1d bars, as JSON
 * and Arrow; the symbol page (HTML with the chart data) at p50; and how fast the server answers
 * while an ingest runs in the same process, as a ratio to the same server idle just before.
 *
 * Usage: deno run -A bench/serve_bench.ts [--duration 20] [--connections 50]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { parseTimeframe } from "../core/types.ts";
import { openQueryEngine } from "../storage/mod.ts";
import { type BarFormat, barsPage } from "../web/mod.ts";
import { freePort, MAIN } from "./measure.ts";

const SELF = fileURLToPath(import.meta.url);
const OUT_DIR = fileURLToPath(new URL("./out/", import.meta.url));

interface WrkResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  errors: number;
}

/** The baseline: Deno.serve + the same storage read + the same serializer, nothing else. */
async function baselineServer(dataDir: string, port: number): Promise<void> {
  const engine = await openQueryEngine(dataDir);
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => console.log("ready") }, async (req) => {
    const url = new URL(req.url);
    const q = url.searchParams;
    const page = await barsPage(engine, {
      symbol: q.get("symbol")!,
      timeframe: parseTimeframe(q.get("timeframe") ?? "1m"),
      start: q.get("start") ?? undefined,
      end: q.get("end") ?? undefined,
      limit: 10_000,
    }, (q.get("format") ?? "json") as BarFormat);
    return new Response(page.body, { headers: { "Content-Type": page.contentType } });
  });
}

function ms(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) throw new Error(`Cannot read wrk latency "${text}"`);
  const value = Number(match[1]);
  return { us: value / 1000, ms: value, s: value * 1000, m: value * 60_000 }[match[2]]!;
}

async function wrk(
  url: string,
  options: { connections: number; seconds: number; threads?: number },
) {
  const output = await new Deno.Command("wrk", {
    args: [
      `-t${options.threads ?? 2}`,
      `-c${options.connections}`,
      `-d${options.seconds}s`,
      "--latency",
      "--timeout",
      "10s",
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (output.code !== 0) throw new Error(`wrk failed: ${new TextDecoder().decode(output.stderr)}`);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const p50 = /^\s+50%\s+(\S+)/m.exec(text);
  const p99 = /^\s+99%\s+(\S+)/m.exec(text);
  const requests = /(\d+) requests in/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  if (!rps || !p50 || !p99 || !requests) throw new Error(`Cannot read wrk output:\n${text}`);
  return {
    requestsPerSecond: Number(rps[1]),
    p50Ms: ms(p50[1]),
    p99Ms: ms(p99[1]),
    requests: Number(requests[1]),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    errors: errors ? errors.slice(1).reduce((n, v) => n + Number(v), 0) : 0,
  } satisfies WrkResult;
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} did not answer within 30 s`);
}

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", ...args],
    env: { NO_COLOR: "1", TZ: "UTC" },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  await child.status;
}

async function cli(args: string[]): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    env: { NO_COLOR: "1", TZ: "UTC" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.code !== 0) {
    throw new Error(`marketpipe ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
}

/** Rounds as one: requests/s over the total time, p50 and p99 averaged. */
function combine(runs: WrkResult[]): WrkResult {
  const mean = (pick: (run: WrkResult) => number) =>
    runs.reduce((n, run) => n + pick(run), 0) / runs.length;
  return {
    requestsPerSecond: mean((run) => run.requestsPerSecond),
    p50Ms: mean((run) => run.p50Ms),
    p99Ms: mean((run) => run.p99Ms),
    requests: runs.reduce((n, run) => n + run.requests, 0),
    non2xx: runs.reduce((n, run) => n + run.non2xx, 0),
    errors: runs.reduce((n, run) => n + run.errors, 0),
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      duration: { type: "string", default: "20" },
      connections: { type: "string", default: "50" },
      "baseline-server": { type: "string" },
      port: { type: "string" },
    },
  });
  if (values["baseline-server"]) {
    await baselineServer(values["baseline-server"], Number(values.port));
    return;
  }
  const seconds = Number(values.duration);
  const connections = Number(values.connections);
  if (!(seconds > 0 && seconds <= 120) || !(connections > 0 && connections <= 1000)) {
    throw new RangeError("Expected --duration 1-120 (seconds) and --connections 1-1000");
  }
  const dataDir = await Deno.makeTempDir({ prefix: "mp-serve-bench-" });
  console.log(`data: ${dataDir}; wrk -t2 -c${connections} -d${seconds}s on 127.0.0.1`);
  await cli([
    "ingest",
    "--symbols",
    "AAPL,MSFT,SPY",
    "--start",
    "2024-03-04",
    "--end",
    "2024-03-08",
    "--data-dir",
    dataDir,
  ]);
  await cli([
    "ingest",
    "--symbols",
    "AAPL,MSFT,SPY",
    "--timeframe",
    "1d",
    "--start",
    "2023-01-03",
    "--end",
    "2023-12-29",
    "--data-dir",
    dataDir,
  ]);

  const scenarios = [
    {
      name: "1m symbol-day JSON",
      query: "symbol=AAPL&timeframe=1m&start=2024-03-05&end=2024-03-05&format=json",
    },
    {
      name: "1m symbol-day Arrow",
      query: "symbol=AAPL&timeframe=1m&start=2024-03-05&end=2024-03-05&format=arrow",
    },
    {
      name: "1d symbol-year JSON",
      query: "symbol=AAPL&timeframe=1d&start=2023-01-01&end=2023-12-31&format=json",
    },
    {
      name: "1d symbol-year Arrow",
      query: "symbol=AAPL&timeframe=1d&start=2023-01-01&end=2023-12-31&format=arrow",
    },
  ];

  const ourPort = freePort();
  const ours = spawn([MAIN, "serve", "--port", String(ourPort), "--data-dir", dataDir]);
  const ourUrl = `http://127.0.0.1:${ourPort}`;
  const basePort = freePort();
  const base = spawn([SELF, "--baseline-server", dataDir, "--port", String(basePort)]);
  const baseUrl = `http://127.0.0.1:${basePort}`;
  const results: Record<string, unknown>[] = [];
  try {
    await waitReady(`${ourUrl}/healthz`);
    await waitReady(`${baseUrl}/?symbol=AAPL&timeframe=1d&start=2023-01-03&end=2023-01-03`);
    for (const scenario of scenarios) {
      // Warm both (first DuckDB reads, JIT) before measuring.
      await wrk(`${ourUrl}/api/bars?${scenario.query}`, { connections: 4, seconds: 1 });
      await wrk(`${baseUrl}/?${scenario.query}`, { connections: 4, seconds: 1 });
      // Two alternating rounds of half the duration each, so drift on a shared machine hits
      // both sides alike.
      const half = Math.max(1, Math.round(seconds / 2));
      const rounds: { limit: WrkResult[]; ours: WrkResult[] } = { limit: [], ours: [] };
      for (let round = 0; round < 2; round++) {
        rounds.limit.push(
          await wrk(`${baseUrl}/?${scenario.query}`, { connections, seconds: half }),
        );
        rounds.ours.push(
          await wrk(`${ourUrl}/api/bars?${scenario.query}`, { connections, seconds: half }),
        );
      }
      const limit = combine(rounds.limit);
      const ourRun = combine(rounds.ours);
      const row = {
        scenario: scenario.name,
        oursRps: ourRun.requestsPerSecond,
        limitRps: limit.requestsPerSecond,
        rpsRatio: ourRun.requestsPerSecond / limit.requestsPerSecond,
        oursP99Ms: ourRun.p99Ms,
        limitP99Ms: limit.p99Ms,
        p99Ratio: ourRun.p99Ms / limit.p99Ms,
        oursErrors: ourRun.non2xx + ourRun.errors,
        limitErrors: limit.non2xx + limit.errors,
      };
      results.push(row);
      console.log(
        `${scenario.name.padEnd(22)} ours ${
          ourRun.requestsPerSecond.toFixed(0).padStart(6)
        } req/s p99 ${ourRun.p99Ms.toFixed(1).padStart(6)} ms | limit ${
          limit.requestsPerSecond.toFixed(0).padStart(6)
        } req/s p99 ${limit.p99Ms.toFixed(1).padStart(6)} ms | ratio ${
          row.rpsRatio.toFixed(2)
        } (target >= 0.8), p99 ${row.p99Ratio.toFixed(2)}x (target < 4)${
          row.oursErrors ? ` | ${row.oursErrors} errors` : ""
        }`,
      );
    }

    // The symbol page: HTML with the chart data of the default range, one request.
    const pages: Record<string, WrkResult> = {};
    for (
      const [name, path] of [
        ["symbol page 1m (5 sessions)", "/symbols/AAPL?timeframe=1m"],
        ["symbol page 1d (1 year)", "/symbols/AAPL?timeframe=1d"],
        ["chart partial 1m", "/partials/chart?symbol=AAPL&timeframe=1m"],
      ] as const
    ) {
      await wrk(`${ourUrl}${path}`, { connections: 1, seconds: 1, threads: 1 });
      const run = await wrk(`${ourUrl}${path}`, {
        connections: 1,
        seconds: Math.min(seconds, 10),
        threads: 1,
      });
      const loaded = await wrk(`${ourUrl}${path}`, {
        connections: 10,
        seconds: Math.min(seconds, 10),
      });
      pages[name] = run;
      console.log(
        `${name.padEnd(28)} p50 ${run.p50Ms.toFixed(1)} ms (target < 100), p99 ${
          run.p99Ms.toFixed(1)
        } ms, ${run.requestsPerSecond.toFixed(0)} req/s at 1 connection; p50 ${
          loaded.p50Ms.toFixed(1)
        } ms at 10`,
      );
      results.push({ scenario: name, p50Ms: run.p50Ms, p99Ms: run.p99Ms, p50At10Ms: loaded.p50Ms });
    }

    // Answering while an ingest runs in the server process, against the same probes of the same
    // server idle just before: /healthz, then one symbol-day of 1m bars as JSON, one at a time.
    const probes = { health: [] as number[], day: [] as number[] };
    const probe = async () => {
      let t = performance.now();
      await (await fetch(`${ourUrl}/healthz`)).body?.cancel();
      probes.health.push(performance.now() - t);
      t = performance.now();
      await (await fetch(`${ourUrl}/api/bars?symbol=AAPL&start=2024-03-05&end=2024-03-05`))
        .arrayBuffer();
      probes.day.push(performance.now() - t);
    };
    const idleUntil = performance.now() + Math.min(seconds, 10) * 1000;
    while (performance.now() < idleUntil) await probe();
    const idle = { health: probes.health.splice(0), day: probes.day.splice(0) };
    const symbols = Array.from({ length: 100 }, (_, i) => `B${String(i).padStart(3, "0")}`);
    const started = await fetch(`${ourUrl}/api/jobs`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ symbols, start: "2024-01-02", end: "2024-03-28" }),
    });
    const job = await started.json();
    if (started.status !== 202) throw new Error(`Cannot start the ingest: ${JSON.stringify(job)}`);
    const t0 = performance.now();
    let status = "running";
    while (status === "running" && performance.now() - t0 < 60_000) {
      await probe();
      status = (await (await fetch(`${ourUrl}/api/jobs/${job.job.id}`)).json()).status;
    }
    const ingestSeconds = (performance.now() - t0) / 1000;
    const figures = (name: string, during: number[], before: number[]) => {
      const [p50, p99, idleP50] = [
        percentile(during, 50),
        percentile(during, 99),
        percentile(before, 50),
      ];
      console.log(
        `  ${name.padEnd(20)} p50 ${p50.toFixed(1).padStart(7)} ms p99 ${
          p99.toFixed(1).padStart(7)
        } ms | idle p50 ${idleP50.toFixed(1).padStart(6)} ms | p50 ratio ${
          (p50 / idleP50).toFixed(1)
        }x`,
      );
      return { p50Ms: p50, p99Ms: p99, idleP50Ms: idleP50, p50Ratio: p50 / idleP50 };
    };
    console.log(
      `during an ingest of ${symbols.length} symbols x 61 days (${
        ingestSeconds.toFixed(1)
      } s, ${status}; ${probes.health.length} samples, ${idle.health.length} idle):`,
    );
    results.push({
      scenario: "during ingest",
      ingestSeconds,
      samples: probes.health.length,
      idleSamples: idle.health.length,
      health: figures("/healthz", probes.health, idle.health),
      bars: figures("1m symbol-day JSON", probes.day, idle.day),
    });
  } finally {
    await stop(ours);
    await stop(base);
  }
  await Deno.mkdir(OUT_DIR, { recursive: true });
  const file = `${OUT_DIR}serve-${
    new Date().toISOString().replaceAll(":", "-").slice(0, 19)
  }Z.json`;
  await Deno.writeTextFile(file, JSON.stringify({ seconds, connections, results }, null, 2) + "\n");
  console.log(`wrote ${file}`);
  await Deno.remove(dataDir, { recursive: true });
}

if (import.meta.main) await main();
