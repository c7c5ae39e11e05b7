"""The support console: what platform staff use across workspaces — trace search, trace pages and
replay, the cost and latency dashboard, promotion of traces to eval examples, and the workspace
admin (AI settings, legal hold). It sits above everything it shows (llm, traces, billing, evals,
agents) and nothing imports it; see docs/architecture.md."""
