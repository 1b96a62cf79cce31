"""Engine API server: ``reelgraph serve`` (FastAPI under /v1). See README.md in this folder.

``app`` (routes), ``service`` (what the API does), ``views`` (runs as the API shows them),
``jobs`` (queue interface + in-process pool), ``store`` (server SQLite), ``events`` (event log
and live fan-out), ``auth`` (tokens, rate limits), ``limits`` (body size), ``webhooks``,
``metrics``, ``artifacts``, ``templates``, ``errors`` (the one error shape), ``config``, ``main``.
"""
