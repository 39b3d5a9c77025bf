/**
 * End-to-end: a corrupt partition file (truncated, damaged zstd pages) is named by ingest and
 * left untouched, does not take the dashboard down, is listed and moved aside by
 * `marketpipe repair`, and its days are fetched again by the next ingest.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { damageZstdPages, liveFile, truncateFile } from "./_corrupt.ts";
import { json, runCli } from "./_cli.ts";
import { testServer } from "./web_fixture.ts";

const RANGE = ["--start", "2024-03-04", "--end", "2024-03-08"];

/** Per symbol: rows and a digest of every bar value (not the job that wrote it). */
const BARS_DIGEST = `SELECT symbol, count(*)::INTEGER AS rows,
    bit_xor(hash(symbol, timeframe, ts, open, high, low, close, volume, vwap, trade_count,
      session, trading_date, provider, feed, adjustment))::VARCHAR AS digest
  FROM bars GROUP BY symbol ORDER BY symbol`;

/** The one live 1m file of `symbol` (the ingest of March 4-8 writes one per symbol). */
function march(dataDir: string, symbol: string): Promise<string> {
  return liveFile(dataDir, "1m", symbol);
}

async function digest(dataDir: string): Promise<unknown> {
  const result = await runCli(["query", BARS_DIGEST, "--json", "--data-dir", dataDir]);
  assert.equal(result.code, 0, result.stderr);
  return json(result);
}

