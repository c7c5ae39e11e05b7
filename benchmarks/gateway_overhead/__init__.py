"""The gateway's in-process overhead against a zero-latency provider (issue #3, item 13).

    .venv/bin/python -m benchmarks.gateway_overhead [--calls 2000] [--warmup 200] [--json]

A loopback fake OpenAI server (tests/fakes, no token delay) answers both the gateway and a
direct call through the official SDK (`AsyncOpenAI`, `max_retries=0`). Every iteration makes one
gateway call and one direct call, in random order, so both series see the same machine state;
the overhead is p50(gateway) − p50(direct), likewise at p99, and the distribution of the paired
differences (gateway − direct of the same iteration) is printed as a cross-check.

Phases: a cache miss (each request unique: validate, reserve, cache lookup, provider call,
meter, settle, cache store, record enqueue) and a cache hit (one request repeated: the same
stages without the provider). A last miss pass times each pipeline stage by wrapping the
gateway's stage lists, and counts the Redis commands each call sends.

Real Redis, no database: an embedded redis-server on a temporary data directory and a free port
(stopped and deleted at the end), and the core `Gateway` wired by hand to `BudgetStore`,
`ExactCache` and `RedisCallSink`, with a hand-built `CallScope` whose alias routes to the fake
server and whose limits are too high to deny anything.
"""
