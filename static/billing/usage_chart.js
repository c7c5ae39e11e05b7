// The billing page's usage chart: the vendored Chart.js over the data the server embedded
// (credits per day, one stacked dataset per feature; Chart.js's Colors plugin picks colours).
(() => {
  const canvas = document.getElementById("usage-chart");
  const data = document.getElementById("usage-data");
  if (!canvas || !data || !window.Chart) return;
  new window.Chart(canvas, {
    type: "bar",
    data: JSON.parse(data.textContent),
    options: {
      maintainAspectRatio: false,
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: "credits" } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });
})();
