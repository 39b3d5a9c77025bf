/**
 * Run `worker` over `items` with at most `concurrency` at once. Stops taking new items once
 * `signal` aborts; items already started finish. Worker errors are not caught here: a worker
 * that must not stop the pool handles its own failures.
 */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  worker: (item: T, index: number) => Promise<void>,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  // NaN would make zero lanes: every item silently skipped and the caller told all went well.
  if (Number.isNaN(concurrency)) {
    throw new RangeError(`Invalid concurrency ${concurrency}: expected a number of at least 1`);
  }
  let next = 0;
  const lanes = Array.from(
    { length: Math.max(1, Math.min(concurrency, items.length)) },
    async () => {
      while (next < items.length && !options.signal?.aborted) {
        const index = next++;
        await worker(items[index], index);
      }
    },
  );
  await Promise.all(lanes);
}
