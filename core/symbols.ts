import { UsageError } from "./errors.ts";

/** Ticker syntax: letters and digits, optionally with `.` or `-` share-class suffixes (`BRK.B`). */
const SYMBOL_PATTERN = /^[A-Z][A-Z0-9]{0,9}(?:[.-][A-Z0-9]{1,4})?$/;

/** Most symbols one list or file may hold (the whole US market is about 12,000). */
export const MAX_SYMBOLS = 50_000;

/** Largest symbols file read, in bytes. */
export const MAX_SYMBOLS_FILE_BYTES = 4 * 2 ** 20;

/** Whether `symbol` (already upper-case) is a valid ticker. */
export function isValidSymbol(symbol: string): boolean {
  return SYMBOL_PATTERN.test(symbol);
}

/**
 * Parse a comma- or whitespace-separated symbol list: trims, upper-cases, drops duplicates and
 * keeps the given order. Throws a {@link UsageError} naming the first bad symbol.
 */
export function parseSymbols(input: string | readonly string[], source = "--symbols"): string[] {
  for (const text of typeof input === "string" ? [input] : input) {
    const hasSymbols = text.replace(/[\s,]/g, "") !== "";
    if (hasSymbols && (/,\s*,/.test(text) || /^\s*,|,\s*$/.test(text))) {
      throw new UsageError(`Invalid ${source} "${text}": empty item between commas`);
    }
  }
  const parts = (typeof input === "string" ? [input] : input)
    .flatMap((part) => part.split(/[\s,]+/))
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (parts.length === 0) {
    throw new UsageError(`Invalid ${source}: expected at least one symbol such as AAPL`);
  }
  const seen = new Set<string>();
  for (const part of parts) {
    if (seen.size >= MAX_SYMBOLS && !seen.has(part.toUpperCase())) {
      throw new UsageError(
        `Too many symbols in ${source}: more than the limit of ${
          MAX_SYMBOLS.toLocaleString("en-US")
        }`,
      );
    }
    const symbol = part.toUpperCase();
    if (!isValidSymbol(symbol)) {
      throw new UsageError(
        `Invalid symbol "${part}" in ${source}: expected a ticker of letters and digits with an optional .X or -X class suffix, like AAPL or BRK.B`,
      );
    }
    seen.add(symbol);
  }
  return [...seen];
}

/** Parse a symbols file: one or more symbols per line, `#` starts a comment. */
export function parseSymbolsFile(text: string, path: string): string[] {
  const lines = text.split(/\r?\n/).map((line) => line.replace(/#.*/, ""));
  return parseSymbols(lines.filter((line) => line.trim() !== "").join(" "), `symbols file ${path}`);
}
