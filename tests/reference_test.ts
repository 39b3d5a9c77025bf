/**
 * End to end: the symbol master (`symbols update|list|show|history`), universes (`universe
 * create|add|remove|list|show|delete`) and `--universe` on the commands that select symbols,
 * through the real CLI on temporary data directories.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type CliResult, json, listTree, metaQuery, runCli } from "./_cli.ts";
import { POLYGON_MOCK_KEY, startProviderMocks } from "./mocks/mod.ts";

/** A Saturday after the fake source's last snapshot (2024-09-16): every session has closed. */
const NOW = "2024-09-21T12:00:00Z";
const ENV = { MARKETPIPE_NOW: NOW };
const NASDAQ = fileURLToPath(new URL("./fixtures/nasdaq/", import.meta.url));

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "mp-reference-" });
}

async function cli(
  dir: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return await runCli([...args, "--data-dir", dir], { env: { ...ENV, ...env } });
}

function ok(result: CliResult): CliResult {
  assert.equal(result.code, 0, `exit ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result;
}

function usage(result: CliResult, message: RegExp): void {
  assert.equal(result.code, 2, `expected a usage error\n${result.stdout}\n${result.stderr}`);
  assert.match(result.stderr, message);
}

interface Counts {
  inserted: number;
  changed: number;
  delisted: number;
  unchanged: number;
  skipped: number;
  dryRun: boolean;
}

/** Rows of the metadata table, or 0 when the data directory has none. */
async function rowCount(dir: string, table: string): Promise<number> {
  if ((await listTree(dir)).indexOf("marketpipe.db") < 0) return 0;
  return Number(metaQuery(dir, `SELECT count(*) AS n FROM ${table}`)[0].n);
}

/** A data directory with the fake symbol master loaded. */
async function withFakeMaster(): Promise<string> {
  const dir = await tempDir();
  ok(await cli(dir, ["symbols", "update", "--source", "fake"]));
  return dir;
}

Deno.test("symbols update --source fake counts each outcome, and again changes nothing", async () => {
  const dir = await tempDir();
  const dry = json<Counts>(
    ok(await cli(dir, ["symbols", "update", "--source", "fake", "--dry-run", "--json"])),
  );
  assert.equal(dry.dryRun, true);
  assert.deepEqual(await listTree(dir), [], "a dry run writes nothing");
  const first = ok(await cli(dir, ["symbols", "update", "--source", "fake"]));
  // 4 snapshots: 14 instruments, FB -> META changed, OLDCO delisted.
  assert.match(
    first.stdout,
    /^Updated the symbol master from fake \(4 snapshots 2020-01-02\.\.2024-09-16\): 14 inserted, 1 changed, 1 delisted, \d+ unchanged, 0 skipped\n$/,
  );
  assert.equal(dry.inserted, 14);
  assert.equal(dry.changed, 1);
  assert.equal(dry.delisted, 1);
  const rows = await rowCount(dir, "symbol_history");
  const again = json<Counts>(
    ok(await cli(dir, ["symbols", "update", "--source", "fake", "--json"])),
  );
  assert.deepEqual(
    [again.inserted, again.changed, again.delisted, again.unchanged > 0],
    [0, 0, 0, true],
  );
  assert.equal(await rowCount(dir, "symbol_history"), rows, "nothing new was recorded");
  // An older snapshot that matches the stored history on its date is a replay: no change.
  const older = json<Counts>(ok(
    await cli(dir, ["symbols", "update", "--source", "fake", "--as-of", "2020-06-01", "--json"]),
  ));
  assert.deepEqual([older.inserted, older.changed, older.delisted], [0, 0, 0]);
  assert.equal(await rowCount(dir, "symbol_history"), rows);
});

Deno.test("symbols update --source nasdaq reads the directory files, skipping test issues", async () => {
  const dir = await tempDir();
  const files = ["--file", `${NASDAQ}nasdaqlisted.txt`, "--file", `${NASDAQ}otherlisted.txt`];
  const first = json<Counts>(
    ok(await cli(dir, ["symbols", "update", "--source", "nasdaq", ...files, "--json"])),
  );
  assert.ok(first.inserted > 10, `inserted ${first.inserted}`);
  assert.ok(first.skipped > 0, "the test issues are skipped");
  const again = json<Counts>(
    ok(await cli(dir, ["symbols", "update", "--source", "nasdaq", ...files, "--json"])),
  );
  assert.deepEqual([again.inserted, again.changed, again.unchanged], [0, 0, first.inserted]);
  const etfs = json<{ symbols: { ticker: string; asset_class: string }[] }>(ok(
    await cli(dir, ["symbols", "list", "--filter", "asset_class = 'etf'", "--json"]),
  ));
  assert.ok(etfs.symbols.length > 0);
  assert.ok(etfs.symbols.every((s) => s.asset_class === "etf"));
});

Deno.test("symbols update refuses a malformed nasdaq file naming its line, writing nothing", async () => {
  const dir = await tempDir();
  const text = await Deno.readTextFile(`${NASDAQ}nasdaqlisted.txt`);
  const lines = text.split("\n");
  lines.splice(3, 0, "BROKEN|only two");
  const bad = `${await tempDir()}/nasdaqlisted.txt`;
  await Deno.writeTextFile(bad, lines.join("\n"));
  const result = await cli(dir, ["symbols", "update", "--source", "nasdaq", "--file", bad]);
  usage(result, /line 4/);
  assert.deepEqual(await listTree(dir), [], "nothing was created");

  // Into an existing master too: it stays as it was.
  ok(await cli(dir, ["symbols", "update", "--source", "fake"]));
  const rows = await rowCount(dir, "symbol_history");
  usage(await cli(dir, ["symbols", "update", "--source", "nasdaq", "--file", bad]), /line 4/);
  assert.equal(await rowCount(dir, "symbol_history"), rows);
  usage(
    await cli(dir, ["symbols", "update", "--source", "fake", "--file", bad]),
    /--source nasdaq only/,
  );
  usage(await cli(dir, ["symbols", "update", "--source", "fakes"]), /"fakes".*did you mean/);
});

Deno.test("symbols history META shows the FB rows of the same instrument", async () => {
  const dir = await withFakeMaster();
  const text = ok(await cli(dir, ["symbols", "history", "META"])).stdout;
  assert.match(text, /^2020-01-02\s+2022-06-09\s+FB\s/m);
  assert.match(text, /^2022-06-09\s+\(current\)\s+META\s/m);
  const history = json<
    { history: { ticker: string; valid_from: string; valid_to: string | null }[] }
  >(
    ok(await cli(dir, ["symbols", "history", "META", "--json"])),
  );
  assert.deepEqual(history.history.map((r) => [r.ticker, r.valid_from, r.valid_to]), [
    ["FB", "2020-01-02", "2022-06-09"],
    ["META", "2022-06-09", null],
  ]);
  assert.match(ok(await cli(dir, ["symbols", "show", "FB"])).stdout, /^FB is now META:/);
  usage(await cli(dir, ["symbols", "show", "NOPE"]), /Unknown symbol "NOPE"/);
  // Point in time: on 2021-01-04 the master lists FB, not META.
  const then = json<{ symbols: { ticker: string }[] }>(
    ok(await cli(dir, ["symbols", "list", "--as-of", "2021-01-04", "--json"])),
  ).symbols.map((s) => s.ticker);
  assert.ok(then.includes("FB") && !then.includes("META"), then.join(","));
});

Deno.test("universe create from symbols and from a filter; a bad one writes nothing", async () => {
  const dir = await withFakeMaster();
  ok(
    await cli(dir, [
      "universe",
      "create",
      "Tech",
      "--symbols",
      "AAPL,MSFT",
      "--as-of",
      "2024-01-02",
    ]),
  );
  const created = ok(
    await cli(dir, [
      "universe",
      "create",
      "etfs",
      "--filter",
      "exchange in ('XNAS','ARCX') and asset_class = 'etf' and status = 'active'",
    ]),
  );
  assert.match(created.stdout, /Created universe "etfs" \(filter: .*\): 3 member\(s\)/);
  const etfs = json<{ members: { symbol: string; list_date: string | null }[] }>(
    ok(await cli(dir, ["universe", "show", "etfs", "--json"])),
  );
  assert.deepEqual(etfs.members.map((m) => m.symbol), ["IWM", "QQQ", "SPY"]);
  assert.equal(etfs.members.find((m) => m.symbol === "SPY")?.list_date, "1993-01-29");

  const universes = await rowCount(dir, "universes");
  const members = await rowCount(dir, "universe_members");
  usage(
    await cli(dir, [
      "universe",
      "create",
      "bad",
      "--filter",
      "exchange = 'XNAS' or 1; DROP TABLE x",
    ]),
    /column \d+/,
  );
  usage(await cli(dir, ["universe", "create", "bad", "--filter", "sector = 'tech'"]), /"sector"/);
  usage(await cli(dir, ["universe", "create", "9lives", "--symbols", "AAPL"]), /"9lives"/);
  usage(await cli(dir, ["universe", "create", "tech", "--symbols", "AAPL"]), /already exists/);
  usage(await cli(dir, ["universe", "create", "bad", "--symbols", "AA PL!"]), /"PL!"/);
  usage(await cli(dir, ["universe", "create", "bad"]), /Missing members/);
  assert.equal(await rowCount(dir, "universes"), universes);
  assert.equal(await rowCount(dir, "universe_members"), members);

  const list = json<{ universes: { name: string; kind: string; members: number }[] }>(
    ok(await cli(dir, ["universe", "list", "--json"])),
  );
  assert.deepEqual(list.universes.map((u) => [u.name, u.kind, u.members]), [
    ["etfs", "filter", 3],
    ["tech", "list", 2],
  ]);
  // A fresh directory is not created by a bad name.
  const fresh = await tempDir();
  usage(await cli(fresh, ["universe", "create", "-x", "--symbols", "AAPL"]), /./);
  assert.deepEqual(await listTree(fresh), []);
});

Deno.test("universe add and remove with --as-of; show --as-of answers what it held then", async () => {
  const dir = await withFakeMaster();
  ok(
    await cli(dir, [
      "universe",
      "create",
      "tech",
      "--symbols",
      "AAPL,MSFT",
      "--as-of",
      "2022-01-03",
    ]),
  );
  const added = ok(
    await cli(dir, ["universe", "add", "tech", "--symbols", "NVDA,AAPL", "--as-of", "2022-03-01"]),
  );
  assert.match(
    added.stdout,
    /Added NVDA to "tech" as of 2022-03-01; already members on 2022-03-01: AAPL/,
  );
  ok(await cli(dir, ["universe", "remove", "tech", "--symbols", "MSFT", "--as-of", "2022-06-30"]));
  const on = async (date: string) =>
    json<{ members: { symbol: string }[] }>(
      ok(await cli(dir, ["universe", "show", "tech", "--as-of", date, "--json"])),
    ).members.map((m) => m.symbol);
  assert.deepEqual(await on("2022-01-03"), ["AAPL", "MSFT"]);
  assert.deepEqual(await on("2022-06-29"), ["AAPL", "MSFT", "NVDA"]);
  assert.deepEqual(await on("2022-06-30"), ["AAPL", "NVDA"]);
  const text = ok(await cli(dir, ["universe", "show", "tech", "--as-of", "2022-06-29"])).stdout;
  assert.match(text, /^MSFT\s+2022-01-03\s+2022-06-30\s+Microsoft/m);

  usage(await cli(dir, ["universe", "add", "nosuch", "--symbols", "AAPL"]), /Unknown universe/);
  usage(await cli(dir, ["universe", "show", "tec"]), /did you mean "tech"/);
  usage(await cli(dir, ["universe", "delete", "tech"]), /without --yes/);
  ok(await cli(dir, ["universe", "delete", "tech", "--yes"]));
  assert.equal(await rowCount(dir, "universes"), 0);
  assert.equal(await rowCount(dir, "universe_members"), 0);
});

Deno.test("ingest --universe stores exactly its members; gaps --universe judges from listing", async () => {
  const dir = await withFakeMaster();
  // NEWCO lists on 2024-09-16 and OLDCO delists on 2024-03-15 (the fake source).
  ok(
    await cli(dir, [
      "universe",
      "create",
      "mix",
      "--symbols",
      "AAPL,NEWCO,OLDCO",
      "--as-of",
      "2024-01-02",
    ]),
  );
  ok(await cli(dir, ["universe", "create", "other", "--symbols", "MSFT", "--as-of", "2024-01-02"]));
  const range = ["--start", "2024-03-11", "--end", "2024-09-20", "--timeframe", "1d"];
  const ingest = json<
    { symbols: { symbol: string; daysFetched: number; daysUnlisted: number }[] }
  >(ok(await cli(dir, ["ingest", "--universe", "mix", ...range, "--json"])));
  assert.deepEqual(
    ingest.symbols.map((s) => [s.symbol, s.daysFetched, s.daysUnlisted]),
    [["AAPL", 135, 0], ["NEWCO", 5, 130], ["OLDCO", 5, 130]],
  );
  const symbols = (await listTree(`${dir}/bars/timeframe=1d`))
    .filter((path) => !path.includes("/")).sort();
  assert.deepEqual(symbols, ["symbol=AAPL", "symbol=NEWCO", "symbol=OLDCO"]);

  const gaps = json<
    {
      symbols: {
        symbol: string;
        tradingDays: number;
        missing: string[];
        listing?: { start: string | null; end: string | null };
      }[];
    }
  >(ok(await cli(dir, ["gaps", "--universe", "mix", ...range, "--json"])));
  assert.deepEqual(gaps.symbols.map((s) => [s.symbol, s.tradingDays, s.missing.length]), [
    ["AAPL", 135, 0],
    ["NEWCO", 5, 0],
    ["OLDCO", 5, 0],
  ]);
  assert.deepEqual(gaps.symbols[1].listing, { start: "2024-09-16", end: null });
  const text = ok(await cli(dir, ["gaps", "--universe", "mix", ...range])).stdout;
  assert.match(text, /NEWCO: listed 2024-09-16/);
  assert.match(text, /No gaps/);

  // update brings only the listed members up to date (OLDCO delisted on 2024-03-15).
  const later = { MARKETPIPE_NOW: "2024-09-24T12:00:00Z" };
  const update = json<{ jobs: { symbols: { symbol: string; daysFetched: number }[] }[] }>(
    ok(await cli(dir, ["update", "--universe", "mix", "--timeframe", "1d", "--json"], later)),
  );
  assert.deepEqual(
    update.jobs.flatMap((job) => job.symbols.map((s) => [s.symbol, s.daysFetched])),
    [["AAPL", 1], ["NEWCO", 1]],
  );

  // export leaves out the member not listed in its range (OLDCO, delisted in March).
  const out = `${await tempDir()}/sept.csv`;
  ok(
    await cli(dir, [
      "export",
      "--universe",
      "mix",
      "--start",
      "2024-09-16",
      "--end",
      "2024-09-20",
      "--timeframe",
      "1d",
      "--format",
      "csv",
      "--out",
      out,
    ]),
  );
  const exported = (await Deno.readTextFile(out)).trim().split("\n").slice(1)
    .map((line) => line.split(",")[0]);
  assert.deepEqual([...new Set(exported)], ["AAPL", "NEWCO"]);
  assert.equal(exported.length, 10);

  // The membership as of a date, and the errors.
  const asOf = json<{ symbols: { symbol: string }[] }>(ok(
    await cli(dir, ["gaps", "--universe", "other", "--as-of", "2024-06-03", ...range, "--json"]),
  ));
  assert.deepEqual(asOf.symbols.map((s) => s.symbol), ["MSFT"]);
  usage(await cli(dir, ["ingest", "--universe", "nope", ...range]), /Unknown universe "nope"/);
  usage(
    await cli(dir, ["ingest", "--universe", "mix", "--symbols", "AAPL", ...range]),
    /--symbols, --universe/,
  );
  usage(
    await cli(dir, ["ingest", "--universe", "mix", "--as-of", "2023-01-03", ...range]),
    /Universe "mix" has no listed members on 2023-01-03/,
  );
  usage(await cli(dir, ["gaps", "--as-of", "2024-06-03", ...range]), /--as-of.*--universe/);
  assert.equal(await rowCount(dir, "jobs"), 2, "the ingest and the update; no refused one");
});

Deno.test("ingest --universe of a past date stores a renamed member under its ticker now", async () => {
  const dir = await withFakeMaster();
  // On 2021-06-01 the filter held FB (renamed META on 2022-06-09, one instrument).
  ok(await cli(dir, ["universe", "create", "fb", "--filter", "name like 'Facebook%'"]));
  const range = ["--start", "2021-06-01", "--end", "2021-06-04", "--timeframe", "1d"];
  const ingest = json<{ symbols: { symbol: string }[] }>(ok(
    await cli(dir, ["ingest", "--universe", "fb", "--as-of", "2021-06-01", ...range, "--json"]),
  ));
  assert.deepEqual(ingest.symbols.map((s) => s.symbol), ["META"]);
  const stored = (await listTree(`${dir}/bars/timeframe=1d`)).filter((p) => !p.includes("/"));
  assert.deepEqual(stored, ["symbol=META"]);
});

Deno.test("ingest of META before its ticker change fetches FB from polygon, stored as META", async () => {
  const dir = await withFakeMaster();
  const mocks = startProviderMocks({ polygon: { rateLimit: { limit: 10_000, windowMs: 1_000 } } });
  try {
    const env = { POLYGON_BASE_URL: mocks.env.POLYGON_BASE_URL, POLYGON_API_KEY: POLYGON_MOCK_KEY };
    const result = ok(
      await cli(dir, [
        "ingest",
        "--provider",
        "polygon",
        "--symbols",
        "META",
        "--start",
        "2022-06-06",
        "--end",
        "2022-06-10",
        "--timeframe",
        "1d",
        // The free plan's 5 requests a minute would space the two requests 12 s apart.
        "--rate-limit",
        "10000",
        "--json",
      ], env),
    );
    const tickers = mocks.server.requests
      .map((r) => /\/v2\/aggs\/ticker\/([^/]+)\//.exec(r.path)?.[1])
      .filter((t) => t !== undefined);
    assert.deepEqual([...new Set(tickers)].sort(), ["FB", "META"]);
    const fb = mocks.server.requests.find((r) => r.path.includes("/ticker/FB/"))!;
    // Polygon ranges are New York midnights in epoch ms: FB up to the day before the change.
    const change = String(Date.parse("2022-06-09T04:00:00Z"));
    assert.match(fb.path, new RegExp(`/${Date.parse("2022-06-06T04:00:00Z")}/${+change - 1}$`));
    const meta = mocks.server.requests.find((r) => r.path.includes("/ticker/META/"))!;
    assert.match(meta.path, new RegExp(`/${change}/\\d+$`));
    assert.equal(json<{ barsWritten: number }>(result).barsWritten, 5);
    const stored = (await listTree(`${dir}/bars/timeframe=1d`)).filter((p) => !p.includes("/"));
    assert.deepEqual(stored, ["symbol=META"]);
  } finally {
    await mocks.close();
  }
});
