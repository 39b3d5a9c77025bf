import { aggregateBars } from "../core/aggregate.ts";
import {
  addDays,
  CALENDAR_YEARS,
  isValidDate,
  nextTradingDay,
  tradingDays,
  tradingSession,
  zonedTime,
} from "../core/calendar.ts";
import { type Clock, includesExtendedHours, isSessionClosed, systemClock } from "../core/clock.ts";
import type { FetchOptions, FetchRequest, Provider, ProviderInfo } from "../core/provider.ts";
import { type Bar, type Session, TIMEFRAME_MINUTES, TIMEFRAMES } from "../core/types.ts";

/** Static description of the fake provider. */
export const fakeInfo: ProviderInfo = {
  name: "fake",
  description: "Deterministic synthetic bars for demos, tests and benchmarks; no network, no key",
  status: "active",
  env: [],
  timeframes: TIMEFRAMES,
  feeds: ["sip", "iex"],
  defaultFeed: "sip",
  adjustments: ["raw"],
  notes: "The same seed, symbol and date always give the same bars; feed iex has ~3% of sip volume",
};

/** Options of {@link fake}. */
export interface FakeOptions {
  /** Selects a different but equally deterministic market; default 0. */
  seed?: number;
  /** Probability in [0, 1) that a minute has no bar, independently per minute; default 0.01. */
  gapRate?: number;
  /**
   * Share in [0, 0.5] of regular-session bars given one known defect (see {@link FakeDefect}),
   * after rolling up to the requested timeframe; default 0. Deterministic per seed, symbol and day.
   */
  corruptRate?: number;
  /**
   * The clock that decides which sessions have happened: bars are made only for sessions closed
   * at its time (the after-hours end for intraday timeframes, the regular close for 1d), as a
   * real provider has no bars of the future. Default {@link systemClock}.
   */
  now?: Clock;
}

/** A defect the fake provider put into a bar on purpose, with the validation rule it breaks. */
export interface FakeDefect {
  symbol: string;
  timeframe: Bar["timeframe"];
  /** Start of the corrupted bar as delivered (moved bars: where they were moved to). */
  ts: number;
  tradingDate: string;
  /** Id of the validation rule the bar breaks, the only one it breaks. */
  rule: string;
}

/** Options of {@link generateFakeDay}: {@link FakeOptions} plus the feed (default `"sip"`). */
export interface FakeDayOptions extends FakeOptions {
  /** `"sip"` (default) or `"iex"`: the same prices with ~3% of the volume, as on IEX. */
  feed?: string;
}

const _MINUTE_MS = 60_000;
const _DAY_MS = 86_400_000;
// Symbol-days (~50 ms of work) between event-loop turns, so an abort can land; a turn costs ~2 ms.
const _FETCH_YIELD_EVERY = 256;

/**
 * Scales (calendar days) and amplitudes (log price) of the daily level's value noise. The largest
 * amplitudes add up to ~1.2, so a level stays within e^±1.2 of its base price in any century.
 */
const _LEVEL_SCALES = [1, 5, 21, 63, 252, 1260, 5040] as const;
const _LEVEL_AMPLITUDES = [0.02, 0.03, 0.06, 0.1, 0.2, 0.35, 0.45] as const;

/**
 * A deterministic fake provider: synthetic 1m bars for every trading-day session (04:00-20:00 ET),
 * rolled up with {@link aggregateBars} for longer timeframes; none for sessions that have not
 * closed at its clock.
 *
 * @example
 * ```ts
 * const provider = fake({ seed: 42, gapRate: 0 });
 * const bars = await provider.fetchBars({
 *   symbols: ["AAPL"], timeframe: "5m", start: "2024-03-04", end: "2024-03-08",
 * });
 * ```
 */
export function fake(options: FakeOptions = {}): Provider {
  const { seed, gapRate, corruptRate } = _checkOptions(options);
  const now = options.now ?? systemClock;
  return {
    name: "fake",
    fetchBars: (request, fetchOptions = {}) =>
      _fetchBars({ seed, gapRate, corruptRate, now }, request, fetchOptions),
  };
}

