/**
 * End-to-end tests of the HTTP providers: the real `marketpipe ingest` against mock servers of
 * Alpaca, Polygon, Finnhub and IEX on 127.0.0.1 that behave like the real APIs
 * (providers/README.md, "Mock servers").
 */
import assert from "node:assert/strict";
import type { Bar, Timeframe } from "../core/types.ts";
import { json, listTree, metaQuery, runCli } from "./_cli.ts";
import {
  ALPACA_MOCK_KEY,
  ALPACA_MOCK_SECRET,
  assertSameBars,
  expectedBars,
  FINNHUB_MOCK_FREE_KEY,
  FINNHUB_MOCK_KEY,
  IEX_MOCK_TOKEN,
  type MockBar,
  POLYGON_MOCK_FREE_KEY,
  POLYGON_MOCK_KEY,
  type ProviderMocks,
  type ProviderMocksOptions,
  startProviderMocks,
} from "./mocks/mod.ts";

const CREDENTIALS = {
  ALPACA_KEY: ALPACA_MOCK_KEY,
  ALPACA_SECRET: ALPACA_MOCK_SECRET,
  POLYGON_API_KEY: POLYGON_MOCK_KEY,
  FINNHUB_TOKEN: FINNHUB_MOCK_KEY,
  IEX_TOKEN: IEX_MOCK_TOKEN,
};

/** Mock limits high enough not to matter, unless a test sets them. */
const GENEROUS = {
  alpaca: { rateLimit: { limit: 10_000, windowMs: 1_000 } },
  polygon: { rateLimit: { limit: 10_000, windowMs: 1_000 } },
  finnhub: { rateLimits: [{ limit: 10_000, windowMs: 1_000 }] },
} satisfies ProviderMocksOptions;

async function withMocks(
  options: ProviderMocksOptions,
  fn: (mocks: ProviderMocks, env: Record<string, string>) => Promise<void>,
): Promise<void> {
  const mocks = startProviderMocks({
    ...options,
    alpaca: { ...GENEROUS.alpaca, ...options.alpaca },
    polygon: { ...GENEROUS.polygon, ...options.polygon },
    finnhub: { ...GENEROUS.finnhub, ...options.finnhub },
  });
  try {
    await fn(mocks, { ...mocks.env, ...CREDENTIALS });
  } finally {
    await mocks.close();
  }
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "mp-providers-" });
}

/** Every stored bar of one timeframe, as `Bar`s sorted by symbol then ts. */
async function storedBars(dir: string, timeframe: Timeframe): Promise<Bar[]> {
  const result = await runCli([
    "query",
    `SELECT symbol, epoch_ms(ts) AS ts, open, high, low, close, volume, vwap, trade_count,
      CAST(trading_date AS VARCHAR) AS trading_date, session, provider, feed, adjustment
      FROM bars_${timeframe} ORDER BY symbol, ts`,
    "--format",
    "json",
    "--limit",
    "10000000",
    "--data-dir",
    dir,
  ]);
  assert.equal(result.code, 0, result.stderr);
  return json<Record<string, unknown>[]>(result).map((r) => ({
    symbol: r.symbol as string,
    timeframe,
    ts: r.ts as number,
    open: r.open as number,
    high: r.high as number,
    low: r.low as number,
    close: r.close as number,
    volume: r.volume as number,
    vwap: r.vwap as number | null,
    tradeCount: r.trade_count as number | null,
    tradingDate: r.trading_date as string,
    session: r.session as Bar["session"],
    provider: r.provider as string,
    feed: r.feed as string,
    adjustment: r.adjustment as string,
  }));
}

function served(map: Map<string, MockBar>, filter: string): MockBar[] {
  return [...map].filter(([key]) => key.includes(filter)).map(([, bar]) => bar);
}

function ingestArgs(provider: string, dir: string, ...rest: string[]): string[] {
  return ["ingest", "--provider", provider, "--data-dir", dir, "--rate-limit", "60000", ...rest];
}

