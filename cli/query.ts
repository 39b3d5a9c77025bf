import { parseIntOption } from "../core/config.ts";
import { UsageError } from "../core/errors.ts";
import { join } from "node:path";
import {
  checkOutputPath,
  countQueryRows,
  formatCsv,
  formatJson,
  formatTable,
  METRICS_HISTORY_FILE,
  openQueryEngine,
  QueryRejectedError,
  QuerySqlError,
  runQuery,
  writeFileAtomic,
  writeQueryParquet,
} from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatCount } from "./format.ts";
import {
  choiceOption,
  dataDirOf,
  historyDirOf,
  positionals,
  queryEngineLimits,
  todayOf,
  tzOption,
} from "./options.ts";

const FORMATS = ["table", "csv", "json", "parquet"] as const;

/** `marketpipe query "SQL"`. */
export async function runQueryCommand(
  invocation: Invocation,
  context: CommandContext,
): Promise<number> {
  const [sql] = positionals(invocation, ["SQL"]);
  if (sql.trim() === "") throw new UsageError("Invalid SQL: the query is empty");
  const dataDir = dataDirOf(invocation);
  // Checked even when --json decides the format: a bad value is never silently ignored.
  const given = (invocation.string("format") ?? "table").toLowerCase();
  const checked = choiceOption(given, "--format", FORMATS, `one of ${FORMATS.join(", ")}`);
  const format = context.json ? "json" : checked;
  const tz = tzOption(invocation);
  // CSV is for programs: ISO UTC as stored unless a zone is asked for.
  const csvTz = invocation.options.sources.tz === "default" ? undefined : tz;
  const output = invocation.string("output");
  // A file gets every row unless --limit is given (flag, env or config): a cut then exits 3.
  const limit = output !== undefined && invocation.options.sources.limit === "default"
    ? Infinity
    : parseIntOption(invocation.string("limit") ?? "10000", "--limit", 1, 10_000_000);
  const timeoutSeconds = parseIntOption(
    invocation.string("timeout") ?? "300",
    "--timeout",
    1,
    86_400,
  );
  if (format === "parquet" && output === undefined) {
    throw new UsageError(
      "Missing --output FILE: --format parquet writes a file, not to the terminal",
    );
  }
  const historyDir = historyDirOf(context);
  const protectedFiles = historyDir === undefined ? [] : [join(historyDir, METRICS_HISTORY_FILE)];
  // Checked for every format before anything runs: the output may never replace a managed file.
  if (output !== undefined) await checkOutputPath(dataDir, output, { protectedFiles });
  const engine = await openQueryEngine(dataDir, {
    outputFile: format === "parquet" ? output : undefined,
    protectedFiles,
    // "Today" of the reference tables (universe member counts) follows MARKETPIPE_NOW.
    today: todayOf(context),
    ...queryEngineLimits(invocation),
  });
  const timing = { timeoutMs: timeoutSeconds * 1000, signal: context.signal };
  // Written rows and what the query has: a cut is said in one line and exits 3.
  const wrote = async (rows: number, cut: boolean) => {
    const total = cut ? await countQueryRows(engine, sql, timing) : rows;
    if (total <= rows) {
      context.err(`Wrote ${formatCount(rows)} row(s) to ${output}`);
      return EXIT.ok;
    }
    context.err(
      `Wrote ${formatCount(rows)} of ${formatCount(total)} rows to ${output}: --limit ${limit} ` +
        "cut the result; leave --limit out to write every row",
    );
    return EXIT.partial;
  };
  try {
    if (format === "parquet") {
      const rows = await writeQueryParquet(engine, sql, output!, { limit, ...timing });
      return await wrote(rows, rows === limit);
    }
    const result = await runQuery(engine, sql, { limit, ...timing });
    const text = format === "csv"
      ? formatCsv(result, { tz: csvTz })
      : format === "json"
      ? formatJson(result)
      : formatTable(result, { tz });
    if (output !== undefined) {
      // Checked again right before the write: the path may have changed while the query ran.
      const path = await checkOutputPath(dataDir, output, { protectedFiles });
      await writeFileAtomic(
        path,
        (temp) => Deno.writeTextFile(temp, text.endsWith("\n") ? text : text + "\n"),
      );
      return await wrote(result.rowCount, result.truncated);
    }
    context.out(text.replace(/\n$/, ""));
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