async function _fetchBars(
  settings: { seed: number; gapRate: number; corruptRate: number; now: Clock },
  request: FetchRequest,
  options: FetchOptions,
): Promise<Bar[]> {
  const { seed, gapRate, corruptRate } = settings;
  const { signal } = options;
  const { timeframe, start, end } = request;
  if (!TIMEFRAMES.includes(timeframe)) {
    throw new RangeError(
      `Invalid timeframe "${timeframe}" for "fake": expected one of ${TIMEFRAMES.join(", ")}`,
    );
  }
  _checkDate(start, "start date");
  _checkDate(end, "end date");
  if (start > end) {
    throw new RangeError(`Invalid date range ${start}..${end}: start is after end`);
  }
  const feed = request.feed ?? fakeInfo.defaultFeed;
  _checkFeed(feed);
  if (request.adjustment !== undefined && !fakeInfo.adjustments.includes(request.adjustment)) {
    throw new RangeError(
      `Invalid adjustment "${request.adjustment}" for "fake": expected one of ${
        fakeInfo.adjustments.join(", ")
      }`,
    );
  }
  for (const symbol of request.symbols) _checkSymbol(symbol);
  signal?.throwIfAborted();

  const symbols = [...new Set(request.symbols)].sort();
  const nowMs = settings.now();
  const extendedHours = includesExtendedHours(timeframe);
  const dates = tradingDays(start, end).filter((date) =>
    isSessionClosed(date, nowMs, { extendedHours })
  );
  const out: Bar[] = [];
  let generated = 0;
  for (const symbol of symbols) {
    for (const date of dates) {
      if (++generated % _FETCH_YIELD_EVERY === 0) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      signal?.throwIfAborted();
      const minutes = generateFakeDay(symbol, date, { seed, gapRate, feed });
      // Buckets never cross a trading date, so rolling up day by day gives the same bars as
      // rolling up the whole range, with far less memory held at once.
      let bars = timeframe === "1m" ? minutes : aggregateBars(minutes, timeframe);
      if (corruptRate > 0) bars = corruptFakeBars(bars, { seed, corruptRate }).bars;
      for (let i = 0; i < bars.length; i++) out.push(bars[i]);
    }
  }
  return out;
}

/**
 * The 1m bars of `symbol` on `date` (all sessions, 960 on a full day with `gapRate` 0), or none
 * when `date` is not a trading day; identical for the same seed, symbol and date on any machine.
 */
export function generateFakeDay(symbol: string, date: string, options: FakeDayOptions = {}): Bar[] {
  const { seed, gapRate } = _checkOptions(options);
  const feed = options.feed ?? fakeInfo.defaultFeed;
  _checkFeed(feed);
  _checkSymbol(symbol);
  _checkDate(date, "date");
  const session = tradingSession(date);
  if (session === undefined) return [];

  const symbolHash = _cyrb53(`${seed}|${symbol}`);
  const base = _basePrice(symbol);
  // The day runs from its opening level to the next trading day's level, so consecutive days'
  // bars connect; only a small overnight gap separates a close from the next open.
  const next = _nextTradingDate(date);
  const random = _mulberry32(_cyrb53(`${seed}|${symbol}|${date}`));
  const gap = 0.003 * _normal(random);
  const startLog = _level(symbolHash, _dayNumber(date)) + gap;
  const endLog = _level(symbolHash, _dayNumber(next));
  const dayVolume = _symbolVolume(symbolHash) * Math.exp(0.3 * _normal(random)) *
    (feed === "iex" ? 0.03 : 1);

  const total = (session.postClose - session.preOpen) / _MINUTE_MS;
  const openIndex = (session.open - session.preOpen) / _MINUTE_MS;
  const closeIndex = (session.close - session.preOpen) / _MINUTE_MS;
  const profile = _dayProfile(total, openIndex, closeIndex);
  const bars: Bar[] = [];

  // x is the log price relative to startLog; it follows a Brownian bridge pinned to endLog - startLog
  // at the end of after-hours, with the per-minute volatility of its session.
  const target = endLog - startLog;
  let x = 0;
  let open = _round(base * Math.exp(startLog));
  for (let i = 0; i < total; i++) {
    // Every minute draws the same numbers whether or not it is a gap, so the price path does not
    // depend on gapRate.
    const missing = random() < gapRate;
    const sigma = profile.sigma[i];
    x += (target - x) / (total - i) + profile.step[i] * _normal(random);
    const close = _round(base * Math.exp(startLog + x));
    const wickHigh = random();
    const wickLow = random();
    const volumeNoise = _normal(random);
    const vwapAt = random();
    const sizeNoise = random();
    if (!missing) {
      const top = open > close ? open : close;
      const bottom = open < close ? open : close;
      const high = _round(top * (1 + 0.5 * sigma * wickHigh));
      const low = _round(bottom * (1 - 0.5 * sigma * wickLow));
      const volume = Math.max(
        1,
        Math.round(dayVolume * profile.shape[i] * Math.exp(0.5 * volumeNoise)),
      );
      const trades = Math.round((volume / profile.tradeSize[i]) * (0.7 + 0.6 * sizeNoise));
      let vwap = Math.round((low + (high - low) * (0.3 + 0.4 * vwapAt)) * 10_000) / 10_000;
      if (vwap < low) vwap = low;
      else if (vwap > high) vwap = high;
      bars.push({
        symbol,
        timeframe: "1m",
        ts: session.preOpen + i * _MINUTE_MS,
        open,
        high,
        low,
        close,
        volume,
        vwap,
        tradeCount: trades < 1 ? 1 : trades > volume ? volume : trades,
        tradingDate: date,
        session: profile.session[i],
        provider: "fake",
        feed,
        adjustment: "raw",
      });
    }
    open = close;
  }
  return bars;
}

