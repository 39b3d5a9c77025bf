import { parse as parseYaml } from "yaml";
import { addDays, CALENDAR_YEARS, isValidDate } from "./calendar.ts";
import { didYouMean, UsageError } from "./errors.ts";
import { formatBytes } from "./format.ts";
import { isTimeframe, type Timeframe, TIMEFRAMES } from "./types.ts";
import { validationConfigText } from "./validate.ts";

/** Largest config file read, in bytes. */
export const MAX_CONFIG_BYTES = 2 ** 20;

/** A command-line option; config file keys and environment variables mirror it. */
export interface OptionSpec {
  /** Long flag name without dashes, e.g. `data-dir`. */
  name: string;
  type: "string" | "boolean";
  description: string;
  short?: string;
  /** Shown in help and used when nothing else sets the option. */
  default?: string | boolean;
  /** Environment variable that sets the option. */
  env?: string;
  /** Placeholder in help, e.g. `DATE`. */
  placeholder?: string;
  /** Other flag names accepted for this option (e.g. `output` for `data-dir` on ingest). */
  aliases?: string[];
  /** Whether a config file may set it (false for per-run flags like `--help`). */
  configurable?: boolean;
  /** A string flag that may be given several times (read all with `Invocation.strings`). */
  multiple?: boolean;
}

/** Where an option's value came from. */
export type OptionSource = "flag" | "env" | "config" | "default";

/** Options resolved with precedence flags > env > config file > defaults. */
export interface ResolvedOptions {
  values: Record<string, string | boolean | undefined>;
  sources: Record<string, OptionSource>;
}

/** Whether a parsed YAML value is a mapping (not a list, a date or null). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

/** The YAML of config file `path`, or a `UsageError` with the parser's first line. */
export function parseConfigYaml(text: string, path: string): unknown {
  try {
    return parseYaml(text);
  } catch (error) {
    // The yaml package appends a source excerpt after "column N:"; keep only the first line.
    const first = String((error as Error).message).split("\n")[0].replace(/:\s*$/, "");
    throw new UsageError(`Cannot parse config file ${path}: ${first}`, { cause: error });
  }
}

/**
 * Parse a YAML config file whose keys mirror the long flags (`data-dir` or `data_dir`). Lists
 * are joined with commas (for `symbols`). Unknown keys are errors naming the closest valid key.
 * The one nested mapping allowed is `validation: { rules: { <id>: { enabled, threshold } } }`
 * (when `validation` is a known key), returned as `--validation` text; and `retention:` as a
 * mapping of timeframe to age (`{1m: 2y, 5m: 5y}`, when `retention-policy` is a known key),
 * returned as `--retention-policy` text (a plain `retention: 30d` stays the metric history's).
 */
export function parseConfigFile(
  text: string,
  path: string,
  knownKeys: ReadonlySet<string>,
): Record<string, string | boolean> {
  const parsed = parseConfigYaml(text, path);
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new UsageError(
      `Invalid config file ${path}: expected a mapping of option names to values`,
    );
  }
  const out: Record<string, string | boolean> = {};
  for (const [rawKey, value] of Object.entries(parsed as Record<string, unknown>)) {
    const key = rawKey.replaceAll("_", "-");
    // The scheduler's keys, checked by `serve` and `schedule` (core/schedule.ts), not options.
    if (key === "schedules" || key === "notify") continue;
    if (!knownKeys.has(key)) {
      throw new UsageError(
        `Unknown key "${rawKey}" in config file ${path}${didYouMean(key, knownKeys)}`,
      );
    }
    if (key === "validation" && isMapping(value)) {
      // The one nested key: rule settings, checked against the rule table and passed on in the
      // form of the --validation flag.
      out[key] = validationConfigText(value, path);
    } else if (key === "retention" && knownKeys.has("retention-policy") && isMapping(value)) {
      out["retention-policy"] = _retentionConfigText(value, path);
    } else if (
      Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number")
    ) {
      out[key] = value.join(",");
    } else if (typeof value === "string" || typeof value === "boolean") {
      out[key] = value;
    } else if (typeof value === "number" && Number.isFinite(value)) {
      out[key] = String(value);
    } else if (value instanceof Date) {
      out[key] = value.toISOString().slice(0, 10);
    } else {
      throw new UsageError(
        `Invalid value for "${rawKey}" in config file ${path}: expected a string, number, boolean or list`,
      );
    }
  }
  return out;
}

