"""Benchmark scripts (run each as ``python benchmarks/NAME.py``); a package so that mypy and
the tests name their shared modules ``benchmarks.*``."""
