/**
 * The CLI side of the scheduler: reading the config file's schedules, checking each schedule's
 * arguments against its command's options at start, and running a schedule's command in this
 * process through the same command table and handlers as `marketpipe <command>`.
 *
 * @module
 */
import { MAX_CONFIG_BYTES } from "../core/config.ts";
import { errorChain, UsageError } from "../core/errors.ts";
import { readSchedulesConfig, type Schedule, type SchedulesConfig } from "../core/schedule.ts";
import type { RunCommand, RunResult } from "../app/scheduler.ts";
import { type MetaStore, readTextFileCapped } from "../storage/mod.ts";
import { type Invocation, parseInvocation } from "./args.ts";
import { COMMANDS } from "./commands.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { readCappedFile } from "./options.ts";

/** The config file a command was given (`--config` or `MARKETPIPE_CONFIG`), if any. */
export function configPathOf(invocation: Invocation): string | undefined {
  const path = invocation.string("config");
  return path === undefined || path.trim() === "" ? undefined : path;
}

/**
 * The schedules and webhook of the config file at `path` (none without a file), checked;
 * errors name the schedule and the field.
 */
export async function loadSchedulesConfig(path: string | undefined): Promise<SchedulesConfig> {
  if (path === undefined) return { schedules: [] };
  return readSchedulesConfig(await readCappedFile(path, MAX_CONFIG_BYTES, "config file"), path);
}

/**
 * Refuse, before anything runs, a schedule whose arguments its command would refuse (an
 * unknown flag, a missing value, a command this build lacks, a required option left out),
 * naming the schedule: `Invalid schedules[1].args for schedule "nightly": Unknown option
 * "--tf" ...`. With `configPath` the options are read as a run would read them, config file
 * included (a `prune --policy` schedule gets the file's retention).
 */
export async function checkScheduleCommands(
  schedules: readonly Schedule[],
  env: Record<string, string | undefined>,
  configPath?: string,
): Promise<void> {
  // One read of the config file for all the schedules.
  let configText: Promise<string> | undefined;
  const readConfig = (path: string) =>
    path === configPath
      ? configText ??= readTextFileCapped(path, MAX_CONFIG_BYTES, "config file")
      : readTextFileCapped(path, MAX_CONFIG_BYTES, "config file");
  for (const [i, schedule] of schedules.entries()) {
    try {
      const argv = [...schedule.command.split(" "), ...schedule.args];
      if (configPath !== undefined) argv.push("--config", configPath);
      const parsed = await parseInvocation(
        COMMANDS,
        argv,
        { ...env, MARKETPIPE_CONFIG: undefined },
        readConfig,
      );
      if (parsed.kind !== "run") {
        throw new UsageError(`"${schedule.args.join(" ")}" asks for ${parsed.kind}, not a run`);
      }
      const check = await parsed.command.check?.();
      check?.(parsed.invocation, env);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      throw new UsageError(
        `Invalid schedules[${i}].args for schedule "${schedule.name}": ${error.message}`,
        { cause: error },
      );
    }
  }
}

/** Options of {@link createCommandRunner}. */
export interface CommandRunnerOptions {
  dataDir: string;
  /** Passed on as `--config`, so a run sees the same settings as the server. */
  configPath?: string;
  env: Record<string, string | undefined>;
  version: string;
  /** Where the command's output lines go, prefixed with `schedule NAME: `. */
  log: (line: string) => void;
  /** Finds the jobs a run recorded (those of this pid updated during it). */
  meta?: MetaStore;
  now?: () => number;
}

/**
 * A {@link RunCommand} that runs `marketpipe <command> <args> --data-dir DIR [--config FILE]`
 * in this process, as `main.ts` would (same parser, same handler, same job records), with the
 * scheduler's signal. Exit 0 is succeeded, 3 partial, 130 cancelled, others failed (2, bad
 * input, is not retried).
 */
export function createCommandRunner(options: CommandRunnerOptions): RunCommand {
  const now = options.now ?? Date.now;
  return async (schedule, { signal }): Promise<RunResult> => {
    const argv = [...schedule.command.split(" "), ...schedule.args];
    if (!schedule.args.some((a) => a === "--data-dir" || a.startsWith("--data-dir="))) {
      argv.push("--data-dir", options.dataDir);
    }
    if (options.configPath !== undefined) argv.push("--config", options.configPath);
    const prefix = `schedule ${schedule.name}: `;
    let lastError = "";
    const startedAt = now();
    let code: number;
    try {
      const parsed = await parseInvocation(
        COMMANDS,
        argv,
        options.env,
        (path) => readTextFileCapped(path, MAX_CONFIG_BYTES, "config file"),
      );
      if (parsed.kind !== "run") {
        return {
          status: "failed",
          error: `not a command run: ${argv.join(" ")}`,
          retriable: false,
        };
      }
      const context: CommandContext = {
        env: options.env,
        out: (line) => options.log(prefix + line),
        err: (line) => {
          if (line.startsWith("error: ")) lastError = line.slice(7);
          options.log(prefix + line);
        },
        signal,
        verbose: false,
        json: false,
        version: options.version,
      };
      const handler = await parsed.command.run!();
      code = await handler(parsed.invocation, context);
    } catch (error) {
      if (signal.aborted) return { status: "cancelled", error: "cancelled: the server stopped" };
      const usage = error instanceof UsageError;
      options.log(`${prefix}error: ${errorChain(error)}`);
      return { status: "failed", error: errorChain(error), retriable: !usage };
    }
    const jobIds = options.meta === undefined ? [] : options.meta.listJobs({ limit: 200 })
      .filter((job) => job.pid === Deno.pid && job.updatedAt >= startedAt)
      .map((job) => job.id)
      .reverse();
    if (code === EXIT.ok && !signal.aborted) return { status: "succeeded", jobIds };
    if (code === EXIT.interrupted || signal.aborted) {
      return { status: "cancelled", error: "cancelled: the server stopped", jobIds };
    }
    const error = lastError || `marketpipe ${schedule.command} exited with code ${code}`;
    if (code === EXIT.partial) return { status: "partial", error, jobIds };
    return { status: "failed", error, jobIds, retriable: code !== EXIT.usage };
  };
}
