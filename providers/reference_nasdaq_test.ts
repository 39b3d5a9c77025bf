import { checkSnapshot } from "../core/reference.ts";
import assert from "node:assert/strict";
import { UsageError } from "../core/errors.ts";
import { ProviderError } from "../core/provider.ts";
import { startMockServer } from "../tests/mocks/mod.ts";
import { symbolRecord } from "../tests/_reference.ts";
import { fetchReference } from "./reference.ts";
import {
  assetClassFromName,
  NASDAQ_LISTED_HEADER,
  OTHER_LISTED_HEADER,
  parseNasdaqDirectory,
} from "./reference_nasdaq.ts";

const FIXTURES = new URL("../tests/fixtures/nasdaq/", import.meta.url);
const LISTED = Deno.readTextFileSync(new URL("nasdaqlisted.txt", FIXTURES));
const OTHER = Deno.readTextFileSync(new URL("otherlisted.txt", FIXTURES));
const FOOTER = "File Creation Time: 0614202421:32|||||||";

function usageError(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.match(e.message, pattern);
    return true;
  };
}

Deno.test("parseNasdaqDirectory() reads nasdaqlisted.txt: XNAS, ETF flag, test issues skipped", () => {
  const file = parseNasdaqDirectory(LISTED, "nasdaqlisted.txt");
  assert.equal(file.kind, "nasdaqlisted");
  assert.equal(file.createdAt, "2024-06-14T21:32");
  assert.equal(file.skipped, 3);
  const by = new Map(file.records.map((r) => [r.ticker, r]));
  assert.equal(file.records.length, 14);
  // An active XNAS stock with no dates and no identifiers.
  assert.deepEqual(
    by.get("AAPL"),
    symbolRecord("AAPL", { instrumentId: "AAPL", name: "Apple Inc. - Common Stock" }),
  );
  assert.ok(file.records.every((r) => r.exchange === "XNAS"));
  assert.equal(by.get("QQQ")!.assetClass, "etf");
  assert.equal(by.get("TLT")!.assetClass, "etf");
  assert.equal(by.get("AACG")!.assetClass, "adr");
  assert.equal(by.get("ACAHU")!.assetClass, "unit");
  assert.equal(by.get("ACAHW")!.assetClass, "warrant");
  assert.equal(by.get("BRKHR")!.assetClass, "right");
  assert.equal(by.get("ACAH")!.assetClass, "stock");
  assert.equal(by.get("ZVZZT"), undefined);
});

Deno.test("parseNasdaqDirectory() reads otherlisted.txt: exchange MICs, preferreds, bad tickers skipped", () => {
  const file = parseNasdaqDirectory(OTHER, "otherlisted.txt");
  assert.equal(file.kind, "otherlisted");
  // Two test issues and XYZ.W.I, which is not a ticker MarketPipe can store.
  assert.equal(file.skipped, 3);
  const by = new Map(file.records.map((r) => [r.ticker, r]));
  assert.deepEqual(
    ["A", "IMO", "GLD", "CBOE", "IEXA"].map((t) => by.get(t)!.exchange),
    ["XNYS", "XASE", "ARCX", "BATS", "IEXG"],
  );
  assert.equal(by.get("ABR-D")!.assetClass, "preferred");
  assert.equal(by.get("ABR$D"), undefined);
  assert.equal(by.get("ACHR.WS")!.assetClass, "warrant");
  assert.equal(by.get("ADX")!.assetClass, "fund");
  assert.equal(by.get("BABA")!.assetClass, "adr");
  assert.equal(by.get("BRK.B")!.assetClass, "stock");
  assert.equal(by.get("SPY")!.assetClass, "etf");
  assert.equal(by.get("NTEST"), undefined);
  assert.equal(by.get("XYZ.W.I"), undefined);
});

