// The UI's only script besides htmx (the Content-Security-Policy allows no inline script).
// htmx requests that change state carry the session's CSRF token in a header, read from the
// page's <meta name="csrf-token">; plain form posts carry it in a hidden field instead.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && event.detail.verb !== "get") {
    event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
  }
});
