// MarketPipe SQL console script. Served from /assets (the CSP allows no inline script):
// - Ctrl-Enter (Cmd-Enter on macOS) in the SQL box runs the query, like the Run button;
// - every query run is kept in localStorage (last 50) and listed under History: a click puts it
//   back into the box;
// - "Copy link" copies /query?sql=... (and puts it in the address bar), which opens the query;
// - a click on a table or column in the schema browser inserts its name at the cursor;
// - a result with a time column is drawn as a line chart (.query-chart[data-chart]), its times
//   in the page's zone (document.documentElement.dataset.tz).
(function () {
  "use strict";
  const HISTORY_KEY = "marketpipe.queryHistory";
  const HISTORY_MAX = 50;
  // The palette of the legend's .swatch-N classes in console.css.
  const COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
  ];
  const charts = new Map();

  function sqlBox() {
    return document.querySelector("form.console-form textarea[name=sql]");
  }

  function shareHref(sql) {
    return `/query?${new URLSearchParams({ sql })}`;
  }

  function updateShare() {
    const box = sqlBox();
    const link = document.querySelector("a[data-share]");
    if (box && link) link.setAttribute("href", shareHref(box.value));
  }

  function readHistory() {
    let list;
    try {
      list = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]");
    } catch {
      // Not ours or damaged: start a new list.
      return [];
    }
    return Array.isArray(list) ? list.filter((sql) => typeof sql === "string") : [];
  }

  function remember(sql) {
    if (sql.trim() === "") return;
    const list = [sql, ...readHistory().filter((old) => old !== sql)].slice(0, HISTORY_MAX);
    localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
    renderHistory();
  }

  function renderHistory() {
    const list = document.getElementById("query-history");
    if (!list) return;
    const items = readHistory().map((sql, index) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.dataset.history = String(index);
      button.title = sql;
      button.textContent = sql.replace(/\s+/g, " ").trim();
      item.append(button);
      return item;
    });
    list.replaceChildren(...items);
    const note = document.querySelector("[data-history-empty]");
    if (note) note.hidden = items.length > 0;
  }

  function setQuery(sql) {
    const box = sqlBox();
    if (!box) return;
    box.value = sql;
    updateShare();
    box.focus();
  }

  function insertAtCursor(text) {
    const box = sqlBox();
    if (!box) return;
    const { selectionStart, selectionEnd } = box;
    box.focus();
    box.setRangeText(text, selectionStart, selectionEnd, "end");
    updateShare();
  }

  /** Puts the share link in the address bar, keeping a `tz` the page was opened with. */
  function showInAddressBar(sql) {
    const url = new URL(shareHref(sql), location.href);
    const tz = new URLSearchParams(location.search).get("tz");
    if (tz) url.searchParams.set("tz", tz);
    history.replaceState(null, "", url.pathname + url.search);
  }

  async function copyLink(link) {
    const box = sqlBox();
    const status = document.querySelector("[data-share-status]");
    if (!box) return;
    showInAddressBar(box.value);
    const url = new URL(shareHref(box.value), location.href).href;
    const say = (text) => {
      if (status) status.textContent = text;
    };
    if (!navigator.clipboard || !globalThis.isSecureContext) {
      say("Link is in the address bar");
      return;
    }
    try {
      await navigator.clipboard.writeText(url);
      say("Link copied");
    } catch (error) {
      say(`Cannot copy (${error.message}): the link is in the address bar`);
    }
    link.blur();
  }

  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) || box.name !== "sql") return;
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    const run = box.form?.querySelector("[data-run]");
    if (!run) return;
    event.preventDefault();
    run.click();
  });

  document.addEventListener("input", (event) => {
    if (event.target === sqlBox()) updateShare();
  });

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const share = target?.closest("a[data-share]");
    if (share) {
      event.preventDefault();
      copyLink(share);
      return;
    }
    const past = target?.closest("button[data-history]");
    if (past) {
      const sql = readHistory()[Number(past.dataset.history)];
      if (sql !== undefined) setQuery(sql);
      return;
    }
    const insert = target?.closest("button[data-insert]");
    if (insert) {
      // A click on the table name inside <summary> inserts it without toggling the columns.
      event.preventDefault();
      insertAtCursor(insert.dataset.insert);
    }
  });

  document.addEventListener("htmx:beforeRequest", (event) => {
    const elt = event.detail.elt;
    if (!(elt instanceof Element) || !elt.matches("[data-run]")) return;
    const box = sqlBox();
    if (!box) return;
    remember(box.value);
    showInAddressBar(box.value);
  });

  const NEW_YORK = new Intl.DateTimeFormat("en-US", {
    timeZone: "America/New_York",
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });

  /** Milliseconds to add to an instant so that the chart's UTC axis reads the page's zone. */
  function zoneOffset(ms) {
    const tz = document.documentElement.dataset.tz || "exchange";
    if (tz === "utc") return 0;
    if (tz === "local") return -new Date(ms).getTimezoneOffset() * 60_000;
    const part = {};
    for (const { type, value } of NEW_YORK.formatToParts(ms)) part[type] = value;
    const wall = Date.UTC(
      Number(part.year),
      Number(part.month) - 1,
      Number(part.day),
      Number(part.hour) % 24,
      Number(part.minute),
      Number(part.second),
    );
    return wall - Math.floor(ms / 1000) * 1000;
  }

  function drawChart(element) {
    if (element.dataset.drawn === "1") return;
    const lib = globalThis.LightweightCharts;
    if (!lib) throw new Error("Cannot draw the query chart: lightweight-charts is not loaded");
    const data = JSON.parse(element.dataset.chart);
    element.dataset.drawn = "1";
    const chart = lib.createChart(element, {
      autoSize: true,
      layout: {
        attributionLogo: false,
        background: { color: "#ffffff" },
        textColor: "#1d2733",
        fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
      },
      grid: { vertLines: { color: "#eef1f5" }, horzLines: { color: "#eef1f5" } },
      timeScale: { timeVisible: data.intraday, secondsVisible: false, borderColor: "#d5dbe3" },
      rightPriceScale: { borderColor: "#d5dbe3" },
    });
    const lines = [];
    data.series.forEach((series, index) => {
      const line = chart.addSeries(lib.LineSeries, {
        color: COLORS[index % COLORS.length],
        lineWidth: 2,
        priceLineVisible: false,
        title: data.series.length > 1 ? series.name : "",
      });
      // The chart wants strictly ascending times: sort, and keep the last value of a time.
      const byTime = new Map();
      for (const [ms, value] of series.points) {
        const shifted = data.zoned ? ms + zoneOffset(ms) : ms;
        byTime.set(Math.floor(shifted / 1000), value);
      }
      const points = [...byTime].sort((a, b) => a[0] - b[0]);
      line.setData(points.map(([time, value]) => ({ time, value })));
      lines.push({ name: series.name, line });
      // The first time on the axis (seconds, shifted to the page's zone): what a reader sees.
      if (index === 0 && points.length > 0) element.dataset.firstTime = String(points[0][0]);
    });
    chart.timeScale().fitContent();
    showHover(element, chart, data, lines);
    charts.set(element, chart);
  }

  const VALUE = new Intl.NumberFormat("en-US", { maximumFractionDigits: 4 });

  /**
   * The hover legend above a chart: the time under the pointer (as the axis reads it) and each
   * line's value there; empty while the pointer is off the chart.
   */
  function showHover(element, chart, data, lines) {
    const hover = element.previousElementSibling;
    if (!hover || !hover.classList.contains("query-chart-hover")) return;
    chart.subscribeCrosshairMove((param) => {
      if (param.time === undefined) {
        hover.textContent = "";
        return;
      }
      const iso = new Date(Number(param.time) * 1000).toISOString().replace("T", " ");
      const parts = [data.intraday ? iso.slice(0, 16) : iso.slice(0, 10)];
      for (const { name, line } of lines) {
        const point = param.seriesData.get(line);
        if (point && point.value !== undefined) {
          parts.push(`${lines.length > 1 ? name : data.value} ${VALUE.format(point.value)}`);
        }
      }
      hover.textContent = parts.join(" · ");
    });
  }

  function drawAll(root) {
    if (root.matches && root.matches(".query-chart[data-chart]")) drawChart(root);
    if (root.querySelectorAll) root.querySelectorAll(".query-chart[data-chart]").forEach(drawChart);
  }

  function forget(root) {
    for (const [element, chart] of charts) {
      if (root === element || (root.contains && root.contains(element))) {
        chart.remove();
        charts.delete(element);
      }
    }
  }

  document.addEventListener("htmx:load", (event) => drawAll(event.detail.elt));
  document.addEventListener("htmx:beforeCleanupElement", (event) => forget(event.detail.elt));

  function start() {
    renderHistory();
    updateShare();
    drawAll(document);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
