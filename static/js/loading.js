// The grid operator's feeder loading chart: each <canvas data-loading-chart="#rows"> is drawn by
// Chart.js (vendored) from the rows of the table body it names (<tr data-loading
// data-slot-label data-feeder data-export-pct data-import-pct>), so the chart and the table always
// hold the same numbers. The table body is a live region: when htmx swaps new rows in (a block
// committed), the chart is drawn again from them. Export and import differ by pattern (solid,
// dashed border) as well as colour. No inline script or style: the CSP forbids both.
"use strict";

(() => {
  const COLOURS = ["#0b5cad", "#b35806", "#1b7837", "#762a83", "#8c510a", "#01665e"];
  const charts = new Map();

  const say = window.tableCharts.say;

  function dataOf(body) {
    const labels = [];
    const series = new Map(); // "feeder direction" -> {feeder, direction, values: Map(label -> pct)}
    body.querySelectorAll("tr[data-loading]").forEach((row) => {
      const label = row.dataset.slotLabel;
      if (!labels.includes(label)) labels.push(label);
      ["export", "import"].forEach((direction) => {
        const text = row.dataset[`${direction}Pct`];
        if (text === undefined || text === "") return;
        const key = `${row.dataset.feeder} ${direction}`;
        if (!series.has(key)) {
          series.set(key, { feeder: row.dataset.feeder, direction, values: new Map() });
        }
        series.get(key).values.set(label, Number(text));
      });
    });
    const feeders = [...new Set([...series.values()].map((s) => s.feeder))];
    const datasets = [...series.entries()].map(([key, s]) => {
      const colour = COLOURS[feeders.indexOf(s.feeder) % COLOURS.length];
      const exporting = s.direction === "export";
      return {
        label: key,
        data: labels.map((label) => (s.values.has(label) ? s.values.get(label) : null)),
        backgroundColor: exporting ? colour : "rgba(255, 255, 255, 0)",
        borderColor: colour,
        borderWidth: 2,
        borderDash: exporting ? [] : [6, 3],
      };
    });
    return { labels, datasets };
  }

  function draw(canvas) {
    const body = document.querySelector(canvas.dataset.loadingChart);
    if (!body) return;
    const data = dataOf(body);
    const previous = charts.get(canvas);
    if (previous) previous.destroy();
    if (!data.datasets.length) {
      charts.delete(canvas);
      canvas.dataset.chartState = "empty";
      say(canvas, "No published feeder is loaded in the coming slots.");
      return;
    }
    charts.set(
      canvas,
      new window.Chart(canvas, {
        type: "bar",
        data,
        options: {
          animation: false,
          maintainAspectRatio: false,
          plugins: {
            legend: { position: "top" },
            tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${item.parsed.y} %` } },
          },
          scales: {
            x: { title: { display: true, text: "Slot" } },
            y: { beginAtZero: true, suggestedMax: 100, title: { display: true, text: "% of capacity" } },
          },
        },
      }),
    );
    canvas.dataset.chartState = "drawn";
    say(canvas, "");
  }

  window.tableCharts.follow("canvas[data-loading-chart]", (canvas) => canvas.dataset.loadingChart, draw);
})();
