/**
 * Property-based fuzzing (fast-check, fixed seed) of the CLI flags, the REST query parameters and
 * the JSON bodies of `POST /api/jobs` and `POST /api/query`. Every generated input holds at least
 * one bad part; the properties: a usage error (exit 2) or a 4xx (never a 500), a one-line
 * message, and nothing written to the data directory (its files, their hashes and the job tables).
 *
 * Runs are reproducible: `FUZZ_SEED` overrides the seed and `FUZZ_RUNS` scales the run counts; a
 * failure prints the seed and the shrunk counterexample.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import fc from "fast-check";
import { COMMANDS } from "../cli/commands.ts";
import type { CommandSpec } from "../cli/args.ts";
import type { OptionSpec } from "../core/config.ts";
import { GLOBAL_OPTIONS } from "../cli/args.ts";
import { shellCommand } from "../core/format.ts";
import { main } from "../main.ts";
import { metaQuery } from "./_cli.ts";
import { filledDataDir, testServer } from "./web_fixture.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20_241_125);
const SCALE = Number(Deno.env.get("FUZZ_RUNS") ?? 1);
/** Runs per property (times FUZZ_RUNS). */
const RUNS = {
  cli: Math.round(1_000 * SCALE),
  params: Math.round(1_000 * SCALE),
  jobs: Math.round(1_000 * SCALE),
  query: Math.round(1_500 * SCALE),
  shell: Math.round(200 * SCALE),
};

const PROTOTYPE_NAMES = [
  "constructor",
  "__proto__",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "toLocaleString",
  "__defineGetter__",
];

/** Odd text: control characters, quotes, unicode, long runs, SQL and path fragments. */
const oddText = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.constantFrom(
    "",
    " ",
    "\n",
    "\t",
    "\0",
    "'",
    '"',
    "../../etc/passwd",
    "/etc/passwd",
    "%00",
    "1e309",
    "-1",
    "0",
    "NaN",
    "Infinity",
    "9".repeat(40),
    "x".repeat(300),
    "AAPL' OR '1'='1",
    "<script>",
    "${HOME}",
    "2024-02-30",
    "2024-13-01",
    "20240304",
    ...PROTOTYPE_NAMES,
  ),
);

/**
 * A listing of a directory with a hash of every file, for "nothing was written"; `skip` names
 * files listed without their hash.
 */
async function snapshot(dir: string, skip: (name: string) => boolean = () => false) {
  const out: string[] = [];
  const walk = async (path: string, prefix: string) => {
    const entries = await Array.fromAsync(Deno.readDir(path));
    entries.sort((a, b) => a.name < b.name ? -1 : 1);
    for (const entry of entries) {
      const rel = prefix + entry.name;
      if (entry.isDirectory) {
        out.push(`${rel}/`);
        await walk(join(path, entry.name), `${rel}/`);
      } else if (skip(entry.name)) {
        out.push(rel);
      } else {
        const bytes = await Deno.readFile(join(path, entry.name));
        // A read-only SQLite reader of a WAL database leaves an empty -wal and its -shm index
        // behind (SQLite's own files, deleting them is unsafe): they are not data written.
        if (/\.db-shm$/.test(entry.name) || (/\.db-wal$/.test(entry.name) && bytes.length === 0)) {
          continue;
        }
        out.push(`${rel} ${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}`);
      }
    }
  };
  await walk(dir, "");
  return out;
}

/** Row counts of the tables that hold data (not the metric history the server keeps writing). */
function dataRows(dir: string): Record<string, unknown> {
  return metaQuery(
    dir,
    `SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM tasks) AS tasks,
       (SELECT count(*) FROM ingested_days) AS days,
       (SELECT count(*) FROM validation_reports) AS reports,
       (SELECT count(*) FROM partition_locks) AS locks`,
  )[0];
}

/** What the runs of a property ended with (a status and code, or an error's first words). */
const outcomes = new Map<string, number>();

function tally(outcome: string): void {
  outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
}

