import { parseArgs } from "node:util";
import {
  type OptionSpec,
  parseConfigFile,
  type ResolvedOptions,
  resolveOptions,
} from "../core/config.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import type { CommandContext } from "./context.ts";

/** A command (or subcommand) of the `marketpipe` CLI: its flags, help and handler. */
export interface CommandSpec {
  name: string;
  summary: string;
  /** Positional arguments, shown in usage, e.g. `"SQL"` or `"[JOB_ID]"`. */
  args?: string;
  description?: string;
  options?: OptionSpec[];
  examples?: string[];
  subcommands?: CommandSpec[];
  /** A long-running server: a signal is its normal way to stop (exit 0, not 130). */
  server?: boolean;
  /** Lazily imported handler; returns the exit code. */
  run?: () => Promise<CommandHandler>;
  /**
   * Lazily imported check of the options alone (no file read, nothing opened): throws the
   * UsageError the handler would throw first. `serve` runs it for each schedule at start.
   */
  check?: () => Promise<OptionsCheck>;
}

/** See {@link CommandSpec.check}. */
export type OptionsCheck = (
  invocation: Invocation,
  env: Record<string, string | undefined>,
) => void;

/** A parsed invocation passed to a handler. */
export interface Invocation {
  /** Command path, e.g. `["jobs", "list"]`. */
  path: string[];
  positionals: string[];
  options: ResolvedOptions;
  /** Option value as a string (undefined if unset); throws for an option the command lacks. */
  string(name: string): string | undefined;
  /** Option value as a boolean; throws for an option the command lacks. */
  flag(name: string): boolean;
  /** Every value of a repeatable option, in order (empty if unset); throws like `string`. */
  strings(name: string): string[];
}

/** A command implementation. */
export type CommandHandler = (invocation: Invocation, context: CommandContext) => Promise<number>;

/** Options every command accepts. */
export const GLOBAL_OPTIONS: OptionSpec[] = [
  {
    name: "data-dir",
    type: "string",
    placeholder: "DIR",
    description: "Data directory (Parquet bars, metadata, reports)",
    env: "MARKETPIPE_DATA_DIR",
    default: "./data",
  },
  {
    name: "config",
    type: "string",
    placeholder: "FILE",
    description: "YAML file whose keys mirror the long flags",
    env: "MARKETPIPE_CONFIG",
    configurable: false,
  },
  {
    name: "verbose",
    short: "v",
    type: "boolean",
    description: "Show details and error causes",
    default: false,
  },
  { name: "json", type: "boolean", description: "Print machine-readable JSON", default: false },
  { name: "help", short: "h", type: "boolean", description: "Show help", configurable: false },
];

/** Result of {@link parseInvocation}: a command to run, or help/version to print. */
export type Parsed =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "run"; command: CommandSpec; invocation: Invocation };

/**
 * Parse `marketpipe <command> [subcommand] [options]`. Throws {@link UsageError} for unknown
 * commands and flags (with the closest valid name) and for missing values. Reads the config
 * file only when the command will run (never for `--help` or `--version`).
 */
