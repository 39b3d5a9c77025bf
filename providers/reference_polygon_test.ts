import { checkSnapshot } from "../core/reference.ts";
import assert from "node:assert/strict";
import { UsageError } from "../core/errors.ts";
import { ProviderError } from "../core/provider.ts";
import {
  createMarket,
  createPolygonMock,
  POLYGON_MOCK_KEY,
  type PolygonMockOptions,
  type startMockServer,
  withMockServer,
} from "../tests/mocks/mod.ts";
import { symbolRecord } from "../tests/_reference.ts";
import { fetchReference } from "./reference.ts";

async function withPolygon(
  options: Omit<PolygonMockOptions, "market">,
  fn: (ctx: {
    server: ReturnType<typeof startMockServer>;
    env: Record<string, string>;
  }) => Promise<void>,
) {
  const mock = createPolygonMock({
    rateLimit: { limit: 1_000, windowMs: 1_000 },
    ...options,
    market: createMarket(),
  });
  await withMockServer({ polygon: mock }, (server) =>
    fn({
      server,
      env: { POLYGON_API_KEY: POLYGON_MOCK_KEY, POLYGON_BASE_URL: server.base("polygon") },
    }));
}

const FAST = { rateLimit: 60_000, baseDelayMs: 1 };

Deno.test("fetchReference(polygon) reads active and inactive tickers on the date, following next_url", async () => {
  await withPolygon({ tickersPageLimit: 2 }, async ({ server, env }) => {
    const [snapshot] = await fetchReference("polygon", { asOf: "2024-06-14", env, ...FAST });
    checkSnapshot(snapshot);
    assert.equal(snapshot.source, "polygon");
    assert.equal(snapshot.asOf, "2024-06-14");
    assert.equal(snapshot.complete, true);
    const by = new Map(snapshot.records.map((r) => [r.ticker, r]));
    // An active XNAS stock with no dates, its FIGI and CIK.
    assert.deepEqual(
      by.get("AAPL"),
      symbolRecord("AAPL", {
        instrumentId: "BBG000B9XRY4",
        name: "Apple Inc.",
        figi: "BBG000B9XRY4",
        cik: "0000320193",
      }),
    );
    assert.equal(by.get("SPY")!.assetClass, "etf");
    assert.equal(by.get("BABA")!.assetClass, "adr");
    assert.equal(by.get("SVIIU")!.assetClass, "unit");
    assert.equal(by.get("RDDT")!.status, "active");
    // TWTR is delisted; OLDX has no FIGI, so its id is the ticker.
    assert.deepEqual(
      [by.get("TWTR")!.status, by.get("TWTR")!.delistDate],
      ["delisted", "2022-11-08"],
    );
    assert.equal(by.get("OLDX")!.instrumentId, "polygon:OLDX");
    // FB (inactive) and META (active) share a FIGI: one instrument, the active row.
    assert.equal(by.get("META")!.instrumentId, "BBG000MM2P62");
    assert.equal(by.get("FB"), undefined);
    // ABRpD is not a ticker MarketPipe stores; the FB duplicate also counts as skipped.
    assert.equal(by.get("ABRpD"), undefined);
    assert.equal(snapshot.skipped, 2);
    assert.equal(snapshot.records.length, 10);

    const requests = server.requests;
    assert.deepEqual(requests[0].query, {
      market: "stocks",
      active: "true",
      date: "2024-06-14",
      order: "asc",
      sort: "ticker",
      limit: "1000",
      apiKey: POLYGON_MOCK_KEY,
    });
    assert.equal(requests[0].path, "/v3/reference/tickers");
    const followed = requests.filter((r) => r.query.cursor !== undefined);
    assert.ok(followed.length >= 4, `${followed.length} next_url pages`);
    assert.ok(followed.every((r) => r.query.apiKey === POLYGON_MOCK_KEY), "key re-appended");
    assert.ok(requests.some((r) => r.query.active === "false"));
  });
});

Deno.test("fetchReference(polygon) is point in time: before the rename FB is active, META absent", async () => {
  await withPolygon({}, async ({ env }) => {
    const [snapshot] = await fetchReference("polygon", { asOf: "2021-01-04", env, ...FAST });
    const tickers = snapshot.records.map((r) => r.ticker);
    assert.ok(tickers.includes("FB"));
    assert.ok(!tickers.includes("META"));
    assert.ok(!tickers.includes("RDDT"));
    assert.equal(snapshot.records.find((r) => r.ticker === "TWTR")!.status, "active");
  });
});

