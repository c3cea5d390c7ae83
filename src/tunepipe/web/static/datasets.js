// The dataset page's upload progress: htmx reports the bytes sent of the multipart request
// (htmx:xhr:progress); the bar shows their share, and 100 % once the server has answered
// (a small file may be sent before the browser reports any progress at all).
(function () {
  function show(percent) {
    var bar = document.getElementById("upload-progress");
    var text = document.getElementById("upload-percent");
    if (!bar) { return; }
    bar.value = percent;
    bar.textContent = percent + " %";
    if (text) { text.textContent = percent + " %"; }
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target.id === "upload-form") { show(0); }
  });
  document.addEventListener("htmx:xhr:progress", function (event) {
    if (event.target.id !== "upload-form" || !event.detail.lengthComputable || !event.detail.total) { return; }
    show(Math.round((100 * event.detail.loaded) / event.detail.total));
    if (event.detail.loaded >= event.detail.total) {
      // Sent: the server now checks every line, then adds them all (or none).
      var text = document.getElementById("upload-percent");
      if (text) { text.textContent = "100 % sent, checking the lines…"; }
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.target.id === "upload-form" && event.detail.successful) { show(100); }
  });
  // A refused request (an expired form, a read-only key) is not swapped in by htmx: say so.
  document.addEventListener("htmx:responseError", function (event) {
    var result = document.getElementById("upload-result");
    if (event.target.id !== "upload-form" || !result) { return; }
    var p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = "The upload was refused (HTTP " + event.detail.xhr.status + "). Reload the page and try again.";
    result.replaceChildren(p);
  });
})();
