"""What an operator watches a running gateway with: Prometheus metrics (:mod:`.metrics`) and
OpenTelemetry traces of model calls (:mod:`.tracing`).

A low layer (only ``domain`` below it), so the HTTP middleware, the services and the job worker
can all report to it without importing each other.
"""
