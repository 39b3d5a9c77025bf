/**
 * Telling a corrupt Parquet file (truncated, bad zstd, not Parquet at all) from other read
 * failures: a file is corrupt when DuckDB cannot read its footer or every value of every column.
 * Readers and the partition writer call this only after a read failed, so the common path costs
 * nothing; `marketpipe repair` calls it on every file.
 *
 * @module
 */
import { type DuckDBConnection, VARCHAR } from "@duckdb/node-api";
import { CorruptFileError, errorMessage } from "../core/errors.ts";
import { ifFound } from "./fs.ts";

/** A stored file that cannot be read, with what the reader said. */
export interface CorruptFile {
  path: string;
  reason: string;
}

/**
 * Why the Parquet file at `path` cannot be read, or `undefined` when it reads: its footer
 * (`parquet_metadata`), then (unless `footerOnly`) a full scan hashing every column, so a damaged
 * page of any column is found (`count(*)` alone is answered from the footer). A file that vanished
 * is not corrupt.
 */
export async function checkParquetFile(
  connection: DuckDBConnection,
  path: string,
  options: { footerOnly?: boolean } = {},
): Promise<string | undefined> {
  const checks = [
    "SELECT count(*) FROM parquet_metadata($path::VARCHAR)",
    "SELECT count(*), sum(hash(COLUMNS(*))) FROM read_parquet($path::VARCHAR, hive_partitioning = false)",
  ];
  for (const sql of options.footerOnly ? checks.slice(0, 1) : checks) {
    const prepared = await connection.prepare(sql);
    try {
      prepared.bind({ path }, { path: VARCHAR });
      await prepared.run();
    } catch (error) {
      if (await ifFound(Deno.lstat(path)) === undefined) return undefined;
      const reason = readerReason(error);
      // Not the file's fault: try again later rather than call it corrupt.
      if (/^(Interrupt|Out of Memory)/i.test(reason)) throw error;
      return reason;
    } finally {
      prepared.destroySync();
    }
  }
  return undefined;
}

/** The files among `paths` that cannot be read, in order. */
export async function findUnreadableFiles(
  connection: DuckDBConnection,
  paths: readonly string[],
): Promise<CorruptFile[]> {
  const out: CorruptFile[] = [];
  for (const path of paths) {
    const reason = await checkParquetFile(connection, path);
    if (reason !== undefined) out.push({ path, reason });
  }
  return out;
}

/**
 * The one-line message for a corrupt file: `<action> <path>: cannot read the stored file (corrupt
 * Parquet: <reason>); run "marketpipe repair" to move it aside`.
 */
export function corruptFileMessage(action: string, file: CorruptFile): string {
  return `${action} ${file.path}: cannot read the stored file (corrupt Parquet: ${file.reason}); run "marketpipe repair" to move it aside`;
}

/**
 * After a read of `paths` failed with `error`: a {@link CorruptFileError} naming the first file
 * that cannot be read (`shown` maps its path for the message), or `undefined` when all of them
 * read, so the failure was something else.
 */
export async function corruptFileError(
  connection: DuckDBConnection,
  paths: readonly string[],
  error: unknown,
  action: string,
  shown: (path: string) => string = (path) => path,
): Promise<CorruptFileError | undefined> {
  const [first] = await findUnreadableFiles(connection, paths);
  if (first === undefined) return undefined;
  return new CorruptFileError(
    corruptFileMessage(action, { path: shown(first.path), reason: first.reason }),
    first,
    { cause: error },
  );
}

/** DuckDB's message without the `LINE 1: ...` context it appends, on one line. */
export function readerReason(error: unknown): string {
  return errorMessage(error).split("\n")[0].trim();
}
