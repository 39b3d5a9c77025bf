/** Helpers for end-to-end tests that spawn the real CLI. */
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";

/** Absolute path of main.ts. */
export const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

/**
 * `--symbols AAPL --start 2024-03-04 --end 2024-03-05`: the two trading days of AAPL that CLI
 * tests ingest (fake provider) when they need some stored bars.
 */
export const AAPL_TWO_DAYS = [
  "--symbols",
  "AAPL",
  "--start",
  "2024-03-04",
  "--end",
  "2024-03-05",
] as const;

/** Output of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Environment for spawned CLIs: no colour, UTC, no inherited MarketPipe settings. */
export function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1", TZ: "UTC" };
  for (const key of ["PATH", "HOME", "DENO_DIR", "DENO_NO_UPDATE_CHECK"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  return { ...env, ...extra };
}

/** Where and with which extra environment a spawned command runs. */
type _RunOptions = { cwd?: string; env?: Record<string, string> };

/** Run `marketpipe args...` to completion in `cwd`. */
export async function runCli(args: string[], options: _RunOptions = {}): Promise<CliResult> {
  return await finish(spawnCli(args, options));
}

/** Run `command args...` to completion in `cwd`, with {@link cliEnv}'s environment. */
export async function runCommand(
  command: string,
  args: string[],
  options: _RunOptions = {},
): Promise<CliResult> {
  return await finish(_spawn(command, args, options));
}

/** Start `marketpipe args...` without waiting. */
export function spawnCli(args: string[], options: _RunOptions = {}): Deno.ChildProcess {
  return _spawn(Deno.execPath(), ["run", "-A", "--quiet", MAIN, ...args], options);
}

/** Collect a spawned child's result. */
export async function finish(child: Deno.ChildProcess): Promise<CliResult> {
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function _spawn(command: string, args: string[], options: _RunOptions): Deno.ChildProcess {
  return new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: cliEnv(options.env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Every file and directory under `dir`, relative, sorted. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string, prefix: string) => {
    for await (const entry of Deno.readDir(path)) {
      const rel = prefix + entry.name;
      out.push(rel);
      if (entry.isDirectory) await walk(`${path}/${entry.name}`, rel + "/");
    }
  };
  try {
    await walk(dir, "");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out.sort();
}

/** Run a read-only SQL statement against the metadata database of a data directory. */
export function metaQuery(dataDir: string, sql: string): Record<string, unknown>[] {
  const db = new DatabaseSync(`${dataDir}/marketpipe.db`, { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    return db.prepare(sql).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

/** Poll `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Parse the JSON a `--json` command printed. */
export function json<T = unknown>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    throw new Error(`Not JSON (exit ${result.code}): ${result.stdout}\n${result.stderr}`, {
      cause: error,
    });
  }
}
