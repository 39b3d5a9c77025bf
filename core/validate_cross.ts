/**
 * Cross-check: compare a provider's own higher-timeframe bars with our aggregation of its 1m
 * bars, and report the differences above a tolerance as `cross_check` findings. Pure.
 *
 * @module
 */
import type { Bar } from "./types.ts";
import { type Finding, VALIDATION_RULES } from "./validate.ts";

/** Options of {@link crossCheckBars}. */
export interface CrossCheckOptions {
  /** Largest accepted relative difference of open, high, low, close and volume; default 0.005. */
  tolerance?: number;
  /** Trading dates with 1m bars: a provided bar of another date cannot be compared. */
  minuteDays?: ReadonlySet<string>;
}

/** Outcome of {@link crossCheckBars}. */
export interface CrossCheckResult {
  findings: Finding[];
  /** Provided bars compared with a bar of ours. */
  compared: number;
  /** Provided bars on dates without 1m bars (not comparable). */
  skipped: number;
}

const _FIELDS = ["open", "high", "low", "close", "volume"] as const;
const _DEFAULT_TOLERANCE = VALIDATION_RULES.find((r) => r.id === "cross_check")!.threshold!;

/**
 * Compare `provided` bars with `derived` ones (same symbol and timeframe) by start time. A
 * provided bar with no derived bar at its start on a date that has 1m bars is a finding (the
 * provider aligns its buckets differently, or 1m bars are missing); so is any field whose
 * relative difference exceeds the tolerance.
 *
 * @example
 * ```ts
 * const { findings } = crossCheckBars(providerDaily, aggregateBars(minutes, "1d"));
 * ```
 */
export function crossCheckBars(
  provided: readonly Bar[],
  derived: readonly Bar[],
  options: CrossCheckOptions = {},
): CrossCheckResult {
  const tolerance = options.tolerance ?? _DEFAULT_TOLERANCE;
  const ours = new Map<string, Bar>();
  for (const bar of derived) ours.set(`${bar.symbol}\0${bar.ts}`, bar);
  const findings: Finding[] = [];
  let compared = 0;
  let skipped = 0;
  for (const bar of provided) {
    const finding = (detail: string): Finding => ({
      symbol: bar.symbol,
      timeframe: bar.timeframe,
      ts: bar.ts,
      tradingDate: bar.tradingDate,
      rule: "cross_check",
      severity: "warn",
      detail,
    });
    const mine = ours.get(`${bar.symbol}\0${bar.ts}`);
    if (mine === undefined) {
      if (options.minuteDays && !options.minuteDays.has(bar.tradingDate)) {
        skipped++;
        continue;
      }
      findings.push(
        finding(
          `no ${bar.timeframe} bucket of the 1m bars starts here (the provider aligns its bars differently, or 1m bars are missing)`,
        ),
      );
      continue;
    }
    compared++;
    const differences: string[] = [];
    for (const field of _FIELDS) {
      const a = bar[field];
      const b = mine[field];
      const scale = Math.max(Math.abs(a), Math.abs(b));
      const difference = scale === 0 ? 0 : Math.abs(a - b) / scale;
      if (!(difference <= tolerance)) {
        differences.push(`${field} ${a} vs ${b} from 1m (${(difference * 100).toFixed(2)}%)`);
      }
    }
    if (differences.length > 0) findings.push(finding(differences.join("; ")));
  }
  return { findings, compared, skipped };
}
