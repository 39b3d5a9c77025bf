/**
 * Security tests of the web server with `app.request()`: tokens, the session cookie, host and
 * origin checks, XSS and SQL-injection probes in every parameter, path traversal, body limits.
 */
import assert from "node:assert/strict";
import { createApp } from "../web/mod.ts";
import { constantTimeEqual, isLoopback, TOKEN_GUESSES_ALLOWED } from "../web/security.ts";
import {
  errorOf,
  expectedMinuteBars,
  filledDataDir,
  FIXTURE,
  jsonOf,
  testServer,
} from "./web_fixture.ts";

const TOKEN = "s3cret-token-0123456789abcdef";

const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const XSS = [
  "<script>alert(1)</script>",
  '"><img src=x onerror=alert(1)>',
  "javascript:alert(1)",
  "'onmouseover='alert(1)",
];

const SQL = [
  "AAPL' OR '1'='1",
  "AAPL'; DROP VIEW bars; --",
  "1m; DROP VIEW bars_1m",
  "2024-03-04' OR 1=1 --",
  "') UNION SELECT * FROM read_csv('/etc/passwd') --",
  "0 OR 1=1",
];

Deno.test("web security", async (t) => {
  const dir = await filledDataDir();
  const server = await testServer(dir, { token: TOKEN });
  const app = server.app;
  const reads = createApp({ ...server.deps, authReads: true });
  const loopbackOnly = createApp({ ...server.deps, token: undefined, loopbackHostsOnly: true });
  const jobBody = JSON.stringify({ symbols: "AAPL", start: "2024-03-11" });
  try {
    await t.step("isLoopback() accepts only loopback addresses and names", () => {
      for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "app.localhost"]) {
        assert.ok(isLoopback(host), host);
      }
      for (const host of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "128.0.0.1"]) {
        assert.ok(!isLoopback(host), host);
      }
    });

    await t.step("constantTimeEqual() compares whole secrets of any length", () => {
      assert.ok(constantTimeEqual(TOKEN, TOKEN));
      assert.ok(!constantTimeEqual(TOKEN, TOKEN.slice(0, -1)));
      assert.ok(!constantTimeEqual(TOKEN, TOKEN + "x"));
      assert.ok(!constantTimeEqual(TOKEN, ""));
    });

    await t.step("POST and DELETE without the token are 401 with WWW-Authenticate", async () => {
      const requests: [string, RequestInit][] = [
        ["/api/jobs", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: jobBody,
        }],
        ["/api/jobs/20240101-000000-abcd", { method: "DELETE" }],
        ["/api/query", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: '{"sql":"SELECT 1"}',
        }],
        ["/partials/jobs", { method: "POST", headers: { "HX-Request": "true" } }],
        ["/partials/query", { method: "POST", headers: { "HX-Request": "true" } }],
      ];
      for (const [path, init] of requests) {
        const response = await app.request(path, init);
        assert.equal(response.status, 401, path);
        assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="marketpipe"');
        await response.body?.cancel();
      }
      const wrong = await app.request("/api/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}x` },
        body: jobBody,
      });
      assert.equal((await errorOf(wrong, 401)).code, "unauthorized");
      const basic = await app.request("/api/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Basic ${btoa(TOKEN)}` },
        body: jobBody,
      });
      await errorOf(basic, 401);
    });

    await t.step("the right bearer token is accepted; reads stay open", async () => {
      const response = await app.request("/api/query", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
        body: '{"sql":"SELECT 41 + 1 AS x"}',
      });
      assert.deepEqual((await jsonOf<{ rows: unknown[] }>(response)).rows, [[42]]);
      assert.equal((await app.request("/api/symbols")).status, 200);
      assert.equal((await app.request("/")).status, 200);
    });

    await t.step(
      "--auth-reads guards reads: 401 for the API, login redirect for pages",
      async () => {
        await errorOf(await reads.request("/api/symbols"), 401);
        await errorOf(await reads.request("/metrics"), 401);
        const home = await reads.request("/jobs");
        assert.equal(home.status, 303);
        assert.equal(home.headers.get("location"), "/login?next=%2Fjobs");
        assert.equal((await reads.request("/healthz")).status, 200);
        assert.equal((await reads.request("/readyz")).status, 200);
        assert.equal((await reads.request("/login")).status, 200);
        assert.equal((await reads.request("/assets/app.css")).status, 200);
        const authed = await reads.request("/api/symbols", {
          headers: { Authorization: `Bearer ${TOKEN}` },
        });
        assert.equal(authed.status, 200);
      },
    );

    await t.step("logging in sets an HttpOnly SameSite cookie that is not the token", async () => {
      const wrong = await reads.request("/login", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: "guess", next: "/jobs" }).toString(),
      });
      assert.equal(wrong.status, 401);
      assert.match(await wrong.text(), /Wrong token/);
      const right = await reads.request("/login", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: TOKEN, next: "/jobs" }).toString(),
      });
      assert.equal(right.status, 303);
      assert.equal(right.headers.get("location"), "/jobs");
      const cookie = right.headers.get("set-cookie")!;
      assert.match(cookie, /^mp_session=[0-9a-f]{64};/);
      const attributes = cookie.split(/;\s*/).slice(1).sort();
      assert.deepEqual(attributes, ["HttpOnly", "Max-Age=604800", "Path=/", "SameSite=Strict"]);
      assert.ok(!cookie.includes(TOKEN));
      const session = cookie.split(";")[0];
      assert.equal((await reads.request("/jobs", { headers: { Cookie: session } })).status, 200);
      const forged = await reads.request("/api/symbols", {
        headers: { Cookie: "mp_session=" + "0".repeat(64) },
      });
      await errorOf(forged, 401);
    });

    await t.step("cross-origin writes are refused even with a valid session", async () => {
      const probes: Record<string, string>[] = [
        { Origin: "http://evil.example" },
        { Origin: "null" },
        { "Sec-Fetch-Site": "cross-site" },
        { Origin: "http://localhost:9999" },
      ];
      for (const headers of probes) {
        const response = await app.request("http://localhost:8000/api/query", {
          method: "POST",
          headers: {
            ...headers,
            "Content-Type": "application/json",
            Authorization: `Bearer ${TOKEN}`,
          },
          body: '{"sql":"SELECT 1"}',
        });
        assert.equal(
          (await errorOf(response, 403)).code,
          "forbidden_origin",
          JSON.stringify(headers),
        );
      }
      const same = await app.request("http://localhost:8000/api/query", {
        method: "POST",
        headers: {
          Origin: "http://localhost:8000",
          "Content-Type": "application/json",
          Authorization: `Bearer ${TOKEN}`,
        },
        body: '{"sql":"SELECT 1"}',
      });
      assert.equal(same.status, 200);
    });

    await t.step("on loopback, foreign Host headers are refused (DNS rebinding)", async () => {
      const evil = await loopbackOnly.request("/api/symbols", {
        headers: { Host: "evil.example" },
      });
      assert.equal((await errorOf(evil, 403)).code, "forbidden_host");
      for (const host of ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"]) {
        const ok = await loopbackOnly.request("/healthz", { headers: { Host: host } });
        assert.equal(ok.status, 200, host);
      }
    });

    await t.step("every response has a strict CSP without inline script or style", async () => {
      assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval|\*/);
      for (const path of ["/", "/api/symbols", "/assets/app.js", "/nope", "/healthz"]) {
        const response = await app.request(path);
        assert.equal(response.headers.get("content-security-policy"), CONTENT_SECURITY_POLICY);
        assert.equal(response.headers.get("x-content-type-options"), "nosniff");
        assert.equal(response.headers.get("x-frame-options"), "DENY");
        await response.body?.cancel();
      }
    });

    await t.step("XSS probes in every parameter are rejected or escaped", async () => {
      for (const probe of XSS) {
        const q = encodeURIComponent(probe);
        const paths = [
          `/symbols/${q}`,
          `/symbols?q=${q}`,
          `/partials/symbols?q=${q}`,
          `/partials/chart?symbol=${q}`,
          `/partials/chart?symbol=AAPL&timeframe=${q}`,
          `/symbols/AAPL?start=${q}`,
          `/jobs/${q}`,
          `/validation/${q}`,
          `/login?next=${q}`,
          `/api/bars?symbol=${q}`,
          `/api/coverage?symbol=AAPL&timeframe=${q}`,
          `/api/jobs?status=${q}`,
          `/nope/${q}`,
          `/?${q}=1`,
        ];
        for (const path of paths) {
          const response = await app.request(path);
          const text = await response.text();
          if (/[<>"']/.test(probe)) assert.ok(!text.includes(probe), `${path} reflected the probe`);
          assert.doesNotMatch(
            text,
            /<script>alert|<img src=x|'onmouseover='|href="javascript:/,
            path,
          );
        }
      }
    });

    await t.step(
      "SQL-injection probes in every parameter are refused and change nothing",
      async () => {
        const before = await jsonOf<{ rows: unknown[][] }>(
          await app.request("/api/query", {
            method: "POST",
            headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
            body: '{"sql":"SELECT count(*) FROM bars"}',
          }),
        );
        for (const probe of SQL) {
          const q = encodeURIComponent(probe);
          const paths = [
            `/api/bars?symbol=${q}`,
            `/api/bars?symbol=AAPL&timeframe=${q}`,
            `/api/bars?symbol=AAPL&start=${q}`,
            `/api/bars?symbol=AAPL&end=${q}`,
            `/api/bars?symbol=AAPL&limit=${q}`,
            `/api/bars?symbol=AAPL&cursor=${q}`,
            `/api/bars?symbol=AAPL&cursor=${encodeURIComponent(btoa(`t:${probe}`))}`,
            `/api/bars?symbol=AAPL&format=${q}`,
            `/api/symbols/${q}`,
            `/api/coverage?symbol=${q}`,
            `/api/coverage?symbol=AAPL&start=${q}`,
            `/api/jobs?status=${q}`,
            `/api/jobs?limit=${q}`,
            `/api/jobs/${q}`,
            `/api/validation/reports/${q}`,
            `/partials/chart?symbol=AAPL&end=${q}`,
            `/symbols/${q}`,
          ];
          for (const path of paths) {
            const response = await app.request(path);
            assert.ok(
              response.status === 400 || response.status === 404,
              `${path}: ${response.status}`,
            );
            await response.body?.cancel();
          }
          const post = await app.request("/api/jobs", {
            method: "POST",
            headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
            body: JSON.stringify({ symbols: probe, start: "2024-03-04" }),
          });
          await errorOf(post, 400);
        }
        const after = await jsonOf<{ rows: unknown[][] }>(
          await app.request("/api/query", {
            method: "POST",
            headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
            body: '{"sql":"SELECT count(*) FROM bars"}',
          }),
        );
        assert.deepEqual(after.rows, before.rows);
        const minutes = await jsonOf<{ bars: unknown[] }>(
          await app.request("/api/bars?symbol=AAPL&limit=100000"),
        );
        assert.equal(
          minutes.bars.length,
          expectedMinuteBars("AAPL", FIXTURE.intraday.start, FIXTURE.intraday.end),
        );
      },
    );

    await t.step("path traversal in asset routes finds nothing", async () => {
      for (
        const path of [
          "/assets/../deno.json",
          "/assets/..%2Fdeno.json",
          "/assets/..%2f..%2f..%2fetc%2fpasswd",
          "/assets/%2e%2e/%2e%2e/etc/passwd",
          "/assets/....//....//etc/passwd",
          "/assets/app.js%00.css",
          "/assets/static/app.js",
          "/assets/%2Fetc%2Fpasswd",
          "/assets/",
        ]
      ) {
        const response = await app.request(path);
        const text = await response.text();
        assert.equal(response.status, 404, path);
        assert.doesNotMatch(text, /root:|"imports"/, path);
      }
    });

    await t.step("bodies over the limit are refused with 413 before parsing", async () => {
      const response = await app.request("/api/query", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ sql: `SELECT '${"x".repeat(70_000)}'` }),
      });
      assert.equal((await errorOf(response, 413)).code, "payload_too_large");
    });

    await t.step("guessing the token on /login is throttled with 429 and Retry-After", async () => {
      const guesser = createApp({ ...server.deps, authReads: true });
      const attempt = (token: string) =>
        guesser.request("/login", {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token, next: "/" }).toString(),
        });
      for (let i = 0; i < TOKEN_GUESSES_ALLOWED; i++) {
        const wrong = await attempt(`guess-${i}`);
        assert.equal(wrong.status, 401);
        await wrong.body?.cancel();
      }
      const blocked = await attempt(TOKEN);
      assert.equal(blocked.status, 429, "even the right token waits once the window is full");
      assert.ok(Number(blocked.headers.get("retry-after")) > 0);
      assert.match(await blocked.text(), /Too many wrong tokens/);
    });
  } finally {
    await server.close();
  }
});
