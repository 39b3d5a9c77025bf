/**
 * The Nasdaq Trader symbol directory: `nasdaqlisted.txt` (Nasdaq-listed securities) and
 * `otherlisted.txt` (NYSE, NYSE American, NYSE Arca, Cboe BZX, IEX), pipe-delimited with a header
 * and a `File Creation Time` footer (providers/REFERENCE.md, "nasdaq").
 *
 * @module
 */
import { UsageError } from "../core/errors.ts";
import type { AssetClass, ReferenceSnapshot, SymbolRecord } from "../core/reference.ts";
import { redactUrl } from "../core/secrets.ts";
import { isValidSymbol } from "../core/symbols.ts";
import { createHttpClient, injectedClientOptions } from "./http.ts";
import type { ReferenceFetchOptions } from "./reference.ts";

/** Where Nasdaq publishes the two files (refreshed each business day). */
export const NASDAQ_DIRECTORY_URLS = [
  "https://www.nasdaqtrader.com/dynamic/SymDir/nasdaqlisted.txt",
  "https://www.nasdaqtrader.com/dynamic/SymDir/otherlisted.txt",
] as const;

/** Header of `nasdaqlisted.txt`. */
export const NASDAQ_LISTED_HEADER =
  "Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares";
/** Header of `otherlisted.txt`. */
export const OTHER_LISTED_HEADER =
  "ACT Symbol|Security Name|Exchange|CQS Symbol|ETF|Round Lot Size|Test Issue|NASDAQ Symbol";

/** Nasdaq market tiers (Global Select, Global Market, Capital Market): all on XNAS. */
const _MARKET_CATEGORIES: Readonly<Record<string, string>> = { Q: "XNAS", G: "XNAS", S: "XNAS" };
/** `otherlisted.txt` exchange codes to MICs. */
const _EXCHANGES: Readonly<Record<string, string>> = {
  A: "XASE",
  N: "XNYS",
  P: "ARCX",
  Z: "BATS",
  V: "IEXG",
};

/** One parsed directory file. */
export interface NasdaqDirectory {
  kind: "nasdaqlisted" | "otherlisted";
  records: SymbolRecord[];
  /** Test issues and tickers MarketPipe cannot store. */
  skipped: number;
  /** The footer's `File Creation Time`, as `YYYY-MM-DDTHH:MM` (New York time). */
  createdAt: string;
}

/**
 * Parse one directory file, detected by its header. Test issues and tickers that
 * `isValidSymbol` rejects are skipped and counted; a malformed line (wrong field count, empty
 * symbol, unknown code), a missing header or footer, or a ticker listed twice throws a
 * {@link UsageError} naming `name` and the 1-based line.
 */
export function parseNasdaqDirectory(text: string, name: string): NasdaqDirectory {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === "") lines.pop();
  const fail = (line: number, what: string) =>
    new UsageError(`Invalid nasdaq file "${name}" line ${line}: ${what}`);
  const header = (lines[0] ?? "").trim();
  const kind = header === NASDAQ_LISTED_HEADER
    ? "nasdaqlisted"
    : header === OTHER_LISTED_HEADER
    ? "otherlisted"
    : undefined;
  if (kind === undefined) {
    throw fail(
      1,
      `expected the header of nasdaqlisted.txt ("${NASDAQ_LISTED_HEADER}") or otherlisted.txt ` +
        `("${OTHER_LISTED_HEADER}"), found ${JSON.stringify(_excerpt(header))}`,
    );
  }
  const last = lines.length > 1 ? lines[lines.length - 1] : "";
  const footer = /^File Creation Time: (\d{2})(\d{2})(\d{4})(\d{2}):(\d{2})\|*\s*$/.exec(last);
  if (!footer) {
    throw fail(
      lines.length,
      `expected the footer "File Creation Time: MMDDYYYYHH:MM", found ${
        JSON.stringify(_excerpt(last))
      } (is the file cut short?)`,
    );
  }
  const [, mm, dd, yyyy, hh, mi] = footer;
  const createdAt = `${yyyy}-${mm}-${dd}T${hh}:${mi}`;

  const records: SymbolRecord[] = [];
  const seen = new Map<string, number>();
  let skipped = 0;
  for (let i = 1; i < lines.length - 1; i++) {
    const lineNo = i + 1;
    const fields = lines[i].split("|").map((field) => field.trim());
    if (fields.length !== 8) {
      throw fail(lineNo, `expected 8 fields separated by "|", found ${fields.length}`);
    }
    const nasdaq = kind === "nasdaqlisted";
    const row = {
      symbol: fields[0],
      name: fields[1],
      exchangeCode: fields[2],
      exchangeField: nasdaq ? "Market Category" : "Exchange",
      exchanges: nasdaq ? _MARKET_CATEGORIES : _EXCHANGES,
      test: fields[nasdaq ? 3 : 6],
      etf: fields[nasdaq ? 6 : 4],
    };
    if (row.symbol === "") throw fail(lineNo, "empty symbol");
    for (const [field, value] of [["Test Issue", row.test], ["ETF", row.etf]]) {
      if (value !== "Y" && value !== "N") {
        throw fail(lineNo, `${field} is ${JSON.stringify(value)}, expected Y or N`);
      }
    }
    const exchange = row.exchanges[row.exchangeCode];
    if (exchange === undefined) {
      throw fail(
        lineNo,
        `${row.exchangeField} is ${JSON.stringify(row.exchangeCode)}, expected one of ${
          Object.keys(row.exchanges).join(", ")
        }`,
      );
    }
    if (row.test === "Y") {
      skipped++;
      continue;
    }
    // otherlisted writes preferreds in CQS-like ACT form, `ABR$D`: MarketPipe spells it ABR-D.
    const preferred = row.symbol.includes("$");
    const ticker = row.symbol.replace("$", "-").toUpperCase();
    if (!isValidSymbol(ticker)) {
      skipped++;
      continue;
    }
    const earlier = seen.get(ticker);
    if (earlier !== undefined) {
      throw fail(lineNo, `symbol "${ticker}" is listed again (first on line ${earlier})`);
    }
    seen.set(ticker, lineNo);
    records.push({
      instrumentId: ticker,
      ticker,
      name: row.name === "" ? null : row.name,
      exchange,
      assetClass: row.etf === "Y" ? "etf" : preferred ? "preferred" : assetClassFromName(row.name),
      status: "active",
      listDate: null,
      delistDate: null,
      figi: null,
      cusip: null,
      cik: null,
      providerId: null,
    });
  }
  return { kind, records, skipped, createdAt };
}

