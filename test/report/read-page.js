// Runs inside the report page (page.evaluate of this file's text, kept plain JavaScript so that no
// transpiler helper leaks into the browser): what the page shows, read from the DOM and from
// Chart.js's own chart instances.
(() => {
  const num = (text) => (text === undefined || text === "" ? null : Number(text));
  const charts = [...document.querySelectorAll("canvas[data-chart]")].map((canvas) => {
    const chart = Chart.getChart(canvas);
    return {
      id: canvas.dataset.chart,
      type: chart ? String(chart.config.type) : "none",
      width: chart ? chart.width : 0,
      height: chart ? chart.height : 0,
      datasets: chart
        ? chart.data.datasets.map((d, i) => ({ label: d.label, run: d.run, series: d.series, data: d.data, drawn: chart.getDatasetMeta(i).data.length }))
        : [],
    };
  });
  const tableElement = document.querySelector("#results-table");
  const table = tableElement
    ? {
        columns: [...tableElement.querySelectorAll("thead th[data-key]")].map((th) => ({ key: th.dataset.key, title: th.textContent, kind: th.dataset.kind })),
        rows: [...tableElement.querySelectorAll("tbody tr")].map((tr) => ({
          label: tr.querySelector(".label").textContent,
          runs: tr.dataset.runs.split(" "),
          seeds: tr.dataset.seeds.split(" ").map(Number),
          cells: Object.fromEntries(
            [...tr.querySelectorAll("td[data-key]")].map((td) => [
              td.dataset.key,
              { mean: num(td.dataset.mean), std: num(td.dataset.std), n: Number(td.dataset.n), best: td.dataset.best === "true" },
            ]),
          ),
        })),
      }
    : null;
  const generations = [...document.querySelectorAll("table.generations")].flatMap((t) =>
    [...t.querySelectorAll("tbody tr")].map((tr) => ({
      run: t.dataset.run,
      id: tr.dataset.id,
      reference: tr.querySelector(".reference").textContent,
      response: tr.querySelector(".response").textContent,
      context: tr.querySelector(".context").textContent,
    })),
  );
  return { charts, table, generations, images: document.images.length, injected: window.__injected ?? null };
})()
