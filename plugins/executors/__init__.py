"""Executors: where a suite's jobs run (worker processes on this machine, a Ray cluster)."""
