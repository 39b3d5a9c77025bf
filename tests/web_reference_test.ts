/**
 * The symbol master and universes over HTTP with `app.request()`: master fields on
 * `/api/symbols`, `/api/universes` and its point-in-time detail, the Universes page, the symbol
 * page's reference data, the reference tables in `POST /api/query`, and their OpenAPI entries.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ReferenceSnapshot, SymbolRecord } from "../core/reference.ts";
import { META_FILE, openMigrated, ReferenceStore } from "../storage/mod.ts";
import { snapshot, symbolRecord } from "./_reference.ts";
import { errorOf, fakeIngest, filledDataDir, jsonOf, testServer } from "./web_fixture.ts";

/** An active XNAS stock named "TICKER Corp", listed 2000-01-03. */
function record(ticker: string, fields: Partial<SymbolRecord> = {}): SymbolRecord {
  return symbolRecord(ticker, { name: `${ticker} Corp`, listDate: "2000-01-03", ...fields });
}

const META_FIELDS = { instrumentId: "BBG000MM2P62", figi: "BBG000MM2P62", name: "Meta Platforms" };

/**
 * fake: 2020-01-02 AAPL, FB, SPY (an ETF) and OLDCO; 2022-06-09 FB is META and OLDCO is gone.
 * polygon (partial): AAPL under another name, which wins (polygon comes first). MSFT is unknown.
 */
const SNAPSHOTS: ReferenceSnapshot[] = [
  snapshot("2020-01-02", [
    record("AAPL", { name: "Apple (fake)" }),
    record("FB", META_FIELDS),
    record("SPY", { exchange: "ARCX", assetClass: "etf", listDate: "1993-01-29" }),
    record("OLDCO", { exchange: "XNYS", listDate: "2010-05-03" }),
  ]),
  snapshot("2022-06-09", [
    record("AAPL", { name: "Apple (fake)" }),
    record("META", META_FIELDS),
    record("SPY", { exchange: "ARCX", assetClass: "etf", listDate: "1993-01-29" }),
  ]),
  snapshot("2024-01-02", [
    record("AAPL", {
      instrumentId: "BBG000B9XRY4",
      figi: "BBG000B9XRY4",
      name: "Apple Inc.",
      listDate: "1980-12-12",
    }),
  ], { source: "polygon", complete: false }),
];

/** The web fixture (AAPL, MSFT) plus META 1m bars of one day, the snapshots and two universes. */
async function referenceDataDir(): Promise<string> {
  const dir = await filledDataDir();
  await fakeIngest(dir, { symbols: ["META"], start: "2024-03-04", end: "2024-03-04" });
  const { db } = openMigrated(join(dir, META_FILE));
  try {
    const store = new ReferenceStore(db);
    store.applySnapshots(SNAPSHOTS);
    store.createUniverse("tech", {
      symbols: ["AAPL", "MSFT", "FB", "OLDCO"],
      description: "big tech",
      asOf: "2021-01-04",
    });
    store.removeMembers("tech", ["FB"], "2022-06-09");
    store.removeMembers("tech", ["OLDCO"], "2022-06-09");
    store.addMembers("tech", ["META"], "2022-06-09");
    store.createUniverse("etfs", {
      filter: "asset_class = 'etf' and status = 'active'",
      asOf: "2020-01-02",
    });
  } finally {
    db.close();
  }
  return dir;
}

interface CoverageJson {
  members: number;
  with_bars: number;
  timeframes: { timeframe: string; symbols: number; first_date: string; last_date: string }[];
}

interface UniverseJson {
  name: string;
  kind: string;
  filter: string | null;
  description: string | null;
  members: number;
  created_at: string;
  coverage: CoverageJson;
}

interface MemberJson {
  symbol: string;
  name: string | null;
  exchange: string | null;
  status: string | null;
  list_date: string | null;
  delist_date: string | null;
  source: string | null;
  stored_as: string;
  coverage: { timeframe: string; rows: number; first_date: string; last_date: string }[];
}

