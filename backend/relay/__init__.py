"""The relay: a stateless FastAPI app (WebSocket fan-out + REST) served by uvicorn.

Any number can run behind a load balancer; each holds exactly one Redis
subscription (:mod:`.subscriber`) whatever the number of viewers, and fans its
messages out to the WebSocket clients (:mod:`.hub`, :mod:`.client`) that speak
:mod:`backend.protocol` with :mod:`.endpoint`. REST (:mod:`.routes`) reads
candles from the Redis cache (topped up from SQL) and history from SQL.
:func:`.app.create_app` builds the app, :func:`.server.serve` runs it.
"""
