// MarketPipe dashboard script. Served from /assets (the CSP allows no inline script): draws the
// chart of every `.chart[data-bars]` element (candles, shaded pre/post-market, VWAP, moving
// average, a compared symbol, volume in its own pane, markers for findings) with a legend that
// follows the crosshair, on the first load and whenever htmx swaps new content in. Times follow
// the page's time zone setting (`data-tz` on <html>: exchange, utc or local).
(function () {
  "use strict";
  const UP = "#26a69a";
  const DOWN = "#ef5350";
  const VWAP_COLOR = "#7b3fb8";
  const MA_COLOR = "#d9822b";
  const COMPARE_COLOR = "#2962ff";
  const SESSION_SHADE = "rgba(100, 116, 139, 0.11)";
  const MARKER_COLORS = {
    error: "#b3261e",
    quarantined: "#b3261e",
    warn: "#c77700",
    info: "#1f5fa8",
  };
  const RIGHT_OFFSET = 6;
  const charts = new Map();
  // Overlay toggles survive htmx swaps of the panel (a new timeframe or range).
  const overlayState = {};

  const nyParts = new Intl.DateTimeFormat("en-US", {
    timeZone: "America/New_York",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
  const nyOffsets = new Map();

  /** Seconds to add to a UTC instant for New York wall-clock time (cached per hour). */
  function nyOffsetSeconds(utcSeconds) {
    const hour = Math.floor(utcSeconds / 3600);
    let offset = nyOffsets.get(hour);
    if (offset === undefined) {
      const part = {};
      for (const { type, value } of nyParts.formatToParts(new Date(hour * 3600 * 1000))) {
        part[type] = Number(value);
      }
      const wall = Date.UTC(part.year, part.month - 1, part.day, part.hour % 24, part.minute);
      offset = wall / 1000 - hour * 3600;
      nyOffsets.set(hour, offset);
    }
    return offset;
  }

  function zone() {
    const tz = document.documentElement.dataset.tz;
    return tz === "utc" || tz === "local" ? tz : "exchange";
  }

  /** The axis time of a UTC instant: its wall clock in the chosen zone, as if it were UTC. */
  function displaySeconds(utcSeconds, tz) {
    if (tz === "utc") return utcSeconds;
    if (tz === "local") return utcSeconds - new Date(utcSeconds * 1000).getTimezoneOffset() * 60;
    return utcSeconds + nyOffsetSeconds(utcSeconds);
  }

  function zoneLabel(tz) {
    if (tz === "utc") return "UTC";
    if (tz === "exchange") return "ET";
    const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
      .formatToParts(new Date())
      .find((p) => p.type === "timeZoneName");
    return part ? part.value : "local";
  }

  function timeText(seconds, intraday, label) {
    const iso = new Date(seconds * 1000).toISOString();
    return intraday ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} ${label}` : iso.slice(0, 10);
  }

  function priceText(value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "-";
    return Math.abs(value) >= 1 ? value.toFixed(2) : value.toFixed(4);
  }

  function volumeText(value) {
    return Math.round(value).toLocaleString("en-US");
  }

  function signed(value, digits) {
    return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
  }

  /** Session VWAP: volume-weighted bar VWAPs (typical price when unknown), reset each day. */
  function sessionVwap(rows, vwap, days) {
    const out = new Array(rows.length);
    let day = null;
    let pv = 0;
    let v = 0;
    for (let i = 0; i < rows.length; i++) {
      if (days[i] !== day) {
        day = days[i];
        pv = 0;
        v = 0;
      }
      const r = rows[i];
      const price = vwap[i] === null || vwap[i] === undefined ? (r[2] + r[3] + r[4]) / 3 : vwap[i];
      pv += price * r[5];
      v += r[5];
      out[i] = v > 0 ? pv / v : price;
    }
    return out;
  }

  function movingAverage(rows, length) {
    const out = new Array(rows.length).fill(null);
    let sum = 0;
    for (let i = 0; i < rows.length; i++) {
      sum += rows[i][4];
      if (i >= length) sum -= rows[i - length][4];
      if (i >= length - 1) out[i] = sum / length;
    }
    return out;
  }

  /** Index of the last time <= `time` in ascending `times` (0 when all are later). */
  function floorIndex(times, time) {
    let lo = 0;
    let hi = times.length - 1;
    if (time <= times[0]) return 0;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (times[mid] <= time) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  function legendOf(element) {
    let node = element.previousElementSibling;
    while (node && !node.classList.contains("chart-legend")) node = node.previousElementSibling;
    return node;
  }

  /** Builds the legend's fields once; `update` fills them for one bar. */
  function makeLegend(element, fields) {
    const legend = legendOf(element);
    if (!legend) return { update() {} };
    legend.textContent = "";
    const spans = {};
    for (const [name, label] of fields) {
      const span = document.createElement("span");
      span.className = `item ${name}`;
      span.dataset.field = name;
      if (label) {
        const b = document.createElement("b");
        b.textContent = label;
        span.append(b);
      }
      const value = document.createElement("span");
      value.className = "value";
      span.append(value);
      legend.append(span);
      spans[name] = { span, value };
    }
    return {
      update(values) {
        for (const [name, text] of Object.entries(values)) {
          const field = spans[name];
          if (!field) continue;
          field.value.textContent = text === null ? "" : text;
          field.span.hidden = text === null;
        }
      },
      legend,
      spans,
    };
  }

  function draw(element) {
    if (element.dataset.drawn === "1") return;
    const lib = globalThis.LightweightCharts;
    if (!lib) return;
    const rows = JSON.parse(element.dataset.bars);
    if (rows.length === 0) return;
    element.dataset.drawn = "1";
    const intraday = element.dataset.intraday === "1";
    const tz = zone();
    const label = zoneLabel(tz);
    const offsets = JSON.parse(element.dataset.offsets || "[]");
    const vwapIn = JSON.parse(element.dataset.vwap || "[]");
    const sessions = element.dataset.sessions || "";
    const compareRows = JSON.parse(element.dataset.compare || "[]");
    const markersIn = JSON.parse(element.dataset.markers || "[]");
    const maLength = Number(element.dataset.ma || "20");
    const symbol = element.dataset.symbol || "";
    const compareSymbol = element.dataset.compareSymbol || "";

    // Axis times: exchange wall clock as sent, or back to UTC and on to the chosen zone.
    const times = new Array(rows.length);
    const days = new Array(rows.length);
    let o = 0;
    for (let i = 0; i < rows.length; i++) {
      while (o + 1 < offsets.length && offsets[o + 1][0] <= i) o++;
      const wall = rows[i][0];
      days[i] = Math.floor(wall / 86400);
      if (!intraday || tz === "exchange") times[i] = wall;
      else times[i] = displaySeconds(wall - (offsets.length ? offsets[o][1] : 0), tz);
    }
    const indexOf = new Map(times.map((t, i) => [t, i]));

    const panel = element.closest("#chart-panel") || document;
    const chart = lib.createChart(element, {
      autoSize: true,
      layout: {
        attributionLogo: false,
        background: { color: "#ffffff" },
        textColor: "#1d2733",
        fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
        panes: { separatorColor: "#d5dbe3", enableResize: false },
      },
      grid: { vertLines: { color: "#eef1f5" }, horzLines: { color: "#eef1f5" } },
      timeScale: {
        timeVisible: intraday,
        secondsVisible: false,
        borderColor: "#d5dbe3",
        rightOffset: RIGHT_OFFSET,
        minBarSpacing: 0.01,
        lockVisibleTimeRangeOnResize: true,
      },
      rightPriceScale: {
        borderColor: "#d5dbe3",
        scaleMargins: { top: 0.08, bottom: 0.06 },
        entireTextOnly: true,
        minimumWidth: 76,
      },
      leftPriceScale: {
        visible: compareRows.length > 0,
        borderColor: "#d5dbe3",
        scaleMargins: { top: 0.08, bottom: 0.06 },
        entireTextOnly: true,
      },
      crosshair: { mode: lib.CrosshairMode ? lib.CrosshairMode.Normal : 0 },
    });

    // Drawn first, so the candles stay on top of the shading.
    let shade = null;
    if (intraday) {
      // A full-height area on a scale of its own, clear over the regular session: one band per
      // pre- and post-market stretch, without the gaps between histogram columns.
      shade = chart.addSeries(lib.AreaSeries, {
        priceScaleId: "sessions",
        topColor: SESSION_SHADE,
        bottomColor: SESSION_SHADE,
        lineVisible: false,
        lineColor: "rgba(0, 0, 0, 0)",
        lastValueVisible: false,
        priceLineVisible: false,
        crosshairMarkerVisible: false,
        autoscaleInfoProvider: () => ({ priceRange: { minValue: 0, maxValue: 1 } }),
      });
      chart.priceScale("sessions").applyOptions({ scaleMargins: { top: 0, bottom: 0 } });
      shade.setData(times.map((time, i) => {
        const color = sessions[i] && sessions[i] !== "r" ? SESSION_SHADE : "rgba(0, 0, 0, 0)";
        return { time, value: 1, topColor: color, bottomColor: color };
      }));
    }
    const candles = chart.addSeries(lib.CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      borderVisible: false,
      wickUpColor: UP,
      wickDownColor: DOWN,
      // The last price is a line titled inside the pane, so no tag covers the axis labels.
      lastValueVisible: false,
      priceLineVisible: false,
    });
    candles.setData(
      rows.map((r, i) => ({ time: times[i], open: r[1], high: r[2], low: r[3], close: r[4] })),
    );
    const lastRow = rows[rows.length - 1];
    candles.createPriceLine({
      price: lastRow[4],
      color: lastRow[4] >= lastRow[1] ? UP : DOWN,
      lineWidth: 1,
      lineStyle: 2,
      axisLabelVisible: false,
    });
    const vwap = sessionVwap(rows, vwapIn, intraday ? days : rows.map((_, i) => i));
    const vwapLine = chart.addSeries(lib.LineSeries, {
      color: VWAP_COLOR,
      lineWidth: 1,
      lastValueVisible: false,
      priceLineVisible: false,
      crosshairMarkerVisible: false,
      // A daily bar is its own session: its VWAP is in the legend, a line through them is noise.
      visible: intraday,
    });
    // The VWAP restarts each session: the segment from a session's last bar (which takes that
    // bar's colour) into the next session's first is left clear.
    vwapLine.setData(
      times.map((time, i) =>
        intraday && i + 1 < rows.length && days[i + 1] !== days[i]
          ? { time, value: vwap[i], color: "rgba(0, 0, 0, 0)" }
          : { time, value: vwap[i] }
      ),
    );
    const ma = movingAverage(rows, maLength);
    const maLine = chart.addSeries(lib.LineSeries, {
      color: MA_COLOR,
      lineWidth: 1,
      lastValueVisible: false,
      priceLineVisible: false,
      crosshairMarkerVisible: false,
    });
    maLine.setData(times.map((time, i) => ma[i] === null ? { time } : { time, value: ma[i] }));

    // The compared symbol: closes as % change from its first close, on the left scale.
    const comparePct = new Map();
    let compareLine = null;
    if (compareRows.length > 0) {
      const base = compareRows[0][1];
      const points = new Map();
      for (const [t, close] of compareRows) {
        const time = intraday ? displaySeconds(t, tz) : t;
        points.set(time, base === 0 ? 0 : (close / base - 1) * 100);
      }
      const data = [...points].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({
        time,
        value,
      }));
      for (const p of data) comparePct.set(p.time, p.value);
      compareLine = chart.addSeries(lib.LineSeries, {
        color: COMPARE_COLOR,
        lineWidth: 2,
        priceScaleId: "left",
        priceFormat: { type: "custom", formatter: (v) => `${signed(v, 2)}%`, minMove: 0.01 },
        // Its value is in the legend: a tag would cover the left scale's labels.
        lastValueVisible: false,
        priceLineVisible: false,
      });
      compareLine.setData(data);
    }

    // Volume in a pane of its own, with its own scale.
    const volume = chart.addSeries(lib.HistogramSeries, {
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    }, 1);
    volume.setData(rows.map((r, i) => ({
      time: times[i],
      value: r[5],
      color: r[4] >= r[1] ? "rgba(38,166,154,0.55)" : "rgba(239,83,80,0.55)",
    })));
    const panes = chart.panes();
    if (panes.length > 1) {
      panes[0].setStretchFactor(3);
      panes[1].setStretchFactor(1);
    }
    chart.priceScale("right", 1).applyOptions({
      scaleMargins: { top: 0.15, bottom: 0 },
      borderColor: "#d5dbe3",
      entireTextOnly: true,
      minimumWidth: 76,
    });

    // Markers for findings and quarantined bars, at the bar they are about.
    const markerAt = new Map();
    const markers = [];
    markersIn.forEach((m, n) => {
      const time = times[floorIndex(times, intraday ? displaySeconds(m.t, tz) : m.t)];
      const list = markerAt.get(time) || [];
      list.push(m);
      markerAt.set(time, list);
      markers.push({
        time,
        id: String(n),
        position: "aboveBar",
        shape: m.kind === "error" || m.kind === "quarantined" ? "arrowDown" : "circle",
        color: MARKER_COLORS[m.kind] || MARKER_COLORS.info,
        size: 1,
      });
    });
    markers.sort((a, b) => a.time - b.time);
    const markerPlugin = lib.createSeriesMarkers(candles, markers);

    // The first and last bars stay clear of the chart's edges.
    const fit = () => {
      const width = element.clientWidth || 600;
      const bars = rows.length + RIGHT_OFFSET;
      const pad = Math.max(1, (36 * bars) / width);
      chart.timeScale().setVisibleLogicalRange({
        from: -pad,
        to: rows.length - 1 + RIGHT_OFFSET,
      });
    };
    fit();

    const fields = [
      ["symbol", ""],
      ["time", ""],
      ["open", "O"],
      ["high", "H"],
      ["low", "L"],
      ["close", "C"],
      ["volume", "V"],
      ["change", ""],
      ["vwap", "VWAP"],
      ["ma", `MA${maLength}`],
    ];
    if (compareRows.length > 0) fields.push(["compare", compareSymbol], ["own", symbol]);
    fields.push(["finding", ""]);
    const legend = makeLegend(element, fields);
    const series = { vwap: intraday ? vwapLine : null, ma: maLine, sessions: shade };
    const shown = (name) => overlayState[name] !== false;

    function show(i) {
      const r = rows[i];
      const previous = i > 0 ? rows[i - 1][4] : r[1];
      const change = r[4] - previous;
      const pct = previous === 0 ? 0 : (change / previous) * 100;
      const found = markerAt.get(times[i]);
      const values = {
        symbol: `${symbol} · ${element.closest("#chart-panel")?.dataset.timeframe || ""}`,
        time: timeText(times[i], intraday, label),
        open: priceText(r[1]),
        high: priceText(r[2]),
        low: priceText(r[3]),
        close: priceText(r[4]),
        volume: volumeText(r[5]),
        change: `${signed(change, Math.abs(change) >= 1 || change === 0 ? 2 : 4)} (${
          signed(pct, 2)
        }%)`,
        vwap: !intraday || shown("vwap") ? priceText(vwap[i]) : null,
        ma: shown("ma") && ma[i] !== null ? priceText(ma[i]) : null,
        finding: found && shown("markers")
          ? found.map((m) => `${m.kind}: ${m.rule}`).join(", ")
          : null,
      };
      if (compareRows.length > 0) {
        const pctAt = comparePct.get(times[i]);
        values.compare = pctAt === undefined ? "-" : `${signed(pctAt, 2)}%`;
        values.own = `${signed(rows[0][4] === 0 ? 0 : (r[4] / rows[0][4] - 1) * 100, 2)}%`;
      }
      legend.update(values);
      if (legend.spans && legend.spans.change) {
        legend.spans.change.span.classList.toggle("up", change >= 0);
        legend.spans.change.span.classList.toggle("down", change < 0);
      }
      element.dataset.legendIndex = String(i);
      element.classList.toggle("has-finding", Boolean(found && shown("markers")));
    }
    show(rows.length - 1);

    chart.subscribeCrosshairMove((param) => {
      const i = param.time === undefined ? undefined : indexOf.get(param.time);
      show(i === undefined ? rows.length - 1 : i);
    });
    chart.subscribeClick((param) => {
      if (!shown("markers") || param.time === undefined) return;
      const found = markerAt.get(param.time);
      if (found) globalThis.location.assign(found[0].href);
    });

    // Overlay toggles in the same panel.
    function apply(name, on) {
      overlayState[name] = on;
      if (name === "markers") markerPlugin.setMarkers(on ? markers : []);
      else if (series[name]) series[name].applyOptions({ visible: on });
      show(Number(element.dataset.legendIndex || rows.length - 1));
    }
    const toggles = panel.querySelectorAll("input[data-overlay]");
    toggles.forEach((input) => {
      const name = input.dataset.overlay;
      if (overlayState[name] === false) input.checked = false;
      if (!input.checked) apply(name, false);
      input.addEventListener("change", () => apply(name, input.checked));
    });

    // Server text is New York time for `local`: name the zone the chart uses.
    if (tz === "local") {
      panel.querySelectorAll(".chart-zone").forEach((node) => {
        node.textContent = `your time zone (${label})`;
      });
    }
    charts.set(element, chart);
  }

  function drawAll(root) {
    if (root.matches && root.matches(".chart[data-bars]")) draw(root);
    if (root.querySelectorAll) root.querySelectorAll(".chart[data-bars]").forEach(draw);
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
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => drawAll(document));
  } else {
    drawAll(document);
  }
})();
