// Evaluations: the new-eval form (fields for the chosen type; Tab in the code editor indents)
// and the win-rate chart, drawn with uPlot from the JSON in its data-chart attribute (no inline script:
// the Content-Security-Policy forbids it). The chart is drawn again when htmx swaps in fresh
// results while an eval runs.
(function () {
  "use strict";

  function showTypeFields(select) {
    var fieldsets = document.querySelectorAll("fieldset[data-for-type]");
    for (var i = 0; i < fieldsets.length; i++) {
      var on = fieldsets[i].getAttribute("data-for-type") === select.value;
      fieldsets[i].hidden = !on;
      fieldsets[i].disabled = !on;
    }
  }

  var INDENT = "    ";

  function onEditorKey(event) {
    var area = event.target;
    if (event.key !== "Tab" || event.ctrlKey || event.altKey || event.metaKey) {
      return;
    }
    // Escape then Tab leaves the editor, so the keyboard is never trapped.
    if (area.getAttribute("data-tab-escape") === "1") {
      area.removeAttribute("data-tab-escape");
      return;
    }
    event.preventDefault();
    var start = area.selectionStart, end = area.selectionEnd, text = area.value;
    var lineStart = text.lastIndexOf("\n", start - 1) + 1;
    if (event.shiftKey) {
      // Outdent the current line by up to one indent.
      var lead = text.slice(lineStart, lineStart + INDENT.length);
      var n = lead.length - lead.replace(/^ +/, "").length;
      if (n > 0) {
        area.value = text.slice(0, lineStart) + text.slice(lineStart + n);
        area.selectionStart = Math.max(lineStart, start - n);
        area.selectionEnd = Math.max(lineStart, end - n);
      }
      return;
    }
    area.value = text.slice(0, start) + INDENT + text.slice(end);
    area.selectionStart = area.selectionEnd = start + INDENT.length;
  }

  function onEditorKeyUp(event) {
    if (event.key === "Escape") {
      event.target.setAttribute("data-tab-escape", "1");
    }
  }

  function drawCharts(root) {
    if (typeof uPlot === "undefined") {
      return;
    }
    var holders = root.querySelectorAll(".eval-chart:not([data-drawn])");
    for (var i = 0; i < holders.length; i++) {
      var holder = holders[i];
      var data = JSON.parse(holder.getAttribute("data-chart"));
      var names = data.models;
      var xs = names.map(function (_, k) { return k; });
      var ys = data.values.map(function (v) { return v === null ? null : v; });
      var width = Math.max(280, Math.min(holder.clientWidth || 640, 720));
      var opts = {
        width: width,
        height: 240,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: { range: [0, 1] } },
        axes: [
          {
            splits: function () { return xs; },
            values: function (_, splits) {
              return splits.map(function (k) { return names[k] === undefined ? "" : names[k]; });
            },
            grid: { show: false },
          },
          { values: function (_, splits) { return splits.map(function (v) { return v.toFixed(1); }); } },
        ],
        series: [
          {},
          {
            label: data.label,
            fill: "rgba(37, 99, 235, 0.75)",
            stroke: "rgb(37, 99, 235)",
            width: 1,
            paths: uPlot.paths.bars({ size: [0.6, 80] }),
            points: { show: false },
          },
        ],
      };
      holder.setAttribute("data-drawn", "1");
      new uPlot(opts, [xs, ys], holder);
    }
  }

  function setUp(root) {
    var select = root.querySelector ? root.querySelector("select[data-eval-type]") : null;
    if (select) {
      showTypeFields(select);
      select.addEventListener("change", function () { showTypeFields(select); });
    }
    var editors = root.querySelectorAll ? root.querySelectorAll("textarea[data-code-editor]") : [];
    for (var i = 0; i < editors.length; i++) {
      editors[i].addEventListener("keydown", onEditorKey);
      editors[i].addEventListener("keyup", onEditorKeyUp);
    }
    drawCharts(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  } else {
    setUp(document);
  }
  document.addEventListener("htmx:afterSettle", function () { drawCharts(document); });
})();
