/**
 * `marketpipe`: the command-line entry point. The only module that reads `Deno.env`, installs
 * signal handlers, decides between a terminal and a log, and sets the exit code.
 *
 * @module
 */
import { secretValuesOf } from "./app/notify.ts";
import { parseInvocation } from "./cli/args.ts";
import { COMMANDS } from "./cli/commands.ts";
import { type CommandContext, EXIT } from "./cli/context.ts";
import { MAX_CONFIG_BYTES } from "./core/config.ts";
import { errorMessage, UsageError } from "./core/errors.ts";
import { redact } from "./core/secrets.ts";
// Only this light file of storage/: --help and usage errors must not load DuckDB.
import { readTextFileCapped } from "./storage/fs.ts";
import denoJson from "./deno.json" with { type: "json" };

/** Version of this build, from deno.json. */
export const VERSION: string = denoJson.version;

/** Options for {@link main}, for embedding and tests. */
export interface MainOptions {
  env?: Record<string, string | undefined>;
  signal?: AbortSignal;
  /** Where result and message lines go instead of stdout and stderr (no status line then). */
  output?: { out: (line: string) => void; err: (line: string) => void };
}

/** Run the CLI with `args` and return the exit code. */
export async function main(args: string[], options: MainOptions = {}): Promise<number> {
  const env = options.env ?? Deno.env.toObject();
  const encoder = new TextEncoder();
  const output = options.output;
  const writeOut = output?.out ??
    ((line: string) => Deno.stdout.writeSync(encoder.encode(line + "\n")));
  const stderrIsTerminal = output === undefined && Deno.stderr.isTerminal() &&
    env.TERM !== "dumb" && !env.CI;
  let statusShown = false;
  const writeErr = output?.err ?? ((line: string) => {
    if (statusShown) {
      Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
      statusShown = false;
    }
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  });
  // Read from the raw arguments so that errors of parsing them are reported the same way.
  const flags = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
  const verboseRequested = flags.includes("--verbose") || flags.includes("-v");
  const jsonRequested = flags.includes("--json");
  try {
    const parsed = await parseInvocation(
      COMMANDS,
      args,
      env,
      (path) => readTextFileCapped(path, MAX_CONFIG_BYTES, "config file"),
    );
    if (parsed.kind === "help") {
      writeOut(parsed.text);
      return EXIT.ok;
    }
    if (parsed.kind === "version") {
      writeOut(`marketpipe ${VERSION} (deno ${Deno.version.deno}, ${Deno.build.target})`);
      return EXIT.ok;
    }
    const controller = new AbortController();
    options.signal?.addEventListener("abort", () => controller.abort(options.signal!.reason));
    let interrupts = 0;
    const onSignal = () => {
      if (++interrupts === 1) {
        writeErr("Stopping: finishing the work in flight (press Ctrl-C again to quit at once)");
        controller.abort(new DOMException("Interrupted", "AbortError"));
      } else {
        Deno.exit(EXIT.interrupted);
      }
    };
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const signal of signals) Deno.addSignalListener(signal, onSignal);
    const context: CommandContext = {
      env,
      out: writeOut,
      err: writeErr,
      status: stderrIsTerminal
        ? (text) => {
          Deno.stderr.writeSync(encoder.encode("\r\x1b[2K" + text));
          statusShown = true;
        }
        : undefined,
      columns: Number(env.COLUMNS) > 0
        ? Number(env.COLUMNS)
        : Deno.stdout.isTerminal()
        ? Deno.consoleSize().columns
        : undefined,
      signal: controller.signal,
      verbose: parsed.invocation.flag("verbose"),
      json: parsed.invocation.flag("json"),
      version: VERSION,
    };
    try {
      const handler = await parsed.command.run!();
      const code = await handler(parsed.invocation, context);
      return controller.signal.aborted && code === EXIT.ok && !parsed.command.server
        ? EXIT.interrupted
        : code;
    } finally {
      for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    }
  } catch (error) {
    // The reader of our output went away (e.g. `| head`): stop quietly, like other tools.
    if (error instanceof Deno.errors.BrokenPipe) return EXIT.ok;
    const code = error instanceof UsageError ? EXIT.usage : EXIT.failure;
    const secrets = secretValuesOf(env);
    const message = redact(errorMessage(error), secrets);
    const cause =
      error instanceof Error && error.cause !== undefined && !(error instanceof UsageError)
        ? redact(errorMessage(error.cause).split("\n")[0], secrets)
        : undefined;
    if (jsonRequested) {
      writeOut(JSON.stringify({
        error: {
          message,
          kind: error instanceof Error ? error.name : typeof error,
          exit_code: code,
          ...(cause === undefined ? {} : { cause }),
        },
      }));
    } else writeErr(`error: ${message}`);
    if (verboseRequested && !(error instanceof UsageError)) {
      let next: unknown = error;
      while (next instanceof Error) {
        writeErr(redact(next.stack ?? next.message, secrets));
        next = next.cause;
        if (next !== undefined) writeErr("caused by:");
      }
      if (next !== undefined) writeErr(redact(String(next), secrets));
    } else if (cause !== undefined && !jsonRequested) {
      writeErr(`  caused by: ${cause} (--verbose shows more)`);
    }
    return code;
  }
}

// Exit rather than wait for the event loop to drain: a query abandoned after its timeout keeps a
// DuckDB thread busy (and the loop alive) until it finishes on its own.
if (import.meta.main) Deno.exit(await main(Deno.args));
