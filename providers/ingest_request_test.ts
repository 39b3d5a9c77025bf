import assert from "node:assert/strict";
import { UsageError } from "../core/errors.ts";
import { buildIngestRequest } from "./ingest_request.ts";

const at = (iso: string) => () => Date.parse(iso);

Deno.test("buildIngestRequest() cuts an end past the last closed session and says so", async () => {
  // 2024-03-05 at 11:00 ET: the last closed session is 2024-03-04, for 1m and 1d alike.
  const input = { symbols: "AAPL", start: "2024-03-01", end: "2024-03-08" };
  const prepared = await buildIngestRequest(input, { clock: at("2024-03-05T16:00:00Z") });
  assert.equal(prepared.request.end, "2024-03-04");
  assert.equal(
    prepared.notice,
    "--end 2024-03-08 is after the last closed 1m session 2024-03-04: ingesting up to 2024-03-04",
  );
  // At 16:30 ET the 1d session has closed, the 1m one (after-hours until 20:00) has not.
  const close = at("2024-03-05T21:30:00Z");
  const daily = await buildIngestRequest({ ...input, timeframe: "1d" }, { clock: close });
  assert.equal(daily.request.end, "2024-03-05");
  assert.equal((await buildIngestRequest(input, { clock: close })).request.end, "2024-03-04");
});

Deno.test("buildIngestRequest() keeps a range whose sessions have all closed as it is", async () => {
  // A Sunday clock: a range ending on that weekend needs no cut.
  const input = { symbols: "AAPL", start: "2024-03-04", end: "2024-03-10" };
  const prepared = await buildIngestRequest(input, { clock: at("2024-03-10T15:00:00Z") });
  assert.equal(prepared.request.end, "2024-03-10");
  assert.equal(prepared.notice, undefined);
});

Deno.test("buildIngestRequest() refuses a range with no closed session, naming the start", async () => {
  const clock = at("2024-11-29T18:30:00Z"); // 13:30 ET on an early-close day
  await assert.rejects(
    buildIngestRequest({ symbols: "AAPL", start: "2024-11-29" }, {
      clock,
      label: (name) => name,
    }),
    (error: unknown) =>
      error instanceof UsageError &&
      error.message ===
        "Invalid start 2024-11-29: no 1m session from it to end 2024-11-29 has closed yet; the last closed one is 2024-11-27",
  );
  const daily = await buildIngestRequest(
    { symbols: "AAPL", start: "2024-11-29", timeframe: "1d" },
    { clock },
  );
  assert.equal(daily.request.end, "2024-11-29");
});
