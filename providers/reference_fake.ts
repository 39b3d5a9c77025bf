/**
 * The offline reference source: a fixed, dated history of a small US market, so tests and the demo
 * see a listing, a delisting and a ticker change without a network (providers/REFERENCE.md,
 * "fake").
 *
 * @module
 */
import type { ReferenceSnapshot, SymbolRecord } from "../core/reference.ts";

/** Dates of the fake source's snapshots, oldest first. */
export const FAKE_REFERENCE_DATES = [
  "2020-01-02",
  "2022-06-09",
  "2024-03-15",
  "2024-09-16",
] as const;

type _Row = Omit<SymbolRecord, "instrumentId" | "status" | "delistDate" | "providerId">;

// Identifiers are the real ones for the real names; OLDCO and NEWCO are made up.
const _BASE: readonly _Row[] = [
  _row(
    "AAPL",
    "Apple Inc.",
    "XNAS",
    "stock",
    "1980-12-12",
    "BBG000B9XRY4",
    "037833100",
    "0000320193",
  ),
  _row(
    "AMZN",
    "Amazon.com Inc.",
    "XNAS",
    "stock",
    "1997-05-15",
    "BBG000BVPV84",
    "023135106",
    "0001018724",
  ),
  _row(
    "BABA",
    "Alibaba Group Holding Ltd. ADS",
    "XNYS",
    "adr",
    "2014-09-19",
    "BBG006G2JVL2",
    "01609W102",
    "0001577552",
  ),
  _row(
    "BRK.B",
    "Berkshire Hathaway Inc. Class B",
    "XNYS",
    "stock",
    "1996-05-09",
    "BBG000DWG505",
    "084670702",
    "0001067983",
  ),
  _row(
    "FB",
    "Facebook Inc. Class A",
    "XNAS",
    "stock",
    "2012-05-18",
    "BBG000MM2P62",
    "30303M102",
    "0001326801",
  ),
  _row(
    "GOOGL",
    "Alphabet Inc. Class A",
    "XNAS",
    "stock",
    "2004-08-19",
    "BBG009S39JX6",
    "02079K305",
    "0001652044",
  ),
  _row(
    "IWM",
    "iShares Russell 2000 ETF",
    "ARCX",
    "etf",
    "2000-05-22",
    "BBG000CGC1X8",
    "464287655",
    "0001100663",
  ),
  _row(
    "MSFT",
    "Microsoft Corp.",
    "XNAS",
    "stock",
    "1986-03-13",
    "BBG000BPH459",
    "594918104",
    "0000789019",
  ),
  _row(
    "NVDA",
    "NVIDIA Corp.",
    "XNAS",
    "stock",
    "1999-01-22",
    "BBG000BBJQV0",
    "67066G104",
    "0001045810",
  ),
  _row(
    "OLDCO",
    "Old Company Holdings Inc.",
    "XNYS",
    "stock",
    "2005-03-01",
    "BBG000ZQK7D1",
    "680001107",
    "0009900001",
  ),
  _row(
    "QQQ",
    "Invesco QQQ Trust Series 1",
    "XNAS",
    "etf",
    "1999-03-10",
    "BBG000BSWKH7",
    "46090E103",
    "0001067839",
  ),
  _row(
    "SPY",
    "SPDR S&P 500 ETF Trust",
    "ARCX",
    "etf",
    "1993-01-29",
    "BBG000BDTBL9",
    "78462F103",
    "0000884394",
  ),
  _row(
    "TSLA",
    "Tesla Inc.",
    "XNAS",
    "stock",
    "2010-06-29",
    "BBG000N9MNX3",
    "88160R101",
    "0001318605",
  ),
];

const _META: _Row = {
  ..._BASE.find((row) => row.ticker === "FB")!,
  ticker: "META",
  name: "Meta Platforms Inc. Class A",
};

const _NEWCO: _Row = _row(
  "NEWCO",
  "New Company Technologies Inc.",
  "XNAS",
  "stock",
  "2024-09-16",
  "BBG01NWC0L42",
  "64999N104",
  "0009900002",
);

/**
 * The fake source's snapshots with `asOf` on or before `asOf`, oldest first, each complete:
 * 2020-01-02 the base set; 2022-06-09 FB becomes META (same FIGI); 2024-03-15 OLDCO is gone
 * (delisted by absence); 2024-09-16 NEWCO lists. The demo symbols (AAPL MSFT NVDA AMZN GOOGL META
 * TSLA SPY QQQ BRK.B) are active on every date. Deterministic: the same on every machine.
 */
export function fakeReferenceSnapshots(asOf: string): ReferenceSnapshot[] {
  const renamed = _BASE.map((row) => row.ticker === "FB" ? _META : row);
  const withoutOldco = renamed.filter((row) => row.ticker !== "OLDCO");
  const sets: Record<(typeof FAKE_REFERENCE_DATES)[number], readonly _Row[]> = {
    "2020-01-02": _BASE,
    "2022-06-09": renamed,
    "2024-03-15": withoutOldco,
    "2024-09-16": [...withoutOldco, _NEWCO],
  };
  return FAKE_REFERENCE_DATES.filter((date) => date <= asOf).map((date) => ({
    source: "fake",
    asOf: date,
    records: [...sets[date]]
      .sort((a, b) => a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : 0)
      .map((row) => ({
        ...row,
        instrumentId: row.figi!,
        status: "active",
        delistDate: null,
        providerId: null,
      })),
    complete: true,
    skipped: 0,
  }));
}

function _row(
  ticker: string,
  name: string,
  exchange: string,
  assetClass: SymbolRecord["assetClass"],
  listDate: string,
  figi: string,
  cusip: string,
  cik: string,
): _Row {
  return { ticker, name, exchange, assetClass, listDate, figi, cusip, cik };
}
