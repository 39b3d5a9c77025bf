/**
 * Provider API mocks for tests and benchmarks: one HTTP server on 127.0.0.1 with Alpaca,
 * Polygon, Finnhub and IEX mounted under `/alpaca`, `/polygon`, `/finnhub` and `/iex`, all
 * serving one deterministic market.
 *
 * @module
 */
import { type AlpacaMock, type AlpacaMockOptions, createAlpacaMock } from "./alpaca.ts";
import { createFinnhubMock, type FinnhubMock, type FinnhubMockOptions } from "./finnhub.ts";
import { createIexMock, type IexMock, type IexMockOptions } from "./iex.ts";
import { createMarket, type Market, type MarketOptions } from "./market.ts";
import { createPolygonMock, type PolygonMock, type PolygonMockOptions } from "./polygon.ts";
import { type MockServer, startMockServer } from "./server.ts";

export * from "./alpaca.ts";
export * from "./finnhub.ts";
export * from "./iex.ts";
export * from "./market.ts";
export * from "./polygon.ts";
export * from "./server.ts";

/** Options of {@link startProviderMocks}: the market plus each mock's options. */
export interface ProviderMocksOptions {
  market?: MarketOptions;
  latencyMs?: number;
  alpaca?: Omit<AlpacaMockOptions, "market">;
  polygon?: Omit<PolygonMockOptions, "market">;
  finnhub?: Omit<FinnhubMockOptions, "market">;
  iex?: Omit<IexMockOptions, "market">;
}

/** The running mocks. */
export interface ProviderMocks {
  server: MockServer;
  market: Market;
  alpaca: AlpacaMock;
  polygon: PolygonMock;
  finnhub: FinnhubMock;
  iex: IexMock;
  /** Base URLs per provider, as the `<PROVIDER>_BASE_URL` variables take them. */
  env: {
    ALPACA_BASE_URL: string;
    /** The trading API (`/v2/assets`), served by the same Alpaca mock. */
    ALPACA_TRADING_BASE_URL: string;
    POLYGON_BASE_URL: string;
    FINNHUB_BASE_URL: string;
    IEX_BASE_URL: string;
  };
  close(): Promise<void>;
}

/** Start all four provider mocks on one server. */
export function startProviderMocks(options: ProviderMocksOptions = {}): ProviderMocks {
  const market = createMarket(options.market);
  const alpaca = createAlpacaMock({ ...options.alpaca, market });
  const polygon = createPolygonMock({ ...options.polygon, market });
  const finnhub = createFinnhubMock({ ...options.finnhub, market });
  const iex = createIexMock({ ...options.iex, market });
  const server = startMockServer({ alpaca, polygon, finnhub, iex }, options);
  return {
    server,
    market,
    alpaca,
    polygon,
    finnhub,
    iex,
    env: {
      ALPACA_BASE_URL: server.base("alpaca"),
      ALPACA_TRADING_BASE_URL: server.base("alpaca"),
      POLYGON_BASE_URL: server.base("polygon"),
      FINNHUB_BASE_URL: `${server.base("finnhub")}/api/v1`,
      IEX_BASE_URL: `${server.base("iex")}/stable`,
    },
    close: () => server.close(),
  };
}
