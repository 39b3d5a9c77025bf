/**
 * The one ingest request builder of the CLI and the HTTP API: options as text in, a checked
 * request and the provider that serves it out.
 *
 * @module
 */
import { tradingDays, weekday } from "../core/calendar.ts";
import {
  type Clock,
  includesExtendedHours,
  lastCompletedSession,
  systemClock,
} from "../core/clock.ts";
import { parseDateOption, parseIntOption, parseNumberOption } from "../core/config.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import type { IngestRequest } from "../core/ingest.ts";
import type { ValidationSettings } from "../core/validate.ts";
import { parseSymbols } from "../core/symbols.ts";
import { isTimeframe, type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { PROVIDER_NAMES, type ProviderFactory, providerFactory } from "./mod.ts";

const _WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** A checked ingest request plus the provider that serves it. */
export interface PreparedIngest {
  request: IngestRequest;
  factory: ProviderFactory;
  /** Requests per minute override for HTTP providers. */
  rateLimit?: number;
  /** Validation rule settings (`--validation`, config `validation.rules`); default: all rules. */
  validation?: ValidationSettings;
  /** Aggregate the touched 1m partitions afterwards (`--aggregate`). */
  aggregate?: boolean;
  /** One line for the user when `end` held sessions not closed yet and was cut to the last one. */
  notice?: string;
}

/** Ingest options as text, keyed by their long flag names: from flags, a config file or HTTP. */
export interface IngestInput {
  provider?: string;
  /** Comma- or space-separated text, or a list. */
  symbols?: string | readonly string[];
  start?: string;
  end?: string;
  timeframe?: string;
  workers?: string;
  "batch-size"?: string;
  "rate-limit"?: string;
  feed?: string;
  adjustment?: string;
  force?: boolean;
  resume?: string;
  "fake-seed"?: string;
  "fake-gap-rate"?: string;
  "fake-corrupt-rate"?: string;
}

/** The text options of {@link IngestInput}. */
export const INGEST_INPUT_NAMES = [
  "provider",
  "start",
  "end",
  "timeframe",
  "workers",
  "batch-size",
  "rate-limit",
  "feed",
  "adjustment",
  "resume",
  "fake-seed",
  "fake-gap-rate",
  "fake-corrupt-rate",
] as const;

/** Options of {@link buildIngestRequest}. */
export interface BuildIngestOptions {
  /** How an option is named in messages: `--start` by default; the HTTP API says `start`. */
  label?: (name: string) => string;
  /** Called for a resume request once its id is checked (the CLI refuses flags the job records). */
  onResume?: () => void;
  /** Supplies the symbols instead of `input.symbols` (the CLI reads `--symbols-file` here). */
  readSymbols?: () => Promise<string[]>;
  /** Decides which sessions have closed; default {@link systemClock}. */
  clock?: Clock;
}

/**
 * Validate every ingest option before anything is written: provider, symbols, dates, timeframe,
 * workers, feed and provider options. Throws {@link UsageError} naming the bad value. The one
 * request builder of the CLI and the HTTP API.
 *
 * Only sessions closed at `options.clock` are asked for (the after-hours end for intraday bars,
 * the regular close for 1d): an `end` past the last closed session is cut to it (see
 * {@link PreparedIngest.notice}), and a range with no closed session is refused.
 */
export async function buildIngestRequest(
  input: IngestInput,
  options: BuildIngestOptions = {},
): Promise<PreparedIngest> {
  const label = options.label ?? ((name: string) => `--${name}`);
  const providerName = (input.provider ?? "fake").toLowerCase();
  const factory = providerFactory(providerName);
  if (!factory) {
    throw new UsageError(
      `Unknown provider "${providerName}"${
        didYouMean(providerName, PROVIDER_NAMES)
      }: expected one of ${PROVIDER_NAMES.join(", ")}`,
    );
  }
  const info = factory.info;
  const workers = parseIntOption(input.workers ?? "4", label("workers"), 1, 64);
  const optionalInt = (name: "batch-size" | "rate-limit", max: number) => {
    const text = input[name];
    return text === undefined ? undefined : parseIntOption(text, label(name), 1, max);
  };
  const batchSize = optionalInt("batch-size", 50_000);
  const rateLimit = optionalInt("rate-limit", 1_000_000);
  const resume = input.resume;
  const params: Record<string, number> = {};
  if (providerName === "fake") {
    params.seed = parseIntOption(input["fake-seed"] ?? "0", label("fake-seed"), 0, 2 ** 31 - 1);
    params.gapRate = parseNumberOption(
      input["fake-gap-rate"] ?? "0.01",
      label("fake-gap-rate"),
      0,
      1,
      true,
    );
    const corruptRate = parseNumberOption(
      input["fake-corrupt-rate"] ?? "0",
      label("fake-corrupt-rate"),
      0,
      0.5,
    );
    // Only a corrupting run records the rate, so clean runs keep their coverage and job keys.
    if (corruptRate > 0) params.corruptRate = corruptRate;
  }
  if (resume !== undefined) {
    if (!/^[\w-]{4,64}$/.test(resume)) {
      throw new UsageError(
        `Invalid ${label("resume")} "${resume}": expected a job id like 20241125-191500-ab12`,
      );
    }
    options.onResume?.();
    return {
      factory,
      rateLimit,
      request: {
        provider: providerName,
        feed: "",
        adjustment: "",
        timeframe: "1m",
        symbols: [],
        start: "",
        end: "",
        params,
        workers,
        batchSize,
        force: false,
        resumeJobId: resume,
      },
    };
  }

  let symbols: string[];
  if (options.readSymbols) {
    symbols = await options.readSymbols();
  } else if (input.symbols !== undefined) {
    symbols = parseSymbols(input.symbols, label("symbols"));
  } else {
    throw new UsageError(
      `Missing ${label("symbols")}: which symbols to ingest, e.g. AAPL,MSFT`,
    );
  }
  if (symbols.length > 10_000) {
    throw new UsageError(`Too many symbols (${symbols.length}): expected at most 10000 per job`);
  }

  const startText = input.start;
  if (startText === undefined) {
    throw new UsageError(`Missing ${label("start")}: the first trading date, YYYY-MM-DD`);
  }
  const start = parseDateOption(startText, label("start"));
  const end = parseDateOption(input.end ?? start, label("end"));
  if (start > end) {
    throw new UsageError(
      `Invalid range: ${label("start")} ${start} is after ${label("end")} ${end}`,
    );
  }
  const days = tradingDays(start, end);
  if (days.length === 0) {
    const what = start === end
      ? `${start} is a ${_WEEKDAYS[weekday(start)]}${
        weekday(start) % 6 === 0 ? "" : " and an NYSE holiday"
      }`
      : `${start}..${end} has none`;
    throw new UsageError(
      `No trading days in ${label("start")} ${start} ${label("end")} ${end}: ${what}`,
    );
  }

  const timeframeText = input.timeframe ?? "1m";
  if (!isTimeframe(timeframeText)) {
    throw new UsageError(
      `Invalid ${label("timeframe")} "${timeframeText}"${
        didYouMean(timeframeText, TIMEFRAMES)
      }: expected one of ${TIMEFRAMES.join(" ")}`,
    );
  }
  const timeframe = timeframeText;
  if (!info.timeframes.includes(timeframe)) {
    throw new UsageError(
      `Provider "${providerName}" does not serve ${
        label("timeframe")
      } ${timeframe}: expected one of ${info.timeframes.join(" ")}`,
    );
  }
  const feed = (input.feed ?? info.defaultFeed).toLowerCase();
  if (!info.feeds.includes(feed)) {
    throw new UsageError(
      `Invalid ${label("feed")} "${feed}" for provider "${providerName}"${
        didYouMean(feed, info.feeds)
      }: expected one of ${info.feeds.join(", ")}`,
    );
  }
  const adjustment = (input.adjustment ?? info.adjustments[0]).toLowerCase();
  if (!info.adjustments.includes(adjustment)) {
    throw new UsageError(
      `Invalid ${
        label("adjustment")
      } "${adjustment}" for provider "${providerName}": expected one of ${
        info.adjustments.join(", ")
      }`,
    );
  }
  const closed = _closedRange(days, start, end, timeframe, options.clock ?? systemClock, label);
  return {
    factory,
    rateLimit,
    notice: closed.notice,
    request: {
      provider: providerName,
      feed,
      adjustment,
      timeframe,
      symbols,
      start,
      end: closed.end,
      params,
      workers,
      batchSize,
      force: input.force ?? false,
    },
  };
}

/**
 * The range (its trading `days`) cut to the sessions closed at `clock`: a session not closed yet has no final bars,
 * and a provider's empty answer for it would be recorded as a known-empty day.
 */
function _closedRange(
  days: string[],
  start: string,
  end: string,
  timeframe: Timeframe,
  clock: Clock,
  label: (name: string) => string,
): { end: string; notice?: string } {
  const last = lastCompletedSession(clock(), { extendedHours: includesExtendedHours(timeframe) });
  if (last !== undefined && days.at(-1)! <= last) return { end };
  if (last === undefined || days[0] > last) {
    throw new UsageError(
      `Invalid ${label("start")} ${start}: no ${timeframe} session from it to ${
        label("end")
      } ${end} has closed yet${last === undefined ? "" : `; the last closed one is ${last}`}`,
    );
  }
  return {
    end: last,
    notice: `${label("end")} ${end} is after the last closed ${timeframe} session ${last}: ` +
      `ingesting up to ${last}`,
  };
}
