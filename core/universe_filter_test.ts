import assert from "node:assert/strict";
import fc from "fast-check";
import { UsageError } from "./errors.ts";
import type { SymbolVersion } from "./reference.ts";
import { FILTER_FIELDS, matchesFilter, MAX_FILTER_LENGTH, parseFilter } from "./universe_filter.ts";

function row(fields: Partial<SymbolVersion> = {}): SymbolVersion {
  return {
    source: "polygon",
    instrumentId: "BBG000B9XRY4",
    ticker: "AAPL",
    name: "Apple Inc.",
    exchange: "XNAS",
    assetClass: "stock",
    status: "active",
    listDate: "1980-12-12",
    delistDate: null,
    figi: "BBG000B9XRY4",
    cusip: "037833100",
    cik: "0000320193",
    providerId: null,
    asOf: "2024-01-02",
    validFrom: "2024-01-02",
    validTo: null,
    ...fields,
  };
}

const AAPL = row();
const SPY = row({
  ticker: "SPY",
  name: "SPDR S&P 500 ETF Trust",
  exchange: "ARCX",
  assetClass: "etf",
  listDate: "1993-01-22",
  cik: null,
  cusip: null,
});
const TWTR = row({
  ticker: "TWTR",
  name: "Twitter, Inc.",
  exchange: "XNYS",
  status: "delisted",
  listDate: "2013-11-07",
  delistDate: "2022-11-08",
  source: "fake",
});
const NOEXCHANGE = row({ ticker: "ZZZZ", name: null, exchange: null });
const ROWS = [AAPL, SPY, TWTR, NOEXCHANGE];

/** Tickers of ROWS that `text` matches. */
function select(text: string): string[] {
  const filter = parseFilter(text);
  return ROWS.filter((r) => matchesFilter(filter, r)).map((r) => r.ticker);
}