/**
 * Resolve option values: a flag given on the command line wins, then its environment variable,
 * then the config file, then the default. Boolean options in config/env must be booleans.
 */
export function resolveOptions(
  specs: readonly OptionSpec[],
  flags: Record<string, string | boolean | undefined>,
  env: Record<string, string | undefined>,
  config: Record<string, string | boolean>,
  configPath = "config file",
): ResolvedOptions {
  const values: ResolvedOptions["values"] = {};
  const sources: ResolvedOptions["sources"] = {};
  for (const spec of specs) {
    let value: string | boolean | undefined = flags[spec.name];
    let source: OptionSource = "flag";
    if (value === undefined && spec.env && env[spec.env] !== undefined && env[spec.env] !== "") {
      value = spec.type === "boolean"
        ? _parseBoolean(env[spec.env]!, `$${spec.env}`)
        : env[spec.env];
      source = "env";
    }
    if (value === undefined && spec.configurable !== false && config[spec.name] !== undefined) {
      value = config[spec.name];
      source = "config";
      if (spec.type === "boolean" && typeof value !== "boolean") {
        throw new UsageError(
          `Invalid value for "${spec.name}" in ${configPath}: expected true or false, got "${value}"`,
        );
      }
      if (spec.type === "string" && typeof value === "boolean") {
        throw new UsageError(
          `Invalid value for "${spec.name}" in ${configPath}: expected a value, got ${value}`,
        );
      }
    }
    if (value === undefined) {
      value = spec.default;
      source = "default";
    }
    values[spec.name] = value;
    sources[spec.name] = source;
  }
  return { values, sources };
}

function _parseBoolean(text: string, name: string): boolean {
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off)$/i.test(text)) return false;
  throw new UsageError(`Invalid ${name} "${text}": expected true or false`);
}

