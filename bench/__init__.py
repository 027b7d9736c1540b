"""Benchmarks: each ``bench/<part>/run.py`` is run as a script (see docs/benchmarks.md)."""
