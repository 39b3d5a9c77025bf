import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import { exportBars, type ExportFormat, METRICS_HISTORY_FILE } from "../storage/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { formatBytes, formatCount, printJson, progressReporter } from "./format.ts";
import {
  dataDirOf,
  historyDirOf,
  positionals,
  queryEngineLimits,
  rangeOption,
  symbolsOption,
  timeframeOption,
  todayOf,
} from "./options.ts";

/** Exports shorter than this show no progress. */
const _QUIET_MS = 1_000;

/** `marketpipe export`: stored bars to Parquet, CSV or Arrow files, streamed and never capped. */
export async function runExport(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const dataDir = dataDirOf(invocation);
  const range = rangeOption(invocation, { required: true })!;
  const symbols = await symbolsOption(invocation, { range, today: todayOf(context) });
  if (symbols === undefined) {
    throw new UsageError(
      "Missing --symbols: the symbols to export (or --symbols-file FILE, --universe NAME)",
    );
  }
  const timeframe = timeframeOption(invocation.string("timeframe") ?? "1m");
  const format = invocation.string("format")?.toLowerCase();
  if (format === undefined) throw new UsageError("Missing --format: parquet, csv or arrow");
  const out = invocation.string("out");
  if (out === undefined) {
    throw new UsageError("Missing --out: the file (or with --per-symbol the folder) to write");
  }
  const columns = invocation.string("columns")?.split(",").map((name) => name.trim());
  const historyDir = historyDirOf(context);
  const started = Date.now();
  const progress = progressReporter({ status: context.status, err: context.err });
  const summary = await exportBars(
    dataDir,
    {
      symbols,
      timeframe,
      ...range,
      format: format as ExportFormat,
      columns,
      timeZone: _exportZone(invocation.string("tz")),
    },
    out,
    {
      perSymbol: invocation.flag("per-symbol"),
      protectedFiles: historyDir === undefined ? [] : [join(historyDir, METRICS_HISTORY_FILE)],
      ...queryEngineLimits(invocation),
      signal: context.signal,
      onProgress: (p) => {
        const elapsed = Date.now() - started;
        if (elapsed < _QUIET_MS) return;
        const files = p.totalFiles > 1 ? `, ${p.files}/${p.totalFiles} files` : "";
        progress(p.rows, p.totalRows, `${formatCount(p.rows)} bars${files}`, elapsed);
      },
    },
  ).finally(() => progress.finish()); // the bar ends with a newline, also after Ctrl-C
  if (context.json) {
    printJson(context, { dataDir, format, ...summary });
    return EXIT.ok;
  }
  const bytes = summary.files.reduce((n, file) => n + file.bytes, 0);
  const where = summary.files.length === 1
    ? summary.files[0].path
    : `${summary.files.length} files in ${out}`;
  context.err(`Exported ${formatCount(summary.rows)} bar(s) (${formatBytes(bytes)}) to ${where}`);
  return EXIT.ok;
}

/**
 * The IANA zone of `export --tz`: one by name, or a value of the other commands' `--tz` (a config
 * file's `tz` key sets both): exchange (New York), utc, local (this process's zone).
 */
function _exportZone(text: string | undefined): string | undefined {
  switch (text?.toLowerCase()) {
    case undefined:
      return undefined;
    case "exchange":
      return "America/New_York";
    case "utc":
      return "UTC";
    case "local":
      return Intl.DateTimeFormat().resolvedOptions().timeZone;
    default:
      return text;
  }
}
