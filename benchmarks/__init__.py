"""Benchmarks: what `up`, a code change and a scheduled run cost. See benchmarks/README.md.

Each module is one benchmark, run from the repository root as `uv run python -m benchmarks.<name>`.
"""