/** What every minute of a day with the same session bounds shares: its session and shape. */
interface _DayProfile {
  session: Session[];
  /** Per-minute volatility of the session. */
  sigma: Float64Array;
  /** The bridge's step scale: sigma * sqrt((remaining - 1) / remaining). */
  step: Float64Array;
  /** Relative volume (the intraday U shape). */
  shape: Float64Array;
  /** Shares per trade. */
  tradeSize: Float64Array;
}

const _profiles = new Map<string, _DayProfile>();

/**
 * The per-minute constants of a day of `total` minutes whose regular session spans minutes
 * [openIndex, closeIndex): computed once per kind of day (full, early close), not once per bar.
 */
function _dayProfile(total: number, openIndex: number, closeIndex: number): _DayProfile {
  const key = `${total}|${openIndex}|${closeIndex}`;
  let profile = _profiles.get(key);
  if (profile !== undefined) return profile;
  const regularMinutes = closeIndex - openIndex;
  profile = {
    session: [],
    sigma: new Float64Array(total),
    step: new Float64Array(total),
    shape: new Float64Array(total),
    tradeSize: new Float64Array(total),
  };
  for (let i = 0; i < total; i++) {
    let sigma: number;
    if (i < openIndex) {
      profile.session.push("pre");
      sigma = 0.0005;
      profile.shape[i] = 0.02 + 0.15 * Math.exp((i - openIndex) / 30);
      profile.tradeSize[i] = 60;
    } else if (i < closeIndex) {
      profile.session.push("regular");
      const t = (i - openIndex) / regularMinutes;
      sigma = 0.0007 + 0.0008 * Math.exp(-10 * t);
      profile.shape[i] = 0.5 + 2.5 * Math.exp(-12 * t) + 1.2 * Math.exp(-15 * (1 - t));
      profile.tradeSize[i] = 90;
    } else {
      profile.session.push("post");
      sigma = 0.0005;
      profile.shape[i] = 0.02 + 0.3 * Math.exp((closeIndex - i) / 20);
      profile.tradeSize[i] = 60;
    }
    const remaining = total - i;
    profile.sigma[i] = sigma;
    profile.step[i] = sigma * Math.sqrt((remaining - 1) / remaining);
  }
  _profiles.set(key, profile);
  return profile;
}

/** Defects {@link corruptFakeBars} chooses from: the rule each breaks, and what it needs. */
const _DEFECTS: readonly { rule: string; intradayOnly?: boolean; history?: boolean }[] = [
  { rule: "ohlc_consistency" },
  { rule: "positive_prices" },
  { rule: "volume_non_negative" },
  { rule: "ts_alignment" },
  { rule: "outside_session", intradayOnly: true },
  { rule: "vwap_range" },
  { rule: "zero_volume_move" },
  { rule: "extreme_move", intradayOnly: true },
  { rule: "volume_spike", intradayOnly: true, history: true },
];

/**
 * Give a share of one symbol-day's bars (one timeframe, sorted by ts, as the fake provider makes
 * them) one known defect each, and say which. Only regular-session bars are touched, never two
 * in a row nor the first bar of the day, and each defect breaks exactly one validation rule:
 * errors (OHLC, a negative price or volume, a timestamp off the grid, a bar moved out of the
 * sessions) and warnings (vwap outside the range, zero volume with movement, a 50% spike that
 * reverts, a 1000x volume spike after 10 regular bars). The same seed, bars and rate always give
 * the same defects; the input is not modified.
 */
