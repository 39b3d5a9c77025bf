// MarketPipe dashboard script. Served from /assets (the CSP allows no inline script): draws a
// candlestick chart with volume into every `.chart[data-bars]` element, on the first load and
// whenever htmx swaps new content in.
(function () {
  "use strict";
  const UP = "#26a69a";
  const DOWN = "#ef5350";
  const charts = new Map();

  function draw(element) {
    if (element.dataset.drawn === "1") return;
    const lib = globalThis.LightweightCharts;
    const rows = JSON.parse(element.dataset.bars);
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
      timeScale: {
        timeVisible: element.dataset.intraday === "1",
        secondsVisible: false,
        borderColor: "#d5dbe3",
      },
      rightPriceScale: { borderColor: "#d5dbe3", scaleMargins: { top: 0.08, bottom: 0.25 } },
    });
    const candles = chart.addSeries(lib.CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      borderVisible: false,
      wickUpColor: UP,
      wickDownColor: DOWN,
    });
    candles.setData(
      rows.map((r) => ({ time: r[0], open: r[1], high: r[2], low: r[3], close: r[4] })),
    );
    const volume = chart.addSeries(lib.HistogramSeries, {
      priceScaleId: "volume",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    volume.setData(rows.map((r) => ({
      time: r[0],
      value: r[5],
      color: r[4] >= r[1] ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)",
    })));
    chart.timeScale().fitContent();
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
