import assert from "node:assert/strict";
import { runPool } from "./pool.ts";

/** A worker whose calls stay in flight until the test releases them. */
function gatedWorker() {
  const started: number[] = [];
  const finished: number[] = [];
  const gates = new Map<number, () => void>();
  let inFlight = 0;
  let maxInFlight = 0;
  const worker = async (_item: string, index: number) => {
    started.push(index);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise<void>((resolve) => gates.set(index, resolve));
    inFlight--;
    finished.push(index);
  };
  const release = async (index: number) => {
    const open = gates.get(index);
    assert.ok(open, `item ${index} is not in flight`);
    gates.delete(index);
    open();
    // Let the lane finish this item and pick up the next one.
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return {
    worker,
    release,
    started,
    finished,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

const ITEMS = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];

Deno.test("runPool() never runs more than `concurrency` items at once", async () => {
  const gated = gatedWorker();
  const pool = runPool(ITEMS, 3, gated.worker);
  await Promise.resolve();
  assert.deepEqual(gated.started, [0, 1, 2]);
  // Release in an order different from the start order.
  for (const index of [1, 0, 3, 2, 5, 4, 6, 8, 7, 9]) {
    await gated.release(index);
    assert.ok(gated.inFlight <= 3, `${gated.inFlight} in flight`);
  }
  await pool;
  assert.equal(gated.maxInFlight, 3);
  assert.deepEqual([...gated.started].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(gated.finished.length, ITEMS.length);
});

Deno.test("runPool() keeps the pool full: a finished item is replaced at once", async () => {
  const gated = gatedWorker();
  const pool = runPool(ITEMS.slice(0, 5), 2, gated.worker);
  await Promise.resolve();
  assert.deepEqual(gated.started, [0, 1]);
  await gated.release(1);
  assert.deepEqual(gated.started, [0, 1, 2]);
  assert.equal(gated.inFlight, 2);
  for (const index of [0, 2, 3, 4]) await gated.release(index);
  await pool;
  assert.deepEqual(gated.started, [0, 1, 2, 3, 4]);
});

Deno.test("runPool() processes each item exactly once with its index", async () => {
  const seen: string[] = [];
  await runPool(ITEMS, 4, async (item, index) => {
    await Promise.resolve();
    assert.equal(ITEMS[index], item);
    seen.push(item);
  });
  assert.deepEqual([...seen].sort(), ITEMS);
});

Deno.test("runPool() with concurrency 1 runs items strictly in order", async () => {
  const gated = gatedWorker();
  const pool = runPool(ITEMS.slice(0, 4), 1, gated.worker);
  for (const index of [0, 1, 2, 3]) {
    await Promise.resolve();
    assert.equal(gated.inFlight, 1);
    await gated.release(index);
  }
  await pool;
  assert.deepEqual(gated.finished, [0, 1, 2, 3]);
  assert.equal(gated.maxInFlight, 1);
});

Deno.test("runPool() handles more lanes than items", async () => {
  const gated = gatedWorker();
  const pool = runPool(["a", "b"], 16, gated.worker);
  await Promise.resolve();
  assert.deepEqual(gated.started, [0, 1]);
  await gated.release(0);
  await gated.release(1);
  await pool;
  assert.equal(gated.maxInFlight, 2);
});

Deno.test("runPool() still runs items when concurrency is below 1", async () => {
  const seen: number[] = [];
  await runPool([1, 2, 3], 0, async (item) => {
    await Promise.resolve();
    seen.push(item);
  });
  assert.deepEqual(seen, [1, 2, 3]);
});

Deno.test("runPool() rejects a concurrency that is not a number instead of skipping every item", async () => {
  let calls = 0;
  await assert.rejects(
    runPool([1, 2, 3], Number.NaN, () => {
      calls++;
      return Promise.resolve();
    }),
    { name: "RangeError", message: "Invalid concurrency NaN: expected a number of at least 1" },
  );
  assert.equal(calls, 0);
});

Deno.test("runPool() resolves without calling the worker for no items", async () => {
  let calls = 0;
  await runPool([], 4, () => {
    calls++;
    return Promise.resolve();
  });
  assert.equal(calls, 0);
});

Deno.test("runPool() stops taking new items once the signal aborts, letting started ones finish", async () => {
  const controller = new AbortController();
  const gated = gatedWorker();
  const pool = runPool(ITEMS, 2, gated.worker, { signal: controller.signal });
  await Promise.resolve();
  assert.deepEqual(gated.started, [0, 1]);
  await gated.release(0);
  assert.deepEqual(gated.started, [0, 1, 2]);
  controller.abort();
  await gated.release(1);
  await gated.release(2);
  await pool;
  assert.deepEqual(gated.started, [0, 1, 2], "items were started after abort");
  assert.deepEqual(gated.finished, [0, 1, 2], "started items did not finish");
});

Deno.test("runPool() starts nothing when the signal is already aborted", async () => {
  const controller = new AbortController();
  controller.abort();
  let calls = 0;
  await runPool(ITEMS, 3, () => {
    calls++;
    return Promise.resolve();
  }, { signal: controller.signal });
  assert.equal(calls, 0);
});

Deno.test("runPool() rejects with a worker's error", async () => {
  const seen: number[] = [];
  await assert.rejects(
    runPool([1, 2, 3], 1, async (item) => {
      await Promise.resolve();
      seen.push(item);
      if (item === 2) throw new Error("task 2 broke");
    }),
    { message: "task 2 broke" },
  );
  assert.deepEqual(seen, [1, 2]);
});

Deno.test("runPool() with keyOf starts an item of a key that is not running before one that is", async () => {
  // Three partitions of three tasks each, in plan order, as ingest plans them.
  const items = ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3"];
  const gated = gatedWorker();
  const release = (name: string) => gated.release(items.indexOf(name));
  const started = () => gated.started.map((i) => items[i]);
  const pool = runPool(items, 2, gated.worker, { keyOf: (item) => item[0] });
  await Promise.resolve();
  assert.deepEqual(started(), ["a1", "b1"]);
  await release("a1"); // a is free again: a2 is the first pending item whose key is not running
  assert.deepEqual(started(), ["a1", "b1", "a2"]);
  await release("b1"); // b2 before c1: plan order among the free keys
  assert.deepEqual(started(), ["a1", "b1", "a2", "b2"]);
  await release("a2");
  await release("b2");
  assert.deepEqual(started().slice(4), ["a3", "b3"]);
  await release("b3"); // a runs: c1 jumps nothing of its own key
  assert.deepEqual(started().slice(6), ["c1"]);
  await release("a3"); // only c is left: with its key running, the free lane still takes c2
  assert.deepEqual(started().slice(7), ["c2"]);
  await release("c1");
  await release("c2");
  await release("c3");
  await pool;
  assert.equal(gated.maxInFlight, 2);
  assert.deepEqual(started(), ["a1", "b1", "a2", "b2", "a3", "b3", "c1", "c2", "c3"]);
});

Deno.test("runPool() with keyOf keeps a key's items in order when its runs are apart", async () => {
  const items = ["a1", "b1", "a2", "c1", "a3"];
  const gated = gatedWorker();
  const release = (name: string) => gated.release(items.indexOf(name));
  const started = () => gated.started.map((i) => items[i]);
  const pool = runPool(items, 3, gated.worker, { keyOf: (item) => item[0] });
  await Promise.resolve();
  assert.deepEqual(started(), ["a1", "b1", "c1"]);
  await release("b1"); // every free key is used up: the first pending item, a2, waits no more
  assert.deepEqual(started(), ["a1", "b1", "c1", "a2"]);
  await release("c1"); // a3 comes after a2, never before it
  assert.deepEqual(started(), ["a1", "b1", "c1", "a2", "a3"]);
  for (const name of ["a1", "a2", "a3"]) await release(name);
  await pool;
});

Deno.test("runPool() with keyOf stops taking items once the signal aborts", async () => {
  const controller = new AbortController();
  const seen: string[] = [];
  await runPool(ITEMS, 1, async (item) => {
    seen.push(item);
    await Promise.resolve();
    if (seen.length === 3) controller.abort();
  }, { signal: controller.signal, keyOf: (item) => item });
  assert.deepEqual(seen, ITEMS.slice(0, 3));
});