/** Prints the run count, seed, time and the most common outcomes, then forgets them. */
function report(name: string, runs: number, started: number): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const top = [...outcomes].sort((a, b) => b[1] - a[1]).slice(0, 8)
    .map(([outcome, n]) => `${n} ${outcome}`).join("; ");
  console.log(
    `${name}: ${runs} runs, seed ${SEED}, ${seconds} s; ${outcomes.size} outcomes: ${top}`,
  );
  outcomes.clear();
}

// --- CLI -------------------------------------------------------------------------------------

/** Every runnable command path with its flags, except those that serve or change data by design. */
function commandPaths(): { path: string[]; spec: CommandSpec }[] {
  const out: { path: string[]; spec: CommandSpec }[] = [];
  const visit = (list: readonly CommandSpec[], prefix: string[]) => {
    for (const spec of list) {
      const path = [...prefix, spec.name];
      if (spec.subcommands) visit(spec.subcommands, path);
      if (spec.run && !spec.server && !["repair", "migrate"].includes(spec.name)) {
        out.push({ path, spec });
      }
    }
  };
  visit(COMMANDS, []);
  return out;
}

/**
 * Odd text for command lines, without newlines: the CLI echoes a value as given ("Unexpected
 * argument "a<newline>b""), so a newline in an argument splits its error message (known, open).
 */
const oddArg = oddText.map((text) => text.replaceAll("\n", " "));

/** Flag values that are valid somewhere, so a run gets past the parser into the command. */
const plausibleValue = fc.constantFrom(
  "AAPL",
  "AAPL,MSFT",
  "2024-03-04",
  "2024-03-08",
  "1m",
  "1d",
  "4",
  "1",
  "100",
  "fake",
  "json",
  "csv",
  "table",
  "error",
  "regular",
  "extreme_move.threshold=0.3",
  "24h",
  "out.csv",
);

/** Values that are wrong for a flag whatever else the command line holds. */
const BAD_VALUES: Record<string, readonly string[]> = {
  start: ["2024-13-01", "x", "2024-02-30", "1899-12-29", "constructor", "2024-3-4"],
  end: ["2024-13-01", "x", "2024-02-30", "toString", ""],
  workers: ["0", "65", "-1", "abc", "1e3", "4.5", ""],
  "batch-size": ["0", "-3", "x", "50001"],
  "rate-limit": ["0", "x", "-1"],
  timeframe: ["7m", "1M", "constructor", "", "1m,5m"],
  timeframes: ["7m", "constructor", "1m", ",,"],
  symbols: ["aapl!", ",", "$$$", "A".repeat(40), "toString!", "AAPL,,MSFT"],
  "symbols-file": ["/nonexistent/symbols.txt", "."],
  provider: [...PROTOTYPE_NAMES, "nope", ""],
  validation: [
    "constructor.enabled=true",
    "x",
    "extreme_move.threshold=-1",
    "stale_price.valueOf=1",
    "__proto__.enabled=false",
  ],
  format: ["xml", "constructor", ""],
  limit: ["0", "-5", "x", "1e99"],
  timeout: ["0", "abc", "-1", "86401"],
  "fail-on": ["fatal", "constructor"],
  session: ["night", "constructor"],
  status: ["done", "__proto__"],
  "older-than": ["x", "-1d", "constructor"],
  "min-coverage": ["2", "-0.1", "x"],
  "fake-seed": ["-1", "x", "2147483648"],
  "fake-gap-rate": ["2", "-0.5", "x"],
  "fake-corrupt-rate": ["0.6", "x"],
  "memory-limit": ["0", "x", "101%", "1KB"],
  "temp-limit": ["x", "-1GB"],
  since: ["x", "constructor"],
  labels: ["=x", "a", "1a=b"],
  config: ["/nonexistent/marketpipe.yaml", "."],
  "data-dir": [""],
};