Deno.test("alpaca: stored bars equal the served ones across a DST change and a holiday", async () => {
  await withMocks(
    { alpaca: { shortPageEvery: 3, emptyFinalPage: true } },
    async (mocks, env) => {
      const dir = await tempDir();
      const run = await runCli(
        ingestArgs(
          "alpaca",
          dir,
          "--symbols",
          "NVDA,AAPL,MSFT,ZZZZ",
          "--start",
          "2024-03-06",
          "--end",
          "2024-04-02",
          "--batch-size",
          "2000",
        ),
        { env },
      );
      assert.equal(run.code, 0, run.stdout + run.stderr);
      // A symbol the API does not know is an empty result, reported in its row.
      assert.match(run.stdout, /ZZZZ\s+0\s+0\s+19\s+0\s+ok/);
      const expected = expectedBars(served(mocks.alpaca.served, "|1Min|"), {
        provider: "alpaca",
        feed: "iex",
        adjustment: "raw",
        timeframe: "1m",
      });
      assert.ok(expected.length > 30_000, `${expected.length} bars served`);
      const stored = await storedBars(dir, "1m");
      assertSameBars(stored, expected);
      assert.ok(!stored.some((b) => b.tradingDate === "2024-03-29"), "no bars on Good Friday");
      const first = (date: string) =>
        stored.find((b) => b.symbol === "AAPL" && b.tradingDate === date)!;
      assert.ok(first("2024-03-08").ts >= Date.parse("2024-03-08T09:00:00Z"));
      assert.ok(
        first("2024-03-11").ts < Date.parse("2024-03-11T09:00:00Z"),
        "EDT: pre-market from 08:00Z",
      );
      // Pages: short ones with a token, empty final ones, and parameters unchanged between them.
      assert.ok(mocks.alpaca.stats.emptyPages >= 1);
      const requests = mocks.server.requests;
      assert.ok(requests.every((r) => r.query.limit === "2000" && r.query.feed === "iex"));
      assert.deepEqual(
        new Set(requests.map((r) => r.query.symbols)),
        new Set(["AAPL,MSFT,NVDA,ZZZZ"]),
        "one request carries all four symbols",
      );

      // Running it again asks nothing and writes nothing.
      const before = requests.length;
      const again = await runCli(
        ingestArgs(
          "alpaca",
          dir,
          "--symbols",
          "NVDA,AAPL,MSFT,ZZZZ",
          "--start",
          "2024-03-06",
          "--end",
          "2024-04-02",
          "--batch-size",
          "2000",
        ),
        { env },
      );
      assert.equal(again.code, 0, again.stderr);
      assert.equal(mocks.server.requests.length, before);
    },
  );
});

