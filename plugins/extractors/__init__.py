"""Feature extractors for sample-quality metrics."""
