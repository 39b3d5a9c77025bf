import { UsageError } from "../core/errors.ts";
export { parseDateOption } from "../core/config.ts";
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
