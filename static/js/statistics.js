// The regulator's market statistics chart: each <canvas data-statistics-chart="#rows"> is drawn by
// Chart.js (vendored) from the rows of the table body it names (<tr data-statistics
// data-slot-label data-volume-kwh data-median-price data-top-share [data-alert]>, newest slot
// first), so the chart and the table always hold the same numbers. The table body is a live
// region: when htmx swaps new rows in (a block committed), the chart is drawn again from them.
// Volume is drawn as bars on the left axis (kWh), the median price as a line with points on the
// right axis. A slot where one seller holds more than the threshold has a hatched bar of its own
// legend entry, with the largest seller's share written above it: not colour alone. The canvas's
// aria-label is rewritten with a summary of what is drawn. No inline script or style: the CSP
// forbids both.
"use strict";

(() => {
  const BLUE = "#0b5cad";
  const ORANGE = "#b35806";
  const INK = "#1a1a1a";
  const charts = new Map();

  const say = window.tableCharts.say;

  // Diagonal stripes on white: the concentration bars differ from the others by pattern too.
  function hatch() {
    const tile = document.createElement("canvas");
    tile.width = 8;
    tile.height = 8;
    const ctx = tile.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, 8, 8);
    ctx.strokeStyle = ORANGE;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(0, 8);
    ctx.lineTo(8, 0);
    ctx.moveTo(-2, 2);
    ctx.lineTo(2, -2);
    ctx.moveTo(6, 10);
    ctx.lineTo(10, 6);
    ctx.stroke();
    return ctx.createPattern(tile, "repeat") || ORANGE;
  }

  function rowsOf(body) {
    // The table lists the newest slot first; the chart reads left to right, oldest first.
    return Array.from(body.querySelectorAll("tr[data-statistics]"))
      .map((row) => ({
        label: row.dataset.slotLabel,
        volume: Number(row.dataset.volumeKwh),
        price: row.dataset.medianPrice === "" ? null : Number(row.dataset.medianPrice),
        alert: row.hasAttribute("data-alert"),
        topShare: row.dataset.topShare,
      }))
      .reverse();
  }

  function summary(canvas, rows) {
    const unit = canvas.dataset.priceUnit;
    const volumes = rows.map((r) => r.volume);
    const prices = rows.map((r) => r.price).filter((p) => p !== null);
    const flagged = rows.filter((r) => r.alert);
    const slots = rows.length === 1 ? "1 slot" : `${rows.length} slots`;
    const parts = [
      `Volume per slot (bars, kWh) and median price (line, ${unit}) of the ${slots} with contracts, from ${rows[0].label} to ${rows[rows.length - 1].label}, oldest first.`,
      `Volume from ${Math.min(...volumes)} to ${Math.max(...volumes)} kWh.`,
    ];
    if (prices.length) parts.push(`Median price from ${Math.min(...prices)} to ${Math.max(...prices)} ${unit}.`);
    parts.push(
      flagged.length
        ? `A seller holds more than ${canvas.dataset.threshold} of the volume in ${flagged.length === 1 ? "1 slot" : `${flagged.length} slots`}: ${flagged.map((r) => `${r.label} (${r.topShare})`).join(", ")}.`
        : `No seller holds more than ${canvas.dataset.threshold} of a slot's volume.`,
    );
    parts.push("The same numbers are in the table below the chart.");
    return parts.join(" ");
  }

  // Writes the largest seller's share above each hatched bar.
  function shareLabels(rows) {
    return {
      id: "statisticsShares",
      afterDatasetsDraw(chart) {
        const meta = chart.getDatasetMeta(1);
        if (meta.hidden) return;
        const { ctx } = chart;
        ctx.save();
        ctx.fillStyle = INK;
        ctx.font = "12px sans-serif";
        ctx.textAlign = "center";
        ctx.textBaseline = "bottom";
        meta.data.forEach((bar, index) => {
          if (rows[index].alert) ctx.fillText(rows[index].topShare, bar.x, bar.y - 3);
        });
        ctx.restore();
      },
    };
  }

  function draw(canvas) {
    const body = document.querySelector(canvas.dataset.statisticsChart);
    if (!body) return;
    const rows = rowsOf(body);
    const previous = charts.get(canvas);
    if (previous) previous.destroy();
    if (!rows.length) {
      charts.delete(canvas);
      canvas.dataset.chartState = "empty";
      canvas.setAttribute("aria-label", "No contracts yet: the chart is empty.");
      say(canvas, "No contracts yet.");
      return;
    }
    const unit = canvas.dataset.priceUnit;
    const threshold = canvas.dataset.threshold;
    const data = {
      labels: rows.map((r) => r.label),
      datasets: [
        {
          type: "bar",
          label: "Volume (kWh)",
          data: rows.map((r) => (r.alert ? null : r.volume)),
          backgroundColor: BLUE,
          borderColor: BLUE,
          borderWidth: 2,
          yAxisID: "y",
          order: 2,
        },
        {
          type: "bar",
          label: `Volume, a seller above ${threshold} (kWh)`,
          data: rows.map((r) => (r.alert ? r.volume : null)),
          backgroundColor: hatch(),
          borderColor: ORANGE,
          borderWidth: 2,
          yAxisID: "y",
          order: 2,
        },
        {
          type: "line",
          label: `Median price (${unit})`,
          data: rows.map((r) => r.price),
          borderColor: INK,
          backgroundColor: INK,
          borderWidth: 2,
          borderDash: [6, 3],
          pointStyle: "rectRot",
          pointRadius: 4,
          yAxisID: "price",
          order: 1,
        },
      ],
    };
    charts.set(
      canvas,
      new window.Chart(canvas, {
        type: "bar",
        data,
        plugins: [shareLabels(rows)],
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          plugins: {
            legend: { position: "top" },
            tooltip: {
              filter: (item) => item.raw !== null,
              callbacks: {
                label: (item) =>
                  item.dataset.yAxisID === "price"
                    ? `Median price: ${item.parsed.y} ${unit}`
                    : `Volume: ${item.parsed.y} kWh${rows[item.dataIndex].alert ? `, largest seller ${rows[item.dataIndex].topShare}` : ""}`,
              },
            },
          },
          scales: {
            x: { stacked: true, title: { display: true, text: "Slot" } },
            y: {
              stacked: true,
              beginAtZero: true,
              grace: "10%",
              position: "left",
              title: { display: true, text: "Volume (kWh)" },
            },
            price: {
              beginAtZero: true,
              grace: "10%",
              position: "right",
              grid: { drawOnChartArea: false },
              title: { display: true, text: `Median price (${unit})` },
            },
          },
        },
      }),
    );
    canvas.setAttribute("aria-label", summary(canvas, rows));
    canvas.dataset.chartState = "drawn";
    say(canvas, "");
  }

  window.tableCharts.follow("canvas[data-statistics-chart]", (canvas) => canvas.dataset.statisticsChart, draw);
})();