Deno.test("alpaca: retries recover from injected faults without duplicates or losses", async () => {
  await withMocks({}, async (mocks, env) => {
    const ok = { kind: "none" } as const;
    mocks.server.inject(
      "alpaca",
      { kind: "status", status: 500 },
      ok,
      { kind: "drop" },
      ok,
      { kind: "malformed" },
      ok,
      { kind: "truncate" },
      ok,
      { kind: "slow", ms: 2_500 },
      ok,
      { kind: "status", status: 503, headers: { "Retry-After": "1" } },
      ok,
      { kind: "empty" },
      ok,
      {
        kind: "status",
        status: 429,
        body: '{"code":42910000,"message":"too many requests"}',
        headers: { "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "0" },
      },
      { kind: "status", status: 504 },
    );
    const dir = await tempDir();
    const run = await runCli(
      ingestArgs(
        "alpaca",
        dir,
        "--symbols",
        "AAPL,MSFT",
        "--start",
        "2024-03-25",
        "--end",
        "2024-04-05",
        "--batch-size",
        "1000",
        "--feed",
        "sip",
      ),
      { env: { ...env, MARKETPIPE_HTTP_TIMEOUT: "1" } },
    );
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(mocks.server.pending("alpaca"), 0, "every fault was met");
    const faults = mocks.server.requests.filter((r) => r.fault !== undefined).map((r) => r.fault);
    assert.equal(faults.length, 9);
    const stored = await storedBars(dir, "1m");
    assertSameBars(
      stored,
      expectedBars(served(mocks.alpaca.served, "|1Min|"), {
        provider: "alpaca",
        feed: "sip",
        adjustment: "raw",
        timeframe: "1m",
      }),
    );
    const keys = new Set(stored.map((b) => `${b.symbol}|${b.ts}`));
    assert.equal(keys.size, stored.length, "no duplicate keys");
    const tasks = metaQuery(dir, "SELECT status, count(*) AS n FROM tasks GROUP BY status");
    assert.deepEqual(tasks.map((t) => ({ ...t })), [{ status: "done", n: 2 }]);
  });
});

Deno.test("alpaca: a 403 ends the job fast with a message that says which 403 it is", async () => {
  await withMocks(
    { alpaca: { now: () => Date.parse("2024-03-28T19:00:00Z") } },
    async (mocks, env) => {
      const dir = await tempDir();
      const symbols = Array.from({ length: 24 }, (_, i) => `S${String.fromCharCode(65 + i)}`).join(
        ",",
      );
      const run = await runCli(
        ingestArgs(
          "alpaca",
          dir,
          "--symbols",
          symbols,
          "--start",
          "2024-01-02",
          "--end",
          "2024-03-28",
          "--workers",
          "4",
        ),
        { env: { ...env, ALPACA_SECRET: "SKWRONGSECRET0000000000000000000" } },
      );
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(
        run.stdout,
        /HTTP 403 "forbidden": bad credentials: .*check ALPACA_KEY and ALPACA_SECRET/,
      );
      assert.ok(mocks.server.requests.length <= 4, `${mocks.server.requests.length} requests`);
      assert.equal(metaQuery(dir, "SELECT status FROM jobs")[0].status, "failed");

      // Recent SIP data on a free plan: a different 403, named as such.
      const sip = await runCli(
        ingestArgs(
          "alpaca",
          await tempDir(),
          "--symbols",
          "AAPL",
          "--start",
          "2024-03-28",
          "--feed",
          "sip",
        ),
        { env },
      );
      assert.equal(sip.code, 1);
      assert.match(
        sip.stdout,
        /HTTP 403 "subscription does not permit querying recent SIP data": the plan is not entitled to this data \(the credentials are fine\)/,
      );
    },
  );
});

Deno.test("alpaca: the client stays within the mock's rate limit and waits after each 429", async () => {
  // 10 requests per 500 ms window on the server; the client is told 40/s, twice that, so it
  // must follow X-Ratelimit-Remaining/Reset to avoid a 429 in every window.
  const windowMs = 500;
  await withMocks({ alpaca: { rateLimit: { limit: 10, windowMs } } }, async (mocks, env) => {
    const dir = await tempDir();
    const run = await runCli(
      [
        ...ingestArgs("alpaca", dir, "--symbols", "A,B,C,D,E,F,G,H,I,J,K,L"),
        ...["--start", "2024-03-04", "--end", "2024-03-08", "--rate-limit", "2400"],
        ...["--batch-size", "500"],
      ],
      { env },
    );
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const requests = mocks.server.requests;
    const tooMany = requests.filter((r) => r.status === 429);
    assert.ok(requests.length >= 60, `${requests.length} requests`);
    // Only a request already in flight when a window filled up can meet a 429.
    assert.ok(
      tooMany.length <= requests.length * 0.04,
      `${tooMany.length} of ${requests.length} requests got 429`,
    );
    for (const hit of tooMany) {
      const reset = Math.floor(hit.at / windowMs) * windowMs + windowMs;
      const early = requests.filter((r) => r.at >= hit.at + 150 && r.at < reset);
      assert.deepEqual(
        early.map((r) => r.seq),
        [],
        `requests after 429 #${hit.seq}, before the reset`,
      );
    }
    const perWindow = new Map<number, number>();
    for (const r of requests.filter((r) => r.status === 200)) {
      const window = Math.floor(r.at / windowMs);
      perWindow.set(window, (perWindow.get(window) ?? 0) + 1);
    }
    assert.ok(Math.max(...perWindow.values()) <= 10);
    assertSameBars(
      await storedBars(dir, "1m"),
      expectedBars(served(mocks.alpaca.served, "|1Min|"), {
        provider: "alpaca",
        feed: "iex",
        adjustment: "raw",
        timeframe: "1m",
      }),
    );
  });
});

Deno.test("polygon: next_url paging with the key re-appended stores every served bar", async () => {
  await withMocks(
    { market: { splits: { SPY: { date: "2024-03-20", ratio: 2 } } } },
    async (mocks, env) => {
      const dir = await tempDir();
      const run = await runCli(
        ingestArgs(
          "polygon",
          dir,
          "--symbols",
          "SPY,QQQ",
          "--timeframe",
          "1d",
          "--start",
          "2024-03-01",
          "--end",
          "2024-04-05",
          "--adjustment",
          "split",
          "--batch-size",
          "7",
        ),
        { env },
      );
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const stored = await storedBars(dir, "1d");
      assertSameBars(
        stored,
        expectedBars(served(mocks.polygon.served, "|1/day|"), {
          provider: "polygon",
          feed: "sip",
          adjustment: "split",
          timeframe: "1d",
        }),
      );
      assert.equal(stored.length, 2 * 25);
      const followed = mocks.server.requests.filter((r) => r.query.cursor !== undefined);
      assert.ok(followed.length >= 4);
      assert.ok(mocks.server.requests.every((r) => r.query.apiKey === POLYGON_MOCK_KEY));

      const free = await runCli(
        ingestArgs("polygon", await tempDir(), "--symbols", "SPY", "--start", "2024-03-04"),
        { env: { ...env, POLYGON_API_KEY: POLYGON_MOCK_FREE_KEY } },
      );
      assert.equal(free.code, 1);
      assert.match(
        free.stdout,
        /HTTP 403 "You are not entitled to this data.*": the plan is not entitled/,
      );
    },
  );
});

Deno.test("finnhub and iex: candles and chart rows end up stored bar for bar", async () => {
  await withMocks({}, async (mocks, env) => {
    const dir = await tempDir();
    const finnhub = await runCli(
      ingestArgs(
        "finnhub",
        dir,
        "--symbols",
        "AAPL",
        "--start",
        "2024-03-07",
        "--end",
        "2024-03-12",
      ),
      { env },
    );
    assert.equal(finnhub.code, 0, finnhub.stdout + finnhub.stderr);
    const candles = served(mocks.finnhub.served, "|1|").map((b) => ({
      ...b,
      vwap: null,
      tradeCount: null,
    }));
    assertSameBars(
      (await storedBars(dir, "1m")).filter((b) => b.provider === "finnhub"),
      expectedBars(candles, {
        provider: "finnhub",
        feed: "sip",
        adjustment: "raw",
        timeframe: "1m",
      }),
    );

    const iex = await runCli(
      ingestArgs(
        "iex",
        dir,
        "--symbols",
        "IBM",
        "--start",
        "2024-03-07",
        "--end",
        "2024-03-12",
        "--feed",
        "iex",
      ),
      { env },
    );
    assert.equal(iex.code, 0, iex.stdout + iex.stderr);
    assertSameBars(
      (await storedBars(dir, "1m")).filter((b) => b.provider === "iex"),
      expectedBars(served(mocks.iex.served, "iex|"), {
        provider: "iex",
        feed: "iex",
        adjustment: "raw",
        timeframe: "1m",
      }),
    );

    const premium = await runCli(
      ingestArgs(
        "finnhub",
        await tempDir(),
        "--symbols",
        "AAPL,MSFT,NVDA",
        "--start",
        "2024-03-04",
      ),
      { env: { ...env, FINNHUB_TOKEN: FINNHUB_MOCK_FREE_KEY } },
    );
    assert.equal(premium.code, 1);
    assert.match(premium.stdout, /HTTP 403 .*stock candles are a premium Finnhub endpoint/);
  });
});

Deno.test("missing credentials name the variables to set and write nothing", async () => {
  const cwd = await tempDir();
  const cases: [string, string[], RegExp][] = [
    [
      "alpaca",
      [],
      /set ALPACA_KEY and ALPACA_SECRET \(or APCA_API_KEY_ID and APCA_API_SECRET_KEY\)$/,
    ],
    ["polygon", [], /set POLYGON_API_KEY$/],
    ["finnhub", [], /set FINNHUB_TOKEN$/],
    ["iex", [], /set IEX_TOKEN$/],
    ["iex", ["IEX_TOKEN=x"], /needs IEX_BASE_URL: IEX Cloud shut down on 2024-08-31/],
    [
      "alpaca",
      ["ALPACA_KEY=a", "ALPACA_SECRET=b", "ALPACA_BASE_URL=not a url"],
      /Invalid ALPACA_BASE_URL/,
    ],
  ];
  for (const [provider, vars, message] of cases) {
    const env = Object.fromEntries(vars.map((v) => v.split("=")));
    const run = await runCli(
      [
        "ingest",
        "--provider",
        provider,
        "--symbols",
        "AAPL",
        "--start",
        "2024-03-04",
        "--data-dir",
        `${cwd}/data`,
      ],
      { env },
    );
    assert.equal(run.code, 2, `${provider}: ${run.stderr}`);
    const lines = run.stderr.trim().split("\n");
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0], message);
  }
  const feed = await runCli(
    [
      "ingest",
      "--provider",
      "alpaca",
      "--symbols",
      "AAPL",
      "--start",
      "2024-03-04",
      "--feed",
      "sipp",
      "--data-dir",
      `${cwd}/data`,
    ],
    { env: { ALPACA_KEY: "a", ALPACA_SECRET: "b" } },
  );
  assert.equal(feed.code, 2);
  assert.match(feed.stderr, /expected one of iex, sip, delayed_sip/);
  assert.deepEqual(await listTree(cwd), []);
});

