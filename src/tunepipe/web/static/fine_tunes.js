// A fine-tune's loss curve: uPlot draws train and eval loss by step from the data-chart
// attribute the server wrote (JSON, never markup), again each time htmx swaps in fresh progress.
(function () {
  "use strict";
  var plot = null;

  function draw() {
    var el = document.getElementById("loss-chart");
    if (!el || !window.uPlot) { return; }
    var data = JSON.parse(el.getAttribute("data-chart"));
    if (plot) { plot.destroy(); plot = null; }
    if (!data.step.length) { el.setAttribute("data-points", "0"); return; }
    var opts = {
      width: Math.max(280, el.clientWidth || 600),
      height: 240,
      scales: { x: { time: false } },
      series: [
        { label: "Step" },
        { label: "Train loss", stroke: "#2563eb", width: 2, spanGaps: true, points: { show: true, size: 4 } },
        { label: "Eval loss", stroke: "#dc2626", width: 2, spanGaps: true, points: { show: true, size: 6 } }
      ],
      axes: [{ label: "Step" }, { label: "Loss", size: 60 }]
    };
    plot = new uPlot(opts, [data.step, data.loss, data.eval_loss], el);
    el.setAttribute("data-points", String(data.step.length));
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", function (event) {
    // The polled #live part, or the whole <main> brought in once training has ended.
    var t = event.target;
    if (t && (t.id === "live" || (t.querySelector && t.querySelector("#live")))) { draw(); }
  });
  window.addEventListener("resize", function () {
    var el = document.getElementById("loss-chart");
    if (plot && el) { plot.setSize({ width: Math.max(280, el.clientWidth || 600), height: 240 }); }
  });
})();
