"""Benchmarks: scripts that print figures (docs/benchmarks.md records them); never run as tests."""
