/**
 * Static assets embedded with text imports, so a compiled binary needs no files beside it.
 * lightweight-charts' package `exports` hides its standalone build, so that one is imported by
 * its path under `node_modules/` (created by Deno from the import map, `nodeModulesDir: auto`).
 *
 * @module
 */
import htmxJs from "htmx.org/dist/htmx.min.js" with { type: "text" };
import chartsJs from "../node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js" with {
  type: "text",
};
import appJs from "./static/app.js" with { type: "text" };
import consoleJs from "./static/console.js" with { type: "text" };
import pagesJs from "./static/pages.js" with { type: "text" };
import appCss from "./static/app.css" with { type: "text" };
import chartCss from "./static/chart.css" with { type: "text" };
import consoleCss from "./static/console.css" with { type: "text" };
import faviconSvg from "./static/favicon.svg" with { type: "text" };

/** One embedded asset. */
export interface Asset {
  body: string;
  type: string;
}

/** The embedded assets by the name they are served under, `/assets/<name>`. */
export const ASSETS: Readonly<Record<string, Asset>> = Object.freeze({
  "htmx.min.js": { body: htmxJs, type: "text/javascript; charset=utf-8" },
  "lightweight-charts.js": { body: chartsJs, type: "text/javascript; charset=utf-8" },
  "app.js": { body: appJs, type: "text/javascript; charset=utf-8" },
  "console.js": { body: consoleJs, type: "text/javascript; charset=utf-8" },
  "pages.js": { body: pagesJs, type: "text/javascript; charset=utf-8" },
  "app.css": { body: appCss, type: "text/css; charset=utf-8" },
  "chart.css": { body: chartCss, type: "text/css; charset=utf-8" },
  "console.css": { body: consoleCss, type: "text/css; charset=utf-8" },
  "favicon.svg": { body: faviconSvg, type: "image/svg+xml" },
});

/** A prepared asset: bytes, a gzip copy made on first use, and a content hash for URLs and ETags. */
export interface ServedAsset {
  type: string;
  bytes: Uint8Array;
  hash: string;
  gzip(): Promise<Uint8Array>;
}

/** Prepares the assets for serving (hashes now, gzip lazily); one per app. */
export function prepareAssets(): Map<string, ServedAsset> {
  const out = new Map<string, ServedAsset>();
  for (const [name, asset] of Object.entries(ASSETS)) {
    const bytes = new TextEncoder().encode(asset.body);
    let gzipped: Promise<Uint8Array> | undefined;
    out.set(name, {
      type: asset.type,
      bytes,
      hash: _fnv1a(bytes),
      gzip: () =>
        gzipped ??= new Response(
          new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip")),
        ).bytes(),
    });
  }
  return out;
}

/** 64-bit FNV-1a as 16 hex digits: a cache-busting tag, not a security hash. */
function _fnv1a(bytes: Uint8Array): string {
  let hash = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  const mask = 0xffffffffffffffffn;
  // Folding 8 bytes at a time keeps this fast enough for 200 KB at startup.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let index = 0;
  for (; index + 8 <= bytes.length; index += 8) {
    hash = ((hash ^ view.getBigUint64(index, true)) * prime) & mask;
  }
  for (; index < bytes.length; index++) hash = ((hash ^ BigInt(bytes[index])) * prime) & mask;
  return hash.toString(16).padStart(16, "0");
}
