// The Usage page's charts: uPlot draws requests, tokens and cost per model over time from the
// data-chart attribute (JSON the server wrote; model names go in as text, never as markup).
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d"];

  function draw(root) {
    var data = JSON.parse(root.getAttribute("data-chart"));
    var charts = [];
    root.querySelectorAll(".chart").forEach(function (el) {
      var name = el.getAttribute("data-series");
      var series = [{ label: data.daily ? "Day (UTC)" : "Hour (UTC)" }];
      data.models.forEach(function (model, i) {
        series.push({
          label: model,
          stroke: PALETTE[i % PALETTE.length],
          width: 2,
          points: { show: true, size: 5 },
          value: function (u, v) { return v == null ? "–" : (name === "cost" ? "$" + v.toFixed(6) : String(v)); }
        });
      });
      var opts = {
        width: Math.max(280, el.clientWidth || root.clientWidth),
        height: 200,
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
        series: series,
        scales: { x: { time: true } },
        axes: [{}, {
          size: 70,
          values: function (u, splits) {
            return splits.map(function (v) { return name === "cost" ? "$" + Number(v.toPrecision(3)) : String(v); });
          }
        }],
        legend: { live: true }
      };
      var plot = new uPlot(opts, [data.x].concat(data[name]), el);
      el.setAttribute("data-drawn", "1");
      charts.push({ plot: plot, el: el });
    });
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        charts.forEach(function (c) {
          c.plot.setSize({ width: Math.max(280, c.el.clientWidth || root.clientWidth), height: 200 });
        });
      }, 100);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("usage-charts");
    if (root && window.uPlot) { draw(root); }
  });
})();