/** One part that makes the command line a usage error, whatever else it holds. */
function badPart(path: readonly string[], specs: readonly OptionSpec[]): fc.Arbitrary<string[]> {
  const known = specs.flatMap((o) => [o.name, ...(o.aliases ?? [])]);
  const unknownFlag = fc.oneof(
    fc.constantFrom(...PROTOTYPE_NAMES),
    fc.stringMatching(/^[a-z][a-z-]{0,14}$/),
  ).filter((name) => !known.includes(name) && !known.includes(name.replace(/^no-/, "")))
    .map((name) => [`--${name}`]);
  // `providers` reads no data directory, so an empty --data-dir is not its error.
  const withBadValues = specs.filter((o) =>
    Object.hasOwn(BAD_VALUES, o.name) && !(o.name === "data-dir" && path[0] === "providers")
  );
  const badValue = (options: OptionSpec[]) =>
    fc.constantFrom(...options).chain((option) =>
      fc.constantFrom(...BAD_VALUES[option.name]).map((value) => [`--${option.name}`, value])
    );
  // The command's own flags mostly: global ones (--config, --data-dir) are checked first anyway.
  const own = withBadValues.filter((o) => !GLOBAL_OPTIONS.includes(o));
  const global = withBadValues.filter((o) => GLOBAL_OPTIONS.includes(o));
  return fc.oneof(
    { weight: 2, arbitrary: unknownFlag },
    { weight: 1, arbitrary: badValue(global) },
    ...(own.length > 0 ? [{ weight: 8, arbitrary: badValue(own) }] : []),
  );
}

function cliArgs(dataDir: string): fc.Arbitrary<string[]> {
  return fc.constantFrom(...commandPaths()).chain(({ path, spec }) => {
    const specs = [...(spec.options ?? []), ...GLOBAL_OPTIONS];
    // Flags that start servers, ask for help or name files are left out of the random ones.
    const usable = specs.filter((o) =>
      !["port", "host", "help", "data-dir", "output", "config", "symbols-file"].includes(o.name)
    );
    const validFlag: fc.Arbitrary<string[]> = fc.constantFrom(...usable).chain((option) =>
      option.type === "boolean"
        ? fc.constant<string[]>([`--${option.name}`])
        : fc.oneof({ weight: 3, arbitrary: plausibleValue }, { weight: 1, arbitrary: oddArg })
          .map((value) => [`--${option.name}`, value])
    );
    // The positionals the command takes (SQL, a job or report id), rarely one too many.
    const wanted = (spec.args ?? "").split(/\s+/).filter((a) => a !== "").length;
    const positional = fc.oneof(
      fc.constantFrom(
        "SELECT 1",
        "SELECT count(*) FROM bars_1m",
        "SELECT * FROM duckdb_secrets()",
        "20240304-000000-abcd",
      ),
      oddArg.filter((text) => !text.startsWith("-")),
    );
    return fc.record({
      flags: fc.array(validFlag, { maxLength: 4 }),
      positionals: fc.array(positional, { minLength: wanted, maxLength: wanted })
        .chain((list) =>
          fc.oneof(
            { weight: 9, arbitrary: fc.constant(list) },
            { weight: 1, arbitrary: positional.map((extra) => [...list, extra]) },
          )
        ),
      bad: badPart(path, specs),
      badAt: fc.nat(),
    }).map(({ flags, positionals, bad, badAt }) => {
      // A repeated flag's last value wins (as in most CLIs): never repeat the bad one.
      const parts = flags.filter(([flag]) => flag !== bad[0]);
      parts.splice(badAt % (parts.length + 1), 0, bad);
      return [...path, "--data-dir", dataDir, ...positionals, ...parts.flat()];
    });
  });
}

