/**
 * Shared set-up of the browser tests: Debian chromium driven by playwright-core, with a fresh
 * profile per launch, and small page helpers (polling a condition, counting drawn pixels, the log
 * of what went wrong in the page). Screenshots go to {@link OUTPUT}.
 */
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium, type Page, type Response } from "playwright-core";

/** Where the browser tests save their screenshots (tests/output/, git-ignored). */
export const OUTPUT = fileURLToPath(new URL("./output/", import.meta.url));

/** Chromium's flags for a quiet headless run that talks to nothing but the test server. */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** `chromium` on PATH, as `.ci/run` looks it up (`command -v chromium`), else Debian's path. */
export async function findChromium(): Promise<string> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    const path = `${dir}/chromium`;
    const info = await Deno.stat(path).catch(() => undefined);
    if (info?.isFile && (info.mode ?? 0) & 0o111) return path;
  }
  return "/usr/bin/chromium";
}

/** A launched browser: its context, its first page, and `close`, which also removes the profile. */
export interface LaunchedBrowser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/**
 * Launches headless chromium with a fresh temp profile and a `width` x `height` viewport (and the
 * browser's time zone `timezoneId` when given); also makes {@link OUTPUT}. Throws, naming the
 * path, when chromium is missing.
 */
export async function launchBrowser(
  options: { width: number; height: number; timezoneId?: string },
): Promise<LaunchedBrowser> {
  const executablePath = await findChromium();
  await Deno.stat(executablePath).catch(() => {
    throw new Error(`${executablePath} is missing: apt-get install -y chromium`);
  });
  await Deno.mkdir(OUTPUT, { recursive: true });
  const profile = await Deno.makeTempDir({ prefix: "mp-chromium-" });
  const removeProfile = () => Deno.remove(profile, { recursive: true }).catch(() => {});
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: options.width, height: options.height },
    timezoneId: options.timezoneId,
    args: CHROMIUM_ARGS,
  }).catch(async (error) => {
    await removeProfile();
    throw error;
  });
  return {
    context,
    page: context.pages()[0] ?? await context.newPage(),
    close: async () => {
      await context.close();
      await removeProfile();
    },
  };
}

/** What {@link watchPage} records: problems in the page, and requests to other origins. */
export interface PageLog {
  problems: string[];
  foreign: string[];
}

/**
 * Records the page's console errors and warnings, uncaught errors and HTTP responses of 400 or
 * more as `problems`; with `origin`, also failed requests (as problems) and requests outside
 * `origin` (as `foreign`). `skipConsole` and `skipResponse` return true for what a test expects
 * (and may count it).
 */
export function watchPage(
  page: Page,
  options: {
    origin?: string;
    skipConsole?: (text: string) => boolean;
    skipResponse?: (response: Response) => boolean;
  } = {},
): PageLog {
  const log: PageLog = { problems: [], foreign: [] };
  page.on("console", (message) => {
    if (message.type() !== "error" && message.type() !== "warning") return;
    if (options.skipConsole?.(message.text())) return;
    log.problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on("pageerror", (error) => log.problems.push(`page error: ${error.message}`));
  const origin = options.origin;
  if (origin !== undefined) {
    page.on(
      "requestfailed",
      (request) => log.problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`),
    );
    page.on("request", (request) => {
      if (!request.url().startsWith(origin)) log.foreign.push(request.url());
    });
  }
  page.on("response", (response) => {
    if (response.status() < 400) return;
    if (options.skipResponse?.(response)) return;
    log.problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  return log;
}

/**
 * Polls `expression` in the page until it is true or 30 s pass (page.waitForFunction compiles
 * its string with eval, which the dashboard's CSP refuses).
 */
export async function waitForTrue(page: Page, expression: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await page.evaluate<boolean>(expression))) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${expression}`);
    await page.waitForTimeout(25);
  }
}

/** Polls `read` until it reaches `min` (at most 40 tries); returns the last value. */
export async function pollAtLeast(
  page: Page,
  read: () => Promise<number>,
  min: number,
): Promise<number> {
  let value = 0;
  for (let i = 0; i < 40; i++) {
    value = await read();
    if (value >= min) break;
    await page.waitForTimeout(50);
  }
  return value;
}

/**
 * Pixels of the canvases under `selector` (a CSS selector) for which `condition` holds: a script
 * expression over the canvas's RGBA bytes `data` at offset `i`. A string, so that this file needs
 * no DOM types: it runs in the page.
 */
export async function countPixels(
  page: Page,
  selector: string,
  condition: string,
): Promise<number> {
  return await page.evaluate<number>(`(() => {
    let count = 0;
    for (const canvas of document.querySelectorAll(${JSON.stringify(`${selector} canvas`)})) {
      if (canvas.width === 0 || canvas.height === 0) continue;
      const context = canvas.getContext("2d");
      if (!context) continue;
      const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < data.length; i += 4) {
        if (${condition}) count++;
      }
    }
    return count;
  })()`);
}

/** Pixels of the canvases under `selector` that are neither transparent nor white. */
export async function inkedPixels(page: Page, selector: string): Promise<number> {
  return await countPixels(
    page,
    selector,
    "data[i + 3] !== 0 && !(data[i] > 245 && data[i + 1] > 245 && data[i + 2] > 245)",
  );
}
