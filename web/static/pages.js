// MarketPipe dashboard pages script. Served from /assets (the CSP allows no inline script):
// - the header's time zone switch submits itself on change (without scripts a button does it,
//   hidden by the `scripted` class this sets on <html>);
// - with the `local` setting every <time data-ts> is shown in the browser's zone, on load and
//   whenever htmx swaps content in;
// - every .table-wrap wider than its frame gets data-overflow="right|left|both" (the side(s)
//   with more columns), which app.css shows as a fade;
// - htmx requests carry the page's setting in the MP-TZ header, so that the fragments they
//   fetch (polled job tables, filtered lists) use the zone of the page.
(function () {
  "use strict";
  const root = document.documentElement;
  // Scripts run: app.css hides what only a page without them needs (the switch's Set button).
  root.classList.add("scripted");

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  /** "2024-01-02 09:30 GMT+9": the browser's zone, named as Intl names it. */
  function localText(ms) {
    const date = new Date(ms);
    const zone = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
      .formatToParts(date).find((part) => part.type === "timeZoneName");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${
      pad(date.getHours())
    }:${pad(date.getMinutes())} ${zone ? zone.value : ""}`.trimEnd();
  }

  function renderTimes(scope) {
    if (root.dataset.tz !== "local" || !scope.querySelectorAll) return;
    const times = [...scope.querySelectorAll("time[data-ts]:not([data-date])")];
    if (scope.matches && scope.matches("time[data-ts]:not([data-date])")) times.push(scope);
    for (const time of times) {
      const ms = Number(time.dataset.ts);
      if (Number.isFinite(ms)) time.textContent = localText(ms);
    }
  }

  function markOverflow(wrap) {
    const more = wrap.scrollWidth - wrap.clientWidth;
    if (more <= 1) {
      delete wrap.dataset.overflow;
      return;
    }
    const left = wrap.scrollLeft > 1;
    const right = wrap.scrollLeft < more - 1;
    wrap.dataset.overflow = left && right ? "both" : left ? "left" : "right";
  }

  function markAll() {
    document.querySelectorAll(".table-wrap").forEach(markOverflow);
  }

  document.addEventListener("scroll", (event) => {
    const wrap = event.target;
    if (wrap instanceof HTMLElement && wrap.classList.contains("table-wrap")) markOverflow(wrap);
  }, true);
  globalThis.addEventListener("resize", markAll);

  document.addEventListener("change", (event) => {
    const select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.closest("form.tz-switch")) return;
    select.form.requestSubmit();
  });

  document.addEventListener("htmx:configRequest", (event) => {
    if (root.dataset.tz) event.detail.headers["MP-TZ"] = root.dataset.tz;
  });
  document.addEventListener("htmx:load", (event) => {
    renderTimes(event.detail.elt);
    markAll();
  });
  function start() {
    renderTimes(document);
    markAll();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
