/** Shared fixtures of the web tests: a data directory filled by fake ingests, and a server on it. */
import { buildIngestRequest } from "../providers/ingest_request.ts";
import { tradingDays } from "../core/calendar.ts";
import { ingest } from "../core/ingest.ts";
import { generateFakeDay } from "../providers/mod.ts";
import { openStore, saveValidationReport } from "../storage/mod.ts";
import type { Bar } from "../core/types.ts";
import type { DatabaseSync } from "node:sqlite";
import { openWebServer, type WebServer, type WebServerOptions } from "../web/mod.ts";
import { cliEnv, MAIN } from "./_cli.ts";

/** What the fixture data directory holds. */
export const FIXTURE = {
  intraday: { symbols: ["AAPL", "MSFT"], start: "2024-03-04", end: "2024-03-08" },
  daily: { symbols: ["AAPL"], start: "2024-01-02", end: "2024-03-28" },
} as const;

/** 1m bars the fake provider makes for a symbol over inclusive dates (seed 0, gap rate 0.01). */
export function expectedMinuteBars(symbol: string, start: string, end: string): number {
  let n = 0;
  for (const day of tradingDays(start, end)) {
    n += generateFakeDay(symbol, day, { seed: 0, gapRate: 0.01 }).length;
  }
  return n;
}

/** Runs a fake ingest in this process, as `marketpipe ingest` would. */
export async function fakeIngest(
  dataDir: string,
  input: { symbols: readonly string[]; start: string; end: string; timeframe?: string },
): Promise<void> {
  const prepared = await buildIngestRequest({ ...input });
  const store = await openStore(dataDir, { command: "test" });
  try {
    const provider = prepared.factory.create({ env: {}, params: prepared.request.params });
    const summary = await ingest({ provider, store }, prepared.request);
    if (summary.status !== "succeeded") throw new Error(`fixture ingest ${summary.status}`);
  } finally {
    store.close();
  }
}

/** A temp data directory with AAPL and MSFT 1m bars for a week and AAPL 1d bars for a quarter. */
export async function filledDataDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-" });
  await fakeIngest(dir, FIXTURE.intraday);
  await fakeIngest(dir, { ...FIXTURE.daily, timeframe: "1d" });
  return dir;
}

/**
 * Saves a validation report of AAPL 1m bars over 2024-03-04..08 (created 2024-03-09 12:00 UTC)
 * whose one finding is a volume_spike warning on `bar`.
 */
export async function saveSpikeReport(
  db: DatabaseSync,
  dataDir: string,
  bar: Pick<Bar, "ts" | "tradingDate">,
): Promise<void> {
  await saveValidationReport(db, dataDir, {
    createdAt: Date.parse("2024-03-09T12:00:00Z"),
    jobId: null,
    timeframe: "1m",
    symbols: ["AAPL"],
    start: "2024-03-04",
    end: "2024-03-08",
    crossCheck: false,
    bars: 100,
    errors: 0,
    warnings: 1,
    infos: 0,
    quarantined: 0,
    rules: { volume_spike: 1 },
    settings: {},
    findings: new Map([["AAPL", [{
      symbol: "AAPL",
      timeframe: "1m",
      ts: bar.ts,
      tradingDate: bar.tradingDate,
      rule: "volume_spike",
      severity: "warn",
      detail: "volume 12x the median",
    }]]]),
  });
}

/** Opens a server over `dataDir` with test defaults. */
export async function testServer(
  dataDir: string,
  options: Partial<WebServerOptions> = {},
): Promise<WebServer> {
  return await openWebServer(dataDir, { version: "test", env: {}, ...options });
}

/** JSON of a response, with the status checked first. */
export async function jsonOf<T = Record<string, unknown>>(
  response: Response,
  status = 200,
): Promise<T> {
  const text = await response.text();
  if (response.status !== status) {
    throw new Error(`Expected HTTP ${status}, got ${response.status}: ${text.slice(0, 500)}`);
  }
  return JSON.parse(text) as T;
}

/** The `{"error": {...}}` body of a failed response, with the status checked first. */
export async function errorOf(
  response: Response,
  status: number,
): Promise<{ code: string; message: string }> {
  const body = await jsonOf<{ error: { code: string; message: string } }>(response, status);
  return body.error;
}

/** Poll `check` until it returns true or `timeoutMs` passes. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A running `marketpipe serve` with its output collected as it arrives. */
export interface ServeProcess {
  url: string;
  child: Deno.ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Waits for the exit and the end of both streams. */
  finished: Promise<Deno.CommandStatus>;
}

/** Starts `marketpipe serve --port 0` and waits until it prints its URL. */
export async function startServe(
  args: string[],
  env: Record<string, string> = {},
): Promise<ServeProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "serve", "--port", "0", ...args],
    env: cliEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const pump = async (stream: ReadableStream<Uint8Array>, add: (text: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) add(text);
  };
  const pumps = Promise.all([
    pump(child.stdout, (text) => out += text),
    pump(child.stderr, (text) => err += text),
  ]);
  const finished = pumps.then(() => child.status);
  let exited = false;
  finished.then(() => exited = true);
  await waitUntil(() => exited || /http:\/\/\S+\//.test(out), 30_000, "serve to listen");
  const url = /(http:\/\/\S+)\//.exec(out)?.[1];
  if (!url) throw new Error(`serve did not start:\n${out}\n${err}`);
  return { url, child, stdout: () => out, stderr: () => err, finished };
}
