/**
 * Validation rules for bars: a rule table (id, severity, explanation, default threshold), the pure
 * checker {@link validateBars}, and {@link createValidator}, the ingest engine's hook that keeps
 * bars with warnings and quarantines bars that break an error-level rule.
 *
 * @module
 */
import { tradingSession, zonedTime } from "./calendar.ts";
import { didYouMean, UsageError } from "./errors.ts";
import type { BarValidator, RejectedBar } from "./jobs.ts";
import type { Metrics } from "./metrics.ts";
import { type Bar, type Timeframe, TIMEFRAME_MINUTES } from "./types.ts";

/** How serious a finding is: errors are quarantined during ingest, the rest only reported. */
export type Severity = "error" | "warn" | "info";

/** Severities from most to least serious. */
export const SEVERITIES: readonly Severity[] = ["error", "warn", "info"];

/** One validation rule as `marketpipe validate --rules` lists it. */
export interface ValidationRule {
  /** Stable id used in reports, quarantine files and config (`validation.rules.<id>`). */
  id: string;
  severity: Severity;
  /** One line: what a good bar satisfies. */
  description: string;
  /** Default threshold, for rules that have one. */
  threshold?: number;
  /** What the threshold means. */
  thresholdMeaning?: string;
  /** Smallest and largest accepted threshold. */
  thresholdRange?: readonly [number, number];
  /** Whether the threshold must be a whole number. */
  integer?: boolean;
}

const _RULES = [
  {
    id: "positive_prices",
    severity: "error",
    description: "open, high, low and close are finite and above 0",
  },
  {
    id: "volume_non_negative",
    severity: "error",
    description: "volume is finite and not negative",
  },
  {
    id: "ohlc_consistency",
    severity: "error",
    description: "high >= max(open, close), low <= min(open, close) and low <= high",
  },
  {
    id: "ts_alignment",
    severity: "error",
    description:
      "ts is a whole minute on the timeframe's grid (from 09:30 or from midnight New York; 1d: midnight New York)",
  },
  {
    id: "duplicate_key",
    severity: "error",
    description: "no other bar has the same symbol, timeframe and ts",
  },
  {
    id: "non_trading_day",
    severity: "error",
    description: "the trading date is an NYSE trading day (no weekends, holidays, closures)",
  },
  {
    id: "outside_session",
    severity: "error",
    description:
      "an intraday bar starts within the sessions, 04:00-20:00 New York (17:00 on early-close days)",
  },
  {
    id: "session_label",
    severity: "error",
    description: "the session label (pre, regular, post) matches the bar's start time",
  },
  {
    id: "vwap_range",
    severity: "warn",
    description: "vwap, when present, lies within [low, high]",
    threshold: 0,
    thresholdMeaning: "tolerance as a share of the price",
    thresholdRange: [0, 1],
  },
  {
    id: "zero_volume_move",
    severity: "warn",
    description: "a bar with zero volume does not move (open = high = low = close)",
  },
  {
    id: "extreme_move",
    severity: "warn",
    description:
      "open and close stay within the threshold of the previous close (a jump near a split ratio says so)",
    threshold: 0.2,
    thresholdMeaning: "largest move as a share of the previous close",
    thresholdRange: [0.001, 100],
  },
  {
    id: "stale_price",
    severity: "warn",
    description:
      "fewer than threshold consecutive regular-session bars with volume close at the same price",
    threshold: 30,
    thresholdMeaning: "bars in a row",
    thresholdRange: [2, 100_000],
    integer: true,
  },
  {
    id: "volume_spike",
    severity: "info",
    description:
      "volume is at most threshold x the median of the previous 30 bars of the same session (needs 10)",
    threshold: 20,
    thresholdMeaning: "multiple of the trailing median",
    thresholdRange: [1, 1_000_000],
  },
  {
    id: "missing_minutes",
    severity: "info",
    description:
      "a trading day's regular session misses at most the threshold of its minutes (1m; reported as a gap)",
    threshold: 0.1,
    thresholdMeaning: "share of regular-session minutes",
    thresholdRange: [0, 1],
  },
  {
    id: "cross_check",
    severity: "warn",
    description:
      "with --cross-check: a provider's higher-timeframe bar matches our aggregation of its 1m bars",
    threshold: 0.005,
    thresholdMeaning: "relative difference of open, high, low, close and volume",
    thresholdRange: [0, 1],
  },
] as const satisfies readonly ValidationRule[];