export async function parseInvocation(
  commands: readonly CommandSpec[],
  argv: readonly string[],
  env: Record<string, string | undefined>,
  readFile: (path: string) => Promise<string>,
): Promise<Parsed> {
  const args = [...argv];
  // Global options may come before the command (`marketpipe --data-dir d ingest ...`): move them
  // after it, where they are parsed with the command's own options.
  const leading: string[] = [];
  while (args.length > 0 && args[0].startsWith("-")) {
    const [flag, inline] = args[0].split("=", 2);
    const spec = GLOBAL_OPTIONS.find((o) =>
      flag === `--${o.name}` || (o.short !== undefined && flag === `-${o.short}`)
    );
    if (!spec || spec.name === "help") break;
    leading.push(args.shift()!);
    if (spec.type === "string" && inline === undefined && args.length > 0) {
      leading.push(args.shift()!);
    }
  }
  if (leading.length > 0 && args.length > 0 && !args[0].startsWith("-")) {
    return await parseInvocation(commands, [...args, ...leading], env, readFile);
  }
  if (leading.length > 0 && (args.length === 0 || args[0] === "--version" || args[0] === "-V")) {
    throw new UsageError(`Missing command after ${leading.join(" ")}; see marketpipe --help`);
  }
  if (args.length === 0 || args[0] === "--help" || args[0] === "-h" || args[0] === "help") {
    const topic = args[0] === "help" ? args.slice(1) : [];
    if (topic.length > 0) return parseInvocation(commands, [...topic, "--help"], env, readFile);
    return { kind: "help", text: renderRootHelp(commands) };
  }
  if (args[0] === "--version" || args[0] === "-V" || args[0] === "version") {
    return { kind: "version" };
  }
  const path: string[] = [];
  let list = commands;
  let command: CommandSpec | undefined;
  while (args.length > 0 && !args[0].startsWith("-")) {
    const name = args[0];
    const found = list.find((c) => c.name === name);
    if (!found) {
      if (command?.run) break; // a positional argument of a runnable command
      const where = command ? `"marketpipe ${path.join(" ")}"` : "marketpipe";
      throw new UsageError(
        `Unknown command "${name}" for ${where}${didYouMean(name, list.map((c) => c.name))}; see ${
          command ? `marketpipe ${path.join(" ")} --help` : "marketpipe --help"
        }`,
      );
    }
    command = found;
    path.push(name);
    args.shift();
    list = found.subcommands ?? [];
    if (!found.subcommands) break;
  }
  if (!command) {
    // Only flags: global --help/--version were handled above.
    throw new UsageError(`Missing command; see marketpipe --help`);
  }
  const specs = [...(command.options ?? []), ...GLOBAL_OPTIONS];
  if (args.includes("--help") || args.includes("-h")) {
    return { kind: "help", text: renderCommandHelp(command, path) };
  }
  if (!command.run) {
    const names = (command.subcommands ?? []).map((c) => c.name).join(", ");
    throw new UsageError(
      `Missing subcommand for "marketpipe ${path.join(" ")}": expected one of ${names}`,
    );
  }
  const parseOptions: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  const aliasOf = new Map<string, string>();
  for (const spec of specs) {
    parseOptions[spec.name] = {
      type: spec.type,
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
    };
    for (const alias of spec.aliases ?? []) {
      parseOptions[alias] = { type: spec.type };
      aliasOf.set(alias, spec.name);
    }
  }
  const known = Object.keys(parseOptions);
  for (const arg of args) {
    if (arg === "--") break;
    if (!arg.startsWith("--")) continue;
    const name = arg.slice(2).split("=")[0];
    const base = name.startsWith("no-") ? name.slice(3) : name;
    if (!known.includes(name) && !(known.includes(base) && parseOptions[base].type === "boolean")) {
      throw new UsageError(
        `Unknown option "--${name}" for "marketpipe ${path.join(" ")}"${
          didYouMean(name, known).replace('"', '"--')
        }; see marketpipe ${path.join(" ")} --help`,
      );
    }
  }
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: parseOptions,
      allowPositionals: true,
      allowNegative: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(_parseArgsMessage(error, path), { cause: error });
  }
  const flags: Record<string, string | boolean | undefined> = {};
  // A repeatable flag resolves like any other (its last value); `strings()` returns them all.
  const repeated: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(parsed.values)) {
    const name = aliasOf.get(key) ?? key;
    if (Array.isArray(value)) {
      const values = value.filter((v): v is string => typeof v === "string");
      if (values.length === 0) continue;
      repeated[name] = values;
      flags[name] = values.at(-1);
      continue;
    }
    flags[name] = value;
  }
  const configPath = (flags.config as string | undefined) ?? env.MARKETPIPE_CONFIG;
  let config: Record<string, string | boolean> = {};
  if (configPath) {
    let text: string;
    try {
      text = await readFile(configPath);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      const reason = error instanceof Deno.errors.NotFound
        ? "no such file"
        : error instanceof Deno.errors.PermissionDenied
        ? "permission denied"
        : error instanceof Deno.errors.IsADirectory
        ? "it is a directory"
        : (error as Error).message;
      throw new UsageError(`Cannot read config file ${configPath}: ${reason}`, { cause: error });
    }
    config = parseConfigFile(text, configPath, allConfigKeys(commands));
  }
  const options = resolveOptions(specs, flags, env, config, `config file ${configPath}`);
  // Asking for an option the command does not declare is a bug in its handler, not bad input.
  const valueOf = (name: string) => {
    if (!Object.hasOwn(options.values, name)) {
      throw new Error(`Option "--${name}" is not declared for "marketpipe ${path.join(" ")}"`);
    }
    return options.values[name];
  };
  const invocation: Invocation = {
    path,
    positionals: parsed.positionals,
    options,
    string(name) {
      const value = valueOf(name);
      return typeof value === "string" ? value : undefined;
    },
    flag(name) {
      return valueOf(name) === true;
    },
    strings(name) {
      const value = valueOf(name);
      if (options.sources[name] === "flag" && repeated[name]) return [...repeated[name]];
      return typeof value === "string" ? [value] : [];
    },
  };
  return { kind: "run", command, invocation };
}

/** Every key a config file may use: configurable long flags of all commands. */
export function allConfigKeys(commands: readonly CommandSpec[]): Set<string> {
  const keys = new Set<string>();
  const visit = (list: readonly CommandSpec[]) => {
    for (const command of list) {
      for (const option of command.options ?? []) {
        if (option.configurable !== false) keys.add(option.name);
      }
      visit(command.subcommands ?? []);
    }
  };
  visit(commands);
  for (const option of GLOBAL_OPTIONS) if (option.configurable !== false) keys.add(option.name);
  return keys;
}

