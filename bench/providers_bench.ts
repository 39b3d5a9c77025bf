/**
 * Provider benchmark: the real `marketpipe ingest --provider alpaca` (a child process) against
 * the Alpaca mock on 127.0.0.1, with Alpaca's free-plan limit of 200 requests per minute scaled
 * down in time (20 per 6 s fixed windows, `X-Ratelimit-*` headers, 429 past the limit) and 5 ms
 * latency. Reports requests made against the minimum (bars / 10,000 per page), the achieved
 * request rate against the allowed one, bars per second, and whether every served bar was
 * stored exactly once. Timing never fails the process; a data loss does.
 *
 * ```sh
 * deno run -A bench/providers_bench.ts                      # 50 symbols x 3 months of 1m bars
 * deno run -A bench/providers_bench.ts --symbols 10 --months 1
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { tradingDays } from "../core/calendar.ts";
import { ALPACA_PAGE_LIMIT } from "../providers/alpaca.ts";
import { benchSymbols, bytesOrNa, denoRun, MAIN, runMeasured, writeReport } from "./measure.ts";
import {
  ALPACA_MOCK_KEY,
  ALPACA_MOCK_SECRET,
  createAlpacaMock,
  createMarket,
  startMockServer,
} from "../tests/mocks/mod.ts";

const MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"];
const TARGETS = { requestsRatio: 1.2, rateShare: 0.9 } as const;

const USAGE = `Usage: deno run -A bench/providers_bench.ts [options]

  --symbols N     symbols (default 50)
  --months N      months of 1m bars from 2024-01 (default 3, at most 6)
  --limit N       requests per window on the mock (default 20)
  --window S      window in seconds (default 6; 20 per 6 s = Alpaca's 200/min)
  --latency MS    mock latency per request (default 5)
  --feed FEED     iex or sip (default sip: ~950 bars per symbol-day)`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      symbols: { type: "string", default: "50" },
      months: { type: "string", default: "3" },
      limit: { type: "string", default: "20" },
      window: { type: "string", default: "6" },
      latency: { type: "string", default: "5" },
      feed: { type: "string", default: "sip" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const symbolCount = _int(values.symbols, "--symbols", 1, 500);
  const months = _int(values.months, "--months", 1, MONTHS.length);
  const limit = _int(values.limit, "--limit", 1, 10_000);
  const windowMs = Number(values.window) * 1000;
  const latencyMs = _int(values.latency, "--latency", 0, 1000);
  const feed = values.feed;
  if (!(windowMs > 0)) throw new RangeError(`Invalid --window ${values.window}`);
  const perMinute = (limit * 60_000) / windowMs;
  const symbols = benchSymbols(symbolCount);
  const start = `${MONTHS[0]}-01`;
  const end = `${MONTHS[months - 1]}-${_lastDay(MONTHS[months - 1])}`;

  const market = createMarket();
  const mock = createAlpacaMock({ market, rateLimit: { limit, windowMs }, record: false });
  const server = startMockServer({ alpaca: mock }, { latencyMs });
  const dataDir = await Deno.makeTempDir({ prefix: "marketpipe-providers-bench-" });
  console.log(
    `Ingesting ${symbolCount} symbols x ${tradingDays(start, end).length} trading days ` +
      `(${start}..${end}) of 1m bars, feed ${feed}, from the Alpaca mock: ${limit} requests per ` +
      `${windowMs / 1000} s (${perMinute}/min), ${latencyMs} ms latency...`,
  );
  try {
    const scratchDir = await Deno.makeTempDir({ prefix: "marketpipe-providers-bench-time-" });
    const args = denoRun(MAIN, [
      "ingest",
      "--provider=alpaca",
      `--symbols=${symbols.join(",")}`,
      `--start=${start}`,
      `--end=${end}`,
      `--feed=${feed}`,
      `--rate-limit=${perMinute}`,
      `--data-dir=${dataDir}`,
      "--json",
    ]);
    const child = await runMeasured(Deno.execPath(), args, {
      scratchDir,
      env: {
        ..._inherited(),
        ALPACA_BASE_URL: server.base("alpaca"),
        ALPACA_KEY: ALPACA_MOCK_KEY,
        ALPACA_SECRET: ALPACA_MOCK_SECRET,
        NO_COLOR: "1",
      },
    });
    await Deno.remove(scratchDir, { recursive: true });
    const { wallMs, stdout } = child;
    if (child.code !== 0) {
      console.error(child.stderr);
      console.error(`ingest exited with ${child.code}`);
      return 1;
    }
    const summary = JSON.parse(stdout) as { barsWritten: number; barsFetched: number };
    const stored = await _storedCount(dataDir);

    const requests = server.requests;
    const accepted = requests.filter((r) => r.status === 200);
    const tooMany = requests.length - accepted.length;
    const minimum = Math.ceil(mock.stats.bars / ALPACA_PAGE_LIMIT);
    const spanMs = accepted.at(-1)!.at - accepted[0].at;
    // Requests after the first, over the time they took: the rate the limiter let through.
    const achievedPerMinute = accepted.length > 1 ? ((accepted.length - 1) * 60_000) / spanMs : 0;
    const report = {
      startedAt: new Date().toISOString(),
      workload: { symbols: symbolCount, start, end, feed, limit, windowMs, latencyMs },
      barsServed: mock.stats.bars,
      barsFetched: summary.barsFetched,
      barsStored: stored,
      requests: requests.length,
      pages: mock.stats.pages,
      emptyPages: mock.stats.emptyPages,
      tooMany,
      minimumRequests: minimum,
      requestsRatio: requests.length / minimum,
      allowedPerMinute: perMinute,
      achievedPerMinute,
      rateShare: achievedPerMinute / perMinute,
      wallMs,
      barsPerSecond: stored / (wallMs / 1000),
      peakRssBytes: child.peakRssBytes,
    };
    const lossless = stored === mock.stats.bars && summary.barsFetched === mock.stats.bars;
    const rows: [string, string, string][] = [
      [
        "requests vs minimum",
        `${report.requests} / ${minimum} = ${report.requestsRatio.toFixed(3)}x`,
        _verdict(report.requestsRatio <= TARGETS.requestsRatio, `<= ${TARGETS.requestsRatio}x`),
      ],
      [
        "achieved rate",
        `${achievedPerMinute.toFixed(1)}/min of ${perMinute}/min = ${
          (report.rateShare * 100).toFixed(1)
        }%`,
        _verdict(report.rateShare >= TARGETS.rateShare, `>= ${TARGETS.rateShare * 100}%`),
      ],
      ["429 answers", `${tooMany}`, ""],
      ["bars/s", `${Math.round(report.barsPerSecond).toLocaleString("en-US")}`, ""],
      [
        "data",
        `${stored.toLocaleString("en-US")} stored of ${
          mock.stats.bars.toLocaleString("en-US")
        } served`,
        _verdict(lossless, "no loss, no duplicate"),
      ],
      ["wall time", `${(wallMs / 1000).toFixed(1)} s`, ""],
      [
        "ingest peak RSS",
        bytesOrNa(child.peakRssBytes),
        child.rssMethod,
      ],
    ];
    for (const [name, value, verdict] of rows) {
      console.log(`${name.padEnd(20)} ${value.padEnd(44)} ${verdict}`);
    }
    await writeReport("providers-", report.startedAt, report);
    return lossless ? 0 : 1;
  } finally {
    await server.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

/** Rows and distinct keys stored, counted by the CLI's query command; -1 if they differ. */
async function _storedCount(dataDir: string): Promise<number> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: denoRun(MAIN, [
      "query",
      "SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS k FROM bars_1m",
      "--json",
      `--data-dir=${dataDir}`,
    ]),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const [row] = JSON.parse(new TextDecoder().decode(output.stdout)) as { n: number; k: number }[];
  return row.n === row.k ? row.n : -1;
}

/** What a Deno child needs from this environment (its cache), nothing else. */
function _inherited(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ["PATH", "HOME", "DENO_DIR", "DENO_NO_UPDATE_CHECK"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  return env;
}

function _verdict(pass: boolean, target: string): string {
  return `${pass ? "PASS" : "MISS"} (target ${target})`;
}

function _int(text: string, name: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid ${name} "${text}": expected an integer ${min}-${max}`);
  }
  return value;
}

function _lastDay(month: string): string {
  const [year, m] = month.split("-").map(Number);
  return String(new Date(Date.UTC(year, m, 0)).getUTCDate()).padStart(2, "0");
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
