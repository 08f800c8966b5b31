// The report page's own script (inlined by render-page.ts after Chart.js's UMD build, which defines
// the global Chart): draws every <canvas data-chart="ID"> from the chart data in #report-data.
// Plain browser JavaScript with no imports, so that it is inlined as it is written.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  var colors = {};
  function colorOf(run) {
    if (!(run in colors)) colors[run] = palette[Object.keys(colors).length % palette.length];
    return colors[run];
  }

  // static pages: no animation, so what is drawn is the data from the first frame on
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  function axis(type, text, extra) {
    var scale = { type: type, title: { display: true, text: text } };
    for (var key in extra || {}) scale[key] = extra[key];
    return scale;
  }

  function lineChart(canvas, spec) {
    return new Chart(canvas, {
      type: "line",
      data: {
        datasets: spec.datasets.map(function (d) {
          var color = colorOf(d.run);
          return {
            label: d.label,
            run: d.run,
            series: d.series,
            data: d.points,
            borderColor: color,
            backgroundColor: color,
            borderDash: d.series === "eval_loss" ? [6, 4] : [],
            pointRadius: d.points.length > 60 ? 0 : 2,
            tension: 0,
          };
        }),
      },
      options: {
        scales: { x: axis("linear", spec.x_title), y: axis("linear", spec.y_title) },
        plugins: {
          title: { display: true, text: spec.title },
          legend: { labels: { filter: function (item, chartData) { return chartData.datasets[item.datasetIndex].data.length > 0; } } },
        },
      },
    });
  }

  function sweepChart(canvas, spec) {
    var x = spec.x_scale === "category" ? axis("category", spec.param, { labels: spec.categories, offset: true }) : axis(spec.x_scale, spec.param);
    return new Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          {
            label: spec.title,
            data: spec.points,
            pointRadius: 5,
            // points at the ends of the axis (the sweep's first and last values) drawn whole, not cut in half
            clip: false,
            pointBackgroundColor: spec.points.map(function (p) { return colorOf(p.run); }),
            pointBorderColor: spec.points.map(function (p) { return colorOf(p.run); }),
          },
        ],
      },
      options: {
        layout: { padding: { left: 6, right: 10, top: 6 } },
        scales: { x: x, y: axis("linear", spec.y_title) },
        plugins: {
          title: { display: true, text: spec.title },
          legend: { display: false },
          tooltip: { callbacks: { label: function (item) { return item.raw.run + ": " + item.raw.y; } } },
        },
      },
    });
  }

  var specs = {};
  data.training.forEach(function (spec) { specs[spec.id] = { spec: spec, draw: lineChart }; });
  data.sweep.forEach(function (spec) { specs[spec.id] = { spec: spec, draw: sweepChart }; });
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var entry = specs[canvas.getAttribute("data-chart")];
    if (!entry) throw new Error("no chart data for canvas " + canvas.getAttribute("data-chart"));
    entry.draw(canvas, entry.spec);
  });
})();
