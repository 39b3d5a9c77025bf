import assert from "node:assert/strict";
import type { QueryResult } from "./query.ts";
import { formatCsv, formatJson, formatTable } from "./query_format.ts";

Deno.test("formatTable(), formatCsv() and formatJson() render a small result", () => {
  const result: QueryResult = {
    columns: [
      { name: "symbol", type: "VARCHAR" },
      { name: "n", type: "BIGINT" },
      { name: "close", type: "DOUBLE" },
      { name: "note", type: "VARCHAR" },
    ],
    rows: [
      ["AAPL", 3, 171.25, 'said "hi", left'],
      ["MSFT", 12, null, "two\nlines"],
    ],
    rowCount: 2,
    truncated: false,
  };
  assert.equal(
    formatTable(result),
    [
      "symbol   n   close  note",
      "------  --  ------  ---------------",
      'AAPL     3  171.25  said "hi", left',
      "MSFT    12    NULL  two\\nlines",
      "(2 rows)",
      "",
    ].join("\n"),
  );
  assert.equal(
    formatTable({ ...result, rows: result.rows.slice(0, 1), rowCount: 1, truncated: true }),
    [
      "symbol  n   close  note",
      "------  -  ------  ---------------",
      'AAPL    3  171.25  said "hi", left',
      "(1 row shown, more available: raise --limit)",
      "",
    ].join("\n"),
  );
  assert.equal(
    formatCsv(result),
    'symbol,n,close,note\nAAPL,3,171.25,"said ""hi"", left"\nMSFT,12,,"two\nlines"\n',
  );
  assert.equal(
    formatJson(result),
    "[\n" +
      '  {"symbol":"AAPL","n":3,"close":171.25,"note":"said \\"hi\\", left"},\n' +
      '  {"symbol":"MSFT","n":12,"close":null,"note":"two\\nlines"}\n' +
      "]\n",
  );
  const empty = { ...result, rows: [], rowCount: 0 };
  assert.equal(formatJson(empty), "[]\n");
  assert.equal(formatCsv(empty), "symbol,n,close,note\n");
  assert.match(formatTable(empty), /\n\(0 rows\)\n$/);
});
