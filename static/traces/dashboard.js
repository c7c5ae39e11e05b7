// Draws the staff dashboard's charts (templates/admin/traces/dashboard.html) from the JSON the
// page carries in #dashboard-data, with the vendored Chart.js (no CDN).
(function () {
  "use strict";
  const source = document.getElementById("dashboard-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const palette = ["#417690", "#e3863a", "#5b9e4d", "#c34a4a", "#8a6bbf", "#3fa7a0",
                   "#c9a227", "#d16ba5", "#7f7f7f"];
  const color = (i) => palette[i % palette.length];
  const base = { responsive: true, maintainAspectRatio: false, animation: false };

  function stacked(id, datasets) {
    new Chart(document.getElementById(id), {
      type: "bar",
      data: {
        labels: data.days,
        datasets: datasets.map((d, i) => ({ ...d, backgroundColor: color(i) })),
      },
      options: { ...base, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
  }

  function grouped(id, labels, series) {
    new Chart(document.getElementById(id), {
      type: "bar",
      data: {
        labels: labels,
        datasets: series.map(([label, values], i) => ({ label, data: values, backgroundColor: color(i) })),
      },
      options: { ...base, scales: { y: { beginAtZero: true } } },
    });
  }

  stacked("chart-cost-workspace", data.cost.workspace);
  stacked("chart-cost-feature", data.cost.feature);
  stacked("chart-cost-model", data.cost.model);

  new Chart(document.getElementById("chart-tokens"), {
    type: "line",
    data: {
      labels: data.tokens.labels,
      datasets: [{ label: "tokens / minute", data: data.tokens.per_minute, borderColor: color(0),
                   pointRadius: 0, borderWidth: 1.5 }],
    },
    options: { ...base, scales: { y: { beginAtZero: true }, x: { ticks: { maxTicksLimit: 12 } } } },
  });

  grouped("chart-latency", data.latency.models,
          [["p50", data.latency.p50], ["p95", data.latency.p95], ["p99", data.latency.p99]]);
  grouped("chart-providers", data.providers.names, [
    ["cache hit rate", data.providers.cache_hit_rate],
    ["error rate", data.providers.error_rate],
    ["fallback rate", data.providers.fallback_rate],
  ]);
  grouped("chart-thumbs", data.thumbs.features,
          [["thumbs up", data.thumbs.up], ["thumbs down", data.thumbs.down]]);
})();