/** Parse an integer option within bounds, naming the option in the error. */
export function parseIntOption(text: string, name: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || value < min || value > max) {
    throw new UsageError(
      `Invalid ${name} "${text}": expected a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

const _SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Parse a byte size such as `2GB`, `512MiB` or `1.5 GiB` (a bare number is bytes); with
 * `percentOf`, also a share such as `25%` of that many bytes. Returns whole bytes within
 * `[min, max]`, else a {@link UsageError} naming the option.
 *
 * @example
 * ```ts
 * parseSizeOption("512MiB", "--memory-limit", 2 ** 24, 2 ** 50); // 536870912
 * ```
 */
export function parseSizeOption(
  text: string,
  name: string,
  min: number,
  max: number,
  percentOf?: number,
): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*|%)\s*$/i.exec(text);
  const unit = match?.[2].toLowerCase() ?? "";
  let bytes: number | undefined;
  if (match !== null && unit === "%" && percentOf !== undefined) {
    bytes = Math.floor(Number(match[1]) / 100 * percentOf);
  } else if (match !== null && Object.hasOwn(_SIZE_UNITS, unit || "b")) {
    bytes = Math.floor(Number(match[1]) * _SIZE_UNITS[unit || "b"]);
  }
  if (bytes === undefined || bytes < min || bytes > max) {
    throw new UsageError(
      `Invalid ${name} "${text}": expected a size from ${formatBytes(min)} to ${
        formatBytes(max)
      } such as 512MiB or 4GB${
        percentOf === undefined ? "" : ", or a share of the RAM such as 25%"
      }`,
    );
  }
  return bytes;
}

/** Parse a number option within bounds (inclusive min, exclusive max when `maxExclusive`). */
export function parseNumberOption(
  text: string,
  name: string,
  min: number,
  max: number,
  maxExclusive = false,
): number {
  const value = Number(text);
  const bad = text.trim() === "" || !Number.isFinite(value) || value < min ||
    (maxExclusive ? value >= max : value > max);
  if (bad) {
    throw new UsageError(
      `Invalid ${name} "${text}": expected a number from ${min} to ${max}${
        maxExclusive ? " (exclusive)" : ""
      }`,
    );
  }
  return value;
}

/** Parse a duration like `30d`, `12h`, `90m` or `45s` into milliseconds. */
export function parseDuration(text: string, name: string): number {
  const match = /^(\d+)\s*(s|m|h|d|w)$/.exec(text.trim());
  if (!match) {
    throw new UsageError(
      `Invalid ${name} "${text}": expected a duration like 30d, 12h, 90m or 45s`,
    );
  }
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[match[2]]!;
  return Number(match[1]) * unit;
}

/** A `YYYY-MM-DD` date option, checked to be a real calendar date within the calendar's years. */
export function parseDateOption(text: string, name: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    throw new UsageError(`Invalid ${name} "${text}": expected YYYY-MM-DD`);
  }
  if (!isValidDate(text)) {
    throw new UsageError(`Invalid ${name} "${text}": no such calendar date`);
  }
  // Every caller turns the date into trading days, which exist only within the calendar's years.
  const year = Number(text.slice(0, 4));
  if (year < CALENDAR_YEARS.first || year > CALENDAR_YEARS.last) {
    throw new UsageError(
      `Invalid ${name} ${text}: expected a date from ${CALENDAR_YEARS.first}-01-01 to ${CALENDAR_YEARS.last}-12-31`,
    );
  }
  return text;
}

/** How long bars of a timeframe are kept: a count of calendar days, weeks, months or years. */
export interface RetentionAge {
  count: number;
  unit: "d" | "w" | "mo" | "y";
}

/**
 * Parse a retention age: `30d` (days), `8w` (weeks), `18mo` (months) or `2y` (years), a whole
 * count of at least 1. `m` is refused: it means minutes in other durations, so months are `mo`.
 */
export function parseRetentionAge(text: string, name: string, where = ""): RetentionAge {
  const match = /^([1-9]\d{0,3})(d|w|mo|y)$/.exec(text.trim());
  if (!match) {
    const hint = /^\d+m$/.test(text.trim()) ? "; m would be minutes, months are mo" : "";
    throw new UsageError(
      `Invalid ${name} "${text}"${where}: expected an age like 30d, 8w, 18mo or 2y (days, weeks, months, years${hint})`,
    );
  }
  return { count: Number(match[1]), unit: match[2] as RetentionAge["unit"] };
}

/**
 * Parse a retention policy, `TF=AGE` pairs separated by commas (`1m=2y,5m=5y`), as
 * `--retention-policy` takes it; `name` says where it came from in errors.
 */
export function parseRetentionPolicy(text: string, name: string): Map<Timeframe, RetentionAge> {
  const policy = new Map<Timeframe, RetentionAge>();
  for (const part of text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const [timeframe, age, extra] = part.split("=").map((p) => p.trim());
    if (age === undefined || extra !== undefined) {
      throw new UsageError(`Invalid retention "${part}" in ${name}: expected TF=AGE, e.g. 1m=2y`);
    }
    if (!isTimeframe(timeframe)) {
      throw new UsageError(
        `Invalid retention in ${name}: unknown timeframe "${timeframe}"${
          didYouMean(timeframe, TIMEFRAMES)
        }, expected one of ${TIMEFRAMES.join(" ")}`,
      );
    }
    if (policy.has(timeframe)) {
      throw new UsageError(`Invalid retention in ${name}: timeframe ${timeframe} is given twice`);
    }
    policy.set(timeframe, parseRetentionAge(age, `retention for ${timeframe}`, ` in ${name}`));
  }
  return policy;
}

/**
 * The first date `age` keeps when today is `today` (both `YYYY-MM-DD`): bars of earlier trading
 * dates are past retention. Months and years step the calendar (2026-03-31 less 1mo is
 * 2026-02-28).
 */
export function retentionCutoff(age: RetentionAge, today: string): string {
  if (age.unit === "d" || age.unit === "w") {
    return addDays(today, -age.count * (age.unit === "w" ? 7 : 1));
  }
  const months = age.count * (age.unit === "y" ? 12 : 1);
  const total = +today.slice(0, 4) * 12 + (+today.slice(5, 7) - 1) - months;
  const year = Math.floor(total / 12);
  const month = total - year * 12 + 1;
  const lastDay = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const day = Math.min(+today.slice(8, 10), lastDay);
  return `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}-${
    String(day).padStart(2, "0")
  }`;
}

/** The config file's `retention:` mapping as checked `--retention-policy` text. */
function _retentionConfigText(value: Record<string, unknown>, path: string): string {
  const parts = Object.entries(value).map(([timeframe, age]) => {
    if (typeof age !== "string") {
      throw new UsageError(
        `Invalid value for "retention.${timeframe}" in config file ${path}: expected an age like 2y`,
      );
    }
    return `${timeframe}=${age}`;
  });
  const text = parts.join(",");
  parseRetentionPolicy(text, `config file ${path}`);
  return text;
}
