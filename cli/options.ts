/**
 * Option specs that several commands share, and the parsers that turn an invocation's option
 * text into checked values. `commands.ts` imports this module for `--help`, so it loads nothing
 * heavy up front: storage is imported only when a symbols file is read.
 *
 * @module
 */
import {
  type OptionSpec,
  parseDateOption,
  parseNumberOption,
  parseSizeOption,
} from "../core/config.ts";
import { exchangeDate } from "../core/calendar.ts";
import { clockFromEnv } from "../core/clock.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import { TIME_ZONE_SETTINGS, type TimeZoneSetting } from "../core/format.ts";
import { MAX_SYMBOLS_FILE_BYTES, parseSymbols, parseSymbolsFile } from "../core/symbols.ts";
import { type Timeframe, TIMEFRAMES } from "../core/types.ts";
import { parseValidationSettings, type ValidationSettings } from "../core/validate.ts";
import type { Invocation } from "./args.ts";
import type { CommandContext } from "./context.ts";

export { parseDateOption };

/** `--symbols LIST` (`-s`); override `description` per command. Read with {@link symbolsOption}. */
export const SYMBOLS_OPTION: OptionSpec = {
  name: "symbols",
  short: "s",
  type: "string",
  placeholder: "LIST",
  description: "Comma-separated symbols",
};

/** `--symbols-file FILE`, the alternative to `--symbols`. Read with {@link symbolsOption}. */
export const SYMBOLS_FILE_OPTION: OptionSpec = {
  name: "symbols-file",
  type: "string",
  placeholder: "FILE",
  description: "File with symbols, one or more per line, # comments",
};

/** `--start DATE`, the first trading date. Read with {@link rangeOption}. */
export const START_OPTION: OptionSpec = {
  name: "start",
  type: "string",
  placeholder: "DATE",
  description: "First trading date, YYYY-MM-DD (inclusive)",
};

/** `--end DATE`, the last trading date (default: `--start`). Read with {@link rangeOption}. */
export const END_OPTION: OptionSpec = {
  name: "end",
  type: "string",
  placeholder: "DATE",
  description: "Last trading date, YYYY-MM-DD (inclusive; default: --start)",
};

/** `--timeframe TF` (`-t`, default 1m), described as `<what>: 1m 5m ... 1d`; see {@link timeframeOption}. */
export function timeframeSpec(what: string): OptionSpec {
  return {
    name: "timeframe",
    short: "t",
    type: "string",
    placeholder: "TF",
    description: `${what}: ${TIMEFRAMES.join(" ")}`,
    default: "1m",
  };
}

/** `--session S` (regular or extended); give the `description`. Read with {@link sessionOption}. */
export function sessionSpec(description: string): OptionSpec {
  return { name: "session", type: "string", placeholder: "S", description };
}

/** `--validation SPEC`: rule settings. Read with {@link validationOption}. */
export const VALIDATION_OPTION: OptionSpec = {
  name: "validation",
  type: "string",
  placeholder: "SPEC",
  description:
    "Rule settings, e.g. extreme_move.threshold=0.3,stale_price.enabled=false (config: validation.rules)",
};

/** A boolean `--NAME` for one run: off by default, not read from a config file. */
export function switchSpec(name: string, description: string): OptionSpec {
  return { name, type: "boolean", description, default: false, configurable: false };
}

/** A `--NAME PLACEHOLDER` for one run: no default, not read from a config file. */
export function perRunSpec(name: string, placeholder: string, description: string): OptionSpec {
  return { name, type: "string", placeholder, description, configurable: false };
}

/** `--dry-run` (per run, not configurable); give the `description`. */
export function dryRunSpec(description: string): OptionSpec {
  return switchSpec("dry-run", description);
}

/** `--memory-limit` and `--temp-limit` of the query engine, shared by `query` and `serve`. */
export const QUERY_ENGINE_OPTIONS: readonly OptionSpec[] = [
  {
    name: "memory-limit",
    type: "string",
    placeholder: "SIZE",
    env: "MARKETPIPE_QUERY_MEMORY_LIMIT",
    description: "Memory the query engine may use, e.g. 4GB or 25% (of the RAM); beyond it spills",
    default: "25%",
  },
  {
    name: "temp-limit",
    type: "string",
    placeholder: "SIZE",
    env: "MARKETPIPE_QUERY_TEMP_LIMIT",
    description: "Disk the query engine may spill to (a private temp folder); beyond it fails",
    default: "4GiB",
  },
];

