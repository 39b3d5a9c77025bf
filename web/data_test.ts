import assert from "node:assert/strict";
import { resolve } from "node:path";
import { openStore, runQuery } from "../storage/mod.ts";
import { liveFile, truncateFile } from "../tests/_corrupt.ts";
import { fakeIngest } from "../tests/web_fixture.ts";
import { openDataSource } from "./data.ts";

Deno.test("openDataSource() lists an unreadable file, serves the rest, and sees the file again once it is replaced", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "mp-web-data-" });
  const store = await openStore(dataDir, { command: "test" });
  try {
    await fakeIngest(dataDir, {
      symbols: ["AAPL", "MSFT"],
      start: "2024-03-04",
      end: "2024-03-05",
    });
    const aapl = await liveFile(dataDir, "1m", "AAPL");
    const good = await Deno.readFile(aapl);
    // AAPL is the file DuckDB would take the view's columns from.
    await truncateFile(aapl);
    const data = await openDataSource(dataDir, store.meta, { checkEveryMs: 0, maxAgeMs: 0 });
    try {
      const count = () =>
        data.withEngine(async (engine) =>
          (await runQuery(engine, "SELECT symbol FROM bars_1m GROUP BY symbol ORDER BY symbol"))
            .rows.flat()
        );
      assert.deepEqual((await data.series()).map((s) => s.symbol), ["MSFT"]);
      assert.deepEqual((await data.corruptFiles()).map((f) => [f.symbol, f.path]), [[
        "AAPL",
        resolve(aapl),
      ]]);
      assert.deepEqual(await count(), ["MSFT"]);

      // Restored (an ingest after repair, say): the next read sees it, views included.
      await Deno.writeFile(aapl, good);
      assert.deepEqual((await data.series()).map((s) => s.symbol), ["AAPL", "MSFT"]);
      assert.deepEqual(await data.corruptFiles(), []);
      assert.deepEqual(await count(), ["AAPL", "MSFT"]);
    } finally {
      data.close();
    }
  } finally {
    store.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