Deno.test("parseNasdaqDirectory() names the file and line of a malformed input", () => {
  const lines = LISTED.split("\r\n");
  assert.throws(
    () => parseNasdaqDirectory("Symbol|Name\r\n" + FOOTER, "x.txt"),
    usageError(/^Invalid nasdaq file "x\.txt" line 1: expected the header of nasdaqlisted\.txt/),
  );
  assert.throws(
    () => parseNasdaqDirectory(lines.slice(0, 5).join("\r\n"), "cut.txt"),
    usageError(/^Invalid nasdaq file "cut\.txt" line 5: expected the footer "File Creation Time/),
  );
  const broken = [...lines];
  broken[3] = "ACAH|Atlantic Coastal|S|N|N|100|N";
  assert.throws(
    () => parseNasdaqDirectory(broken.join("\r\n"), "nasdaqlisted.txt"),
    usageError(/"nasdaqlisted\.txt" line 4: expected 8 fields separated by "\|", found 7/),
  );
  broken[3] = "|Nameless|S|N|N|100|N|N";
  assert.throws(
    () => parseNasdaqDirectory(broken.join("\r\n"), "nasdaqlisted.txt"),
    usageError(/line 4: empty symbol/),
  );
  assert.throws(
    () =>
      parseNasdaqDirectory(`${OTHER_LISTED_HEADER}\nA|Agilent|X|A|N|100|N|A\n${FOOTER}\n`, "o.txt"),
    usageError(/"o\.txt" line 2: Exchange is "X", expected one of A, N, P, Z, V/),
  );
  assert.throws(
    () =>
      parseNasdaqDirectory(
        `${NASDAQ_LISTED_HEADER}\nAAPL|Apple|Q|N|N|100|N|N\nAAPL|Apple|Q|N|N|100|N|N\n${FOOTER}`,
        "d.txt",
      ),
    usageError(/line 3: symbol "AAPL" is listed again \(first on line 2\)/),
  );
  assert.throws(
    () => parseNasdaqDirectory(`${NASDAQ_LISTED_HEADER}\nAAPL|Apple|Q|N|N|100|N|N\n`, "f.txt"),
    usageError(/line 2: expected the footer/),
  );
});

Deno.test("fetchReference(nasdaq) with both files is complete; with one it is partial", async () => {
  const [both] = await fetchReference("nasdaq", {
    asOf: "2024-06-14",
    env: {},
    texts: [{ name: "nasdaqlisted.txt", text: LISTED }, { name: "otherlisted.txt", text: OTHER }],
  });
  checkSnapshot(both);
  assert.equal(both.source, "nasdaq");
  assert.equal(both.asOf, "2024-06-14");
  assert.equal(both.complete, true);
  assert.equal(both.skipped, 6);
  assert.equal(both.records.length, 14 + 13);
  const tickers = both.records.map((r) => r.ticker);
  assert.deepEqual(tickers, [...tickers].sort());
  const [one] = await fetchReference("nasdaq", {
    asOf: "2024-06-14",
    env: {},
    texts: [{ name: "otherlisted.txt", text: OTHER }],
  });
  assert.equal(one.complete, false);
  assert.equal(one.records.length, 13);
  await assert.rejects(
    () =>
      fetchReference("nasdaq", {
        asOf: "2024-06-14",
        env: {},
        texts: [{ name: "a.txt", text: OTHER }, { name: "b.txt", text: OTHER }],
      }),
    usageError(/two otherlisted\.txt files at once: "a\.txt" and "b\.txt"/),
  );
});

Deno.test("fetchReference(nasdaq) fetches URLs through the HTTP client and names them in errors", async () => {
  const server = startMockServer({
    nasdaq: {
      handle: (request) =>
        request.path === "/SymDir/nasdaqlisted.txt"
          ? { status: 200, headers: { "Content-Type": "text/plain" }, body: LISTED }
          : request.path === "/SymDir/otherlisted.txt"
          ? { status: 200, headers: { "Content-Type": "text/plain" }, body: OTHER }
          : request.path === "/SymDir/cut.txt"
          ? { status: 200, headers: { "Content-Type": "text/plain" }, body: LISTED.slice(0, 300) }
          : { status: 404, body: "Not Found" },
    },
  });
  try {
    const base = `${server.base("nasdaq")}/SymDir`;
    server.inject("nasdaq", { kind: "status", status: 503 });
    const [snapshot] = await fetchReference("nasdaq", {
      asOf: "2024-06-14",
      env: {},
      urls: [`${base}/nasdaqlisted.txt`, `${base}/otherlisted.txt`],
      baseDelayMs: 1,
      rateLimit: 60_000,
    });
    assert.equal(snapshot.complete, true);
    assert.equal(snapshot.records.length, 27);
    assert.equal(server.requests.length, 3, "the 503 was retried");
    await assert.rejects(
      () => fetchReference("nasdaq", { asOf: "2024-06-14", env: {}, urls: [`${base}/cut.txt`] }),
      usageError(
        /^Invalid nasdaq file "http:\/\/127\.0\.0\.1:\d+\/nasdaq\/SymDir\/cut\.txt" line \d+: /,
      ),
    );
    await assert.rejects(
      () => fetchReference("nasdaq", { asOf: "2024-06-14", env: {}, urls: [`${base}/gone.txt`] }),
      (e) =>
        e instanceof ProviderError &&
        /Cannot fetch \/nasdaq\/SymDir\/gone\.txt from "nasdaq": HTTP 404/.test(e.message),
    );
    await assert.rejects(
      () => fetchReference("nasdaq", { asOf: "2024-06-14", env: {}, urls: ["ftp://x/y.txt"] }),
      usageError(/Invalid --url "ftp:\/\/x\/y\.txt": expected an http\(s\) URL/),
    );
  } finally {
    await server.close();
  }
});

Deno.test("assetClassFromName() reads only what the name makes clear", () => {
  const cases: [string, string][] = [
    ["Apple Inc. - Common Stock", "stock"],
    ["Brookfield Renewable Partners L.P. Limited Partnership Units", "stock"],
    ["Foo Acquisition Corp. - Units", "unit"],
    ["Foo Acquisition Corp Units, each consisting of one share", "unit"],
    ["Foo Acquisition Corp. - Rights", "right"],
    ["Foo Corp Warrants to purchase Class A", "warrant"],
    ["Bank 5.85% Depositary Shares Series A Preferred", "preferred"],
    ["Taiwan Semiconductor Manufacturing Company Ltd. ADR", "adr"],
    ["Foo Corp 6.00% Notes due 2028", "other"],
    ["United Parcel Service Inc. Class B", "stock"],
  ];
  for (const [name, expected] of cases) assert.equal(assetClassFromName(name), expected, name);
  assert.equal(assetClassFromName("SPDR S&P 500 ETF Trust", { etfWord: true }), "etf");
  assert.equal(assetClassFromName("SPDR S&P 500 ETF Trust"), "stock");
});
