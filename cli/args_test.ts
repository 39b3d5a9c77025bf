import assert from "node:assert/strict";
import type { OptionSpec } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import {
  allConfigKeys,
  type CommandSpec,
  GLOBAL_OPTIONS,
  helpColumns,
  type Invocation,
  type Parsed,
  parseInvocation,
} from "./args.ts";
import { COMMANDS } from "./commands.ts";
import { dataDirOf, symbolsOption } from "./options.ts";

/** A readFile that must never be called. */
function noReadFile(path: string): Promise<string> {
  throw new Error(`readFile(${path}) was called`);
}

/** A readFile serving `files` and recording every path read. */
function fakeFiles(files: Record<string, string>) {
  const reads: string[] = [];
  const readFile = (path: string) => {
    reads.push(path);
    if (!(path in files)) return Promise.reject(new Deno.errors.NotFound(`open '${path}'`));
    return Promise.resolve(files[path]);
  };
  return { readFile, reads };
}

async function parse(
  argv: string[],
  env: Record<string, string | undefined> = {},
  readFile: (path: string) => Promise<string> = noReadFile,
): Promise<Parsed> {
  return await parseInvocation(COMMANDS, argv, env, readFile);
}

async function run(
  argv: string[],
  env: Record<string, string | undefined> = {},
  readFile: (path: string) => Promise<string> = noReadFile,
): Promise<Invocation> {
  const parsed = await parse(argv, env, readFile);
  assert.equal(parsed.kind, "run", `expected a command to run, got ${parsed.kind}`);
  return (parsed as Extract<Parsed, { kind: "run" }>).invocation;
}

async function help(argv: string[], env: Record<string, string | undefined> = {}): Promise<string> {
  const parsed = await parse(argv, env);
  assert.equal(parsed.kind, "help", `expected help, got ${parsed.kind}`);
  return unwrap((parsed as Extract<Parsed, { kind: "help" }>).text);
}

/** Help with each wrapped description joined back onto its entry's line. */
function unwrap(text: string): string {
  return text.replace(/\n {8,}/g, " ");
}

