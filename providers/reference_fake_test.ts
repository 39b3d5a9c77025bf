import assert from "node:assert/strict";
import { UsageError } from "../core/errors.ts";
import { ASSET_CLASSES, checkSnapshot } from "../core/reference.ts";
import { isValidSymbol } from "../core/symbols.ts";
import { fetchReference } from "./reference.ts";
import { FAKE_REFERENCE_DATES } from "./reference_fake.ts";

const DEMO = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY", "QQQ", "BRK.B"];

Deno.test("fetchReference(fake) returns the snapshots dated on or before asOf, oldest first", async () => {
  const all = await fetchReference("fake", { asOf: "2030-01-01", env: {} });
  assert.deepEqual(all.map((s) => s.asOf), [...FAKE_REFERENCE_DATES]);
  assert.ok(all.every((s) => s.source === "fake" && s.complete && s.skipped === 0));
  for (const snapshot of all) checkSnapshot(snapshot);
  const some = await fetchReference("fake", { asOf: "2022-06-09", env: {} });
  assert.deepEqual(some.map((s) => s.asOf), ["2020-01-02", "2022-06-09"]);
  assert.deepEqual(await fetchReference("fake", { asOf: "2019-12-31", env: {} }), []);
});

Deno.test("fetchReference(fake) is deterministic", async () => {
  const a = await fetchReference("fake", { asOf: "2030-01-01", env: {} });
  const b = await fetchReference("fake", { asOf: "2030-01-01", env: {} });
  assert.deepEqual(a, b);
});

Deno.test("fetchReference(fake) renames FB to META on 2022-06-09 with one FIGI", async () => {
  const [first, second] = await fetchReference("fake", { asOf: "2022-06-09", env: {} });
  const fb = first.records.find((r) => r.ticker === "FB")!;
  const meta = second.records.find((r) => r.ticker === "META")!;
  assert.equal(fb.figi, "BBG000MM2P62");
  assert.equal(meta.instrumentId, fb.instrumentId);
  assert.equal(meta.figi, fb.figi);
  assert.notEqual(meta.name, fb.name);
  assert.equal(second.records.find((r) => r.ticker === "FB"), undefined);
  assert.equal(first.records.find((r) => r.ticker === "META"), undefined);
});

Deno.test("fetchReference(fake) delists OLDCO on 2024-03-15 and lists NEWCO on 2024-09-16", async () => {
  const snapshots = await fetchReference("fake", { asOf: "2024-12-31", env: {} });
  const has = (date: string, ticker: string) =>
    snapshots.find((s) => s.asOf === date)!.records.some((r) => r.ticker === ticker);
  assert.ok(has("2022-06-09", "OLDCO"));
  assert.ok(!has("2024-03-15", "OLDCO"));
  assert.ok(!has("2024-03-15", "NEWCO"));
  const newco = snapshots[3].records.find((r) => r.ticker === "NEWCO")!;
  assert.equal(newco.listDate, "2024-09-16");
  assert.equal(newco.status, "active");
});

Deno.test("fetchReference(fake) keeps the demo symbols active on every date and fields plausible", async () => {
  const snapshots = await fetchReference("fake", { asOf: "2030-01-01", env: {} });
  for (const symbol of DEMO.filter((s) => s !== "META")) {
    for (const s of snapshots) {
      assert.equal(
        s.records.find((r) => r.ticker === symbol)?.status,
        "active",
        `${symbol} ${s.asOf}`,
      );
    }
  }
  const classes = new Set(snapshots[0].records.map((r) => r.assetClass));
  for (const c of ["stock", "etf", "adr"]) assert.ok(classes.has(c as never), c);
  for (const r of snapshots.flatMap((s) => s.records)) {
    assert.ok(isValidSymbol(r.ticker), r.ticker);
    assert.ok((ASSET_CLASSES as readonly string[]).includes(r.assetClass));
    assert.match(r.exchange!, /^(XNAS|XNYS|ARCX)$/);
    assert.match(r.figi!, /^BBG[0-9A-Z]{9}$/);
    assert.match(r.cik!, /^\d{10}$/);
    assert.match(r.listDate!, /^\d{4}-\d{2}-\d{2}$/);
  }
  assert.equal(snapshots[0].records.find((r) => r.ticker === "SPY")!.assetClass, "etf");
  assert.equal(snapshots[0].records.find((r) => r.ticker === "BABA")!.assetClass, "adr");
});

Deno.test("fetchReference() rejects a bad --as-of, an unknown source and files for a non-file source", async () => {
  await assert.rejects(
    () => fetchReference("fake", { asOf: "2024-13-01", env: {} }),
    (e) =>
      e instanceof UsageError &&
      /Invalid --as-of "2024-13-01": expected YYYY-MM-DD/.test(e.message),
  );
  await assert.rejects(
    () => fetchReference("fak" as never, { asOf: "2024-01-02", env: {} }),
    (e) =>
      e instanceof UsageError &&
      /Unknown reference source "fak".*did you mean "fake"/.test(e.message),
  );
  await assert.rejects(
    () => fetchReference("fake", { asOf: "2024-01-02", env: {}, texts: [{ name: "a", text: "" }] }),
    (e) => e instanceof UsageError && /--source nasdaq only/.test(e.message),
  );
});
