import { checkSnapshot } from "../core/reference.ts";
import assert from "node:assert/strict";
import { UsageError } from "../core/errors.ts";
import { ProviderError } from "../core/provider.ts";
import {
  ALPACA_MOCK_KEY,
  ALPACA_MOCK_SECRET,
  type AlpacaMockOptions,
  createAlpacaMock,
  createMarket,
  type startMockServer,
  withMockServer,
} from "../tests/mocks/mod.ts";
import { symbolRecord } from "../tests/_reference.ts";
import { fetchReference } from "./reference.ts";

async function withAlpaca(
  options: Omit<AlpacaMockOptions, "market">,
  fn: (
    ctx: { server: ReturnType<typeof startMockServer>; env: Record<string, string> },
  ) => Promise<void>,
) {
  const mock = createAlpacaMock({
    rateLimit: { limit: 1_000, windowMs: 1_000 },
    ...options,
    market: createMarket(),
  });
  await withMockServer({ alpaca: mock }, (server) =>
    fn({
      server,
      env: {
        ALPACA_KEY: ALPACA_MOCK_KEY,
        ALPACA_SECRET: ALPACA_MOCK_SECRET,
        ALPACA_TRADING_BASE_URL: server.base("alpaca"),
      },
    }));
}

const FAST = { rateLimit: 60_000, baseDelayMs: 1 };

Deno.test("fetchReference(alpaca) maps every us_equity asset, active and inactive", async () => {
  await withAlpaca({}, async ({ server, env }) => {
    const [snapshot] = await fetchReference("alpaca", { asOf: "2024-06-14", env, ...FAST });
    checkSnapshot(snapshot);
    assert.equal(snapshot.source, "alpaca");
    assert.equal(snapshot.complete, true);
    assert.equal(snapshot.asOf, "2024-06-14");
    assert.equal(server.requests[0].path, "/v2/assets");
    assert.deepEqual(server.requests[0].query, { asset_class: "us_equity" });
    assert.equal(server.requests[0].headers["apca-api-key-id"], ALPACA_MOCK_KEY);
    const aapl = snapshot.records.find((r) => r.ticker === "AAPL");
    // An active XNAS stock with no dates and no identifiers but Alpaca's asset id.
    assert.deepEqual(
      aapl,
      symbolRecord("AAPL", {
        instrumentId: "alpaca:b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        name: "Apple Inc. Common Stock",
        providerId: "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
      }),
    );
    const by = (t: string) => snapshot.records.filter((r) => r.ticker === t);
    assert.deepEqual(
      ["SPY", "BRK.B", "IMO", "EFAV", "TCEHY", "GLD"].map((t) => by(t)[0].exchange),
      ["ARCX", "XNYS", "XASE", "BATS", "OTCM", "ARCX"],
    );
    assert.equal(by("SPY")[0].assetClass, "etf");
    assert.equal(by("TCEHY")[0].assetClass, "adr");
    assert.equal(by("TWTR")[0].status, "delisted");
    // One symbol, two assets (a CUSIP change): two instruments.
    assert.equal(by("MSP").length, 2);
    assert.notEqual(by("MSP")[0].instrumentId, by("MSP")[1].instrumentId);
    // XYZ.W.I cannot be stored; the crypto asset is not asked for.
    assert.equal(snapshot.skipped, 1);
    assert.equal(snapshot.records.length, 11);
    assert.ok(!snapshot.records.some((r) => r.ticker.includes("/")));
  });
});

Deno.test("fetchReference(alpaca) retries a 429 and then succeeds", async () => {
  await withAlpaca({}, async ({ server, env }) => {
    server.inject("alpaca", {
      kind: "status",
      status: 429,
      body: JSON.stringify({ code: 42910000, message: "too many requests" }),
    });
    const [snapshot] = await fetchReference("alpaca", { asOf: "2024-06-14", env, ...FAST });
    assert.equal(snapshot.records.length, 11);
    assert.deepEqual(server.requests.map((r) => r.status), [429, 200]);
  });
});

Deno.test("fetchReference(alpaca) fails at once on 401 with a hint and no secret", async () => {
  await withAlpaca({}, async ({ server, env }) => {
    const bad = { ...env, ALPACA_SECRET: "SKwrongSECRETwrongSECRET0001" };
    await assert.rejects(
      () => fetchReference("alpaca", { asOf: "2024-06-14", env: bad, ...FAST }),
      (e) => {
        assert.ok(e instanceof ProviderError);
        assert.equal(e.status, 401);
        assert.match(e.message, /HTTP 401 "request is not authorized": bad credentials/);
        assert.match(e.message, /ALPACA_TRADING_BASE_URL/);
        assert.ok(!e.message.includes("SKwrong"));
        return true;
      },
    );
    assert.equal(server.requests.length, 1);
  });
});

Deno.test("fetchReference(alpaca) rejects a malformed payload naming the field", async () => {
  await withAlpaca({}, async ({ server, env }) => {
    const assets = [
      { id: "a1", symbol: "AAPL", status: "active", exchange: "NASDAQ", name: "Apple" },
      { id: "a2", symbol: 7, status: "active", exchange: "NASDAQ", name: "Seven" },
    ];
    server.inject("alpaca", { kind: "status", status: 200, body: JSON.stringify(assets) });
    await assert.rejects(
      () => fetchReference("alpaca", { asOf: "2024-06-14", env, ...FAST }),
      (e) =>
        e instanceof ProviderError &&
        /unexpected body: assets\[1\]\.symbol is 7, expected a string/.test(e.message),
    );
    server.inject("alpaca", {
      kind: "status",
      status: 200,
      body: JSON.stringify([{ id: "a1", symbol: "AAPL", status: "halted" }]),
    });
    await assert.rejects(
      () => fetchReference("alpaca", { asOf: "2024-06-14", env, ...FAST }),
      /assets\[0\]\.status is "halted", expected active or inactive/,
    );
    server.inject("alpaca", { kind: "status", status: 200, body: '{"assets":[]}' });
    await assert.rejects(
      () => fetchReference("alpaca", { asOf: "2024-06-14", env, ...FAST }),
      /expected a JSON array of assets/,
    );
  });
});

Deno.test("fetchReference(alpaca) reads credentials and the trading URL like the bar provider", async () => {
  await assert.rejects(
    () => fetchReference("alpaca", { asOf: "2024-06-14", env: {} }),
    (e) => e instanceof UsageError && /set ALPACA_KEY and ALPACA_SECRET/.test(e.message),
  );
  await assert.rejects(
    () =>
      fetchReference("alpaca", {
        asOf: "2024-06-14",
        env: { ALPACA_KEY: "k", ALPACA_SECRET: "s", ALPACA_TRADING_BASE_URL: "paper-api" },
      }),
    (e) => e instanceof UsageError && /Invalid ALPACA_TRADING_BASE_URL "paper-api"/.test(e.message),
  );
  await withAlpaca({}, async ({ server }) => {
    // The SDKs' names, with the version path some users write.
    const env = {
      APCA_API_KEY_ID: ALPACA_MOCK_KEY,
      APCA_API_SECRET_KEY: ALPACA_MOCK_SECRET,
      APCA_API_BASE_URL: `${server.base("alpaca")}/v2`,
    };
    const [snapshot] = await fetchReference("alpaca", { asOf: "2024-06-14", env, ...FAST });
    assert.equal(snapshot.records.length, 11);
  });
});