export function corruptFakeBars(
  bars: readonly Bar[],
  options: { seed?: number; corruptRate: number },
): { bars: Bar[]; defects: FakeDefect[] } {
  const rate = options.corruptRate;
  if (typeof rate !== "number" || !(rate >= 0 && rate <= 0.5)) {
    throw new RangeError(`Invalid fake corruptRate ${rate}: expected a number in [0, 0.5]`);
  }
  const out = bars.slice();
  const defects: FakeDefect[] = [];
  if (bars.length === 0 || rate === 0) return { bars: out, defects };
  const { symbol, tradingDate, timeframe } = bars[0];
  const daily = timeframe === "1d";
  const length = (daily ? 1440 : TIMEFRAME_MINUTES[timeframe]) * _MINUTE_MS;
  const session = tradingSession(tradingDate);
  const midnight = zonedTime(tradingDate, "00:00");
  // Bars moved out of the sessions go to free grid slots between midnight and 04:00.
  const slots = session ? Math.floor((session.preOpen - midnight) / length) : 0;
  const used = new Set<number>();
  const random = _mulberry32(
    _cyrb53(`${options.seed ?? 0}|${symbol}|${tradingDate}|${timeframe}|corrupt`),
  );
  let previous = false;
  let keptRegular = 0;
  for (let i = 0; i < out.length; i++) {
    // Two draws per bar whatever happens, so a bar's fate does not depend on the others'.
    const u = random();
    const pick = random();
    const bar = out[i];
    if (bar.session !== "regular" || previous || (i === 0 && !daily) || u >= rate) {
      if (bar.session === "regular") keptRegular++;
      previous = false;
      continue;
    }
    const kinds = _DEFECTS.filter((d) =>
      !(d.intradayOnly && daily) && !(d.history && keptRegular < 10) &&
      !(d.rule === "outside_session" && used.size >= slots)
    );
    const kind = kinds[Math.floor(pick * kinds.length)];
    const changed: Bar = { ...bar };
    switch (kind.rule) {
      case "ohlc_consistency":
        changed.high = _round(Math.min(bar.open, bar.close) * 0.99);
        break;
      case "positive_prices":
        changed.low = -bar.low;
        break;
      case "volume_non_negative":
        changed.volume = -Math.max(1, bar.volume);
        break;
      case "ts_alignment":
        changed.ts = bar.ts + (timeframe === "1m" ? 30_000 : _MINUTE_MS);
        break;
      case "outside_session": {
        let slot = i % slots;
        while (used.has(slot)) slot = (slot + 1) % slots;
        used.add(slot);
        changed.ts = midnight + slot * length;
        break;
      }
      case "vwap_range":
        changed.vwap = _round(bar.high * 1.01 + 0.01);
        break;
      case "zero_volume_move":
        changed.volume = 0;
        changed.tradeCount = 0;
        if (bar.open === bar.close) {
          changed.close = _round(bar.open + 0.01);
          if (changed.close > changed.high) changed.high = changed.close;
        }
        break;
      case "extreme_move":
        changed.open = _round(bar.open * 1.5);
        changed.high = _round(bar.high * 1.5);
        changed.low = _round(bar.low * 1.5);
        changed.close = _round(bar.close * 1.5);
        if (bar.vwap !== null) {
          changed.vwap = Math.min(changed.high, Math.max(changed.low, _round(bar.vwap * 1.5)));
        }
        break;
      case "volume_spike":
        changed.volume = bar.volume * 1000;
        if (bar.tradeCount !== null) changed.tradeCount = bar.tradeCount * 1000;
        break;
    }
    out[i] = changed;
    defects.push({ symbol, timeframe, ts: changed.ts, tradingDate, rule: kind.rule });
    previous = true;
    const error = ["ohlc_consistency", "positive_prices", "volume_non_negative", "ts_alignment"]
      .includes(kind.rule) || kind.rule === "outside_session";
    if (!error) keptRegular++;
  }
  return { bars: out, defects };
}

/**
 * The defects the fake provider puts into `symbol`'s bars of `timeframe` on `date` with these
 * options (none when `corruptRate` is 0), for tests that check what validation finds.
 */
export function fakeDefects(
  symbol: string,
  date: string,
  options: FakeDayOptions & { timeframe?: Bar["timeframe"] } = {},
): FakeDefect[] {
  const { seed, gapRate, corruptRate } = _checkOptions(options);
  const timeframe = options.timeframe ?? "1m";
  const minutes = generateFakeDay(symbol, date, { seed, gapRate, feed: options.feed });
  const bars = timeframe === "1m" ? minutes : aggregateBars(minutes, timeframe);
  return corruptFakeBars(bars, { seed, corruptRate }).defects;
}

