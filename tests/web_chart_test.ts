/**
 * The symbol page's chart panel with `app.request()`: legend, overlays, compare, markers for
 * findings and quarantined bars, range buttons, and the coverage of aggregated timeframes.
 */
import assert from "node:assert/strict";
import { aggregateBars } from "../core/aggregate.ts";
import type { Bar } from "../core/types.ts";
import { generateFakeDay } from "../providers/mod.ts";
import { openStore } from "../storage/mod.ts";
import { rangeDates } from "../web/chart.ts";
import { fakeIngest, saveSpikeReport, testServer } from "./web_fixture.ts";

/** AAPL and MSFT 1m bars for 2024-03-04..08; PART with a 1m day 80% complete and its 5m bars. */
async function chartDataDir(): Promise<{ dir: string; warned: Bar; rejected: Bar }> {
  const dir = await Deno.makeTempDir({ prefix: "mp-web-chart-" });
  await fakeIngest(dir, { symbols: ["AAPL", "MSFT"], start: "2024-03-04", end: "2024-03-08" });
  const store = await openStore(dir, { command: "test" });
  try {
    // PART: every fifth regular minute of 2024-03-05 is missing (312 of 390), yet each 5m
    // bucket has bars, so the 5m day alone would look complete.
    const minutes = generateFakeDay("PART", "2024-03-05", { seed: 1, gapRate: 0 })
      .filter((bar) => bar.session !== "regular" || new Date(bar.ts).getUTCMinutes() % 5 !== 4);
    await store.writeBars(minutes, { jobId: "job-part" });
    await store.writeBars(aggregateBars(minutes, "5m"), { jobId: "job-part" });
    // A finding of a validation report, and a bar the quarantine holds.
    const day = generateFakeDay("AAPL", "2024-03-06", { seed: 0, gapRate: 0.01 });
    const warned = day.find((bar) => bar.session === "regular")!;
    const rejected = { ...day[day.length - 1], high: 1 };
    await saveSpikeReport(store.meta.db, dir, warned);
    await store.writeQuarantine([{ bar: rejected, rule: "high_low", detail: "high below low" }], {
      jobId: "job-quarantine",
    });
    return { dir, warned, rejected };
  } finally {
    store.close();
  }
}

function attribute(text: string, name: string): string {
  const value = new RegExp(`${name}="([^"]*)"`).exec(text)?.[1];
  assert.ok(value !== undefined, `no ${name} in the panel`);
  return value.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&#39;", "'");
}

