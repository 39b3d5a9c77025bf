/**
 * End-to-end: temp folders a killed `aggregate` or `serve` left behind are removed at the next
 * start, while those of runs that are still going are kept.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { dirOwner, ownedDirName } from "../storage/mod.ts";
import { processStartMarker } from "../storage/meta.ts";
import { AAPL_TWO_DAYS, runCli } from "./_cli.ts";
import { testServer } from "./web_fixture.ts";

/** A process that runs until stop() kills it with SIGKILL, as a killed run would be. */
function startOwner(): { pid: number; start: string; stop(): Promise<void> } {
  const child = new Deno.Command("sleep", { args: ["120"], stdout: "null", stderr: "null" })
    .spawn();
  const start = processStartMarker(child.pid);
  assert.ok(start !== null, "no process start time on this platform");
  return {
    pid: child.pid,
    start,
    async stop() {
      child.kill("SIGKILL");
      await child.status;
    },
  };
}

/** The name a run labelled `label` gives its folder when `owner` is the process running it. */
function ownedBy(label: string, owner: { pid: number; start: string }): string {
  const host = dirOwner(ownedDirName("x"))!.host;
  return `${label}-p${owner.pid}-s${owner.start}-h${host}`;
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name).sort();
}

Deno.test({
  name:
    "aggregate removes the staging folder of a killed aggregate at its next start and keeps a running one's",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "mp-e2e-" });
    const running = startOwner();
    const killed = startOwner();
    try {
      const ingest = await runCli(["ingest", ...AAPL_TWO_DAYS, "--data-dir", dataDir]);
      assert.equal(ingest.code, 0, ingest.stderr);
      // What a run leaves in .staging when it is killed between its COPY and the renames.
      const staging = join(dataDir, ".staging");
      const dead = ownedBy("agg-20240305-120000-aaaa", killed);
      const live = ownedBy("agg-20240305-120001-bbbb", running);
      for (const name of [dead, live]) {
        const dir = join(staging, name, "0", "timeframe=5m", "symbol=AAPL", "year=2024");
        await Deno.mkdir(dir, { recursive: true });
        await Deno.writeTextFile(join(dir, "data_0.parquet"), "staged");
      }
      await killed.stop();

      const aggregate = await runCli(["aggregate", "--timeframes", "5m", "--data-dir", dataDir]);
      assert.equal(aggregate.code, 0, aggregate.stderr);
      assert.deepEqual(
        await names(staging),
        [live],
        "the killed run's folder is left, or the live one is gone",
      );

      // A run with nothing to do cleans up too.
      await running.stop();
      const again = await runCli(["aggregate", "--timeframes", "5m", "--data-dir", dataDir]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await names(staging).catch(() => []), []);
    } finally {
      await running.stop().catch(() => {});
      await killed.stop().catch(() => {});
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "serve removes the export folders of killed servers at start, keeps a running server's and removes its own at close",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "mp-e2e-" });
    const first = await testServer(dataDir);
    const firstExport = await first.deps.data.withEngine((engine) =>
      Promise.resolve(engine.exportDir!)
    );
    const parent = dirname(firstExport);
    const killed = startOwner();
    const dead = join(parent, ownedBy(`marketpipe-export-test${Deno.pid}`, killed));
    await Deno.mkdir(dead);
    await Deno.writeTextFile(join(dead, "bars-0.parquet"), "half an export");
    await killed.stop();
    let second;
    try {
      second = await testServer(dataDir);
      const secondExport = await second.deps.data.withEngine((engine) =>
        Promise.resolve(engine.exportDir!)
      );
      assert.equal(dirname(secondExport), parent);
      await assert.rejects(
        Deno.stat(dead),
        Deno.errors.NotFound,
        "the killed server's folder is left",
      );
      assert.ok((await Deno.stat(firstExport)).isDirectory, "the running server's folder is gone");
      await second.close();
      second = undefined;
      await assert.rejects(Deno.stat(secondExport), Deno.errors.NotFound);
    } finally {
      await second?.close();
      await first.close();
      await Deno.remove(dead, { recursive: true }).catch(() => {});
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
