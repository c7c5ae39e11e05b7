"""N concurrent chat WebSockets on one daphne process (issue #5, item 8).

    .venv/bin/python -m benchmarks.chat_streams [--ramp 1,50,...] [--rate 20] [--json]

A private PostgreSQL and Redis, `migrate_schemas`, a seeded workspace with limits too high to
refuse anything, ONE daphne serving `aisaas.asgi:application` (production settings plus the
channel-layer fix in `settings.py`) with no provider key, so the offline local model answers at
a fixed token rate. For each N of the ramp, a load generator in its own process (`loadgen.py`)
opens N sockets, sends one unique message on each at once and times every token frame. Per
step: time to first token, added inter-token latency (gap − 1/rate), max gap, stalls (gap >
`--stall`), late first tokens (> `--max-ttft`), the most answers streaming at one instant, and
daphne's CPU, threads, file descriptors and database connections.
"""
