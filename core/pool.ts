/** Options of {@link runPool}. */
export interface RunPoolOptions<T> {
  /** Stop taking new items once this aborts; items already started finish. */
  signal?: AbortSignal;
  /**
   * Items of one key wait while another item of that key runs, as long as an item of another
   * key can start instead: a free lane takes the first pending item (in `items` order) whose key
   * is not running, or the first pending item when every key is busy. Items of one key still
   * start in their order. Ingest keys its batches by partition, so that workers write different
   * partitions instead of queueing for one partition's lock.
   */
  keyOf?: (item: T) => string;
}

/**
 * Run `worker` over `items` with at most `concurrency` at once. Stops taking new items once
 * `signal` aborts; items already started finish. Worker errors are not caught here: a worker
 * that must not stop the pool handles its own failures.
 */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  worker: (item: T, index: number) => Promise<void>,
  options: RunPoolOptions<T> = {},
): Promise<void> {
  // NaN would make zero lanes: every item silently skipped and the caller told all went well.
  if (Number.isNaN(concurrency)) {
    throw new RangeError(`Invalid concurrency ${concurrency}: expected a number of at least 1`);
  }
  const take = options.keyOf ? _keyedQueue(items, options.keyOf) : _queue(items.length);
  const lanes = Array.from(
    { length: Math.max(1, Math.min(concurrency, items.length)) },
    async () => {
      while (!options.signal?.aborted) {
        const picked = take();
        if (picked === undefined) return;
        try {
          await worker(items[picked.index], picked.index);
        } finally {
          picked.done();
        }
      }
    },
  );
  await Promise.all(lanes);
}

type _Take = () => { index: number; done: () => void } | undefined;

function _queue(length: number): _Take {
  let next = 0;
  const done = () => {};
  return () => next < length ? { index: next++, done } : undefined;
}

function _keyedQueue<T>(items: readonly T[], keyOf: (item: T) => string): _Take {
  // Runs of consecutive items with one key; a key's items are taken in order, so each run's
  // taken items are a prefix of it and `next[r]` is the run's first pending item.
  const runs: { key: string; end: number }[] = [];
  const next: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const key = keyOf(items[i]);
    if (runs.length > 0 && runs[runs.length - 1].key === key) runs[runs.length - 1].end = i + 1;
    else {
      runs.push({ key, end: i + 1 });
      next.push(i);
    }
  }
  const running = new Map<string, number>();
  let first = 0; // every run before it is taken
  return () => {
    while (first < runs.length && next[first] === runs[first].end) first++;
    if (first === runs.length) return undefined;
    let picked = first;
    // Keys passed in this scan: a later run of a key must not start before its earlier one.
    const passed = new Set<string>();
    for (let r = first; r < runs.length; r++) {
      const { key, end } = runs[r];
      if (next[r] === end || passed.has(key)) continue;
      if (!running.has(key)) {
        picked = r;
        break;
      }
      passed.add(key);
    }
    const index = next[picked]++;
    const key = runs[picked].key;
    running.set(key, (running.get(key) ?? 0) + 1);
    return {
      index,
      done: () => {
        const left = running.get(key)! - 1;
        if (left === 0) running.delete(key);
        else running.set(key, left);
      },
    };
  };
}
