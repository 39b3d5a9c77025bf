/** A second process that holds the scheduler lease, for the tests of taking a lease over. */
import { join } from "node:path";
import { META_FILE } from "../storage/meta.ts";

/** A running lease holder: its process, what it said, and `kill`, which is safe to call twice. */
export interface LeaseHolder {
  child: Deno.ChildProcess;
  /** "held" when it took the lease, "refused" when another process holds it. */
  said: string;
  /** SIGKILLs the process (a crash: it cannot release the lease) and waits for its exit. */
  kill(): Promise<void>;
}

/**
 * Starts a Deno process that opens the metadata database of `dataDir` as `serve` would, tries to
 * take the scheduler lease, prints whether it got it and then idles until killed; resolves once
 * it printed.
 */
export async function startLeaseHolder(dataDir: string): Promise<LeaseHolder> {
  const metaUrl = new URL("../storage/meta.ts", import.meta.url).href;
  const storeUrl = new URL("../storage/schedule_store.ts", import.meta.url).href;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { MetaStore, openDatabase } from "${metaUrl}";
       import { createScheduleStore } from "${storeUrl}";
       const meta = new MetaStore(openDatabase(${
        JSON.stringify(join(dataDir, META_FILE))
      }), { command: "serve" });
       console.log(createScheduleStore(meta).acquireLease() ? "held" : "refused");
       setInterval(() => {}, 1000);`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let killed: Promise<void> | undefined;
  const kill = () =>
    killed ??= (async () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited already.
      }
      await child.status;
      await child.stdout.cancel().catch(() => {});
    })();
  try {
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    return { child, said: new TextDecoder().decode(value).trim(), kill };
  } catch (error) {
    await kill();
    throw error;
  }
}
