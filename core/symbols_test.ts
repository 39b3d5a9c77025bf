import assert from "node:assert/strict";
import { UsageError } from "./errors.ts";
import { isValidSymbol, parseSymbols, parseSymbolsFile } from "./symbols.ts";

Deno.test("isValidSymbol() accepts plain tickers and share-class suffixes", () => {
  for (const symbol of ["AAPL", "F", "BRK.B", "BRK-B", "BF.B", "SPY", "GOOGL", "A1"]) {
    assert.ok(isValidSymbol(symbol), symbol);
  }
});

Deno.test("isValidSymbol() rejects injection, punctuation, lower case and leading digits", () => {
  for (
    const symbol of [
      "AAPL;DROP",
      "AAPL'",
      "A B",
      "",
      "aapl",
      "1ABC",
      ".B",
      "BRK.",
      "BRK..B",
      "A/B",
      "ABCDEFGHIJK",
    ]
  ) {
    assert.equal(isValidSymbol(symbol), false, symbol);
  }
});

Deno.test("parseSymbols() accepts BRK.B", () => {
  assert.deepEqual(parseSymbols("BRK.B"), ["BRK.B"]);
});

Deno.test("parseSymbols() upper-cases lower-case input", () => {
  assert.deepEqual(parseSymbols("aapl,brk.b,Msft"), ["AAPL", "BRK.B", "MSFT"]);
});

Deno.test("parseSymbols() splits on commas and whitespace and trims", () => {
  assert.deepEqual(parseSymbols(" AAPL , MSFT\tSPY\nQQQ"), ["AAPL", "MSFT", "SPY", "QQQ"]);
});

Deno.test("parseSymbols() rejects an empty item between, before or after commas", () => {
  for (const input of ["AAPL,,MSFT", ",AAPL", "AAPL,", "AAPL, ,MSFT"]) {
    assert.throws(
      () => parseSymbols(input),
      (error: unknown) =>
        error instanceof UsageError &&
        error.message === `Invalid --symbols "${input}": empty item between commas`,
      input,
    );
  }
});

Deno.test("parseSymbols() removes duplicates keeping the first occurrence's order", () => {
  assert.deepEqual(parseSymbols("MSFT,AAPL,msft,SPY,AAPL"), ["MSFT", "AAPL", "SPY"]);
});

Deno.test("parseSymbols() accepts a list of parts", () => {
  assert.deepEqual(parseSymbols(["AAPL,MSFT", "spy", "AAPL"]), ["AAPL", "MSFT", "SPY"]);
});

Deno.test("parseSymbols() rejects AAPL;DROP naming the bad symbol and the source", () => {
  assert.throws(
    () => parseSymbols("MSFT,AAPL;DROP"),
    (error: unknown) =>
      error instanceof UsageError &&
      error.message.startsWith('Invalid symbol "AAPL;DROP" in --symbols:'),
  );
});

Deno.test("parseSymbols() reports the bad symbol as the user typed it", () => {
  assert.throws(() => parseSymbols("aapl,msft$"), { name: "UsageError", message: /"msft\$"/ });
});

Deno.test("parseSymbols() rejects an empty list", () => {
  for (const input of ["", " ", ",, ,", []]) {
    assert.throws(
      () => parseSymbols(input),
      (error: unknown) =>
        error instanceof UsageError &&
        error.message === "Invalid --symbols: expected at least one symbol such as AAPL",
      JSON.stringify(input),
    );
  }
});

Deno.test("parseSymbols() names a custom source in errors", () => {
  assert.throws(() => parseSymbols("", "universe tech"), {
    message: "Invalid universe tech: expected at least one symbol such as AAPL",
  });
});

Deno.test("parseSymbolsFile() reads symbols per line, skipping comments and blank lines", () => {
  const text = [
    "# my universe",
    "AAPL MSFT  # big tech",
    "",
    "brk.b,SPY",
    "   # indented comment",
    "aapl",
    "QQQ",
  ].join("\n");
  assert.deepEqual(parseSymbolsFile(text, "universe.txt"), ["AAPL", "MSFT", "BRK.B", "SPY", "QQQ"]);
});

Deno.test("parseSymbolsFile() accepts Windows line endings", () => {
  assert.deepEqual(parseSymbolsFile("AAPL\r\nMSFT\r\n", "u.txt"), ["AAPL", "MSFT"]);
});

Deno.test("parseSymbolsFile() names the file when a symbol is bad", () => {
  assert.throws(() => parseSymbolsFile("AAPL\nAAPL;DROP\n", "universe.txt"), {
    name: "UsageError",
    message: /^Invalid symbol "AAPL;DROP" in symbols file universe\.txt:/,
  });
});

Deno.test("parseSymbolsFile() rejects a file with only comments", () => {
  assert.throws(() => parseSymbolsFile("# nothing yet\n\n", "empty.txt"), {
    name: "UsageError",
    message: "Invalid symbols file empty.txt: expected at least one symbol such as AAPL",
  });
});