Deno.test("chart panel: legend, overlays, compare, markers, ranges, 1m-based coverage", async (t) => {
  const { dir, warned, rejected } = await chartDataDir();
  const server = await testServer(dir);
  const app = server.app;
  const get = async (path: string, status = 200) => {
    const response = await app.request(path);
    const text = await response.text();
    assert.equal(response.status, status, `${path}: ${text.slice(0, 300)}`);
    return text;
  };
  try {
    await t.step(
      "the panel has a legend of the last bar, overlay toggles and range links",
      async () => {
        const text = await get("/symbols/AAPL?timeframe=1m&start=2024-03-08&end=2024-03-08");
        const legend = /<div class="chart-legend"[^>]*>(.*?)<\/div>/s.exec(text)?.[1] ?? "";
        const rows = JSON.parse(attribute(text, "data-bars")) as number[][];
        const last = rows[rows.length - 1];
        assert.match(legend, /data-field="close"><b>C<\/b>/);
        assert.ok(legend.includes(`>${last[4].toFixed(2)}<`), legend);
        assert.match(legend, /2024-03-08 \d\d:\d\d ET/);
        for (const overlay of ["vwap", "ma", "sessions", "markers"]) {
          assert.match(text, new RegExp(`data-overlay="${overlay}"`));
        }
        for (const range of ["1D", "5D", "1M", "6M", "YTD", "1Y", "All"]) {
          assert.match(
            text,
            new RegExp(
              `hx-get="/partials/chart\\?symbol=AAPL&amp;timeframe=1m&amp;range=${range}"`,
            ),
          );
        }
        // Sessions and VWAP travel with the bars: one letter and one value per row.
        const sessions = attribute(text, "data-sessions");
        assert.equal(sessions.length, rows.length);
        assert.match(sessions, /^p+r+o+$/);
        assert.equal((JSON.parse(attribute(text, "data-vwap")) as unknown[]).length, rows.length);
        assert.deepEqual(JSON.parse(attribute(text, "data-offsets")), [[0, -5 * 3600]]);
        assert.match(text, /name="compare"/);
        assert.match(text, /<link rel="stylesheet" href="\/assets\/chart\.css\?v=[0-9a-f]+">/);
        const css = await app.request("/assets/chart.css");
        assert.equal(css.status, 200);
        assert.match(await css.text(), /\.chart-legend/);
      },
    );

    await t.step("range buttons pick the dates back from the last stored bar", async () => {
      const panel = (range: string) =>
        get(`/partials/chart?symbol=AAPL&timeframe=1m&range=${range}`);
      const oneDay = await panel("1D");
      assert.match(oneDay, /data-start="2024-03-08" data-end="2024-03-08" data-range="1D"/);
      assert.match(oneDay, /class="active" data-range="1D"/);
      const fiveDays = await panel("5d");
      assert.match(fiveDays, /data-start="2024-03-04" data-end="2024-03-08" data-range="5D"/);
      // Not before the first stored bar.
      assert.match(await panel("YTD"), /data-start="2024-03-04" data-end="2024-03-08"/);
      assert.match(await get("/partials/chart?symbol=AAPL&range=2W", 400), /range/);
      assert.match(
        await get("/partials/chart?symbol=AAPL&range=1D&start=2024-03-04", 400),
        /range or start and end/,
      );
    });

    await t.step("compare draws a second symbol's closes; an unknown one is named", async () => {
      const text = await get("/partials/chart?symbol=AAPL&timeframe=1m&range=1D&compare=msft");
      const compare = JSON.parse(attribute(text, "data-compare")) as number[][];
      assert.ok(compare.length > 300, `${compare.length} compare rows`);
      assert.equal(attribute(text, "data-compare-symbol"), "MSFT");
      // UTC seconds of MSFT's 2024-03-08 bars.
      assert.equal(new Date(compare[0][0] * 1000).toISOString().slice(0, 10), "2024-03-08");
      // The range links keep the comparison.
      assert.match(text, /range=5D&amp;compare=MSFT/);
      const none = await get("/partials/chart?symbol=AAPL&timeframe=1m&compare=NVDA");
      assert.match(none, /No 1m bars of NVDA from 2024-03-04 to 2024-03-08 to compare with/);
      await get("/partials/chart?symbol=AAPL&compare=%3Cx%3E", 400);
    });

    await t.step("markers mark report findings and quarantined bars, linked", async () => {
      const text = await get("/partials/chart?symbol=AAPL&timeframe=1m&range=5D");
      const markers = JSON.parse(attribute(text, "data-markers")) as {
        t: number;
        kind: string;
        rule: string;
        href: string;
      }[];
      const warn = markers.find((m) => m.kind === "warn");
      assert.ok(warn, JSON.stringify(markers));
      assert.equal(warn.t, warned.ts / 1000);
      assert.equal(warn.rule, "volume_spike");
      assert.match(warn.href, /^\/validation\/v[\w-]+\?rule=volume_spike$/);
      const quarantined = markers.find((m) => m.kind === "quarantined");
      assert.ok(quarantined, JSON.stringify(markers));
      assert.equal(quarantined.t, rejected.ts / 1000);
      assert.equal(quarantined.href, "/jobs/job-quarantine");
      assert.match(text, /Findings in this range: 1 warn, 1 quarantined/);
      assert.ok(text.includes(`<a href="${warn.href}">`));
      // The link leads to the report.
      assert.match(await get(warn.href), /volume_spike/);
      // Another range holds none.
      const before = await get(
        "/partials/chart?symbol=AAPL&timeframe=1m&start=2024-03-04&end=2024-03-05",
      );
      assert.equal(attribute(before, "data-markers"), "[]");
    });

    await t.step("the 5m calendar shows a day whose 1m bars are partial as partial", async () => {
      const fiveMinute = await get("/symbols/PART?timeframe=5m");
      assert.match(
        fiveMinute,
        /class="day partial" title="2024-03-05: 78 of 78 [^"]*1m beneath: 312 of 390 \(partial\)/,
      );
      assert.match(fiveMinute, /days judged by their 1m bars/);
      const minute = await get("/symbols/PART?timeframe=1m");
      assert.match(minute, /class="day partial" title="2024-03-05: 312 of 390/);
      // Where 1m bars are complete, 5m days stay full.
      const aapl = await get("/symbols/AAPL?timeframe=1m");
      assert.match(aapl, /class="day full"[^>]*data-date="2024-03-05"/);
    });
  } finally {
    await server.close();
  }
});

Deno.test("rangeDates() counts back from the last stored date, not before the first", () => {
  const first = "2020-01-02";
  assert.deepEqual(rangeDates("1D", first, "2024-03-08"), ["2024-03-08", "2024-03-08"]);
  // Five trading days: Good Friday 2024-03-29 is skipped.
  assert.deepEqual(rangeDates("5D", first, "2024-04-03"), ["2024-03-27", "2024-04-03"]);
  assert.deepEqual(rangeDates("1M", first, "2024-03-31"), ["2024-03-01", "2024-03-31"]);
  assert.deepEqual(rangeDates("6M", first, "2024-03-08"), ["2023-09-09", "2024-03-08"]);
  assert.deepEqual(rangeDates("YTD", first, "2024-03-08"), ["2024-01-01", "2024-03-08"]);
  assert.deepEqual(rangeDates("1Y", first, "2024-02-29"), ["2023-03-01", "2024-02-29"]);
  assert.deepEqual(rangeDates("All", first, "2024-03-08"), [first, "2024-03-08"]);
  assert.deepEqual(rangeDates("1Y", "2024-01-02", "2024-03-08"), ["2024-01-02", "2024-03-08"]);
});
