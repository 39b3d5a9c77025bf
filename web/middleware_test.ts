import assert from "node:assert/strict";
import { Hono, type MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";
import {
  accessLog,
  limitBody,
  loopbackHostsOnly,
  requireToken,
  sameOriginWrites,
  securityHeaders,
} from "./middleware.ts";
import { createGuessLimiter, sessionValue } from "./security.ts";

const TOKEN = "tok-0123456789abcdef";

/** An app with one middleware before a handler that echoes the body length. */
function appWith(middleware: MiddlewareHandler): Hono {
  const app = new Hono();
  app.use(middleware);
  app.all("*", async (c) => c.text(`ok ${(await c.req.text()).length}`));
  app.onError((error, c) => {
    assert.ok(error instanceof HttpError, String(error));
    return c.json({ code: error.code }, error.status as 400, error.headers);
  });
  return app;
}

async function codeOf(response: Response, status: number): Promise<string> {
  assert.equal(response.status, status);
  return (await response.json()).code;
}

Deno.test("securityHeaders() sets exactly the server's security headers, on errors too", async () => {
  const app = appWith(securityHeaders());
  app.get("/fail", () => {
    throw new HttpError(404, "not_found", "No such thing");
  });
  for (const path of ["/", "/fail"]) {
    const response = await app.request(path);
    await response.body?.cancel();
    const headers = Object.fromEntries(
      [...response.headers].filter(([name]) => !["content-type", "content-length"].includes(name)),
    );
    assert.deepEqual(headers, {
      "content-security-policy":
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-resource-policy": "same-origin",
      "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
      "referrer-policy": "no-referrer",
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
    }, path);
  }
});

Deno.test("loopbackHostsOnly() answers loopback Host names only", async () => {
  const app = appWith(loopbackHostsOnly());
  for (const host of ["127.0.0.1:8000", "localhost", "app.localhost:80", "[::1]:8000"]) {
    assert.equal((await app.request("/", { headers: { Host: host } })).status, 200, host);
  }
  for (const host of ["evil.example", "127.0.0.1.evil.example", "10.0.0.1:8000"]) {
    const response = await app.request("/", { headers: { Host: host } });
    assert.equal(await codeOf(response, 403), "forbidden_host", host);
  }
});

Deno.test("sameOriginWrites() refuses writes from other sites, JSON ones included", async () => {
  const app = appWith(sameOriginWrites());
  const post = (headers: Record<string, string>) =>
    app.request("http://localhost:8000/api/query", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: "{}",
    });
  const foreign: Record<string, string>[] = [
    { Origin: "http://evil.example" },
    { Origin: "http://localhost:9999" },
    { Origin: "null" },
    { Origin: "null", "Sec-Fetch-Site": "cross-site" },
    { "Sec-Fetch-Site": "cross-site" },
    { "Sec-Fetch-Site": "same-site" },
    { Origin: "http://localhost:8000", "Sec-Fetch-Site": "cross-site" },
  ];
  for (const headers of foreign) {
    assert.equal(
      await codeOf(await post(headers), 403),
      "forbidden_origin",
      JSON.stringify(headers),
    );
  }
  const same: Record<string, string>[] = [
    {},
    { Origin: "http://localhost:8000" },
    { "Sec-Fetch-Site": "same-origin" },
    { "Sec-Fetch-Site": "none" },
    // A form POST under Referrer-Policy: no-referrer (the dashboard's login form).
    { Origin: "null", "Sec-Fetch-Site": "same-origin" },
  ];
  for (const headers of same) {
    assert.equal((await post(headers)).status, 200, JSON.stringify(headers));
  }
  const read = await app.request("http://localhost:8000/", {
    headers: { Origin: "http://evil.example", "Sec-Fetch-Site": "cross-site" },
  });
  assert.equal(read.status, 200, "reads are not writes");
});

