import { parseIntOption } from "../core/config.ts";
import { didYouMean, UsageError } from "../core/errors.ts";
import {
  formatCsv,
  formatJson,
  formatTable,
  openQueryEngine,
  QueryRejectedError,
  QuerySqlError,
  runQuery,
  writeQueryParquet,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount } from "./format.ts";
import { dataDirOf, positionals } from "./options.ts";

const FORMATS = ["table", "csv", "json", "parquet"] as const;

/** `marketpipe query "SQL"`. */
export async function runQueryCommand(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const [sql] = positionals(invocation, ["SQL"]);
  if (sql.trim() === "") throw new UsageError("Invalid SQL: the query is empty");
  const dataDir = dataDirOf(invocation);
  const format = (context.json ? "json" : invocation.string("format") ?? "table").toLowerCase();
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(
      `Invalid --format "${format}"${didYouMean(format, FORMATS)}: expected one of ${
        FORMATS.join(", ")
      }`,
    );
  }
  const limit = parseIntOption(invocation.string("limit") ?? "10000", "--limit", 1, 10_000_000);
  const timeoutSeconds = parseIntOption(
    invocation.string("timeout") ?? "300",
    "--timeout",
    1,
    86_400,
  );
  const output = invocation.string("output");
  if (format === "parquet" && output === undefined) {
    throw new UsageError(
      "Missing --output FILE: --format parquet writes a file, not to the terminal",
    );
  }
  const engine = await openQueryEngine(dataDir, {
    outputFile: format === "parquet" ? output : undefined,
  });
  try {
    if (format === "parquet") {
      const rows = await writeQueryParquet(engine, sql, output!);
      context.err(`Wrote ${formatCount(rows)} row(s) to ${output}`);
      return EXIT.ok;
    }
    const result = await runQuery(engine, sql, {
      limit,
      timeoutMs: timeoutSeconds * 1000,
      signal: context.signal,
    });
    const text = format === "csv"
      ? formatCsv(result)
      : format === "json"
      ? formatJson(result)
      : formatTable(result);
    if (output !== undefined) {
      const temp = `${output}.tmp-${crypto.randomUUID()}`;
      await Deno.writeTextFile(temp, text.endsWith("\n") ? text : text + "\n");
      await Deno.rename(temp, output);
      context.err(`Wrote ${formatCount(result.rowCount)} row(s) to ${output}`);
    } else {
      context.out(text.replace(/\n$/, ""));
    }
    if (result.truncated && format !== "table") {
      context.err(`Showing the first ${formatCount(limit)} rows; raise --limit for more`);
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof QueryRejectedError || error instanceof QuerySqlError) {
      throw new UsageError(error.message, { cause: error });
    }
    // Errors DuckDB raises while running the statement (a missing file in read_parquet, a failed
    // cast, a refused path) are problems of the SQL, reported like SQL errors.
    if (
      error instanceof Error &&
      /^(?:Cannot run query: )?[A-Z][A-Za-z ]* Error: /.test(error.message)
    ) {
      throw new UsageError(error.message.replace(/^Cannot run query: /, ""), { cause: error });
    }
    throw error;
  } finally {
    engine.close();
  }
}
