// Community figures per day: each <canvas data-figures-chart="<table id>"> is drawn by Chart.js
// (vendored) from the table it names, which holds the same numbers for those who cannot see the
// chart. The columns drawn are those whose cells carry data-value (a percentage, or "" for a day
// without data). No inline script or style: the CSP forbids both.
"use strict";

(() => {
  const STYLES = [
    { color: "#0b5cad", dash: [], point: "circle" },
    { color: "#b35806", dash: [8, 4], point: "triangle" },
    { color: "#1b7837", dash: [2, 3], point: "rect" },
  ];

  function draw(canvas) {
    const table = document.getElementById(canvas.dataset.figuresChart);
    const status = canvas.closest("figure")?.querySelector("[data-chart-status]");
    if (!table || !window.Chart) {
      canvas.dataset.chartState = "failed";
      if (status) status.textContent = "(the chart cannot be drawn here: the numbers are in the table below)";
      return;
    }
    const rows = Array.from(table.tBodies[0].rows);
    const headers = Array.from(table.tHead.rows[0].cells);
    const drawn = rows.length ? Array.from(rows[0].cells).map((cell, i) => (cell.hasAttribute("data-value") ? i : -1)).filter((i) => i >= 0) : [];
    const datasets = drawn.map((column, n) => {
      const style = STYLES[n % STYLES.length];
      return {
        label: headers[column].textContent.trim(),
        data: rows.map((row) => {
          const text = row.cells[column].dataset.value;
          return text === "" ? null : Number(text);
        }),
        borderColor: style.color,
        backgroundColor: "rgba(255, 255, 255, 0)",
        pointBackgroundColor: style.color,
        pointStyle: style.point,
        borderDash: style.dash,
        spanGaps: false,
      };
    });
    new window.Chart(canvas, {
      type: "line",
      data: { labels: rows.map((row) => row.cells[0].textContent.trim()), datasets },
      options: {
        animation: false,
        responsive: true,
        scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } },
        plugins: { legend: { labels: { usePointStyle: true } } },
      },
    });
    canvas.dataset.chartState = "drawn";
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("canvas[data-figures-chart]").forEach(draw);
  });
})();
