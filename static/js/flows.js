// The household's energy charts: each <canvas data-flows-chart="energy|trade"
// data-flows-url="..."> is drawn by Chart.js (vendored) from the JSON at its URL
// (meters/flows.json), fetched once per URL. The table below each chart holds the same numbers.
// Series differ by line dash and point shape as well as colour, and the legend shows the dash.
// No inline script or style: the CSP forbids both (Chart.js sizes the canvas through the CSSOM,
// which the CSP allows).
"use strict";

(() => {
  // Colours with at least 3:1 contrast on white; each series has its own dash and point shape.
  const GREEN = "#1b7837";
  const ORANGE = "#b35806";
  const BLUE = "#0b5cad";
  const PURPLE = "#762a83";
  const SERIES = {
    energy: [
      { key: "generation_wh", label: "Generation", color: GREEN, dash: [], point: "circle" },
      { key: "consumption_wh", label: "Consumption", color: ORANGE, dash: [8, 4], point: "triangle" },
      { key: "import_wh", label: "Import", color: BLUE, dash: [2, 3], point: "rect" },
      { key: "export_wh", label: "Export", color: PURPLE, dash: [12, 4, 2, 4], point: "crossRot" },
    ],
    trade: [
      { key: "sold_wh", label: "Sold", color: GREEN, dash: [], point: "circle" },
      { key: "sold_delivered_wh", label: "Sold, delivered", color: GREEN, dash: [8, 4], point: "triangle" },
      { key: "bought_wh", label: "Bought", color: BLUE, dash: [2, 3], point: "rect" },
      { key: "bought_delivered_wh", label: "Bought, delivered", color: BLUE, dash: [12, 4, 2, 4], point: "crossRot" },
    ],
  };

  function statusOf(canvas) {
    const figure = canvas.closest("figure");
    return figure ? figure.querySelector("[data-chart-status]") : null;
  }

  function fail(canvas, text) {
    canvas.dataset.chartState = "failed";
    const status = statusOf(canvas);
    if (status) status.textContent = text;
  }

  function draw(canvas, data) {
    const kind = canvas.dataset.flowsChart;
    const series = SERIES[kind];
    const values = data[kind];
    if (!series || !values) {
      fail(canvas, "This chart is unknown; the numbers are in the table below.");
      return;
    }
    // A week has 672 slots: points that small would only blur the lines.
    const pointRadius = data.labels.length > 200 ? 0 : 2.5;
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: series.map((s) => ({
          label: s.label,
          data: values[s.key],
          borderColor: s.color,
          backgroundColor: "rgba(255, 255, 255, 0)",
          pointBackgroundColor: s.color,
          borderDash: s.dash,
          borderWidth: 2,
          pointStyle: s.point,
          pointRadius: pointRadius,
          pointHoverRadius: 5,
          pointHitRadius: 6,
          fill: false,
        })),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          // Legend boxes are stroked with each series' dash, so they match without colour.
          legend: { position: "top", labels: { boxWidth: 40, boxHeight: 12 } },
          tooltip: {
            callbacks: { label: (item) => `${item.dataset.label}: ${item.parsed.y} Wh` },
          },
        },
        scales: {
          x: {
            title: { display: true, text: `Slot start (${data.time_zone})` },
            ticks: { autoSkip: true, maxRotation: 0, maxTicksLimit: 12 },
          },
          y: {
            beginAtZero: true,
            title: { display: true, text: `Energy per ${data.slot_s / 60}-minute slot (Wh)` },
            ticks: { precision: 0 },
          },
        },
      },
    });
    canvas.dataset.chartState = "drawn";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const canvases = document.querySelectorAll("canvas[data-flows-chart]");
    if (!canvases.length) return;
    if (!window.Chart) {
      canvases.forEach((c) => fail(c, "The chart could not be drawn; the numbers are in the table below."));
      return;
    }
    const byUrl = new Map();
    canvases.forEach((canvas) => {
      const url = canvas.dataset.flowsUrl;
      if (!byUrl.has(url)) byUrl.set(url, []);
      byUrl.get(url).push(canvas);
    });
    byUrl.forEach((group, url) => {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => {
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          return response.json();
        })
        .then((data) => group.forEach((canvas) => draw(canvas, data)))
        .catch(() =>
          group.forEach((c) => fail(c, "The chart could not be loaded; the numbers are in the table below.")),
        );
    });
  });
})();