Deno.test("requireToken() guards writes, or reads too, by Bearer token or session cookie", async () => {
  const guesses = createGuessLimiter();
  const writes = appWith(requireToken(TOKEN, { guesses }));
  const reads = appWith(requireToken(TOKEN, { authReads: true, guesses }));
  const bearer = { Authorization: `Bearer ${TOKEN}` };
  const cookie = { Cookie: `theme=dark; mp_session=${sessionValue(TOKEN)}` };

  assert.equal((await writes.request("/api/symbols")).status, 200, "reads stay open");
  const refused = await writes.request("/api/query", { method: "POST" });
  assert.equal(refused.headers.get("www-authenticate"), 'Bearer realm="marketpipe"');
  assert.equal(await codeOf(refused, 401), "unauthorized");
  for (const headers of [bearer, cookie] as Record<string, string>[]) {
    assert.equal((await writes.request("/api/query", { method: "POST", headers })).status, 200);
  }
  const wrong: Record<string, string>[] = [
    { Authorization: `Basic ${btoa(TOKEN)}` },
    { Authorization: `Bearer ${TOKEN} extra` },
    { Cookie: `mp_session=${TOKEN}` },
  ];
  for (const headers of wrong) {
    const response = await writes.request("/api/query", { method: "POST", headers });
    assert.equal(await codeOf(response, 401), "unauthorized", JSON.stringify(headers));
  }

  await codeOf(await reads.request("/api/symbols"), 401);
  await codeOf(await reads.request("/metrics"), 401);
  await codeOf(await reads.request("/jobs", { headers: { "HX-Request": "true" } }), 401);
  const page = await reads.request("/jobs?x=1");
  assert.equal(page.status, 303);
  assert.equal(page.headers.get("location"), "/login?next=%2Fjobs");
  for (const path of ["/healthz", "/readyz", "/login", "/assets/app.css"]) {
    assert.equal((await reads.request(path)).status, 200, path);
  }
  assert.equal((await reads.request("/logout", { method: "POST" })).status, 200);
  assert.equal((await reads.request("/jobs", { headers: cookie })).status, 200);
});

Deno.test("requireToken() counts wrong Bearer tokens and then refuses the client with 429", async () => {
  let now = 0;
  const guesses = createGuessLimiter({ allowed: 2, windowMs: 60_000, now: () => now });
  const app = appWith(requireToken(TOKEN, { guesses }));
  const post = (token: string) =>
    app.request("/api/query", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  await codeOf(await post("guess-1"), 401);
  await codeOf(await post("guess-2"), 401);
  const blocked = await post(TOKEN);
  assert.equal(await codeOf(blocked, 429), "too_many_requests", "the right token waits too");
  assert.equal(blocked.headers.get("retry-after"), "60");
  const session = await app.request("/api/query", {
    method: "POST",
    headers: { Cookie: `mp_session=${sessionValue(TOKEN)}` },
  });
  assert.equal(session.status, 200, "a session cookie is not a guess");
  now += 60_000;
  assert.equal((await post(TOKEN)).status, 200);
});

Deno.test("limitBody() refuses bodies over the limit, by Content-Length or as streamed", async () => {
  const app = appWith(limitBody(10));
  const stream = (size: number) =>
    ReadableStream.from([new Uint8Array(size - 1), new Uint8Array(1)]);
  const small = await app.request("/", { method: "POST", body: "0123456789" });
  assert.equal(await small.text(), "ok 10");
  await codeOf(await app.request("/", { method: "POST", body: "0123456789x" }), 413);
  const streamed = await app.request("/", { method: "POST", body: stream(10) });
  assert.equal(await streamed.text(), "ok 10", "a chunked body within the limit reaches the route");
  const large = await app.request("/", { method: "POST", body: stream(11) });
  assert.equal(await codeOf(large, 413), "payload_too_large");
  assert.equal(await (await app.request("/")).text(), "ok 0");
});

Deno.test("accessLog() logs method, path without secrets, status, bytes and ms once the body is sent", async () => {
  const lines: string[] = [];
  const target: { accessLog?: (line: string) => void } = {};
  const app = appWith(accessLog(target));
  // Unset: no log (serve --quiet).
  await (await app.request("/quiet")).text();
  assert.equal(lines.length, 0);
  target.accessLog = (line) => lines.push(line);
  const response = await app.request("/api/bars?symbol=AAPL&api_key=k3y&token=t0k", {
    method: "POST",
    body: "abcd",
  });
  assert.equal(lines.length, 0, "logged when the body has been sent, not before");
  assert.equal(await response.text(), "ok 4");
  assert.equal(lines.length, 1);
  assert.match(
    lines[0],
    /^POST \/api\/bars\?symbol=AAPL&api_key=\*\*\*&token=\*\*\* 200 4B \d+ms$/,
  );
  assert.ok(!lines[0].includes("k3y") && !lines[0].includes("t0k"));
  // Refusals of later middlewares are logged with their status.
  const refusing = new Hono();
  refusing.use(accessLog(target));
  refusing.use(loopbackHostsOnly());
  refusing.get("*", (c) => c.text("never"));
  refusing.onError((error, c) => c.json({ code: (error as HttpError).code }, 403));
  await (await refusing.request("http://evil.example/x")).text();
  assert.match(lines[1], /^GET \/x 403 \d+B \d+ms$/);
});
