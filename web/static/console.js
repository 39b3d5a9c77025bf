// MarketPipe SQL console script. Served from /assets (the CSP allows no inline script):
// Ctrl-Enter (Cmd-Enter on macOS) in the SQL box runs the query, like the Run button.
(function () {
  "use strict";
  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) || box.name !== "sql") return;
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    const run = box.form?.querySelector("[data-run]");
    if (!run) return;
    event.preventDefault();
    run.click();
  });
})();
