import assert from "node:assert/strict";
import {
  createMetricsApp,
  requestHeadSize,
  toOpenMetrics,
  wantsOpenMetrics,
} from "./metrics_server.ts";

Deno.test("toOpenMetrics() names counter families without _total and ends with # EOF", () => {
  const text = [
    "# HELP mp_errors_total Errors",
    "# TYPE mp_errors_total counter",
    'mp_errors_total{provider="alpaca"} 0',
    "",
    '# HELP odd_counter A counter \\\\ named "oddly"',
    "# TYPE odd_counter counter",
    "odd_counter 2",
    "# TYPE legacy untyped",
    "legacy 1",
    "# HELP mp_lag_seconds Lag",
    "# TYPE mp_lag_seconds histogram",
    'mp_lag_seconds_bucket{le="+Inf"} 1',
    "mp_lag_seconds_sum 0.5",
    "mp_lag_seconds_count 1",
    "",
  ].join("\n");
  assert.equal(
    toOpenMetrics(text),
    [
      "# HELP mp_errors Errors",
      "# TYPE mp_errors counter",
      'mp_errors_total{provider="alpaca"} 0',
      '# HELP odd_counter A counter \\\\ named \\"oddly\\"',
      "# TYPE odd_counter unknown",
      "odd_counter 2",
      "# TYPE legacy unknown",
      "legacy 1",
      "# HELP mp_lag_seconds Lag",
      "# TYPE mp_lag_seconds histogram",
      'mp_lag_seconds_bucket{le="+Inf"} 1',
      "mp_lag_seconds_sum 0.5",
      "mp_lag_seconds_count 1",
      "# EOF",
      "",
    ].join("\n"),
  );
});

Deno.test("wantsOpenMetrics() follows the Accept qualities", () => {
  assert.equal(wantsOpenMetrics(undefined), false);
  assert.equal(wantsOpenMetrics("*/*"), false);
  assert.equal(wantsOpenMetrics("application/openmetrics-text; version=1.0.0"), true);
  assert.equal(wantsOpenMetrics("application/openmetrics-text;q=0"), false);
  assert.equal(wantsOpenMetrics("text/plain;q=0.5, application/openmetrics-text;q=0.7"), true);
  assert.equal(wantsOpenMetrics("text/plain, application/openmetrics-text;q=0.7"), false);
});

Deno.test("requestHeadSize() counts the request line, each header and the blank line", () => {
  const request = new Request("http://x/metrics?a=1", { headers: { Host: "x", "X-A": "yy" } });
  // "GET /metrics?a=1 HTTP/1.1\r\n" + "host: x\r\n" + "x-a: yy\r\n" + "\r\n"
  assert.equal(requestHeadSize(request), 27 + 9 + 9 + 2);
});

Deno.test("createMetricsApp() checks the head size before the concurrency cap and the scrape", async () => {
  let scrapes = 0;
  const app = createMetricsApp({
    scrape: () => (scrapes++, Promise.resolve("m 1\n")),
    maxConcurrent: 1,
    maxHeaderSize: 256,
  });
  const big = await app.request("/metrics", { headers: { "X-A": "y".repeat(300) } });
  assert.equal(big.status, 431);
  assert.equal(scrapes, 0);
  const ok = await app.request("/metrics");
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "m 1\n");
  assert.equal(ok.headers.get("cache-control"), "no-store");
});

Deno.test("toOpenMetrics() keeps a counter whose base name is another family's, as unknown", () => {
  const text = "# TYPE a gauge\na 1\n# TYPE a_total counter\na_total 2\n";
  assert.equal(
    toOpenMetrics(text),
    "# TYPE a gauge\na 1\n# TYPE a_total unknown\na_total 2\n# EOF\n",
  );
});

Deno.test("createMetricsApp() answers a failed scrape with 500 and logs why", async () => {
  const lines: string[] = [];
  const app = createMetricsApp({
    scrape: () => Promise.reject(new Error("history database is locked")),
    maxConcurrent: 1,
    maxHeaderSize: 1024,
    log: (line) => lines.push(line),
  });
  const response = await app.request("/metrics");
  assert.equal(response.status, 500);
  assert.doesNotMatch(await response.text(), /locked/);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^error: GET \/metrics: Error: history database is locked/);
});