/** Where metric history lives: PROMETHEUS_MULTIPROC_DIR (alias) or the data directory. */
export function historyDirOf(context: CommandContext): string | undefined {
  const dir = context.env.PROMETHEUS_MULTIPROC_DIR;
  return dir && dir.trim() !== "" ? dir : undefined;
}

/** The data directory: `--output` (ingest's alias) when given as a flag, else `--data-dir`. */
export function dataDirOf(invocation: Invocation): string {
  // `--output` is ingest's alias of the data directory (`query --output` is a result file).
  const output = invocation.path[0] === "ingest" ? invocation.string("output") : undefined;
  if (output !== undefined && invocation.options.sources["data-dir"] !== "flag") return output;
  if (
    output !== undefined && invocation.options.sources.output === "flag" &&
    output !== invocation.string("data-dir")
  ) {
    throw new UsageError(
      `Conflicting --output "${output}" and --data-dir "${
        invocation.string("data-dir")
      }": --output is an alias of --data-dir, give one`,
    );
  }
  const dir = invocation.string("data-dir") ?? "./data";
  if (dir.trim() === "") throw new UsageError(`Invalid --data-dir "": expected a directory path`);
  return dir;
}

/** Exactly `count` positional arguments, or a usage error naming what is expected. */
export function positionals(invocation: Invocation, names: string[]): string[] {
  const got = invocation.positionals;
  if (got.length < names.length) {
    throw new UsageError(
      `Missing ${names[got.length]} for "marketpipe ${invocation.path.join(" ")}"; see marketpipe ${
        invocation.path.join(" ")
      } --help`,
    );
  }
  if (got.length > names.length) {
    throw new UsageError(
      `Unexpected argument "${got[names.length]}" for "marketpipe ${invocation.path.join(" ")}"${
        names.length === 1 ? ` (quote the ${names[0]} as one argument)` : ""
      }`,
    );
  }
  return got;
}

/** `--memory-limit` and `--temp-limit` of the query engine, as DuckDB sizes. */
export function queryEngineLimits(
  invocation: Invocation,
): { memoryLimit: string; tempLimit: string } {
  const ram = Deno.systemMemoryInfo().total;
  const memory = parseSizeOption(
    invocation.string("memory-limit") ?? "25%",
    "--memory-limit",
    64 * 2 ** 20,
    ram,
    ram,
  );
  const temp = parseSizeOption(
    invocation.string("temp-limit") ?? "4GiB",
    "--temp-limit",
    0,
    2 ** 50,
  );
  return {
    memoryLimit: `${Math.floor(memory / 1024)}KiB`,
    tempLimit: `${Math.floor(temp / 1024)}KiB`,
  };
}

/** `--universe NAME`, the third alternative to `--symbols`. Read with {@link symbolsOption}. */
export const UNIVERSE_OPTION: OptionSpec = {
  name: "universe",
  type: "string",
  placeholder: "NAME",
  description: "The members of this universe (see marketpipe universe), at any time in the range",
  configurable: false,
};

/** `--as-of DATE` beside `--universe`: the members on DATE instead. */
export const UNIVERSE_AS_OF_OPTION: OptionSpec = {
  name: "as-of",
  type: "string",
  placeholder: "DATE",
  description: "With --universe: its members on this date, YYYY-MM-DD, instead",
  configurable: false,
};

/** `--symbols` (described as `symbols`), `--symbols-file`, `--universe` and its `--as-of`. */
export function symbolSelectionSpecs(symbols = SYMBOLS_OPTION.description): OptionSpec[] {
  return [
    { ...SYMBOLS_OPTION, description: symbols },
    SYMBOLS_FILE_OPTION,
    UNIVERSE_OPTION,
    UNIVERSE_AS_OF_OPTION,
  ];
}