Deno.test("providers lists the HTTP providers, their variables and IEX as retired", async () => {
  const run = await runCli(["providers", "--json"], {
    env: { APCA_API_KEY_ID: "k", ALPACA_SECRET: "s" },
  });
  assert.equal(run.code, 0, run.stderr);
  const list = json<
    { name: string; status: string; ready: boolean; notes: string; rateLimitPerMinute: number }[]
  >(run);
  const byName = Object.fromEntries(list.map((p) => [p.name, p]));
  assert.deepEqual(Object.keys(byName), ["fake", "alpaca", "polygon", "finnhub", "iex"]);
  assert.equal(byName.alpaca.ready, true, "the SDK's variable name counts");
  assert.equal(byName.alpaca.rateLimitPerMinute, 200);
  assert.equal(byName.polygon.rateLimitPerMinute, 5);
  assert.equal(byName.finnhub.rateLimitPerMinute, 60);
  assert.equal(byName.iex.status, "retired");
  assert.match(byName.iex.notes, /shut down .* on 2024-08-31/);
  const text = await runCli(["providers"]);
  assert.match(text.stdout, /^iex \(retired\)$/m);
  assert.ok(!run.stdout.includes('"k"') && !run.stdout.includes('"s"'));
});

Deno.test("secrets never appear in output, job records, metrics or any file of the data dir", async () => {
  const WRONG = "SKWRONGSECRETzzzzzzzzzzzz9999";
  const secrets = [
    ALPACA_MOCK_KEY,
    ALPACA_MOCK_SECRET,
    POLYGON_MOCK_KEY,
    FINNHUB_MOCK_FREE_KEY,
    IEX_MOCK_TOKEN,
    WRONG,
  ];
  await withMocks({}, async (mocks, env) => {
    const dir = await tempDir();
    const outputs: string[] = [];
    const cli = async (args: string[], extra: Record<string, string> = {}) => {
      const result = await runCli([...args, "--verbose"], { env: { ...env, ...extra } });
      outputs.push(result.stdout, result.stderr);
      return result;
    };
    const range = ["--start", "2024-03-04", "--end", "2024-03-05", "--rate-limit", "60000"];
    mocks.server.inject("alpaca", { kind: "drop" });
    assert.equal(
      (await cli([
        "ingest",
        "--provider",
        "alpaca",
        "--symbols",
        "AAPL",
        ...range,
        "--data-dir",
        dir,
      ])).code,
      0,
    );
    await cli([
      "ingest",
      "--provider",
      "alpaca",
      "--symbols",
      "MSFT",
      ...range,
      "--data-dir",
      dir,
      "--json",
    ], {
      ALPACA_SECRET: WRONG,
    });
    // Connection errors quote the URL, which carries the key for Polygon and IEX.
    mocks.server.inject("polygon", { kind: "drop" }, { kind: "drop" });
    const polygon = await cli([
      "ingest",
      "--provider",
      "polygon",
      "--symbols",
      "SPY",
      ...range,
      "--data-dir",
      dir,
    ], {
      MARKETPIPE_HTTP_ATTEMPTS: "2",
    });
    assert.equal(polygon.code, 1);
    assert.match(polygon.stdout, /apiKey=\*\*\*\*/, "the failure quotes the URL, masked");
    mocks.server.inject("iex", { kind: "drop" }, { kind: "drop" });
    await cli(["ingest", "--provider", "iex", "--symbols", "IBM", ...range, "--data-dir", dir], {
      MARKETPIPE_HTTP_ATTEMPTS: "2",
    });
    await cli(
      ["ingest", "--provider", "finnhub", "--symbols", "AAPL", ...range, "--data-dir", dir],
      {
        FINNHUB_TOKEN: FINNHUB_MOCK_FREE_KEY,
      },
    );
    const jobs = await cli(["jobs", "list", "--json", "--data-dir", dir]);
    for (const job of json<{ id: string }[]>(jobs)) {
      await cli(["jobs", "show", job.id, "--json", "--data-dir", dir]);
    }
    await cli(["providers", "--json"]);
    assert.ok(outputs.join("").includes("****"), "something was masked");

    const everything = outputs.join("\n");
    const files = (await listTree(dir)).filter((p) => !p.endsWith("/"));
    let bytesRead = 0;
    for (const secret of secrets) {
      assert.ok(!everything.includes(secret), `output contains ${secret.slice(0, 6)}...`);
    }
    for (const path of files) {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(`${dir}/${path}`);
      } catch (error) {
        if (error instanceof Deno.errors.IsADirectory) continue;
        throw error;
      }
      bytesRead += bytes.length;
      const text = new TextDecoder("latin1").decode(bytes);
      for (const secret of secrets) {
        assert.ok(!text.includes(secret), `${path} contains ${secret.slice(0, 6)}...`);
      }
    }
    assert.ok(bytesRead > 10_000, "the data dir was written");
    assert.ok(files.some((p) => p.endsWith("marketpipe.db")));
  });
});

