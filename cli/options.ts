import { UsageError } from "../core/errors.ts";
import { MAX_SYMBOLS_FILE_BYTES, parseSymbols, parseSymbolsFile } from "../core/symbols.ts";
import { readTextFileCapped } from "../storage/mod.ts";
export { parseDateOption } from "../core/config.ts";
import { parseSizeOption } from "../core/config.ts";
import type { Invocation } from "./args.ts";

/** The data directory: `--output` (ingest's alias) when given as a flag, else `--data-dir`. */
export function dataDirOf(invocation: Invocation): string {
  if (
    invocation.options.sources["data-dir"] === "flag" &&
    invocation.options.sources.output === "flag" &&
    invocation.path[0] === "ingest" && invocation.string("output") !== invocation.string("data-dir")
  ) {
    throw new UsageError(
      `Conflicting --output "${invocation.string("output")}" and --data-dir "${
        invocation.string("data-dir")
      }": --output is an alias of --data-dir, give one`,
    );
  }
  if (
    invocation.options.sources["data-dir"] !== "flag" &&
    invocation.string("output") !== undefined &&
    invocation.path[0] === "ingest"
  ) {
    return invocation.string("output")!;
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

/** Symbols from `--symbols` or `--symbols-file` (one of them), or undefined when neither is set. */
export async function symbolsOption(invocation: Invocation): Promise<string[] | undefined> {
  const text = invocation.string("symbols");
  const file = invocation.string("symbols-file");
  if (text !== undefined && file !== undefined) {
    throw new UsageError("Use either --symbols or --symbols-file, not both");
  }
  if (file !== undefined) {
    let content: string;
    try {
      content = await readTextFileCapped(file, MAX_SYMBOLS_FILE_BYTES, "--symbols-file");
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw new UsageError(`Cannot read --symbols-file ${file}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return parseSymbolsFile(content, file);
  }
  return text === undefined ? undefined : parseSymbols(text);
}
