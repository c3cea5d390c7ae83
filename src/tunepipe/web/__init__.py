"""The web UI: server-rendered pages (Jinja2, htmx) served by the API's server at ``/``.

It sits below ``api`` (the app mounts it) and above ``services``: pages call the same use cases
as the API's routes and never SQL. No Node.js and no build step: the templates and the vendored,
pinned htmx ship as package data (``static/VENDORED.md``).
"""
