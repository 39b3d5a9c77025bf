import { parse as parseYaml } from "yaml";
import { CALENDAR_YEARS, isValidDate } from "./calendar.ts";
import { didYouMean, UsageError } from "./errors.ts";
import { formatBytes } from "./format.ts";
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
}

/** Where an option's value came from. */
export type OptionSource = "flag" | "env" | "config" | "default";

/** Options resolved with precedence flags > env > config file > defaults. */
export interface ResolvedOptions {
  values: Record<string, string | boolean | undefined>;
  sources: Record<string, OptionSource>;
}

/**
 * Parse a YAML config file whose keys mirror the long flags (`data-dir` or `data_dir`). Lists
 * are joined with commas (for `symbols`). Unknown keys are errors naming the closest valid key.
 * The one nested mapping allowed is `validation: { rules: { <id>: { enabled, threshold } } }`
 * (when `validation` is a known key), returned as `--validation` text.
 */
export function parseConfigFile(
  text: string,
  path: string,
  knownKeys: ReadonlySet<string>,
): Record<string, string | boolean> {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    // The yaml package appends a source excerpt after "column N:"; keep only the first line.
    const first = String((error as Error).message).split("\n")[0].replace(/:\s*$/, "");
    throw new UsageError(`Cannot parse config file ${path}: ${first}`, { cause: error });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new UsageError(
      `Invalid config file ${path}: expected a mapping of option names to values`,
    );
  }
  const out: Record<string, string | boolean> = {};
  for (const [rawKey, value] of Object.entries(parsed as Record<string, unknown>)) {
    const key = rawKey.replaceAll("_", "-");
    if (!knownKeys.has(key)) {
      throw new UsageError(
        `Unknown key "${rawKey}" in config file ${path}${didYouMean(key, knownKeys)}`,
      );
    }
    if (
      key === "validation" && typeof value === "object" && value !== null &&
      !Array.isArray(value) && !(value instanceof Date)
    ) {
      // The one nested key: rule settings, checked against the rule table and passed on in the
      // form of the --validation flag.
      out[key] = validationConfigText(value, path);
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
  if (!/^-?\d+$/.test(text.trim())) {
    throw new UsageError(
      `Invalid ${name} "${text}": expected a whole number from ${min} to ${max}`,
    );
  }
  const value = Number(text);
  if (value < min || value > max) {
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