/**
 * The rules, in the order they are checked. A bar that breaks several error rules is quarantined
 * under the first. Bars with an error are not used by the rules that look at neighbours.
 */
export const VALIDATION_RULES: readonly ValidationRule[] = Object.freeze(_RULES);

/** The id of a rule in the table, so that a misspelt rule id is a type error. */
type _RuleId = (typeof _RULES)[number]["id"];

/** Ids of all rules, in check order. */
export const RULE_IDS: readonly string[] = VALIDATION_RULES.map((rule) => rule.id);

/** Settings of one rule from config or flags; unset fields keep the defaults. */
export interface RuleSettings {
  enabled?: boolean;
  threshold?: number;
}

/** Rule settings by rule id. */
export type ValidationSettings = Record<string, RuleSettings>;

/** A rule with its settings applied. */
export interface EffectiveRule extends ValidationRule {
  enabled: boolean;
}

/** One problem found in one bar (or one trading day, for `missing_minutes`). */
export interface Finding {
  symbol: string;
  timeframe: Timeframe;
  /** Start of the bar, epoch ms; for `missing_minutes` the regular open of the day. */
  ts: number;
  tradingDate: string;
  rule: string;
  severity: Severity;
  detail: string;
}

/** Options of {@link validateBars} and {@link createValidator}. */
export interface ValidateOptions {
  /** Rule settings (see {@link parseValidationSettings}); default: every rule on, default thresholds. */
  rules?: ValidationSettings;
  /** Where findings (rule, severity) and the time spent are counted. */
  metrics?: Metrics;
}

/** The rules with `settings` applied, in check order; throws `RangeError` for unknown rules. */
export function effectiveRules(settings: ValidationSettings = {}): EffectiveRule[] {
  for (const id of Object.keys(settings)) {
    if (!RULE_IDS.includes(id)) {
      throw new RangeError(`Unknown validation rule "${id}"${didYouMean(id, RULE_IDS)}`);
    }
  }
  return VALIDATION_RULES.map((rule) => {
    const own = settings[rule.id] ?? {};
    if (own.threshold !== undefined) _checkThreshold(rule, own.threshold, `${rule.id}.threshold`);
    return {
      ...rule,
      enabled: own.enabled ?? true,
      ...(rule.threshold !== undefined ? { threshold: own.threshold ?? rule.threshold } : {}),
    };
  });
}

/**
 * Parse rule settings written as `RULE.enabled=BOOL` and `RULE.threshold=N`, comma separated
 * (the form of `--validation` and of a config file's `validation:` mapping once read). Throws a
 * {@link UsageError} naming the bad part.
 *
 * @example
 * ```ts
 * parseValidationSettings("extreme_move.threshold=0.3,stale_price.enabled=false", "--validation");
 * // { extreme_move: { threshold: 0.3 }, stale_price: { enabled: false } }
 * ```
 */
export function parseValidationSettings(text: string, name: string): ValidationSettings {
  const settings: ValidationSettings = {};
  for (const raw of text.split(",")) {
    const part = raw.trim();
    if (part === "") continue;
    const match = /^([A-Za-z0-9_-]+)\.([A-Za-z_]+)=(.*)$/.exec(part);
    if (!match) {
      throw new UsageError(
        `Invalid ${name} "${part}": expected RULE.enabled=true|false or RULE.threshold=N, comma separated`,
      );
    }
    const [, rawId, key, value] = match;
    const id = rawId.replaceAll("-", "_");
    const rule = VALIDATION_RULES.find((r) => r.id === id);
    if (!rule) {
      throw new UsageError(
        `Unknown validation rule "${rawId}" in ${name}${
          didYouMean(id, RULE_IDS)
        }; see marketpipe validate --rules`,
      );
    }
    const own = settings[id] ??= {};
    if (key === "enabled") {
      if (!/^(true|false)$/.test(value)) {
        throw new UsageError(`Invalid ${name} "${part}": enabled must be true or false`);
      }
      own.enabled = value === "true";
    } else if (key === "threshold") {
      const number = value.trim() === "" ? NaN : Number(value);
      _checkThreshold(rule, number, `${id}.threshold`, `Invalid ${name} "${part}"`);
      own.threshold = number;
    } else {
      throw new UsageError(
        `Invalid ${name} "${part}": unknown setting "${key}"${
          didYouMean(key, ["enabled", "threshold"])
        }, expected enabled or threshold`,
      );
    }
  }
  return settings;
}