function _parseArgsMessage(error: unknown, path: string[]): string {
  const message = (error as Error).message;
  const missing = /Option '(?:-\w, )?--([\w-]+) <value>' argument missing/.exec(message);
  if (missing) return `Missing value for --${missing[1]}; see marketpipe ${path.join(" ")} --help`;
  // `--symbols --start X`: the next argument looks like a flag, so the value is missing.
  const ambiguous = /argument is ambiguous[\s\S]*use '--([\w-]+)=-XYZ'/.exec(message);
  if (ambiguous) {
    const flag = `--${ambiguous[1]}`;
    return `Missing value for ${flag} (write ${flag}=VALUE for a value starting with "-"); see marketpipe ${
      path.join(" ")
    } --help`;
  }
  const unexpected = /Unexpected argument '([^']*)'/.exec(message);
  if (unexpected) {
    return `Unexpected argument "${unexpected[1]}" for "marketpipe ${path.join(" ")}"`;
  }
  const unknown = /Unknown option '([^']*)'/.exec(message);
  if (unknown) {
    return `Unknown option "${unknown[1]}" for "marketpipe ${path.join(" ")}"; see marketpipe ${
      path.join(" ")
    } --help`;
  }
  return message.split("\n")[0];
}

/** Width help text is wrapped to. */
export const HELP_WIDTH = 80;

/**
 * Two help columns: each name padded to `nameWidth`, its text word-wrapped to {@link HELP_WIDTH}
 * with continuation lines under the text. A name too long for its column (less than two spaces
 * before the text) puts the text on the next line.
 */
export function helpColumns(
  rows: readonly (readonly [name: string, text: string])[],
  nameWidth: number,
): string[] {
  const indent = "  ";
  const pad = " ".repeat(indent.length + nameWidth);
  const textWidth = Math.max(20, HELP_WIDTH - pad.length);
  const lines: string[] = [];
  for (const [name, text] of rows) {
    const [first, ...rest] = _wrap(text, textWidth);
    if (name.length > nameWidth - 2) lines.push(`${indent}${name}`, `${pad}${first}`);
    else lines.push(`${indent}${name.padEnd(nameWidth)}${first}`);
    for (const line of rest) lines.push(`${pad}${line}`);
  }
  return lines;
}

/** Words of `text` in lines of at most `width` characters (a longer word gets a line alone). */
function _wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  lines.push(line);
  return lines;
}

/** Help for `marketpipe --help`. */
export function renderRootHelp(commands: readonly CommandSpec[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    "MarketPipe: ingest, store and query OHLCV market data",
    "",
    "Usage: marketpipe <command> [options]",
    "",
    "Commands:",
    ...helpColumns(commands.map((c) => [c.name, c.summary]), width),
    "",
    "Global options:",
    ..._optionLines(GLOBAL_OPTIONS),
    ...helpColumns([["-V, --version", "Print the version"]], _OPTION_WIDTH),
    "",
    "Run `marketpipe <command> --help` for a command's options and examples.",
  ].join("\n");
}

/** Help for one command, generated from its table entry. */
export function renderCommandHelp(command: CommandSpec, path: string[]): string {
  const usage = command.subcommands
    ? `marketpipe ${path.join(" ")} <subcommand> [options]`
    : `marketpipe ${path.join(" ")}${command.args ? " " + command.args : ""} [options]`;
  const lines = [command.summary, "", `Usage: ${usage}`];
  // Descriptions are prose: reflowed to the help width, a blank line between paragraphs.
  if (command.description) {
    for (const paragraph of command.description.split(/\n\s*\n/)) {
      lines.push("", ..._wrap(paragraph, HELP_WIDTH));
    }
  }
  if (command.subcommands) {
    const width = Math.max(...command.subcommands.map((c) => c.name.length)) + 2;
    lines.push(
      "",
      "Subcommands:",
      ...helpColumns(command.subcommands.map((c) => [c.name, c.summary]), width),
    );
  }
  if (command.options?.length) lines.push("", "Options:", ..._optionLines(command.options));
  lines.push("", "Global options:", ..._optionLines(GLOBAL_OPTIONS));
  if (command.examples?.length) {
    lines.push(
      "",
      "Examples:",
      ...command.examples.map((e) => `  ${e}`),
    );
  }
  return lines.join("\n");
}

/** Width of the option column of help, two spaces before the description included. */
const _OPTION_WIDTH = 28;

function _optionLines(options: readonly OptionSpec[]): string[] {
  return helpColumns(
    options.map((o) => {
      const flag = `${o.short ? `-${o.short}, ` : "    "}--${o.name}${
        o.type === "string" ? ` ${o.placeholder ?? "VALUE"}` : ""
      }`;
      const extras: string[] = [];
      if (o.default !== undefined && o.default !== false) extras.push(`default: ${o.default}`);
      if (o.env) extras.push(`env: ${o.env}`);
      if (o.aliases?.length) extras.push(`alias: ${o.aliases.map((a) => `--${a}`).join(", ")}`);
      if (o.multiple) extras.push("repeatable");
      const suffix = extras.length ? ` (${extras.join("; ")})` : "";
      return [flag, `${o.description}${suffix}`] as const;
    }),
    _OPTION_WIDTH,
  );
}