Deno.test("symbol master and universes over HTTP", async (t) => {
  const dir = await referenceDataDir();
  const server = await testServer(dir);
  const app = server.app;
  const get = (path: string, init?: RequestInit) => app.request(path, init);
  const page = async (path: string, status = 200, init?: RequestInit) => {
    const response = await app.request(path, init);
    const text = await response.text();
    assert.equal(response.status, status, `${path}: ${text.slice(0, 300)}`);
    assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
    assert.doesNotMatch(text, /\sstyle="|\son[a-z]+="|<script\b[^>]*>[^<]+<\/script>/);
    return text;
  };
  try {
    await t.step("GET /api/symbols adds the master fields, null where it is unknown", async () => {
      const body = await jsonOf<{ symbols: (Record<string, unknown> & { symbol: string })[] }>(
        await get("/api/symbols"),
      );
      const bySymbol = Object.fromEntries(body.symbols.map((s) => [s.symbol, s]));
      assert.deepEqual(Object.keys(bySymbol), ["AAPL", "META", "MSFT"]);
      const pick = (s: Record<string, unknown>) => ({
        name: s.name,
        exchange: s.exchange,
        asset_class: s.asset_class,
        status: s.status,
        list_date: s.list_date,
        delist_date: s.delist_date,
        figi: s.figi,
        source: s.source,
      });
      // Polygon's row wins over the fake source's for AAPL.
      assert.deepEqual(pick(bySymbol.AAPL), {
        name: "Apple Inc.",
        exchange: "XNAS",
        asset_class: "stock",
        status: "active",
        list_date: "1980-12-12",
        delist_date: null,
        figi: "BBG000B9XRY4",
        source: "polygon",
      });
      assert.equal(bySymbol.META.name, "Meta Platforms");
      assert.deepEqual(Object.values(pick(bySymbol.MSFT)), Array(8).fill(null));
      // The stored-data fields are still there.
      assert.ok(Number(bySymbol.AAPL.rows) > 0);
      assert.ok(Array.isArray(bySymbol.AAPL.timeframes));
    });

    await t.step("GET /api/symbols/{symbol} adds them too", async () => {
      const body = await jsonOf<Record<string, unknown>>(await get("/api/symbols/meta"));
      assert.equal(body.symbol, "META");
      assert.equal(body.figi, "BBG000MM2P62");
      assert.equal(body.source, "fake");
      assert.ok(Array.isArray(body.coverage));
      const msft = await jsonOf<Record<string, unknown>>(await get("/api/symbols/MSFT"));
      assert.equal(msft.name, null);
      assert.equal(msft.exchange, null);
    });

    await t.step("GET /api/universes lists them with members today and coverage", async () => {
      const body = await jsonOf<{ universes: UniverseJson[] }>(await get("/api/universes"));
      assert.deepEqual(body.universes.map((u) => [u.name, u.kind, u.members]), [
        ["etfs", "filter", 1],
        ["tech", "list", 3],
      ]);
      const [etfs, tech] = body.universes;
      assert.equal(etfs.filter, "asset_class = 'etf' and status = 'active'");
      assert.deepEqual(etfs.coverage, { members: 1, with_bars: 0, timeframes: [] });
      assert.equal(tech.filter, null);
      assert.equal(tech.description, "big tech");
      assert.match(tech.created_at, /^\d{4}-\d{2}-\d{2}T/);
      // Today's members AAPL, META, MSFT: all have 1m bars, only AAPL has 1d bars.
      assert.deepEqual(tech.coverage, {
        members: 3,
        with_bars: 3,
        timeframes: [
          { timeframe: "1m", symbols: 3, first_date: "2024-03-04", last_date: "2024-03-08" },
          { timeframe: "1d", symbols: 1, first_date: "2024-01-02", last_date: "2024-03-28" },
        ],
      });
      await errorOf(await get("/api/universes?as_of=2024-01-02"), 400);
    });

    await t.step("GET /api/universes/{name}?as_of= answers what it held then", async () => {
      const then = await jsonOf<UniverseJson & { as_of: string; members: MemberJson[] }>(
        await get("/api/universes/TECH?as_of=2021-06-30"),
      );
      assert.equal(then.name, "tech");
      assert.equal(then.as_of, "2021-06-30");
      assert.deepEqual(
        then.members.map((m) => [m.symbol, m.stored_as, m.status, m.source]),
        [
          ["AAPL", "AAPL", "active", "fake"],
          ["FB", "META", "active", "fake"],
          ["MSFT", "MSFT", null, null],
          ["OLDCO", "OLDCO", "active", "fake"],
        ],
      );
      const fb = then.members[1];
      assert.equal(fb.name, "Meta Platforms");
      assert.equal(fb.list_date, "2000-01-03");
      // FB's bars are stored under its current ticker META.
      assert.deepEqual(fb.coverage, [
        {
          timeframe: "1m",
          rows: fb.coverage[0]?.rows,
          first_date: "2024-03-04",
          last_date: "2024-03-04",
        },
      ]);
      assert.ok(fb.coverage[0].rows > 0);
      assert.deepEqual(then.members[3].coverage, []);
      assert.equal(then.coverage.members, 4);
      assert.equal(then.coverage.with_bars, 3);

      // As of 2023: META instead of FB, OLDCO gone (and delisted on its own).
      const later = await jsonOf<{ members: MemberJson[] }>(
        await get("/api/universes/tech?as_of=2023-01-03"),
      );
      assert.deepEqual(later.members.map((m) => m.symbol), ["AAPL", "META", "MSFT"]);
      // A list member kept after its ticker changed is shown with the instrument's row then.
      const { db } = openMigrated(join(dir, META_FILE));
      try {
        new ReferenceStore(db).createUniverse("kept", { symbols: ["FB"], asOf: "2021-01-04" });
      } finally {
        db.close();
      }
      const kept = await jsonOf<{ members: MemberJson[] }>(
        await get("/api/universes/kept?as_of=2023-01-03"),
      );
      assert.deepEqual(
        kept.members.map((m) => [m.symbol, m.name, m.stored_as, m.coverage.length]),
        [["FB", "Meta Platforms", "META", 1]],
      );
      // The filter universe point in time: SPY is an active ETF since the first snapshot.
      const etfs = await jsonOf<{ kind: string; members: MemberJson[] }>(
        await get("/api/universes/etfs?as_of=2019-12-31"),
      );
      assert.deepEqual(etfs.members, []);
      const today = await jsonOf<{ as_of: string; members: MemberJson[] }>(
        await get("/api/universes/etfs"),
      );
      assert.match(today.as_of, /^\d{4}-\d{2}-\d{2}$/);
      assert.deepEqual(
        today.members.map((m) => [m.symbol, m.exchange, m.list_date]),
        [["SPY", "ARCX", "1993-01-29"]],
      );
    });

    await t.step("bad as_of is a 400 naming it; unknown universe 404; bad name 400", async () => {
      assert.match(
        (await errorOf(await get("/api/universes/tech?as_of=2024-13-01"), 400)).message,
        /^Invalid as_of "2024-13-01": /,
      );
      assert.match(
        (await errorOf(await get("/api/universes/tech?as_of=yesterday"), 400)).message,
        /^Invalid as_of "yesterday": expected YYYY-MM-DD/,
      );
      const unknown = await errorOf(await get("/api/universes/tec"), 404);
      assert.equal(unknown.code, "not_found");
      assert.match(unknown.message, /No universe "tec" \(did you mean "tech"\?\)/);
      assert.match(
        (await errorOf(await get("/api/universes/9lives"), 400)).message,
        /^Invalid universe name "9lives"/,
      );
      assert.match(
        (await errorOf(await get("/api/universes/tech?asof=2024-01-02"), 400)).message,
        /^Unknown parameter "asof" \(did you mean "as_of"\?\): expected as_of/,
      );
    });

    await t.step("POST /api/query joins bars with the reference tables", async () => {
      const body = await jsonOf<{ rows: unknown[][] }>(
        await app.request("/api/query", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            sql: `SELECT b.symbol, s.name, count(DISTINCT b.trading_date) AS days
              FROM bars_1m b JOIN symbols s ON b.symbol = s.ticker AND s.source = 'fake'
              GROUP BY ALL ORDER BY 1`,
          }),
        }),
      );
      assert.deepEqual(body.rows, [["AAPL", "Apple (fake)", 5], ["META", "Meta Platforms", 1]]);
      const members = await jsonOf<{ rows: unknown[][] }>(
        await app.request("/api/query", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            sql: "SELECT name, kind, members FROM universes WHERE name <> 'kept' ORDER BY 1",
          }),
        }),
      );
      assert.deepEqual(members.rows, [["etfs", "filter", 1], ["tech", "list", 3]]);
      const refused = await errorOf(
        await app.request("/api/query", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ sql: "DELETE FROM symbols" }),
        }),
        400,
      );
      assert.equal(refused.code, "query_rejected");
    });

    await t.step("the Universes page lists them; it is in the navigation", async () => {
      const text = await page("/universes");
      assert.match(text, /<a href="\/universes" class="active">Universes<\/a>/);
      assert.match(text, /<h1>Universes<\/h1>/);
      assert.match(text, /href="\/universes\/tech">tech<\/a>/);
      assert.match(text, /<code>asset_class = &#39;etf&#39; and status = &#39;active&#39;<\/code>/);
      assert.match(text, /1m: 3\/3, 2024-03-04\.\.2024-03-08/);
      assert.match(await page("/"), /<a href="\/universes" class="">Universes<\/a>/);
    });

    await t.step("a universe's page shows members on a date with an as-of input", async () => {
      const text = await page("/universes/tech?as_of=2021-06-30");
      assert.match(text, /<h1>Universe tech<\/h1>/);
      assert.match(text, /<input type="date" name="as_of" value="2021-06-30"/);
      assert.match(text, /hx-get="\/partials\/universes\/tech"/);
      assert.match(text, /<tr data-symbol="FB">/);
      assert.match(text, /href="\/symbols\/META">FB<\/a>\s*<span class="small muted">\(now META\)/);
      assert.match(text, /<tr data-symbol="OLDCO">/);
      const fragment = await page("/partials/universes/tech?as_of=2023-01-03", 200, {
        headers: { "HX-Request": "true" },
      });
      assert.doesNotMatch(fragment, /<html/);
      assert.match(fragment, /data-as-of="2023-01-03"/);
      assert.match(fragment, /<tr data-symbol="META">/);
      assert.doesNotMatch(fragment, /data-symbol="FB"/);
      assert.match(
        await page("/universes/tech?as_of=2024-02-30", 400),
        /Invalid as_of &quot;2024-02-30&quot;/,
      );
      assert.match(await page("/universes/nope", 404), /No universe &quot;nope&quot;/);
    });

    await t.step("the symbol page and overview show the master fields", async () => {
      const aapl = await page("/symbols/AAPL");
      assert.match(aapl, /<h1>AAPL\s*<span class="muted small">Apple Inc\.<\/span>\s*<\/h1>/);
      assert.match(aapl, /<th>exchange<\/th>\s*<td>XNAS<\/td>/);
      assert.match(aapl, /<th>listed<\/th>\s*<td>1980-12-12<\/td>/);
      const meta = await page("/symbols/META");
      assert.match(meta, /<h3>Ticker history<\/h3>/);
      assert.match(
        meta,
        /id="symbol-summary">XNAS · stock · active · listed 2000-01-03 · formerly FB<\/p>/,
      );
      assert.match(meta, /<td>2020-01-02<\/td>\s*<td>2022-06-09<\/td>\s*<td>FB<\/td>/);
      const msft = await page("/symbols/MSFT");
      assert.match(msft, /The symbol master does not know MSFT/);
      const overview = await page("/");
      assert.match(overview, /<th>name<\/th>/);
      assert.match(overview, /Apple Inc\./);
      const search = await page("/partials/symbols?q=ME", 200, {
        headers: { "HX-Request": "true" },
      });
      assert.match(search, /Meta Platforms/);
    });

    await t.step("OpenAPI documents the new and changed endpoints", async () => {
      const doc = await jsonOf<{
        paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>>;
        components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
      }>(await get("/api/openapi.json"));
      for (const path of ["/universes", "/universes/{name}", "/partials/universes/{name}"]) {
        assert.ok(doc.paths[path]?.get, path);
      }
      const params = (path: string) =>
        (doc.paths[path].get.parameters ?? []).map((p) => `${p.in}:${p.name}`);
      assert.deepEqual(params("/api/universes"), []);
      assert.deepEqual(params("/api/universes/{name}"), ["path:name", "query:as_of"]);
      assert.deepEqual(params("/universes/{name}"), ["path:name", "query:as_of", "query:tz"]);
      const symbol = Object.keys(doc.components.schemas.Symbol.properties ?? {});
      for (
        const field of [
          "name",
          "exchange",
          "asset_class",
          "status",
          "list_date",
          "delist_date",
          "figi",
          "source",
        ]
      ) {
        assert.ok(symbol.includes(field), field);
      }
      assert.deepEqual(
        Object.keys(doc.components.schemas.Universe.properties ?? {}),
        [
          "name",
          "kind",
          "filter",
          "description",
          "members",
          "created_at",
          "updated_at",
          "coverage",
        ],
      );
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
