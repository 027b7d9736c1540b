// What the consoles' charts share (static/js/loading.js, static/js/statistics.js): each <canvas>
// names the table it is drawn from and is drawn on load, and again whenever htmx swaps that
// table's rows; its figure's [data-chart-status] says in words when it cannot be drawn.
(() => {
  "use strict";

  function say(canvas, text) {
    const figure = canvas.closest("figure");
    const status = figure ? figure.querySelector("[data-chart-status]") : null;
    if (status) status.textContent = text;
  }

  // Draw every canvas matching ``selector`` with ``draw(canvas)``; ``tableOf(canvas)`` is the
  // selector of the rows it is drawn from.
  function follow(selector, tableOf, draw) {
    document.addEventListener("DOMContentLoaded", () => {
      const canvases = document.querySelectorAll(selector);
      if (!canvases.length) return;
      if (!window.Chart) {
        canvases.forEach((canvas) => {
          canvas.dataset.chartState = "failed";
          say(canvas, "The chart could not be drawn; the numbers are in the table below.");
        });
        return;
      }
      canvases.forEach(draw);
      document.body.addEventListener("htmx:afterSwap", (event) => {
        canvases.forEach((canvas) => {
          if (event.target.matches(tableOf(canvas))) draw(canvas);
        });
      });
    });
  }

  window.tableCharts = { say, follow };
})();