/** Next trading date; past the calendar's last year, the next calendar day. */
function _nextTradingDate(date: string): string {
  if (Number(date.slice(0, 4)) < CALENDAR_YEARS.last) return nextTradingDay(date);
  const rest = tradingDays(date, `${CALENDAR_YEARS.last}-12-31`);
  return rest.length > 1 ? rest[1] : addDays(date, 1);
}

function _checkOptions(
  options: FakeOptions,
): { seed: number; gapRate: number; corruptRate: number } {
  const seed = options.seed ?? 0;
  const gapRate = options.gapRate ?? 0.01;
  const corruptRate = options.corruptRate ?? 0;
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`Invalid fake seed ${seed}: expected a safe integer`);
  }
  if (typeof gapRate !== "number" || !(gapRate >= 0 && gapRate < 1)) {
    throw new RangeError(`Invalid fake gapRate ${gapRate}: expected a number in [0, 1)`);
  }
  if (typeof corruptRate !== "number" || !(corruptRate >= 0 && corruptRate <= 0.5)) {
    throw new RangeError(`Invalid fake corruptRate ${corruptRate}: expected a number in [0, 0.5]`);
  }
  return { seed, gapRate, corruptRate };
}

function _checkFeed(feed: string): void {
  if (!fakeInfo.feeds.includes(feed)) {
    throw new RangeError(
      `Invalid feed "${feed}" for "fake": expected one of ${fakeInfo.feeds.join(", ")}`,
    );
  }
}

function _checkSymbol(symbol: string): void {
  if (typeof symbol !== "string" || symbol === "") {
    throw new RangeError(`Invalid symbol ${JSON.stringify(symbol)} for "fake": expected a ticker`);
  }
}

function _checkDate(date: string, what: string): void {
  if (!isValidDate(date)) throw new RangeError(`Invalid ${what} "${date}": expected YYYY-MM-DD`);
}

/** Per-symbol base price, log-uniform in $20-$500, the same for every seed. */
function _basePrice(symbol: string): number {
  const u = (_cyrb53(symbol) % 1_000_003) / 1_000_003;
  return 20 * Math.exp(u * Math.log(25));
}

/** Average regular-session shares per minute of a symbol, 500-50,000. */
function _symbolVolume(symbolHash: number): number {
  return 500 * Math.exp(_unit(_mix(symbolHash >>> 0, 0x5bd1e995)) * Math.log(100));
}

/**
 * Log-price offset of a symbol on a calendar day: value noise, i.e. hashed knots every `scale`
 * days smoothly interpolated, summed over scales. Any day is computed directly, without walking
 * the history, so a day's bars never depend on which other days were requested.
 */
function _level(symbolHash: number, day: number): number {
  let level = 0;
  for (let j = 0; j < _LEVEL_SCALES.length; j++) {
    const scale = _LEVEL_SCALES[j];
    const knot = Math.floor(day / scale);
    const t = (day - knot * scale) / scale;
    const key = _mix(symbolHash >>> 0, j + 1);
    const a = _unit(_mix(key, knot)) * 2 - 1;
    const b = _unit(_mix(key, knot + 1)) * 2 - 1;
    level += _LEVEL_AMPLITUDES[j] * (a + (b - a) * t * t * (3 - 2 * t));
  }
  return level;
}

function _dayNumber(date: string): number {
  return Date.UTC(+date.slice(0, 4), +date.slice(5, 7) - 1, +date.slice(8, 10)) / _DAY_MS;
}

/** Cents, or 1/100 of a cent under $1, as exchanges quote. */
function _round(price: number): number {
  return price >= 1 ? Math.round(price * 100) / 100 : Math.round(price * 10_000) / 10_000;
}

/** Approximately standard normal (sum of three uniforms), cheaper than Box-Muller. */
function _normal(random: () => number): number {
  return (random() + random() + random() - 1.5) * 2;
}

function _unit(hash: number): number {
  return hash / 4_294_967_296;
}

/** Integer hash of two 32-bit values (murmur3 finalizer). */
function _mix(a: number, b: number): number {
  let h = (a ^ Math.imul(b, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** cyrb53 string hash (public domain, bryc): 53 bits, stable across engines. */
function _cyrb53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4_294_967_296 * (2_097_151 & h2) + (h1 >>> 0);
}

/** mulberry32 PRNG: uniform [0, 1) from a 32-bit state; seeded with the low bits of `seed`. */
function _mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