Deno.test("fetchReference(polygon) retries a 429 and then succeeds", async () => {
  await withPolygon({}, async ({ server, env }) => {
    server.inject("polygon", {
      kind: "status",
      status: 429,
      body: JSON.stringify({ status: "ERROR", error: "You've exceeded the maximum requests" }),
    });
    const [snapshot] = await fetchReference("polygon", { asOf: "2024-06-14", env, ...FAST });
    assert.equal(snapshot.records.length, 10);
    assert.equal(server.requests[0].status, 429);
  });
});

Deno.test("fetchReference(polygon) fails at once on a refused key, without the key in the message", async () => {
  await withPolygon({}, async ({ server, env }) => {
    const bad = { ...env, POLYGON_API_KEY: "PGbadKEYbadKEYbadKEY0009" };
    await assert.rejects(
      () => fetchReference("polygon", { asOf: "2024-06-14", env: bad, ...FAST }),
      (e) => {
        assert.ok(e instanceof ProviderError);
        assert.equal(e.status, 401);
        assert.match(e.message, /HTTP 401 "Unknown API Key": the key was refused/);
        assert.ok(!e.message.includes("PGbadKEY"));
        return true;
      },
    );
    assert.equal(server.requests.length, 1);
  });
});

Deno.test("fetchReference(polygon) rejects a malformed payload naming the field", async () => {
  await withPolygon({}, async ({ server, env }) => {
    const results = [{ ticker: "AAPL" }, { ticker: "MSFT" }, { ticker: "SPY" }, { name: "x" }];
    server.inject("polygon", {
      kind: "status",
      status: 200,
      body: JSON.stringify({ status: "OK", results, count: 4 }),
    });
    await assert.rejects(
      () => fetchReference("polygon", { asOf: "2024-06-14", env, ...FAST }),
      (e) =>
        e instanceof ProviderError &&
        /unexpected body: results\[3\]\.ticker is undefined, expected a ticker string/.test(
          e.message,
        ),
    );
    server.inject("polygon", { kind: "status", status: 200, body: '{"status":"OK"}' });
    await assert.rejects(
      () => fetchReference("polygon", { asOf: "2024-06-14", env, ...FAST }),
      /results is missing, expected an array/,
    );
    server.inject("polygon", {
      kind: "status",
      status: 200,
      body: JSON.stringify({
        status: "OK",
        results: [{ ticker: "X", delisted_utc: "yesterday" }],
      }),
    });
    await assert.rejects(
      () => fetchReference("polygon", { asOf: "2024-06-14", env, ...FAST }),
      /results\[0\]\.delisted_utc is "yesterday", expected an RFC 3339 time/,
    );
  });
});

Deno.test("fetchReference(polygon) keeps one active instrument per ticker, the one with a FIGI", async () => {
  await withPolygon({
    tickers: [
      { ticker: "DUP", name: "Dup without FIGI", type: "CS", listed: "2020-01-02" },
      {
        ticker: "DUP",
        name: "Dup",
        type: "CS",
        composite_figi: "BBG000DUP001",
        listed: "2020-01-02",
      },
      { ticker: "DUP", name: "Old Dup", type: "CS", listed: "2001-01-02", delisted: "2005-01-03" },
    ],
  }, async ({ env }) => {
    const [snapshot] = await fetchReference("polygon", { asOf: "2024-06-14", env, ...FAST });
    // The old delisted DUP shares the id polygon:DUP with the FIGI-less one, which lost first.
    assert.deepEqual(
      snapshot.records.map((r) => [r.instrumentId, r.status]),
      [["BBG000DUP001", "active"], ["polygon:DUP", "delisted"]],
    );
    assert.equal(snapshot.skipped, 1);
  });
});

Deno.test("fetchReference(polygon) needs POLYGON_API_KEY", async () => {
  await assert.rejects(
    () => fetchReference("polygon", { asOf: "2024-06-14", env: {} }),
    (e) => e instanceof UsageError && /set POLYGON_API_KEY/.test(e.message),
  );
});
