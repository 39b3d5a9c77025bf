import assert from "node:assert/strict";
import { escapeHtml, href, html } from "./html.ts";

Deno.test("html`` escapes interpolated text but keeps nested markup", () => {
  const name = `<img src=x onerror="alert('x')">&`;
  const inner = html`<b>${name}</b>`;
  assert.equal(
    html`<p title="${name}">${inner}${null}${undefined}${false}${[1, "<", inner]}</p>`.value,
    `<p title="&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;">` +
      `<b>&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;</b>` +
      `1&lt;<b>&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;</b></p>`,
  );
  assert.equal(escapeHtml(`a"b'c`), "a&quot;b&#39;c");
});

Deno.test("href() percent-encodes parameters and drops empty ones", () => {
  assert.equal(
    href("/api/bars", { symbol: "BRK.B", q: "a&b=c d", empty: "", none: undefined, n: 0 }),
    "/api/bars?symbol=BRK.B&q=a%26b%3Dc+d&n=0",
  );
  assert.equal(href("/jobs"), "/jobs");
});