async function assertUsageError(
  promise: Promise<unknown>,
  message: string | RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

/** Every command and subcommand with its path. */
function allCommands(list: readonly CommandSpec[] = COMMANDS, path: string[] = []) {
  const out: { path: string[]; command: CommandSpec }[] = [];
  for (const command of list) {
    out.push({ path: [...path, command.name], command });
    out.push(...allCommands(command.subcommands ?? [], [...path, command.name]));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands

Deno.test("parseInvocation() rejects an unknown command naming the closest one", async () => {
  await assertUsageError(
    parse(["ingset", "--symbols", "AAPL"]),
    'Unknown command "ingset" for marketpipe (did you mean "ingest"?); see marketpipe --help',
  );
});

Deno.test("parseInvocation() rejects an unknown command without a suggestion when nothing is close", async () => {
  await assertUsageError(
    parse(["teleport"]),
    'Unknown command "teleport" for marketpipe; see marketpipe --help',
  );
});

Deno.test("parseInvocation() rejects an unknown subcommand naming the closest one", async () => {
  await assertUsageError(
    parse(["jobs", "lsit"]),
    'Unknown command "lsit" for "marketpipe jobs" (did you mean "list"?); see marketpipe jobs --help',
  );
});

Deno.test("parseInvocation() asks for a subcommand of a command group", async () => {
  await assertUsageError(
    parse(["jobs"]),
    'Missing subcommand for "marketpipe jobs": expected one of list, show, cleanup',
  );
});

Deno.test("parseInvocation() asks for a command when only flags are given", async () => {
  await assertUsageError(
    parse(["--verbose"]),
    "Missing command after --verbose; see marketpipe --help",
  );
});

Deno.test("parseInvocation() accepts global options before the command", async () => {
  const invocation = await run(["--data-dir", "/tmp/d", "--json", "jobs", "list"]);
  assert.deepEqual(invocation.path, ["jobs", "list"]);
  assert.equal(invocation.string("data-dir"), "/tmp/d");
  assert.equal(invocation.flag("json"), true);
});

Deno.test("parseInvocation() resolves a subcommand path and its positionals", async () => {
  const invocation = await run(["jobs", "show", "20241125-191500-ab12"]);
  assert.deepEqual(invocation.path, ["jobs", "show"]);
  assert.deepEqual(invocation.positionals, ["20241125-191500-ab12"]);
});

Deno.test("parseInvocation() passes a quoted SQL statement to query as one positional", async () => {
  const sql = "SELECT symbol, count(*) FROM bars_1m WHERE close > -1 GROUP BY symbol";
  const invocation = await run(["query", sql, "--format", "csv"]);
  assert.deepEqual(invocation.positionals, [sql]);
  assert.equal(invocation.string("format"), "csv");
});

Deno.test("parseInvocation() returns the command spec that will run", async () => {
  const parsed = await parse(["migrate", "--status"]);
  assert.equal(parsed.kind, "run");
  if (parsed.kind === "run") {
    assert.equal(parsed.command.name, "migrate");
    assert.equal(parsed.invocation.flag("status"), true);
  }
});

Deno.test("parseInvocation() answers version for --version, -V and version", async () => {
  for (const argv of [["--version"], ["-V"], ["version"]]) {
    assert.deepEqual(await parse(argv), { kind: "version" }, argv.join(" "));
  }
});

// ---------------------------------------------------------------------------------------------
// Flags

Deno.test("parseInvocation() rejects an unknown flag naming the closest one", async () => {
  await assertUsageError(
    parse(["ingest", "--symbol", "AAPL"]),
    'Unknown option "--symbol" for "marketpipe ingest" (did you mean "--symbols"?); see marketpipe ingest --help',
  );
});

Deno.test("parseInvocation() rejects an unknown flag written with = naming the closest one", async () => {
  await assertUsageError(
    parse(["ingest", "--worker=8"]),
    /^Unknown option "--worker" .*\(did you mean "--workers"\?\)/,
  );
});

Deno.test("parseInvocation() rejects a flag that belongs to another command", async () => {
  await assertUsageError(
    parse(["migrate", "--symbols", "AAPL"]),
    /^Unknown option "--symbols" for "marketpipe migrate"/,
  );
});

Deno.test("parseInvocation() rejects an unknown short flag", async () => {
  await assertUsageError(parse(["ingest", "-x"]), /^Unknown option "-x" for "marketpipe ingest"/);
});

Deno.test("parseInvocation() rejects --no- on a string option", async () => {
  await assertUsageError(parse(["ingest", "--no-symbols"]), /^Unknown option "--no-symbols"/);
});

Deno.test("parseInvocation() reports a missing option value naming the flag", async () => {
  await assertUsageError(
    parse(["ingest", "--start"]),
    "Missing value for --start; see marketpipe ingest --help",
  );
  await assertUsageError(
    parse(["ingest", "-s"]),
    "Missing value for --symbols; see marketpipe ingest --help",
  );
});

Deno.test("parseInvocation() reports a value missing before the next flag naming the flag", async () => {
  const hint = '(write --symbols=VALUE for a value starting with "-")';
  await assertUsageError(
    parse(["ingest", "--symbols", "--start", "2024-03-04"]),
    `Missing value for --symbols ${hint}; see marketpipe ingest --help`,
  );
  await assertUsageError(
    parse(["ingest", "-s", "-w", "2"]),
    `Missing value for --symbols ${hint}; see marketpipe ingest --help`,
  );
});

Deno.test("parseInvocation() accepts a value starting with a dash written with =", async () => {
  const invocation = await run(["ingest", "--fake-seed=-3"]);
  assert.equal(invocation.string("fake-seed"), "-3");
});

Deno.test("parseInvocation() reads long, short and --flag=value forms", async () => {
  const invocation = await run([
    "ingest",
    "-s",
    "AAPL,MSFT",
    "--start=2024-03-04",
    "-w",
    "8",
    "--force",
  ]);
  assert.equal(invocation.string("symbols"), "AAPL,MSFT");
  assert.equal(invocation.string("start"), "2024-03-04");
  assert.equal(invocation.string("workers"), "8");
  assert.equal(invocation.flag("force"), true);
  assert.equal(invocation.options.sources.workers, "flag");
});

Deno.test("parseInvocation() accepts --no-<flag> for boolean options", async () => {
  const invocation = await run(["ingest", "--no-force"], {}, noReadFile);
  assert.equal(invocation.flag("force"), false);
  assert.equal(invocation.options.sources.force, "flag");
});

Deno.test("parseInvocation() fills defaults for options not given", async () => {
  const invocation = await run(["ingest"]);
  assert.equal(invocation.string("provider"), "fake");
  assert.equal(invocation.string("timeframe"), "1m");
  assert.equal(invocation.string("workers"), "4");
  assert.equal(invocation.string("data-dir"), "./data");
  assert.equal(invocation.flag("force"), false);
  assert.equal(invocation.string("symbols"), undefined);
  assert.equal(invocation.options.sources.provider, "default");
});

Deno.test("parseInvocation() accepts global options after the command", async () => {
  const invocation = await run(["providers", "--json", "-v", "--data-dir", "/srv/mp"]);
  assert.equal(invocation.flag("json"), true);
  assert.equal(invocation.flag("verbose"), true);
  assert.equal(invocation.string("data-dir"), "/srv/mp");
});

Deno.test("parseInvocation() passes --output to ingest as its data directory", async () => {
  const invocation = await run(["ingest", "--symbols", "AAPL", "--output", "/tmp/bars"]);
  assert.equal(invocation.string("output"), "/tmp/bars");
  assert.equal(dataDirOf(invocation), "/tmp/bars");
});

Deno.test("dataDirOf() refuses ingest's --output and a different --data-dir together", async () => {
  const invocation = await run(["ingest", "--output", "/tmp/out", "--data-dir", "/tmp/data"]);
  assert.throws(
    () => dataDirOf(invocation),
    /Conflicting --output "\/tmp\/out" and --data-dir "\/tmp\/data"/,
  );
  assert.equal(
    dataDirOf(await run(["ingest", "--output", "/tmp/same", "--data-dir", "/tmp/same"])),
    "/tmp/same",
  );
});

Deno.test("Invocation throws when a handler asks for an option its command does not declare", async () => {
  const invocation = await run(["jobs", "list", "--status", "partial"]);
  assert.equal(invocation.string("status"), "partial");
  assert.throws(
    () => invocation.string("symbols"),
    (error: unknown) => {
      assert.ok(!(error instanceof UsageError), "a programming error, not bad input");
      assert.equal(
        (error as Error).message,
        'Option "--symbols" is not declared for "marketpipe jobs list"',
      );
      return true;
    },
  );
  assert.throws(() => invocation.flag("force"), /Option "--force" is not declared/);
  // Global options are declared for every command.
  assert.equal(invocation.flag("json"), false);
});

Deno.test("dataDirOf() reads --output as the data directory only for ingest", async () => {
  const invocation = await run(["query", "SELECT 1", "--output", "out.csv", "--data-dir", "/d"]);
  assert.equal(dataDirOf(invocation), "/d");
  assert.equal(dataDirOf(await run(["gaps", "--start", "2024-03-04"])), "./data");
});

Deno.test("parseInvocation() takes the data directory from the environment", async () => {
  const invocation = await run(["providers"], { MARKETPIPE_DATA_DIR: "/env/data" });
  assert.equal(invocation.string("data-dir"), "/env/data");
  assert.equal(invocation.options.sources["data-dir"], "env");
});

// ---------------------------------------------------------------------------------------------
// Help

Deno.test("parseInvocation() returns root help for no arguments, --help, -h and help", async () => {
  for (const argv of [[], ["--help"], ["-h"], ["help"]]) {
    const text = await help(argv);
    assert.match(text, /^Usage: marketpipe <command> \[options\]$/m, argv.join(" "));
    for (const command of COMMANDS) {
      assert.match(text, new RegExp(`^  ${command.name} +${escape(command.summary)}$`, "m"));
    }
  }
});

Deno.test("parseInvocation() with --help returns help and never reads the config file", async () => {
  const text = await help(["ingest", "--config", "mp.yaml", "--help"], {
    MARKETPIPE_CONFIG: "env.yaml",
  });
  assert.match(text, /^Usage: marketpipe ingest \[options\]$/m);
  assert.match(text, /--symbols LIST/);
});

Deno.test("help keeps its columns apart and within 80 columns at every command", async () => {
  for (const { path, command } of allCommands()) {
    const parsed = await parse([...path, "--help"]);
    const text = (parsed as Extract<Parsed, { kind: "help" }>).text;
    const lines = text.split("\n");
    const end = lines.indexOf("Examples:") >= 0 ? lines.indexOf("Examples:") : lines.length;
    for (const option of [...(command.options ?? []), ...GLOBAL_OPTIONS]) {
      const flag = `${option.short ? `-${option.short}, ` : "    "}--${option.name}${
        option.type === "string" ? ` ${option.placeholder ?? "VALUE"}` : ""
      }`;
      const line = lines.find((l) => l === `  ${flag}` || l.startsWith(`  ${flag} `))!;
      // The flag alone on its line (the text below it), or two spaces at least before the text.
      assert.ok(
        line === `  ${flag}` || line.startsWith(`  ${flag}  `),
        `${path.join(" ")}: ${line}`,
      );
    }
    for (const line of lines.slice(0, end)) {
      // Only a single unbreakable word (an example value) may pass the width.
      if (line.length > 80 && !/^[A-Z]/.test(line)) {
        assert.match(line, /^ +\S+$/, `${path.join(" ")}: too wide: ${line}`);
      }
    }
  }
});

Deno.test("helpColumns() moves the text of a long name to the next line and wraps it", () => {
  assert.deepEqual(
    helpColumns([["--a-very-long-option-name VALUE", "Short text"], ["-x", "y ".repeat(40)]], 28),
    [
      "  --a-very-long-option-name VALUE",
      `${" ".repeat(30)}Short text`,
      `  -x${" ".repeat(26)}${"y ".repeat(25).trimEnd()}`,
      `${" ".repeat(30)}${"y ".repeat(15).trimEnd()}`,
    ],
  );
});

Deno.test("parseInvocation() returns help even next to an unknown flag", async () => {
  assert.match(await help(["ingest", "--bogus", "-h"]), /^Usage: marketpipe ingest/m);
});

Deno.test("parseInvocation() returns a command's help for `help <command>`", async () => {
  assert.equal(await help(["help", "jobs", "cleanup"]), await help(["jobs", "cleanup", "--help"]));
  assert.match(await help(["help", "query"]), /^Usage: marketpipe query SQL \[options\]$/m);
});

Deno.test("parseInvocation() help of a command group lists its subcommands", async () => {
  const text = await help(["jobs", "--help"]);
  assert.match(text, /^Usage: marketpipe jobs <subcommand> \[options\]$/m);
  for (const sub of COMMANDS.find((c) => c.name === "jobs")!.subcommands!) {
    assert.match(text, new RegExp(`^  ${sub.name} +${escape(sub.summary)}$`, "m"));
  }
});

Deno.test("parseInvocation() help of every command lists all its options from the table", async () => {
  for (const { path, command } of allCommands()) {
    const text = await help([...path, "--help"]);
    const where = path.join(" ");
    assert.ok(text.startsWith(command.summary), `${where}: summary`);
    const options: OptionSpec[] = [...(command.options ?? []), ...GLOBAL_OPTIONS];
    for (const option of options) {
      const flag = `${option.short ? `-${option.short}, ` : ""}--${option.name}${
        option.type === "string" ? ` ${option.placeholder ?? "VALUE"}` : ""
      }`;
      // An entry line is indented (description prose may begin with a flag too).
      const line = text.split("\n").findIndex((l) =>
        l.startsWith("  ") && (l.trimStart() === flag || l.trimStart().startsWith(`${flag} `))
      );
      assert.ok(line >= 0, `${where}: no help line for ${flag}\n${text}`);
      const described = text.split("\n")[line];
      assert.ok(described.includes(option.description), `${where}: ${flag} lacks its description`);
      if (option.default !== undefined && option.default !== false) {
        assert.ok(
          described.includes(`default: ${option.default}`),
          `${where}: ${flag} lacks its default`,
        );
      }
      if (option.env) {
        assert.ok(
          described.includes(`env: ${option.env}`),
          `${where}: ${flag} lacks ${option.env}`,
        );
      }
    }
    for (const example of command.examples ?? []) {
      assert.ok(text.includes(`  ${example}`), `${where}: missing example ${example}`);
    }
  }
});

Deno.test("parseInvocation() accepts every option its help lists", async () => {
  for (const { path, command } of allCommands()) {
    if (!command.run) continue;
    for (const option of command.options ?? []) {
      const argv = [...path, `--${option.name}`, ...(option.type === "string" ? ["x"] : [])];
      const invocation = await run(argv);
      const expected = option.type === "string" ? "x" : true;
      assert.equal(invocation.options.values[option.name], expected, argv.join(" "));
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Config file

Deno.test("parseInvocation() applies config file keys below flags and env", async () => {
  const { readFile, reads } = fakeFiles({
    "mp.yaml": [
      "symbols: [AAPL, MSFT]",
      "workers: 8",
      "timeframe: 5m",
      "data_dir: /cfg/data",
      "force: true",
    ].join("\n"),
  });
  const invocation = await run(
    ["ingest", "--config", "mp.yaml", "--workers", "2"],
    { MARKETPIPE_DATA_DIR: "/env/data" },
    readFile,
  );
  assert.deepEqual(reads, ["mp.yaml"]);
  assert.equal(invocation.string("workers"), "2");
  assert.equal(invocation.options.sources.workers, "flag");
  assert.equal(invocation.string("data-dir"), "/env/data");
  assert.equal(invocation.options.sources["data-dir"], "env");
  assert.equal(invocation.string("symbols"), "AAPL,MSFT");
  assert.equal(invocation.string("timeframe"), "5m");
  assert.equal(invocation.options.sources.timeframe, "config");
  assert.equal(invocation.flag("force"), true);
  assert.equal(invocation.string("provider"), "fake");
  assert.equal(invocation.options.sources.provider, "default");
});

Deno.test("parseInvocation() reads the config file named by MARKETPIPE_CONFIG", async () => {
  const { readFile, reads } = fakeFiles({ "/etc/mp.yaml": "provider: alpaca\n" });
  const invocation = await run(["ingest"], { MARKETPIPE_CONFIG: "/etc/mp.yaml" }, readFile);
  assert.deepEqual(reads, ["/etc/mp.yaml"]);
  assert.equal(invocation.string("provider"), "alpaca");
});

Deno.test("parseInvocation() prefers --config over MARKETPIPE_CONFIG", async () => {
  const { readFile, reads } = fakeFiles({
    "flag.yaml": "provider: polygon\n",
    "env.yaml": "provider: alpaca\n",
  });
  const invocation = await run(["ingest", "--config", "flag.yaml"], {
    MARKETPIPE_CONFIG: "env.yaml",
  }, readFile);
  assert.deepEqual(reads, ["flag.yaml"]);
  assert.equal(invocation.string("provider"), "polygon");
});

Deno.test("parseInvocation() lets --no-force override force: true from the config file", async () => {
  const { readFile } = fakeFiles({ "mp.yaml": "force: true\n" });
  const invocation = await run(["ingest", "--config", "mp.yaml", "--no-force"], {}, readFile);
  assert.equal(invocation.flag("force"), false);
});

Deno.test("parseInvocation() accepts keys of other commands in a shared config file", async () => {
  const { readFile } = fakeFiles({ "mp.yaml": "format: csv\nsymbols: AAPL\n" });
  const invocation = await run(["ingest", "--config", "mp.yaml"], {}, readFile);
  assert.equal(invocation.string("symbols"), "AAPL");
  assert.equal(invocation.options.values.format, undefined);
});

Deno.test("parseInvocation() reads no file when no config is named", async () => {
  const invocation = await run(["providers"], {}, noReadFile);
  assert.deepEqual(invocation.path, ["providers"]);
});

Deno.test("parseInvocation() reports a missing config file as a UsageError", async () => {
  const { readFile } = fakeFiles({});
  await assertUsageError(
    parse(["ingest", "--config", "missing.yaml"], {}, readFile),
    "Cannot read config file missing.yaml: no such file",
  );
});

Deno.test("parseInvocation() reports an unreadable config file with the reason", async () => {
  const cases: [Error, string][] = [
    [new Deno.errors.PermissionDenied("EACCES"), "permission denied"],
    [new Deno.errors.IsADirectory("EISDIR"), "it is a directory"],
    [new Error("disk on fire"), "disk on fire"],
  ];
  for (const [error, reason] of cases) {
    await assertUsageError(
      parse(["ingest", "--config", "mp.yaml"], {}, () => Promise.reject(error)),
      `Cannot read config file mp.yaml: ${reason}`,
    );
  }
});

Deno.test("parseInvocation() rejects an unknown config key naming the closest one", async () => {
  const { readFile } = fakeFiles({ "mp.yaml": "symbol: AAPL\n" });
  await assertUsageError(
    parse(["ingest", "--config", "mp.yaml"], {}, readFile),
    'Unknown key "symbol" in config file mp.yaml (did you mean "symbols"?)',
  );
});

Deno.test("parseInvocation() rejects per-run flags as config keys", async () => {
  for (const key of ["resume", "help", "config", "dry-run"]) {
    const { readFile } = fakeFiles({ "mp.yaml": `${key}: x\n` });
    await assertUsageError(
      parse(["ingest", "--config", "mp.yaml"], {}, readFile),
      new RegExp(`^Unknown key "${key}"`),
    );
  }
});

Deno.test("parseInvocation() names the config file when a value has the wrong type", async () => {
  const { readFile } = fakeFiles({ "mp.yaml": "force: sometimes\n" });
  await assertUsageError(
    parse(["ingest", "--config", "mp.yaml"], {}, readFile),
    'Invalid value for "force" in config file mp.yaml: expected true or false, got "sometimes"',
  );
});

Deno.test("parseInvocation() reports a config YAML error as a one-line UsageError", async () => {
  const { readFile } = fakeFiles({ "mp.yaml": "symbols: [AAPL\n" });
  await assertUsageError(
    parse(["ingest", "--config", "mp.yaml"], {}, readFile),
    /^Cannot parse config file mp\.yaml: [^\n]+$/,
  );
});

Deno.test("allConfigKeys() holds every configurable long flag and no per-run flag", () => {
  const keys = allConfigKeys(COMMANDS);
  for (
    const key of [
      "data-dir",
      "verbose",
      "json",
      "symbols",
      "workers",
      "format",
      "limit",
      "older-than",
    ]
  ) {
    assert.ok(keys.has(key), key);
  }
  for (const key of ["help", "config", "resume", "output", "dry-run", "status"]) {
    // `status` is configurable on `jobs list` only, so it stays a key.
    if (key === "status") assert.ok(keys.has(key));
    else assert.ok(!keys.has(key), key);
  }
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ---------------------------------------------------------------------------------------------
// Repeatable options and the symbol selection

Deno.test("parseInvocation() keeps every value of a repeatable option in order", async () => {
  const invocation = await run([
    "symbols",
    "update",
    "--source",
    "nasdaq",
    "--file",
    "a.txt",
    "--file=b.txt",
  ]);
  assert.deepEqual(invocation.strings("file"), ["a.txt", "b.txt"]);
  assert.equal(invocation.string("file"), "b.txt");
  assert.deepEqual(invocation.strings("url"), []);
  assert.match(await help(["symbols", "update", "--help"]), /--file FILE .*\(repeatable\)/);
});

Deno.test("symbolsOption() takes one of --symbols, --symbols-file and --universe", async () => {
  const today = { today: "2024-03-04" };
  await assertUsageError(
    symbolsOption(await run(["ingest", "--symbols", "AAPL", "--universe", "tech"]), today),
    "Use one of --symbols, --universe, not both",
  );
  await assertUsageError(
    symbolsOption(
      await run(["gaps", "--symbols", "AAPL", "--symbols-file", "f", "--universe", "tech"]),
      today,
    ),
    "Use one of --symbols, --symbols-file, --universe, not several",
  );
  await assertUsageError(
    symbolsOption(await run(["gaps", "--symbols", "AAPL", "--as-of", "2024-03-01"]), today),
    /^Invalid --as-of 2024-03-01: it picks the members of a --universe/,
  );
  assert.equal(await symbolsOption(await run(["gaps"]), today), undefined);
});

Deno.test("symbolsOption() lets a flag win over the config file's symbols", async () => {
  const { readFile } = fakeFiles({ "mp.yaml": "symbols: [AAPL, MSFT]\n" });
  const invocation = await run(
    ["gaps", "--config", "mp.yaml", "--universe", "nosuch", "--data-dir", "/nonexistent/mp"],
    {},
    readFile,
  );
  await assertUsageError(
    symbolsOption(invocation, { today: "2024-03-04" }),
    /^Unknown universe "nosuch": \/nonexistent\/mp has no universes yet/,
  );
  const configured = await run(["gaps", "--config", "mp.yaml"], {}, readFile);
  assert.deepEqual(await symbolsOption(configured, { today: "2024-03-04" }), ["AAPL", "MSFT"]);
});

Deno.test("every command that selects symbols takes --universe with its --as-of", () => {
  for (const name of ["ingest", "update", "backfill", "validate", "gaps", "aggregate", "export"]) {
    const options = COMMANDS.find((c) => c.name === name)!.options!.map((o) => o.name);
    for (const option of ["symbols", "symbols-file", "universe", "as-of"]) {
      assert.ok(options.includes(option), `${name} lacks --${option}`);
    }
  }
});