Deno.test("a truncated and a zstd-damaged partition: ingest names them and keeps them, serve stays up, repair moves them aside, ingest restores the bars", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "mp-e2e-" });
  try {
    const ingestArgs = ["ingest", "--provider", "fake", "--symbols", "AAPL,MSFT,SPY", ...RANGE];
    const first = await runCli([...ingestArgs, "--data-dir", dataDir]);
    assert.equal(first.code, 0, first.stderr);
    const clean = await digest(dataDir);

    const aapl = await march(dataDir, "AAPL");
    const msft = await march(dataDir, "MSFT");
    // As repair names them: relative to the data directory.
    const aaplPath = relative(dataDir, aapl);
    const msftPath = relative(dataDir, msft);
    await truncateFile(aapl);
    await damageZstdPages(msft);
    const aaplBytes = await Deno.readFile(aapl);
    const msftBytes = await Deno.readFile(msft);

    // 1. Ingest names each file and its cause, leaves it byte for byte, and points to repair.
    const forced = await runCli([
      "ingest",
      "--symbols",
      "AAPL,MSFT",
      ...RANGE,
      "--force",
      "--json",
      "--data-dir",
      dataDir,
    ]);
    assert.equal(forced.code, 1, forced.stderr);
    const summary = json<
      { symbols: { symbol: string; errors: string[]; corruptFiles: string[] }[] }
    >(
      forced,
    );
    const errors = Object.fromEntries(summary.symbols.map((s) => [s.symbol, s.errors.join("; ")]));
    assert.match(
      errors.AAPL,
      new RegExp(
        `^Cannot write partition ${
          RegExp.escape(aapl)
        }: cannot read the stored file \\(corrupt Parquet: .*magic bytes.*\\); run "marketpipe repair" to move it aside$`,
      ),
    );
    assert.match(
      errors.MSFT,
      new RegExp(`^Cannot write partition ${RegExp.escape(msft)}: .*ZSTD Decompression failure`),
    );
    assert.deepEqual(summary.symbols.map((s) => s.corruptFiles), [[aapl], [msft]]);
    assert.deepEqual(await Deno.readFile(aapl), aaplBytes);
    assert.deepEqual(await Deno.readFile(msft), msftBytes);
    const text = await runCli([
      "ingest",
      "--symbols",
      "AAPL",
      ...RANGE,
      "--force",
      "--data-dir",
      dataDir,
    ]);
    assert.equal(text.code, 1, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(
        `FAILED: Cannot write partition ${RegExp.escape(aapl)}: cannot read the stored file`,
      ),
    );
    assert.match(text.stdout, /marketpipe repair --move --data-dir /);
    assert.doesNotMatch(text.stdout, /Retry the failed tasks/, "the resume hint would fail again");

    const aggregate = await runCli(["aggregate", "--timeframes", "5m", "--data-dir", dataDir]);
    assert.equal(aggregate.code, 1);
    assert.match(
      aggregate.stderr,
      new RegExp(`^error: Cannot aggregate .*${RegExp.escape(aapl)}: cannot read the stored file`),
    );
    assert.deepEqual(await Deno.readFile(aapl), aaplBytes);

    // 2. The dashboard: the overview answers and names the file; other symbols work.
    const server = await testServer(dataDir);
    try {
      const overview = await server.app.request("/");
      const page = await overview.text();
      assert.equal(overview.status, 200, page.slice(0, 500));
      assert.ok(page.includes(aapl), "the overview does not name the truncated file");
      assert.ok(page.includes("marketpipe repair"));
      assert.match(page, /href="\/symbols\/SPY">SPY</);
      const spy = await server.app.request("/symbols/SPY");
      assert.equal(spy.status, 200, (await spy.text()).slice(0, 300));
      const spyBars = await server.app.request(
        "/api/bars?symbol=SPY&timeframe=1m&start=2024-03-04&end=2024-03-08&limit=5",
      );
      assert.equal(spyBars.status, 200);
      const symbols = await server.app.request("/api/symbols");
      assert.equal(symbols.status, 200);
      assert.ok((await symbols.text()).includes('"SPY"'));
      for (const [symbol, file] of [["AAPL", aapl], ["MSFT", msft]]) {
        const broken = await server.app.request(`/symbols/${symbol}`);
        const body = await broken.text();
        assert.equal(broken.status, 500);
        assert.ok(body.includes(file), `the ${symbol} page does not name ${file}`);
        const api = await server.app.request(
          `/api/bars?symbol=${symbol}&timeframe=1m&start=2024-03-04&end=2024-03-08`,
        );
        const error = (await api.json()).error;
        assert.equal(error.code, "corrupt_file");
        assert.ok(error.message.includes(file));
      }
    } finally {
      await server.close();
    }

    // 3. repair lists both (exit 1) and changes nothing.
    const listed = await runCli(["repair", "--data-dir", dataDir]);
    assert.equal(listed.code, 1, listed.stderr);
    assert.match(
      listed.stdout,
      new RegExp(`corrupt {2}${RegExp.escape(aaplPath)}: .*magic bytes`),
    );
    assert.match(
      listed.stdout,
      new RegExp(`corrupt {2}${RegExp.escape(msftPath)}: .*ZSTD Decompression failure`),
    );
    assert.match(listed.stdout, /2 of 3 Parquet file\(s\) cannot be read/);
    assert.deepEqual(await Deno.readFile(aapl), aaplBytes);

    // 4. repair --move renames them into corrupt/, byte for byte, and forgets their days.
    const moved = await runCli(["repair", "--move", "--json", "--data-dir", dataDir]);
    assert.equal(moved.code, 0, moved.stderr);
    const report = json<
      { corrupt: { path: string; outcome: string; movedTo: string; daysForgotten: number }[] }
    >(moved);
    assert.deepEqual(report.corrupt.map((f) => [f.outcome, f.movedTo, f.daysForgotten]), [
      ["moved", join("corrupt", aaplPath), 5],
      ["moved", join("corrupt", msftPath), 5],
    ]);
    assert.deepEqual(await Deno.readFile(join(dataDir, report.corrupt[0].movedTo)), aaplBytes);
    assert.deepEqual(await Deno.readFile(join(dataDir, report.corrupt[1].movedTo)), msftBytes);
    await assert.rejects(Deno.stat(aapl), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(msft), Deno.errors.NotFound);

    // 5. gaps reports the days missing.
    const gaps = await runCli([
      "gaps",
      "--symbols",
      "AAPL,MSFT,SPY",
      ...RANGE,
      "--json",
      "--data-dir",
      dataDir,
    ]);
    assert.equal(gaps.code, 0, gaps.stderr);
    const missing = json<{ symbols: { symbol: string; missing: string[] }[] }>(gaps).symbols.map((
      s,
    ) => [
      s.symbol,
      s.missing.length,
    ]);
    assert.deepEqual(missing, [["AAPL", 5], ["MSFT", 5], ["SPY", 0]]);

    // 6. The same ingest command fetches them again and stores the bars of a clean run.
    const again = await runCli([...ingestArgs, "--data-dir", dataDir]);
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.deepEqual(await digest(dataDir), clean);
    const after = await runCli(["repair", "--data-dir", dataDir]);
    assert.equal(after.code, 0, after.stdout);
    assert.match(after.stdout, /All 3 Parquet file\(s\) .* read completely/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("repair refuses --dry-run without --move and a data directory that does not exist", async () => {
  const dryRun = await runCli(["repair", "--dry-run", "--data-dir", "/nonexistent/mp"]);
  assert.equal(dryRun.code, 2);
  assert.match(dryRun.stderr, /^error: Invalid --dry-run without --move/);
  const missing = await runCli(["repair", "--data-dir", "/nonexistent/mp"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^error: Cannot repair \/nonexistent\/mp: no such data directory/);
});