/**
 * The asset class a security's name makes clear: preferred, warrant, right, unit, ADR, fund,
 * notes (`other`), else `stock`. Used for sources without a type code (Nasdaq's files, Alpaca);
 * `etfWord` also reads "ETF" in the name as an ETF (Alpaca has no ETF flag).
 */
export function assetClassFromName(name: string, options: { etfWord?: boolean } = {}): AssetClass {
  const text = name.trim();
  if (/\bpreferred\b|\bpfd\.?(\s|$)/i.test(text)) return "preferred";
  // Nasdaq writes "Company - Warrant"; others "Company Warrants" or "Units, each consisting of".
  const tail = text.includes(" - ") ? text.slice(text.lastIndexOf(" - ") + 3) : text;
  const kind = /^(warrants?|units?|rights?)\b/i.exec(tail)?.[1] ??
    /\b(warrants?|units?|rights?)(?:\s*$|\s*,|\s+each\b|\s+to\s+(?:purchase|acquire|receive)\b)/i
      .exec(text)?.[1];
  // Partnership and common units are equity, not SPAC units.
  if (kind !== undefined && !/\b(?:partnership|common|depositary)\s+units?\b/i.test(text)) {
    const word = kind.toLowerCase();
    return word.startsWith("warrant") ? "warrant" : word.startsWith("unit") ? "unit" : "right";
  }
  if (/american depositary|\bADS\b|\bADRs?\b/i.test(text)) return "adr";
  if (options.etfWord && /\bETF\b/i.test(text)) return "etf";
  if (/\bETNs?\b|\bnotes?\b(?:\s+due\b)?|\bdebentures?\b/i.test(text)) return "other";
  if (/\bfund\b/i.test(text)) return "fund";
  return "stock";
}

/**
 * The nasdaq snapshot from `options.texts` and `options.urls` (both may be given; with neither,
 * the two files on nasdaqtrader.com). Complete only when both a nasdaqlisted and an otherlisted
 * file were read: with one, instruments it does not list are left as they are.
 */
export async function fetchNasdaqReference(
  options: ReferenceFetchOptions,
): Promise<ReferenceSnapshot> {
  const texts = [...(options.texts ?? [])];
  const urls = options.urls ?? (texts.length === 0 ? [...NASDAQ_DIRECTORY_URLS] : []);
  for (const url of urls) {
    texts.push({ name: redactUrl(url), text: await _fetchText(url, options) });
  }
  const files = texts.map(({ name, text }) => ({ name, ...parseNasdaqDirectory(text, name) }));
  const byKind = new Map<string, string>();
  for (const file of files) {
    const other = byKind.get(file.kind);
    if (other !== undefined) {
      throw new UsageError(
        `Cannot read two ${file.kind}.txt files at once: "${other}" and "${file.name}"`,
      );
    }
    byKind.set(file.kind, file.name);
  }
  const records: SymbolRecord[] = [];
  const from = new Map<string, string>();
  for (const file of files) {
    for (const record of file.records) {
      const other = from.get(record.ticker);
      if (other !== undefined) {
        throw new UsageError(
          `Invalid nasdaq file "${file.name}": symbol "${record.ticker}" is also listed in "${other}"`,
        );
      }
      from.set(record.ticker, file.name);
      records.push(record);
    }
  }
  records.sort((a, b) => a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : 0);
  return {
    source: "nasdaq",
    asOf: options.asOf,
    records,
    complete: byKind.has("nasdaqlisted") && byKind.has("otherlisted"),
    skipped: files.reduce((sum, file) => sum + file.skipped, 0),
  };
}

async function _fetchText(text: string, options: ReferenceFetchOptions): Promise<string> {
  const url = URL.parse(text);
  if (url?.protocol !== "http:" && url?.protocol !== "https:") {
    throw new UsageError(`Invalid --url "${redactUrl(text)}": expected an http(s) URL`);
  }
  const http = createHttpClient({
    provider: "nasdaq",
    baseUrl: url.origin,
    perMinute: options.rateLimit ?? 60,
    ...injectedClientOptions(options),
  });
  return await http.get(url.pathname + url.search, {
    body: "text",
    signal: options.signal,
    parse: (body) => body as string,
  });
}

function _excerpt(text: string): string {
  return text.length <= 80 ? text : `${text.slice(0, 80)}...`;
}