/**
 * Check a config file's `validation:` mapping (`rules: { <id>: { enabled, threshold } }`) against
 * the rule table and return it in the form {@link parseValidationSettings} reads. Errors name the
 * full key, e.g. `validation.rules.extreme_move.threshold`.
 */
export function validationConfigText(value: unknown, path: string): string {
  const where = `in config file ${path}`;
  const mapping = (node: unknown, key: string): Record<string, unknown> => {
    if (node === null || typeof node !== "object" || Array.isArray(node) || node instanceof Date) {
      throw new UsageError(`Invalid value for "${key}" ${where}: expected a mapping`);
    }
    return node as Record<string, unknown>;
  };
  const parts: string[] = [];
  for (const [section, sectionValue] of Object.entries(mapping(value, "validation"))) {
    if (section !== "rules") {
      throw new UsageError(
        `Unknown key "validation.${section}" ${where}${
          didYouMean(section, ["rules"]).replace('"', '"validation.')
        }`,
      );
    }
    for (const [rawId, ruleValue] of Object.entries(mapping(sectionValue, "validation.rules"))) {
      const id = rawId.replaceAll("-", "_");
      const rule = VALIDATION_RULES.find((r) => r.id === id);
      if (!rule) {
        throw new UsageError(
          `Unknown key "validation.rules.${rawId}" ${where}${
            didYouMean(id, RULE_IDS).replace('"', '"validation.rules.')
          }`,
        );
      }
      const ruleKey = `validation.rules.${rawId}`;
      for (const [setting, settingValue] of Object.entries(mapping(ruleValue, ruleKey))) {
        const key = `${ruleKey}.${setting}`;
        if (setting === "enabled") {
          if (typeof settingValue !== "boolean") {
            throw new UsageError(`Invalid value for "${key}" ${where}: expected true or false`);
          }
          parts.push(`${id}.enabled=${settingValue}`);
        } else if (setting === "threshold") {
          if (typeof settingValue !== "number") {
            throw new UsageError(`Invalid value for "${key}" ${where}: expected a number`);
          }
          _checkThreshold(rule, settingValue, key, `Invalid value for "${key}" ${where}`);
          parts.push(`${id}.threshold=${settingValue}`);
        } else {
          throw new UsageError(
            `Unknown key "${key}" ${where}${
              didYouMean(setting, ["enabled", "threshold"]).replace('"', `"${ruleKey}.`)
            }`,
          );
        }
      }
    }
  }
  return parts.join(",");
}

/** A `RangeError` unless `value` suits the rule's threshold; with `usage`, a `UsageError` after it. */
function _checkThreshold(rule: ValidationRule, value: number, key: string, usage?: string): void {
  if (usage !== undefined) {
    try {
      return _checkThreshold(rule, value, key);
    } catch (error) {
      throw new UsageError(`${usage}: ${(error as Error).message}`, { cause: error });
    }
  }
  if (rule.threshold === undefined || rule.thresholdRange === undefined) {
    throw new RangeError(`rule "${rule.id}" has no threshold (${key})`);
  }
  const [min, max] = rule.thresholdRange;
  const whole = rule.integer ? "a whole number" : "a number";
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < min || value > max ||
    (rule.integer && !Number.isInteger(value))
  ) {
    throw new RangeError(`expected ${whole} from ${min} to ${max}, got ${value}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The checker

const _MINUTE_MS = 60_000;
/** Bars of trailing history the volume-spike rule keeps, and the fewest it judges with. */
const _SPIKE_WINDOW = 30;
const _SPIKE_MIN_HISTORY = 10;
/** Split ratios the extreme-move rule recognises, and how close a jump must come to one. */
const _SPLIT_RATIOS = [2, 3, 4, 5, 8, 10, 15, 20, 25, 30, 40, 50, 100];
const _SPLIT_TOLERANCE = 0.03;

// Rule indexes into VALIDATION_RULES, fixed by the table order above.
const _R = Object.fromEntries(RULE_IDS.map((id, i) => [id, i])) as Record<_RuleId, number>;
const R_POSITIVE = _R.positive_prices;
const R_VOLUME = _R.volume_non_negative;
const R_OHLC = _R.ohlc_consistency;
const R_ALIGN = _R.ts_alignment;
const R_DUPLICATE = _R.duplicate_key;
const R_CLOSED = _R.non_trading_day;
const R_OUTSIDE = _R.outside_session;
const R_LABEL = _R.session_label;
const R_VWAP = _R.vwap_range;
const R_ZERO = _R.zero_volume_move;
const R_MOVE = _R.extreme_move;
const R_STALE = _R.stale_price;
const R_SPIKE = _R.volume_spike;
const R_MISSING = _R.missing_minutes;

interface _Compiled {
  on: boolean[];
  threshold: number[];
}

/** Session instants of one date, looked up once per date. */
interface _Day {
  date: string;
  open: boolean;
  preOpen: number;
  regularOpen: number;
  close: number;
  postClose: number;
  midnight: number;
}

/** Called for each finding: bar index (-1 for a day), rule index, detail, and the day. */
type _Sink = (index: number, rule: number, detail: string, day: _Day) => void;

function _compile(settings: ValidationSettings | undefined): _Compiled {
  const rules = effectiveRules(settings);
  return {
    on: rules.map((rule) => rule.enabled),
    threshold: rules.map((rule) => rule.threshold ?? NaN),
  };
}

/**
 * Check bars against the rules and return every finding, in bar order. Bars may hold several
 * symbols and timeframes; within each (symbol, timeframe) they are checked in `ts` order. A bar
 * with an error-level finding is reported with all its errors and is then left out of the rules
 * that compare a bar with its neighbours (extreme move, stale price, volume spike).
 *
 * @example
 * ```ts
 * const findings = validateBars(bars, { rules: { extreme_move: { threshold: 0.3 } } });
 * for (const f of findings) console.log(f.rule, f.severity, f.detail);
 * ```
 */
export function validateBars(bars: readonly Bar[], options: ValidateOptions = {}): Finding[] {
  const compiled = _compile(options.rules);
  const started = performance.now();
  const findings: Finding[] = [];
  for (const group of _groups(bars)) {
    _scan(group, compiled, true, (index, rule, detail, day) => {
      const bar = index >= 0 ? group[index] : group[0];
      findings.push({
        symbol: bar.symbol,
        timeframe: bar.timeframe,
        ts: index >= 0 ? bar.ts : day.regularOpen,
        tradingDate: day.date,
        rule: RULE_IDS[rule],
        severity: VALIDATION_RULES[rule].severity,
        detail,
      });
    });
  }
  _observe(options.metrics, findings, started);
  return findings;
}

/**
 * The ingest engine's validator: bars breaking an error-level rule are rejected (with the first
 * such rule) for the quarantine, the others kept. `counts` holds, per rule, the bars quarantined
 * under an error rule and the findings of warn and info rules.
 *
 * @example
 * ```ts
 * const validator = createValidator({ rules: { stale_price: { enabled: false } }, metrics });
 * await ingest({ provider, store, validator, metrics }, request);
 * ```
 */
export function createValidator(options: ValidateOptions = {}): BarValidator {
  const compiled = _compile(options.rules);
  return (bars) => {
    const started = performance.now();
    const keep: Bar[] = [];
    const rejected: RejectedBar[] = [];
    const counts: Record<string, number> = {};
    const findings: { rule: string; severity: Severity }[] = [];
    const groups = _groups(bars);
    for (const group of groups) {
      const rejectedAt = new Map<number, RejectedBar>();
      _scan(group, compiled, false, (index, rule, detail) => {
        const id = RULE_IDS[rule];
        const severity = VALIDATION_RULES[rule].severity;
        if (severity === "error") rejectedAt.set(index, { bar: group[index], rule: id, detail });
        counts[id] = (counts[id] ?? 0) + 1;
        findings.push({ rule: id, severity });
      });
      if (rejectedAt.size === 0) {
        // The usual case, one sorted run with nothing rejected: the input itself is kept.
        if (groups.length === 1 && group === bars) {
          _observe(options.metrics, findings, started);
          return { keep: bars, rejected, counts };
        }
        for (let i = 0; i < group.length; i++) keep.push(group[i]);
        continue;
      }
      for (let i = 0; i < group.length; i++) {
        const rejection = rejectedAt.get(i);
        if (rejection) rejected.push(rejection);
        else keep.push(group[i]);
      }
    }
    _observe(options.metrics, findings, started);
    return { keep, rejected, counts };
  };
}

function _observe(
  metrics: Metrics | undefined,
  findings: readonly { rule: string; severity: Severity }[],
  started: number,
): void {
  if (!metrics) return;
  const counts = new Map<string, number>();
  for (const f of findings) {
    counts.set(`${f.rule}\0${f.severity}`, (counts.get(`${f.rule}\0${f.severity}`) ?? 0) + 1);
  }
  for (const [key, n] of counts) {
    const [rule, severity] = key.split("\0");
    metrics.validationErrors.inc({ rule, severity }, n);
  }
  metrics.processingTime.observe({ operation: "validate" }, (performance.now() - started) / 1000);
}

/** Bars split by (symbol, timeframe), each sorted by ts; the input itself when it is one sorted run. */
function _groups(bars: readonly Bar[]): (readonly Bar[])[] {
  if (bars.length === 0) return [];
  const first = bars[0];
  let single = true;
  let sorted = true;
  for (let i = 1; i < bars.length; i++) {
    const bar = bars[i];
    if (bar.symbol !== first.symbol || bar.timeframe !== first.timeframe) {
      single = false;
      break;
    }
    if (bar.ts < bars[i - 1].ts) sorted = false;
  }
  if (single) return [sorted ? bars : bars.slice().sort((a, b) => a.ts - b.ts)];
  const groups = new Map<string, Bar[]>();
  for (const bar of bars) {
    const key = `${bar.symbol}\0${bar.timeframe}`;
    let group = groups.get(key);
    if (!group) groups.set(key, group = []);
    group.push(bar);
  }
  return [...groups.values()].map((group) => group.sort((a, b) => a.ts - b.ts));
}

const _days = new Map<string, _Day>();

function _dayOf(date: string): _Day {
  let day = _days.get(date);
  if (day === undefined) {
    const session = tradingSession(date);
    day = {
      date,
      open: session !== undefined,
      preOpen: session?.preOpen ?? NaN,
      regularOpen: session?.open ?? NaN,
      close: session?.close ?? NaN,
      postClose: session?.postClose ?? NaN,
      midnight: zonedTime(date, "00:00"),
    };
    if (_days.size > 50_000) _days.clear();
    _days.set(date, day);
  }
  return day;
}

/**
 * The checker: one pass over bars of one symbol and timeframe sorted by ts. `allErrors` reports
 * every error rule a bar breaks; otherwise only the first (the quarantine needs one).
 */
function _scan(bars: readonly Bar[], compiled: _Compiled, allErrors: boolean, sink: _Sink): void {
  if (bars.length === 0) return;
  const { on, threshold } = compiled;
  const timeframe = bars[0].timeframe;
  const daily = timeframe === "1d";
  const minute = timeframe === "1m";
  const length = TIMEFRAME_MINUTES[timeframe] * _MINUTE_MS;

  const vwapTolerance = threshold[R_VWAP];
  const moveLimit = threshold[R_MOVE];
  const staleLimit = threshold[R_STALE];
  const spikeFactor = threshold[R_SPIKE];
  const missingShare = threshold[R_MISSING];

  let day: _Day | undefined;
  let dayDate = "";
  let regularCount = 0;
  let previousTs = NaN;
  // extreme move: the close of the last accepted bar, and of a flagged bar not yet confirmed as a
  // new level (a split keeps the new level; a spike returns to the old one)
  let reference = NaN;
  let pending = NaN;
  // stale price: current run of equal closes with volume
  let staleClose = NaN;
  let staleRun = 0;
  // volume spike: the last bars' volumes, in arrival order (ring) and sorted
  const ring = new Float64Array(_SPIKE_WINDOW);
  const window = new Float64Array(_SPIKE_WINDOW);
  let windowSize = 0;
  let ringStart = 0;
  let spikeKey = "";

  const finishDay = () => {
    if (!minute || day === undefined || !day.open || !on[R_MISSING]) return;
    const expected = (day.close - day.regularOpen) / _MINUTE_MS;
    const missing = expected - regularCount;
    if (missing > expected * missingShare) {
      sink(
        -1,
        R_MISSING,
        `${regularCount} of ${expected} regular-session minutes present (${
          _percent(missing / expected)
        } missing)`,
        day,
      );
    }
  };

  for (let i = 0; i < bars.length; i++) {
    const bar = bars[i];
    if (bar.tradingDate !== dayDate) {
      finishDay();
      dayDate = bar.tradingDate;
      day = _dayOf(dayDate);
      regularCount = 0;
    }
    const d = day!;
    const { ts, open, high, low, close, volume } = bar;
    let errors = 0;

    // Error rules, in table order.
    if (
      on[R_POSITIVE] && !(open > 0 && high > 0 && low > 0 && close > 0 &&
        open < Infinity && high < Infinity && low < Infinity && close < Infinity)
    ) {
      errors++;
      sink(i, R_POSITIVE, `prices must be finite and above 0: ${_ohlc(bar)}`, d);
    }
    if (on[R_VOLUME] && (allErrors || errors === 0) && !(volume >= 0 && volume < Infinity)) {
      errors++;
      sink(i, R_VOLUME, `volume ${volume} is negative or not finite`, d);
    }
    if (
      on[R_OHLC] && (allErrors || errors === 0) &&
      !(high >= open && high >= close && low <= open && low <= close && low <= high)
    ) {
      errors++;
      sink(i, R_OHLC, _ohlcDetail(bar), d);
    }
    if (on[R_ALIGN] && (allErrors || errors === 0)) {
      const detail = _alignment(ts, d, daily, length);
      if (detail !== undefined) {
        errors++;
        sink(i, R_ALIGN, detail, d);
      }
    }
    if (on[R_DUPLICATE] && (allErrors || errors === 0) && ts === previousTs) {
      errors++;
      sink(i, R_DUPLICATE, `another ${timeframe} bar of ${bar.symbol} starts at the same time`, d);
    }
    previousTs = ts;
    if (!d.open) {
      if (on[R_CLOSED] && (allErrors || errors === 0)) {
        errors++;
        sink(i, R_CLOSED, `${d.date} is not an NYSE trading day`, d);
      }
    } else if (!daily) {
      const inside = ts >= d.preOpen && ts < d.postClose;
      if (on[R_OUTSIDE] && (allErrors || errors === 0) && !inside) {
        errors++;
        sink(
          i,
          R_OUTSIDE,
          `starts at ${_clock(ts, d)} New York, outside ${_clock(d.preOpen, d)}-${
            _clock(d.postClose, d)
          } of ${d.date}`,
          d,
        );
      }
      if (inside && on[R_LABEL] && (allErrors || errors === 0)) {
        const expected = ts < d.regularOpen ? "pre" : ts < d.close ? "regular" : "post";
        if (bar.session !== expected) {
          errors++;
          sink(
            i,
            R_LABEL,
            `labelled ${bar.session} but ${_clock(ts, d)} New York is ${expected}`,
            d,
          );
        }
      }
    }
    if (errors > 0) continue;

    // Warnings and notes, on bars without errors only.
    if (bar.session === "regular") regularCount++;
    const vwap = bar.vwap;
    if (
      on[R_VWAP] && vwap !== null &&
      !(vwap >= low * (1 - vwapTolerance) && vwap <= high * (1 + vwapTolerance))
    ) {
      sink(i, R_VWAP, `vwap ${vwap} is outside [low ${low}, high ${high}]`, d);
    }
    if (on[R_ZERO] && volume === 0 && (open !== close || high !== low)) {
      sink(i, R_ZERO, `zero volume but the price moves: ${_ohlc(bar)}`, d);
    }
    if (on[R_MOVE]) {
      if (reference !== reference) {
        reference = close;
      } else {
        const move = _move(open, close, reference);
        if (move <= moveLimit) {
          reference = close;
          pending = NaN;
        } else if (pending === pending && _move(open, close, pending) <= moveLimit) {
          // The level of the flagged bar held: a new level (split, halt reopening), not a spike.
          reference = close;
          pending = NaN;
        } else {
          sink(i, R_MOVE, _moveDetail(open, close, reference), d);
          pending = close;
        }
      }
    }
    if (on[R_STALE]) {
      if (volume > 0 && bar.session === "regular" && close === staleClose) {
        staleRun++;
        if (staleRun === staleLimit) {
          sink(i, R_STALE, `${staleRun} bars in a row with volume closed at ${close}`, d);
        }
      } else {
        staleClose = volume > 0 && bar.session === "regular" ? close : NaN;
        staleRun = staleClose === staleClose ? 1 : 0;
      }
    }
    if (on[R_SPIKE]) {
      const key = daily ? "" : bar.tradingDate + bar.session;
      if (key !== spikeKey) {
        spikeKey = key;
        windowSize = 0;
        ringStart = 0;
      }
      if (windowSize >= _SPIKE_MIN_HISTORY) {
        const middle = windowSize >> 1;
        const median = windowSize & 1 ? window[middle] : (window[middle - 1] + window[middle]) / 2;
        if (median > 0 && volume > spikeFactor * median) {
          sink(
            i,
            R_SPIKE,
            `volume ${volume} is ${
              (volume / median).toFixed(1)
            }x the median ${median} of the previous ${windowSize} bars`,
            d,
          );
        }
      }
      // Slide the window: drop the oldest volume when full, insert this one in order.
      if (windowSize === _SPIKE_WINDOW) {
        const oldest = ring[ringStart];
        for (let k = _search(window, windowSize, oldest); k < windowSize - 1; k++) {
          window[k] = window[k + 1];
        }
        windowSize--;
        ring[ringStart] = volume;
        ringStart = (ringStart + 1) % _SPIKE_WINDOW;
      } else {
        ring[(ringStart + windowSize) % _SPIKE_WINDOW] = volume;
      }
      let k = windowSize;
      while (k > 0 && window[k - 1] > volume) {
        window[k] = window[k - 1];
        k--;
      }
      window[k] = volume;
      windowSize++;
    }
  }
  finishDay();
}

/** First index in the sorted `values[0, size)` whose value is >= `value`. */
function _search(values: Float64Array, size: number, value: number): number {
  let lo = 0;
  let hi = size;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function _alignment(ts: number, day: _Day, daily: boolean, length: number): string | undefined {
  if (daily) {
    return ts === day.midnight
      ? undefined
      : `a daily bar must start at midnight New York of ${day.date}`;
  }
  if (ts % _MINUTE_MS !== 0) {
    return `starts at ${new Date(ts).toISOString()}, not on a whole minute`;
  }
  if (length === _MINUTE_MS || !day.open) return undefined;
  if (
    (ts - day.regularOpen) % length === 0 || (ts - day.midnight) % length === 0 ||
    ts === day.preOpen || ts === day.close
  ) return undefined;
  return `starts at ${_clock(ts, day)} New York, not on the ${length / _MINUTE_MS}-minute grid`;
}

function _move(open: number, close: number, reference: number): number {
  const a = Math.abs(open - reference);
  const b = Math.abs(close - reference);
  return (a > b ? a : b) / reference;
}

function _moveDetail(open: number, close: number, reference: number): string {
  const byOpen = Math.abs(open - reference) > Math.abs(close - reference);
  const price = byOpen ? open : close;
  const which = byOpen ? "open" : "close";
  const change = price / reference - 1;
  let hint = "";
  const ratio = reference / price;
  for (const k of _SPLIT_RATIOS) {
    if (Math.abs(ratio / k - 1) < _SPLIT_TOLERANCE) {
      hint = `; looks like a ${k}:1 split, use split-adjusted data`;
      break;
    }
    if (Math.abs(ratio * k - 1) < _SPLIT_TOLERANCE) {
      hint = `; looks like a 1:${k} reverse split, use split-adjusted data`;
      break;
    }
  }
  return `${which} ${price} is ${_percent(Math.abs(change))} ${
    change > 0 ? "above" : "below"
  } the previous close ${reference}${hint}`;
}

function _ohlc(bar: Bar): string {
  return `open ${bar.open}, high ${bar.high}, low ${bar.low}, close ${bar.close}`;
}

function _ohlcDetail(bar: Bar): string {
  const { open, high, low, close } = bar;
  if (!(low <= high)) return `low ${low} is above high ${high}`;
  if (!(high >= open && high >= close)) {
    return `high ${high} is below ${open > close ? `open ${open}` : `close ${close}`}`;
  }
  return `low ${low} is above ${open < close ? `open ${open}` : `close ${close}`}`;
}

function _percent(share: number): string {
  return `${(share * 100).toFixed(share < 0.1 ? 2 : 1)}%`;
}

/** New York wall-clock `HH:MM` of `ts` on `day` (also past midnight, e.g. `25:10`). */
function _clock(ts: number, day: _Day): string {
  // Offset of this day from midnight, in exchange time; DST switches happen at 02:00, before
  // any session, so the sessions keep the offset of midnight + 12h.
  const noon = zonedTime(day.date, "12:00");
  const minutes = Math.floor((ts - noon) / _MINUTE_MS) + 12 * 60;
  const h = Math.floor(minutes / 60);
  const m = ((minutes % 60) + 60) % 60;
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
}