/**
 * `--symbols` and `--symbols-file` described for one command, and not read from a config file
 * (a configured list must not choose what a command deletes or changes).
 */
export function chosenSymbolsSpecs(
  symbols: string,
  file = "Only the symbols in FILE",
): OptionSpec[] {
  return [
    { ...SYMBOLS_OPTION, description: symbols, configurable: false },
    { ...SYMBOLS_FILE_OPTION, description: file, configurable: false },
  ];
}

/** {@link symbolSelectionSpecs} then `--start` and `--end`: what and when, as `ingest` reads them. */
export const SELECTION_RANGE_OPTIONS: readonly OptionSpec[] = Object.freeze([
  ...symbolSelectionSpecs(),
  START_OPTION,
  END_OPTION,
]);

/** What `--universe` is resolved over: the command's range (or `today`), `YYYY-MM-DD`. */
export interface SymbolsScope {
  range?: { start: string; end: string };
  /** Today's New York date: the range of a command without one, and the universe default. */
  today: string;
}

/**
 * Symbols from `--symbols`, `--symbols-file` or `--universe` (at most one of them; a flag wins
 * over a config file's `symbols`), or undefined when none is set. A universe gives its members
 * at any time in `scope.range` (today without one), or on `--as-of`; an empty one is an error.
 */
export async function symbolsOption(
  invocation: Invocation,
  scope?: SymbolsScope,
): Promise<string[] | undefined> {
  const declared = (name: string) => Object.hasOwn(invocation.options.values, name);
  const given = ["symbols", "symbols-file", "universe"].filter((name) =>
    declared(name) && invocation.string(name) !== undefined
  );
  const flags = given.filter((name) => invocation.options.sources[name] === "flag");
  const chosen = given.length <= 1 ? given[0] : flags.length === 1 ? flags[0] : undefined;
  if (given.length > 1 && chosen === undefined) {
    throw new UsageError(
      `Use one of ${given.map((name) => `--${name}`).join(", ")}, not ${
        given.length === 2 ? "both" : "several"
      }`,
    );
  }
  // `--as-of` belongs to `--universe` only where the command selects by universe.
  const asOfText = declared("universe") && declared("as-of")
    ? invocation.string("as-of")
    : undefined;
  if (asOfText !== undefined && chosen !== "universe") {
    throw new UsageError(
      `Invalid --as-of ${asOfText}: it picks the members of a --universe; give --universe NAME`,
    );
  }
  if (chosen === "universe") {
    if (scope === undefined) {
      throw new Error(`symbolsOption() needs a scope for --universe of "${invocation.path[0]}"`);
    }
    const asOf = asOfText === undefined ? undefined : parseDateOption(asOfText, "--as-of");
    const { universeMembers } = await import("./universe.ts");
    return await universeMembers(dataDirOf(invocation), invocation.string("universe")!, {
      asOf,
      range: scope.range,
      today: scope.today,
    });
  }
  if (chosen === "symbols-file") {
    const file = invocation.string("symbols-file")!;
    return parseSymbolsFile(
      await readCappedFile(file, MAX_SYMBOLS_FILE_BYTES, "--symbols-file"),
      file,
    );
  }
  return chosen === "symbols" ? parseSymbols(invocation.string("symbols")!) : undefined;
}

/**
 * The text of a file named by an option (`what`, e.g. `--symbols-file`), at most `maxBytes`; a
 * file that cannot be read is a usage error naming it. Loads storage only when called.
 */
