/**
 * Alpaca's asset list, `GET /v2/assets?asset_class=us_equity` on the trading API host (not the
 * data host the bars come from): every US equity asset, active and inactive, in one answer
 * (providers/REFERENCE.md, "alpaca").
 *
 * @module
 */
import type { ReferenceSnapshot, SymbolRecord } from "../core/reference.ts";
import { isValidSymbol } from "../core/symbols.ts";
import {
  baseUrlFromEnv,
  createHttpClient,
  firstEnv,
  injectedClientOptions,
  requireCredentials,
} from "./http.ts";
import { isObject, jsonKind } from "./http_normalize.ts";
import { ALPACA_CREDENTIAL_VARS, ALPACA_RATE_LIMIT } from "./alpaca.ts";
import type { ReferenceFetchOptions } from "./reference.ts";
import { assetClassFromName } from "./reference_nasdaq.ts";

/** Trading API host of paper accounts (the default: free keys are paper keys). */
export const ALPACA_PAPER_TRADING_URL = "https://paper-api.alpaca.markets";
/** Trading API host of live accounts. */
export const ALPACA_LIVE_TRADING_URL = "https://api.alpaca.markets";

const _URL_VARS = ["ALPACA_TRADING_BASE_URL", "APCA_API_BASE_URL"] as const;

/** Alpaca exchange names to MICs; any other name maps to null. */
export const ALPACA_EXCHANGES: Readonly<Record<string, string>> = {
  NASDAQ: "XNAS",
  NYSE: "XNYS",
  ARCA: "ARCX",
  NYSEARCA: "ARCX",
  AMEX: "XASE",
  BATS: "BATS",
  OTC: "OTCM",
};

/** Throw a `UsageError` when a credential is missing or the trading base URL is bad. */
export function checkAlpacaReference(env: Record<string, string | undefined>): void {
  requireCredentials("alpaca", env, ALPACA_CREDENTIAL_VARS);
  _tradingBaseUrl(env);
}

/**
 * Every `us_equity` asset Alpaca knows, as one complete snapshot. An asset is one instrument
 * (`alpaca:<id>`; Alpaca makes a new asset when the CUSIP changes); `inactive` means delisted.
 * Alpaca has no ETF flag or type code: the asset class is read from the name (see
 * {@link assetClassFromName}).
 */
export async function fetchAlpacaReference(
  options: ReferenceFetchOptions,
): Promise<ReferenceSnapshot> {
  const [key, secret] = requireCredentials("alpaca", options.env, ALPACA_CREDENTIAL_VARS);
  const http = createHttpClient({
    provider: "alpaca",
    baseUrl: _tradingBaseUrl(options.env),
    perMinute: options.rateLimit ?? ALPACA_RATE_LIMIT,
    headers: { "APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret },
    secrets: [key, secret],
    ...injectedClientOptions(options),
    explainError: (status) =>
      status === 401 || status === 403
        ? {
          hint: "bad credentials: check ALPACA_KEY and ALPACA_SECRET, and that " +
            `ALPACA_TRADING_BASE_URL matches the keys (paper keys: ${ALPACA_PAPER_TRADING_URL}, ` +
            `live keys: ${ALPACA_LIVE_TRADING_URL})`,
          fatal: true,
        }
        : undefined,
  });
  // Without `status` the answer holds every status (Alpaca documents only active|inactive).
  const { records, skipped } = await http.get("/v2/assets", {
    query: { asset_class: "us_equity" },
    signal: options.signal,
    parse: _parseAssets,
  });
  return { source: "alpaca", asOf: options.asOf, records, complete: true, skipped };
}

function _tradingBaseUrl(env: Record<string, string | undefined>): string {
  const name = _URL_VARS.find((n) => firstEnv(env, [n]) !== undefined) ?? _URL_VARS[0];
  const url = baseUrlFromEnv(env, name, ALPACA_PAPER_TRADING_URL)!;
  // The SDKs' APCA_API_BASE_URL is sometimes written with the version path.
  return url.replace(/\/v2$/, "");
}

function _parseAssets(body: unknown): { records: SymbolRecord[]; skipped: number } {
  if (!Array.isArray(body)) throw new TypeError("expected a JSON array of assets");
  const records: SymbolRecord[] = [];
  let skipped = 0;
  body.forEach((asset: unknown, i: number) => {
    const at = `assets[${i}]`;
    if (!isObject(asset)) throw new TypeError(`${at} is ${jsonKind(asset)}, expected an object`);
    const text = (key: string, required: boolean): string | null => {
      const value = asset[key];
      if ((value === undefined || value === null || value === "") && !required) return null;
      if (typeof value !== "string" || value.trim() === "") {
        throw new TypeError(`${at}.${key} is ${JSON.stringify(value)}, expected a string`);
      }
      return value;
    };
    const id = text("id", true)!;
    const symbol = text("symbol", true)!;
    const status = text("status", true);
    if (status !== "active" && status !== "inactive") {
      throw new TypeError(`${at}.status is ${JSON.stringify(status)}, expected active or inactive`);
    }
    const exchange = text("exchange", false);
    const name = text("name", false);
    const assetClass = text("class", false);
    // Asked for us_equity only; anything else (crypto) is not for the equity master.
    if ((assetClass !== null && assetClass !== "us_equity") || !isValidSymbol(symbol)) {
      skipped++;
      return;
    }
    records.push({
      instrumentId: `alpaca:${id}`,
      ticker: symbol,
      name,
      exchange: exchange === null ? null : ALPACA_EXCHANGES[exchange] ?? null,
      assetClass: name === null ? "stock" : assetClassFromName(name, { etfWord: true }),
      status: status === "active" ? "active" : "delisted",
      listDate: null,
      delistDate: null,
      figi: null,
      cusip: text("cusip", false),
      cik: null,
      providerId: id,
    });
  });
  records.sort((a, b) =>
    a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : a.instrumentId < b.instrumentId ? -1 : 1
  );
  // Alpaca says at most one asset of a symbol is active; should two be, keep the first.
  const active = new Set<string>();
  const kept = records.filter((record) => {
    if (record.status !== "active") return true;
    if (active.has(record.ticker)) return false;
    active.add(record.ticker);
    return true;
  });
  return { records: kept, skipped: skipped + records.length - kept.length };
}
