"""The dashboard: server-rendered pages at `/` on the web listener (Jinja2 + htmx),
above the services: it uses the public functions of restapi/, imgtransform/ and
docgen/, and nothing below imports it."""
