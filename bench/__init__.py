"""Benchmarks, each printing a table: ``python -m bench.<name>`` from the project root."""