Deno.test("fuzz: bad CLI flags exit 2 with one error line and write nothing", async () => {
  const dataDir = await filledDataDir();
  const cwd = await Deno.makeTempDir({ prefix: "mp-fuzz-cwd-" });
  const home = Deno.cwd();
  const started = performance.now();
  Deno.chdir(cwd);
  try {
    await fc.assert(
      fc.asyncProperty(cliArgs(dataDir), async (args) => {
        // Taken per run, so that a shrunk counterexample is the run that wrote.
        const before = await snapshot(dataDir);
        const out: string[] = [];
        const err: string[] = [];
        const code = await main(args, {
          env: {},
          output: { out: (l) => out.push(l), err: (l) => err.push(l) },
        });
        const shown = `${shellCommand(args)}\n-> ${code}\n${[...out, ...err].join("\n")}`;
        assert.equal(code, 2, shown);
        // With --json the error is one JSON line on stdout instead of text (README: Exit codes).
        const json = args.includes("--json");
        assert.deepEqual(json ? err : out, [], shown);
        if (json) {
          assert.equal(out.length, 1, shown);
          const { error } = JSON.parse(out[0]);
          assert.equal(error.exit_code, 2, shown);
          assert.equal(error.kind, "UsageError", shown);
        }
        const lines = json ? [`error: ${JSON.parse(out[0]).error.message.split("\n")[0]}`] : err;
        // DuckDB's SQL errors quote the statement with a caret under the position (README).
        const sqlError = /^error: [A-Z][A-Za-z ]* Error: /.test(lines[0]);
        assert.equal(sqlError ? 1 : lines.length, 1, shown);
        assert.match(lines[0], /^error: \S[^\n]*$/, shown);
        tally(lines[0].replace(/"[^"]*"/g, "_").split(/[:;]/).slice(0, 2).join(":").slice(0, 60));
        assert.deepEqual(await snapshot(dataDir), before, `data directory changed: ${shown}`);
        assert.deepEqual(await snapshot(cwd), [], `working directory changed: ${shown}`);
      }),
      { seed: SEED, numRuns: RUNS.cli },
    );
  } finally {
    Deno.chdir(home);
  }
  report("CLI flags", RUNS.cli, started);
});

// --- REST ------------------------------------------------------------------------------------

/** A JSON error with a known 4xx status, a code and a one-line message. */
async function assertClientError(response: Response, what: string): Promise<void> {
  const text = await response.text();
  const shown = `${what}\n-> ${response.status} ${text.slice(0, 300)}`;
  assert.ok(response.status >= 400 && response.status < 500, shown);
  const body = JSON.parse(text);
  assert.equal(typeof body.error.code, "string", shown);
  assert.ok(body.error.code !== "internal", shown);
  // DuckDB's SQL errors quote the statement with a caret under the position, on later lines.
  const message = body.error.code === "sql_error"
    ? String(body.error.message).split("\n")[0]
    : body.error.message;
  assert.match(message, /^\S[^\n]*$/, shown);
  tally(`${response.status} ${body.error.code} ${message.split(/[\s:]/).slice(0, 2).join(" ")}`);
}

const skipDb = (name: string) => name.startsWith("marketpipe.db");

Deno.test("fuzz: REST query parameters and JSON bodies give 4xx, never 500, and write nothing", async (t) => {
  const dataDir = await filledDataDir();
  const server = await testServer(dataDir);
  const app = server.app;
  try {
    const before = await snapshot(dataDir, skipDb);
    const rows = dataRows(dataDir);
    const unchanged = async (what: string) => {
      assert.deepEqual(await snapshot(dataDir, skipDb), before, `data directory changed: ${what}`);
      assert.deepEqual(dataRows(dataDir), rows, `job tables changed: ${what}`);
    };

    await t.step("GET query parameters", async () => {
      const started = performance.now();
      const routes: Record<string, string[]> = {
        "/api/bars": ["symbol", "timeframe", "start", "end", "limit", "cursor", "format"],
        "/api/coverage": ["symbol", "timeframe", "start", "end"],
        "/api/jobs": ["status", "limit"],
        "/api/validation/reports": ["limit"],
        "/api/symbols/AAPL": [],
        "/healthz": [],
      };
      const value = fc.oneof(
        fc.constantFrom(
          "AAPL",
          "1m",
          "1d",
          "2024-03-04",
          "2024-03-08",
          "10",
          "json",
          "csv",
          "running",
        ),
        oddText,
      );
      const request = fc.constantFrom(...Object.keys(routes)).chain((route) =>
        fc.record({
          route: fc.constant(route),
          params: fc.array(
            fc.tuple(
              fc.oneof(fc.constantFrom(...routes[route], ...PROTOTYPE_NAMES), oddText),
              value,
            ),
            { maxLength: 6 },
          ),
          // One part that is wrong whatever the rest: an unknown name, a repeat, a bad value.
          bad: fc.oneof(
            fc.tuple(fc.constantFrom(...PROTOTYPE_NAMES, "symbols", "Symbol", "x"), value),
            fc.constantFrom<[string, string]>(
              ["limit", "0"],
              ["limit", "-1"],
              ["limit", "abc"],
              ["limit", "1e3"],
              ["start", "2024-13-01"],
              ["end", "x"],
              ["timeframe", "constructor"],
              ["symbol", "aapl!"],
              ["format", "toString"],
              ["cursor", "constructor"],
              ["status", "__proto__"],
            ),
          ),
        })
      ).map(({ route, params, bad }) => {
        const known = routes[route];
        // A bad value of a parameter this route does not take is an unknown parameter: still bad.
        const all = [...params.filter(([name]) => name !== bad[0]), bad];
        if (known.includes(bad[0]) && bad[0] !== "x") all.push(bad); // repeated: also refused
        return `${route}?${new URLSearchParams(all)}`;
      });
      await fc.assert(
        fc.asyncProperty(request, async (url) => {
          await assertClientError(await app.request(url), `GET ${url}`);
        }),
        { seed: SEED, numRuns: RUNS.params },
      );
      // Path parameters: a job or report id, a symbol.
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("/api/jobs/", "/api/validation/reports/", "/api/symbols/"),
          // Not a prefix of a stored job or report id (those start with a digit or "v2").
          fc.oneof(oddText, fc.constantFrom(...PROTOTYPE_NAMES)).filter((id) => /^[^\dv]/.test(id)),
          async (prefix, id) => {
            const url = prefix + encodeURIComponent(id);
            await assertClientError(await app.request(url), `GET ${url}`);
          },
        ),
        { seed: SEED, numRuns: RUNS.params },
      );
      await unchanged("GET");
      report("REST parameters", 2 * RUNS.params, started);
    });

    await t.step("POST /api/jobs bodies", async () => {
      const started = performance.now();
      const keys = [
        "provider",
        "symbols",
        "start",
        "end",
        "timeframe",
        "workers",
        "batch_size",
        "rate_limit",
        "feed",
        "adjustment",
        "force",
        "resume",
        "fake_seed",
        "fake_gap_rate",
        "aggregate",
      ];
      const valid: Record<string, unknown> = {
        provider: "fake",
        symbols: ["AAPL"],
        start: "2024-03-11",
        end: "2024-03-12",
        timeframe: "1m",
        workers: 2,
      };
      const bad = fc.oneof(
        fc.constantFrom(...PROTOTYPE_NAMES).map((key) => ({ [key]: "x" })),
        fc.stringMatching(/^[a-z_]{1,12}$/).filter((k) => !keys.includes(k)).map((key) => ({
          [key]: 1,
        })),
        fc.constantFrom<Record<string, unknown>>(
          { start: "2024-13-01" },
          { end: "x" },
          { workers: 0 },
          { workers: "65" },
          { workers: 1.5 },
          { timeframe: "constructor" },
          { timeframe: "7m" },
          { symbols: "aapl!" },
          { symbols: [1, 2] },
          { symbols: [] },
          { provider: "constructor" },
          { provider: "toString" },
          { force: "maybe" },
          { aggregate: 1 },
          { fake_seed: -1 },
          { fake_gap_rate: 2 },
          { start: { $gt: "" } },
          { start: "2024-03-12", end: "2024-03-11" },
          { resume: "20240304-000000-abcd", symbols: "AAPL" },
          { resume: "../../x" },
          { force: { toString: 0 } },
          { aggregate: { valueOf: 1, toString: "x" } },
          { workers: { toString: 0 } },
          { symbols: { toString: "AAPL" } },
        ),
      );
      const body = fc.record({
        base: fc.subarray(Object.keys(valid)).map((names) =>
          Object.fromEntries(names.map((n) => [n, valid[n]]))
        ),
        extra: fc.dictionary(
          fc.oneof(fc.constantFrom(...keys), oddText),
          fc.jsonValue({ maxDepth: 2 }),
          { maxKeys: 3 },
        ),
        bad,
      }).map(({ base, extra, bad }) => JSON.stringify({ ...base, ...extra, ...bad }));
      // Bodies that are no JSON object at all.
      const notAnObject = fc.oneof(
        fc.jsonValue({ maxDepth: 2 }).filter((v) =>
          v === null || typeof v !== "object" || Array.isArray(v)
        ).map((v) => JSON.stringify(v)),
        fc.string({ maxLength: 20 }).filter((text) => {
          try {
            JSON.parse(text);
            return false;
          } catch {
            return true;
          }
        }),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.oneof({ weight: 4, arbitrary: body }, { weight: 1, arbitrary: notAnObject }),
          fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain")
            .chain((type) => fc.constantFrom(type, "application/json", "application/json")),
          async (text, type) => {
            const response = await app.request("/api/jobs", {
              method: "POST",
              headers: { "Content-Type": type },
              body: text,
            });
            await assertClientError(response, `POST /api/jobs ${type} ${text}`);
            assert.deepEqual(dataRows(dataDir), rows, `a job was recorded: ${text}`);
          },
        ),
        { seed: SEED, numRuns: RUNS.jobs },
      );
      await unchanged("POST /api/jobs");
      report("POST /api/jobs", RUNS.jobs, started);
    });

    await t.step("POST /api/query bodies", async () => {
      const started = performance.now();
      const fragment = fc.constantFrom(
        "SELECT",
        "FROM",
        "WHERE",
        "bars_1m",
        "bars_1d",
        "bars",
        "symbol",
        "count(*)",
        "*",
        ",",
        "(",
        ")",
        "'",
        "''",
        '"',
        ";",
        "--",
        "/*",
        "*/",
        "$1",
        "?",
        "1",
        "'AAPL'",
        "=",
        "LIMIT",
        "UNION",
        "DESCRIBE",
        "SHOW",
        "EXPLAIN",
        "ANALYZE",
        "PRAGMA",
        "CALL",
        "SET",
        "COPY",
        "ATTACH",
        "INSTALL",
        "LOAD",
        "CREATE",
        "DROP",
        "INSERT",
        "duckdb_secrets()",
        "duckdb_extensions()",
        "which_secret('s3://x', 's3')",
        "sniff_csv('/etc/passwd')",
        "read_text('/etc/passwd')",
        "read_blob('bars')",
        "read_parquet('nope/*.parquet')",
        "glob('*')",
        "repeat('a', 3)",
        "range(3)",
        "error('x')",
        "'2024-13-01'::DATE",
        "1/0",
        "1//0",
        "2147483647::INT + 1",
        "getenv('HOME')",
        "current_setting('threads')",
        "query('SELECT 1')",
        "VALUES (1)",
        "SUMMARIZE",
        "PIVOT",
        "::",
        "[1,2]",
        "{'a': 1}",
        "NULL",
        "TRUE",
        "ts",
        "trading_date",
      );
      // Statements that parse, so that binding and running are fuzzed too.
      const expr = fc.constantFrom(
        "*",
        "1",
        "count(*)",
        "symbol",
        "ts",
        "close / 0",
        "close // 0",
        "$1",
        "?",
        "NULL",
        "repeat('a', 5)",
        "error('boom')",
        "'2024-13-01'::DATE",
        "2147483647::INT + 1",
        "current_setting('threads')",
        "current_setting('nope')",
        "'x'::JSON",
        "[1, 2][3]",
        "{'a': 1}",
        "'a'::UNION(a INT, b VARCHAR)",
        "gen_random_uuid()",
        "INTERVAL 1 DAY",
        "'infinity'::TIMESTAMP",
        "1::BIGNUM",
        "'101'::BIT",
        "chr(0)",
        "'\\xFF'::BLOB",
        "getenv('HOME')",
        "which_secret('s3://x', 's3')",
        "range(3)",
        "list(1)",
        "nope",
      );
      const source = fc.constantFrom(
        "bars_1m",
        "bars_1d",
        "bars",
        "bars_5m",
        "range(3)",
        "duckdb_secrets()",
        "duckdb_extensions()",
        "duckdb_settings()",
        "duckdb_functions()",
        "sniff_csv('/etc/passwd')",
        "read_text('/etc/passwd')",
        "read_parquet('nope/*.parquet')",
        "glob('/tmp/*')",
        "query('SELECT 1')",
        "query_table('bars_1d')",
        "(VALUES (1), ('a'))",
        "test_all_types()",
        "pragma_database_size()",
        "read_blob('bars')",
        "'s3://bucket/x.parquet'",
      );
      const statement = fc.tuple(
        fc.constantFrom(
          "SELECT",
          "EXPLAIN SELECT",
          "SUMMARIZE SELECT",
          "DESCRIBE SELECT",
          "FROM (",
        ),
        fc.array(expr, { minLength: 1, maxLength: 3 }),
        source,
        fc.option(expr, { nil: undefined }),
        fc.option(fc.integer({ min: -1, max: 5 }), { nil: undefined }),
      ).map(([head, exprs, from, where, limit]) => {
        const select = `SELECT ${exprs.join(", ")} FROM ${from}${where ? ` WHERE ${where}` : ""}${
          limit === undefined ? "" : ` LIMIT ${limit}`
        }`;
        return head === "FROM (" ? `FROM (${select})` : `${head}${select.slice(6)}`;
      });
      const sql = fc.oneof(
        { weight: 3, arbitrary: statement },
        {
          weight: 2,
          arbitrary: fc.array(fragment, { minLength: 1, maxLength: 8 }).map((p) => p.join(" ")),
        },
        { weight: 1, arbitrary: oddText },
      );
      const anyJson = fc.oneof(
        fc.jsonValue({ maxDepth: 1 }),
        fc.constantFrom({ toString: 0 }, { valueOf: 1 }, { toString: "1", valueOf: 2 }, [10]),
        fc.constantFrom(0, -1, 1.5, "10", "x", 1e20),
      );
      // Mostly well-formed bodies, so that most runs reach DuckDB with odd SQL.
      const rarely = <T>(arbitrary: fc.Arbitrary<T>) =>
        fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary });
      const body = fc.record({
        sql: fc.oneof({ weight: 12, arbitrary: sql }, { weight: 1, arbitrary: anyJson }),
        limit: fc.option(
          fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 100 }) }, {
            weight: 1,
            arbitrary: anyJson,
          }),
          { nil: undefined },
        ),
        timeout_ms: fc.option(
          fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 50, max: 2_000 }) }, {
            weight: 1,
            arbitrary: anyJson,
          }),
          { nil: undefined },
        ),
        extra: rarely(fc.constantFrom(...PROTOTYPE_NAMES, "format", "timeout")),
      }).map(({ extra, ...fields }) =>
        JSON.stringify(extra === undefined ? fields : { ...fields, [extra]: 1 })
      );
      await fc.assert(
        fc.asyncProperty(
          body,
          fc.constantFrom("", "", "", "", "", "", "?format=csv", "?format=xml", "?constructor=1"),
          async (text, query) => {
            const response = await app.request(`/api/query${query}`, {
              method: "POST",
              headers: { "Content-Type": "application/json" },
              body: text,
            });
            const what = `POST /api/query${query} ${text}`;
            // A valid read-only query may succeed; anything else is the client's error or a timeout.
            if (response.status === 200) {
              tally("200");
              await response.body?.cancel();
            } else if (response.status === 504) {
              assert.equal((await response.json()).error.code, "query_timeout", what);
            } else {
              await assertClientError(response, what);
            }
          },
        ),
        { seed: SEED, numRuns: RUNS.query },
      );
      await unchanged("POST /api/query");
      report("POST /api/query", RUNS.query, started);
    });
  } finally {
    await server.close();
  }
});

// --- shell quoting ---------------------------------------------------------------------------

Deno.test("fuzz: shellCommand() arguments read back unchanged in sh", async () => {
  const started = performance.now();
  const arg = fc.string({ unit: "grapheme", maxLength: 20 }).map((s) => s.replaceAll("\0", ""));
  await fc.assert(
    fc.asyncProperty(fc.array(arg, { minLength: 1, maxLength: 4 }), async (args) => {
      const output = await new Deno.Command("sh", {
        args: ["-c", `for a in ${shellCommand(args)}; do printf '%s\\0' "$a"; done`],
        env: { HOME: "/nonexistent" },
        stdout: "piped",
      }).output();
      assert.deepEqual(new TextDecoder().decode(output.stdout).split("\0").slice(0, -1), args);
    }),
    { seed: SEED, numRuns: RUNS.shell },
  );
  report("shell quoting", RUNS.shell, started);
});