Deno.test("alpaca: days a provider answered with no bars are known-empty, not missing, in gaps", async () => {
  await withMocks({}, async (_mocks, env) => {
    const dir = await tempDir();
    const run = await runCli(
      ingestArgs(
        "alpaca",
        dir,
        "--symbols",
        "AAPL,ZZZZ",
        "--start",
        "2024-03-04",
        "--end",
        "2024-03-06",
        "--json",
      ),
      { env },
    );
    assert.equal(run.code, 0, run.stderr);
    const summary = json<{ symbols: { symbol: string; barsWritten: number; status: string }[] }>(
      run,
    );
    const unknown = summary.symbols.find((s) => s.symbol === "ZZZZ")!;
    assert.equal(unknown.barsWritten, 0);
    assert.equal(unknown.status, "ok");
    assert.deepEqual(
      metaQuery(
        dir,
        "SELECT trading_date, bars FROM ingested_days WHERE symbol = 'ZZZZ' ORDER BY 1",
      ).map((r) => [
        r.trading_date,
        r.bars,
      ]),
      [["2024-03-04", 0], ["2024-03-05", 0], ["2024-03-06", 0]],
    );
    const gaps = await runCli(
      [
        "gaps",
        "--symbols",
        "AAPL,ZZZZ",
        "--start",
        "2024-03-04",
        "--end",
        "2024-03-06",
        "--json",
        "--data-dir",
        dir,
      ],
    );
    assert.equal(gaps.code, 0, gaps.stderr);
    const report = json<{ symbols: { symbol: string; missing: string[]; knownEmpty: string[] }[] }>(
      gaps,
    );
    const zzzz = report.symbols.find((s) => s.symbol === "ZZZZ")!;
    assert.deepEqual(zzzz.missing, []);
    assert.deepEqual(zzzz.knownEmpty, ["2024-03-04", "2024-03-05", "2024-03-06"]);
    assert.deepEqual(report.symbols.find((s) => s.symbol === "AAPL")!.knownEmpty, []);
  });
});