/** Assert `text` is refused with a UsageError whose message matches `pattern`. */
function refuses(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseFilter(text),
    (error: Error) => {
      assert.ok(error instanceof UsageError, `${text}: ${error}`);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

Deno.test("matchesFilter() applies each comparison operator", () => {
  assert.deepEqual(select("ticker = 'AAPL'"), ["AAPL"]);
  assert.deepEqual(select("exchange != 'XNAS'"), ["SPY", "TWTR"]);
  assert.deepEqual(select("exchange <> 'XNAS'"), ["SPY", "TWTR"]);
  assert.deepEqual(select("list_date < '1993-01-22'"), ["AAPL", "ZZZZ"]);
  assert.deepEqual(select("list_date <= '1993-01-22'"), ["AAPL", "SPY", "ZZZZ"]);
  assert.deepEqual(select("list_date > '1993-01-22'"), ["TWTR"]);
  assert.deepEqual(select("list_date >= '1993-01-22'"), ["SPY", "TWTR"]);
  assert.deepEqual(select("delist_date >= '2022-01-01'"), ["TWTR"]);
});

Deno.test("matchesFilter() applies in, not in, like, not like and is [not] null", () => {
  assert.deepEqual(select("exchange in ('XNAS', 'XNYS')"), ["AAPL", "TWTR"]);
  assert.deepEqual(select("exchange not in ('XNAS', 'XNYS')"), ["SPY"]);
  assert.deepEqual(select("name like '%Inc.'"), ["AAPL", "TWTR"]);
  assert.deepEqual(select("name like 'Apple%'"), ["AAPL"]);
  assert.deepEqual(select("name like 'apple%'"), [], "like is case-sensitive");
  assert.deepEqual(select("ticker like '___'"), ["SPY"]);
  assert.deepEqual(select("ticker like 'A_P_'"), ["AAPL"]);
  assert.deepEqual(select("name like 'SPDR S&P 500 ETF Trust'"), ["SPY"]);
  assert.deepEqual(select("name like '%.'"), ["AAPL", "TWTR"], "a dot is literal");
  assert.deepEqual(select("name not like '%Inc.'"), ["SPY"]);
  assert.deepEqual(select("delist_date is null"), ["AAPL", "SPY", "ZZZZ"]);
  assert.deepEqual(select("delist_date IS NOT NULL"), ["TWTR"]);
  assert.deepEqual(select("source = 'fake'"), ["TWTR"]);
  assert.deepEqual(select("figi = 'BBG000B9XRY4' and cusip = '037833100'"), [
    "AAPL",
    "TWTR",
    "ZZZZ",
  ]);
});

Deno.test("matchesFilter() compares numbers with the field read as a number", () => {
  assert.deepEqual(select("cik = 320193"), ["AAPL", "TWTR", "ZZZZ"]);
  assert.deepEqual(select("cik = '320193'"), [], "a string compares as text");
  assert.deepEqual(select("cik > 1000000"), []);
  assert.deepEqual(select("cik in (1, 320193)"), ["AAPL", "TWTR", "ZZZZ"]);
  assert.deepEqual(select("name = 5"), [], "a name that is no number is unknown");
  assert.deepEqual(parseFilter("cik >= -1.5"), { op: ">=", field: "cik", value: -1.5 });
});

Deno.test("matchesFilter() treats a comparison of a null field as unknown, not as false", () => {
  assert.deepEqual(select("exchange = 'XNAS'"), ["AAPL"]);
  assert.deepEqual(select("exchange != 'XNAS'"), ["SPY", "TWTR"]);
  assert.deepEqual(select("not exchange = 'XNAS'"), ["SPY", "TWTR"]);
  assert.deepEqual(select("exchange not in ('XNAS')"), ["SPY", "TWTR"]);
  assert.deepEqual(select("name not like 'x%'"), ["AAPL", "SPY", "TWTR"]);
  assert.deepEqual(select("exchange = 'XNAS' or exchange is null"), ["AAPL", "ZZZZ"]);
  assert.deepEqual(select("not (exchange = 'XNAS' and ticker = 'ZZZZ')"), ["AAPL", "SPY", "TWTR"]);
  assert.deepEqual(select("exchange = 'XNAS' or ticker = 'ZZZZ'"), ["AAPL", "ZZZZ"]);
});

Deno.test("parseFilter() binds and tighter than or, not tighter than and, parentheses first", () => {
  // a or b and c = a or (b and c)
  assert.deepEqual(
    select("ticker = 'SPY' or ticker = 'AAPL' and status = 'delisted'"),
    ["SPY"],
  );
  assert.deepEqual(
    select("(ticker = 'SPY' or ticker = 'AAPL') and status = 'delisted'"),
    [],
  );
  assert.deepEqual(select("not status = 'active' and exchange = 'XNYS'"), ["TWTR"]);
  assert.deepEqual(select("not (status = 'active' or exchange = 'XNYS')"), []);
  assert.deepEqual(select("not not ticker = 'SPY'"), ["SPY"]);
  assert.deepEqual(parseFilter("ticker = 'A' or ticker = 'B' and ticker = 'C'"), {
    op: "or",
    left: { op: "=", field: "ticker", value: "A" },
    right: {
      op: "and",
      left: { op: "=", field: "ticker", value: "B" },
      right: { op: "=", field: "ticker", value: "C" },
    },
  });
});

Deno.test("parseFilter() reads keywords and fields in any case, and normalises coded values", () => {
  assert.deepEqual(select("Exchange IN ('xnas') AND Status = 'ACTIVE'"), ["AAPL"]);
  assert.deepEqual(select("asset_class = 'ETF'"), ["SPY"]);
  assert.deepEqual(select("ticker = 'spy'"), ["SPY"]);
  assert.deepEqual(select("name = 'spdr s&p 500 etf trust'"), [], "names keep their case");
  assert.deepEqual(parseFilter("name = 'It''s'"), { op: "=", field: "name", value: "It's" });
  assert.deepEqual(select("\tticker\n=\n'SPY'  "), ["SPY"]);
});

Deno.test("parseFilter() names the token and column of a syntax error", () => {
  refuses("status = 'active'; DROP TABLE x", /unexpected ";" at column 18/);
  refuses("1=1 --", /unexpected "1" at column 1; expected a field name/);
  refuses("ticker = 'A' --", /unexpected "--" at column 14/);
  refuses("ticker = 'A' /* x */", /unexpected "\/" at column 14/);
  refuses("name = 'a' or 1", /unexpected "1" at column 15; expected a field name/);
  refuses("name = 'abc", /an unclosed quote at column 8/);
  refuses("name = 'a''", /an unclosed quote at column 8/);
  refuses(
    "(status = 'active'",
    /unexpected end of the filter at column 19; expected \) to close the \( at column 1/,
  );
  refuses("status = 'active')", /unexpected "\)" at column 18; no \( to close/);
  refuses("((status = 'active')", /expected \) to close the \( at column 1/);
  refuses("foo = 'x'", /unknown field "foo" at column 1; expected one of ticker, name/);
  refuses("statsu = 'x'", /unknown field "statsu".*\(did you mean "status"\?\)/);
  refuses("lower(name) = 'a'", /function call "lower\(" at column 1; functions are not supported/);
  refuses("ticker = upper('a')", /function call "upper\(" at column 10/);
  refuses("", /an empty filter at column 1/);
  refuses("   ", /an empty filter at column 1/);
  refuses("status", /unexpected end of the filter at column 7; expected an operator/);
  refuses("status = ", /unexpected end of the filter at column 10/);
  refuses("status = 'active' and", /unexpected end of the filter at column 22/);
  refuses("ticker in ()", /unexpected "\)" at column 12/);
  refuses("ticker in ('A' 'B')", /unexpected 'B' at column 16; expected , or \)/);
  refuses("ticker in 'A'", /unexpected 'A' at column 11; expected \( after in/);
  refuses("ticker is 'x'", /unexpected 'x' at column 11; expected null after "is"/);
  refuses("ticker not = 'A'", /unexpected "=" at column 12; expected in or like after not/);
  refuses("ticker == 'A'", /unexpected "=" at column 9/);
  refuses('name = "abc"', /unexpected '"' at column 8; quote strings with '/);
  refuses("name like 5", /unexpected "5" at column 11; expected a quoted pattern/);
  refuses("cik = 12a", /unexpected "12a" at column 7/);
  refuses("and = 'x'", /unexpected "and" at column 1/);
  refuses("ticker = 'A' union select 1", /unexpected "union" at column 14; expected and, or/);
  refuses("ticker = ticker", /unexpected "ticker" at column 10; expected a quoted string/);
  refuses("é = 'x'", /unexpected "é" at column 1/);
});

Deno.test("parseFilter() checks values of coded and date fields", () => {
  refuses("status = 'actve'", /unknown status 'actve' at column 10.*\(did you mean "active"\?\)/);
  refuses("asset_class in ('etf', 'bond')", /unknown asset_class 'bond' at column 24/);
  refuses("source = 'bloomberg'", /unknown source 'bloomberg'/);
  refuses("list_date > '2020-1-1'", /invalid date '2020-1-1' at column 13; expected YYYY-MM-DD/);
  refuses("list_date > '2021-02-29'", /invalid date '2021-02-29'/);
  refuses("list_date > 2020", /unexpected "2020" at column 13; expected a quoted YYYY-MM-DD date/);
  refuses("status = 1", /unexpected "1" at column 10; expected a quoted value for status/);
  // like on a coded field takes any pattern.
  assert.deepEqual(select("asset_class like 'ET%'"), ["SPY"]);
});

Deno.test("parseFilter() refuses filters that are too long or nested too deep", () => {
  refuses(`ticker = '${"A".repeat(MAX_FILTER_LENGTH)}'`, /more than the limit of 4000/);
  refuses(`${"(".repeat(100)}ticker = 'A'${")".repeat(100)}`, /nesting deeper than 64 levels/);
  refuses(`${"not ".repeat(100)}ticker = 'A'`, /nesting deeper than 64 levels/);
  assert.deepEqual(select(`${"(".repeat(30)}ticker = 'SPY'${")".repeat(30)}`), ["SPY"]);
});

Deno.test("parseFilter() knows every filter field", () => {
  for (const field of FILTER_FIELDS) {
    parseFilter(`${field} is not null`);
  }
  assert.equal(FILTER_FIELDS.length, 11);
});

Deno.test("parseFilter() throws only UsageError on arbitrary input", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (text) => {
      try {
        parseFilter(text);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        assert.match(error.message, /^Invalid filter /);
      }
    }),
    { numRuns: 2_000 },
  );
  const pieces = ["ticker", "status", "=", "in", "(", ")", "'a'", ",", "not", "and", "or", "1"];
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 12 }), (parts) => {
      try {
        const filter = parseFilter(parts.join(" "));
        for (const r of ROWS) matchesFilter(filter, r);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        assert.match(error.message, /at column \d+/);
      }
    }),
    { numRuns: 2_000 },
  );
});
