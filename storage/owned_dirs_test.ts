import assert from "node:assert/strict";
import { join } from "node:path";
import { processStartMarker } from "./meta.ts";
import {
  dirOwner,
  EXPORT_DIR_PREFIX,
  makeExportDir,
  makeOwnedDir,
  ownedDirName,
  ownerStatus,
  removeDeadOwnedDirs,
} from "./owned_dirs.ts";

/** A child process that stays up until the returned stop() kills it. */
function startChild(): { pid: number; start: string; stop(): Promise<void> } {
  const child = new Deno.Command("sleep", { args: ["60"], stdout: "null", stderr: "null" }).spawn();
  const start = processStartMarker(child.pid);
  assert.ok(start !== null, "no start time for the child (not Linux?)");
  return {
    pid: child.pid,
    start,
    async stop() {
      child.kill("SIGKILL");
      await child.status;
    },
  };
}

/** The folder name `label` gets when owned by the process `pid` that started at `start`. */
function nameOwnedBy(label: string, pid: number, start: string): string {
  const host = dirOwner(ownedDirName("x"))!.host;
  return `${label}-p${pid}-s${start}-h${host}`;
}

Deno.test({
  name:
    "removeDeadOwnedDirs() removes the folders of a killed owner and of a reused pid, keeps those of live owners",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const parent = await Deno.makeTempDir({ prefix: "marketpipe-owned-" });
    const live = startChild();
    const killed = startChild();
    await killed.stop();
    try {
      const names = {
        killed: nameOwnedBy("agg-1", killed.pid, killed.start),
        reused: nameOwnedBy("agg-2", live.pid, `${Number(live.start) + 1}`),
        live: nameOwnedBy("agg-3", live.pid, live.start),
        self: ownedDirName("agg-4"),
        otherHost: `agg-5-p${killed.pid}-s${killed.start}-h00000000`,
        noOwner: "agg-6",
        otherPrefix: nameOwnedBy("other", killed.pid, killed.start),
      };
      for (const name of Object.values(names)) {
        await Deno.mkdir(join(parent, name, "0"), { recursive: true });
        await Deno.writeTextFile(join(parent, name, "0", "staged.parquet"), "x");
      }
      assert.equal(ownerStatus(dirOwner(names.killed)!), "dead");
      assert.equal(ownerStatus(dirOwner(names.live)!), "alive");
      assert.equal(ownerStatus(dirOwner(names.otherHost)!), "unknown");

      const removed = await removeDeadOwnedDirs(parent, "agg-");
      assert.deepEqual(removed.sort(), [names.killed, names.reused].sort());
      const left = (await Array.fromAsync(Deno.readDir(parent))).map((e) => e.name).sort();
      assert.deepEqual(
        left,
        [names.live, names.self, names.otherHost, names.noOwner, names.otherPrefix].sort(),
      );

      // Folders whose owner cannot be checked go only once they are old enough.
      const later = Date.now() + 7 * 3_600_000;
      assert.deepEqual(
        (await removeDeadOwnedDirs(parent, "agg-", {
          uncheckedMaxAgeMs: 6 * 3_600_000,
          now: later,
        }))
          .sort(),
        [names.otherHost, names.noOwner].sort(),
      );
    } finally {
      await live.stop();
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test("makeOwnedDir() creates an owner-only folder named after this process", async () => {
  const parent = await Deno.makeTempDir({ prefix: "marketpipe-owned-" });
  try {
    const path = await makeOwnedDir(join(parent, "new"), "agg-run");
    const name = path.slice(join(parent, "new").length + 1);
    assert.deepEqual(dirOwner(name)?.pid, Deno.pid);
    assert.ok(name.startsWith("agg-run-p"));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o700);
    await assert.rejects(makeOwnedDir(join(parent, "new"), "agg-run"), Deno.errors.AlreadyExists);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test({
  name:
    "makeExportDir() removes the export folders of killed servers and keeps those of running ones",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const parent = await Deno.makeTempDir({ prefix: "marketpipe-owned-" });
    const live = startChild();
    const killed = startChild();
    await killed.stop();
    try {
      const dead = nameOwnedBy(`${EXPORT_DIR_PREFIX}dead`, killed.pid, killed.start);
      const running = nameOwnedBy(`${EXPORT_DIR_PREFIX}live`, live.pid, live.start);
      await Deno.mkdir(join(parent, dead));
      await Deno.writeTextFile(join(parent, dead, "bars-1.parquet"), "half an export");
      await Deno.mkdir(join(parent, running));
      const mine = await makeExportDir(parent);
      const left = (await Array.fromAsync(Deno.readDir(parent))).map((e) => e.name).sort();
      assert.deepEqual(left, [running, mine.slice(parent.length + 1)].sort());
    } finally {
      await live.stop();
      await Deno.remove(parent, { recursive: true });
    }
  },
});