export async function readCappedFile(
  path: string,
  maxBytes: number,
  what: string,
): Promise<string> {
  const { readTextFileCapped } = await import("../storage/mod.ts");
  try {
    return await readTextFileCapped(path, maxBytes, what);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`Cannot read ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Today's date in New York by the command's clock (`MARKETPIPE_NOW` in tests). */
export function todayOf(context: Pick<CommandContext, "env">): string {
  return exchangeDate(clockFromEnv(context.env)());
}

/** `--start`/`--end` as a checked range (end defaults to start), or undefined when unset. */
export function rangeOption(
  invocation: Invocation,
  options: { required?: boolean } = {},
): { start: string; end: string } | undefined {
  const startText = invocation.string("start");
  const endText = invocation.string("end");
  if (startText === undefined) {
    if (endText !== undefined) throw new UsageError("Missing --start: --end needs a first date");
    if (options.required) {
      throw new UsageError("Missing --start: the first trading date, YYYY-MM-DD");
    }
    return undefined;
  }
  const start = parseDateOption(startText, "--start");
  const end = parseDateOption(endText ?? start, "--end");
  if (start > end) throw new UsageError(`Invalid range: --start ${start} is after --end ${end}`);
  return { start, end };
}

/** `--min-coverage` as a share 0-1 (`0.9` or `90%`). */
export function minCoverageOption(invocation: Invocation): number {
  const text = invocation.string("min-coverage") ?? "0.9";
  return text.endsWith("%")
    ? parseNumberOption(text.slice(0, -1), "--min-coverage", 0, 100) / 100
    : parseNumberOption(text, "--min-coverage", 0, 1);
}

/**
 * `text` of option `name` when it is one of `choices`, else a usage error with the closest
 * choice: `Invalid --session "regula" (did you mean "regular"?): expected regular or extended`.
 */
export function choiceOption<const T extends string>(
  text: string,
  name: string,
  choices: readonly T[],
  expected: string,
): T {
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(
      `Invalid ${name} "${text}"${didYouMean(text, choices)}: expected ${expected}`,
    );
  }
  return text as T;
}

/** A timeframe option checked against {@link TIMEFRAMES}. */
export function timeframeOption(text: string, name = "--timeframe"): Timeframe {
  return choiceOption(text, name, TIMEFRAMES, `one of ${TIMEFRAMES.join(" ")}`);
}

/** `--session regular|extended`. */
export function sessionOption(invocation: Invocation): "regular" | "extended" | undefined {
  const text = invocation.string("session");
  return text === undefined
    ? undefined
    : choiceOption(text, "--session", ["regular", "extended"], "regular or extended");
}

/** Rule settings from `--validation` (or the config file's `validation:` mapping). */
export function validationOption(invocation: Invocation): ValidationSettings {
  const text = invocation.string("validation");
  if (text === undefined) return {};
  const source = invocation.options.sources.validation === "config"
    ? "config key validation"
    : "--validation";
  return parseValidationSettings(text, source);
}

/** `--tz exchange|utc|local`: the zone printed times are shown in. Read with {@link tzOption}. */
export const TZ_OPTION: OptionSpec = {
  name: "tz",
  type: "string",
  placeholder: "ZONE",
  description: "Show times in exchange (New York), utc or local time",
  default: "exchange",
};

/** The checked `--tz` of an invocation (default `exchange`). */
export function tzOption(invocation: Invocation): TimeZoneSetting {
  const given = invocation.string("tz") ?? "exchange";
  const text = given.toLowerCase();
  if (!(TIME_ZONE_SETTINGS as readonly string[]).includes(text)) {
    throw new UsageError(
      `Invalid --tz "${given}"${didYouMean(text, TIME_ZONE_SETTINGS)}: expected one of ${
        TIME_ZONE_SETTINGS.join(", ")
      } (local is this machine's zone${
        given.includes("/") ? "; an IANA zone name is taken by export --tz only" : ""
      })`,
    );
  }
  return text as TimeZoneSetting;
}

/** The error for a job id prefix that several jobs share (listing them, like `validate --show`). */
export function ambiguousJobError(ref: string, ids: readonly string[]): UsageError | undefined {
  const matches = ids.filter((id) => id.startsWith(ref));
  if (matches.length < 2) return undefined;
  const shown = matches.slice(0, 10);
  return new UsageError(
    `Ambiguous job "${ref}": ${matches.length} job ids start with it (${shown.join(", ")}${
      matches.length > shown.length ? ", ..." : ""
    }); give more of the id`,
  );
}

/** The error for a job reference that finds no single job: ambiguous, or no such job. */
export function unknownJobError(ref: string, dataDir: string, ids: readonly string[]): UsageError {
  return ambiguousJobError(ref, ids) ??
    new UsageError(`No job "${ref}" in ${dataDir}; see marketpipe jobs list`);
}
