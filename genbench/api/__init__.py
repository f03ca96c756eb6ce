"""Layer 0, the contracts: what plugin authors code against (models, datasets, metrics,
samplers, extractors, the budget, the hooks, the errors) and the helpers they use (data
paths, per-sample training noise). Imports nothing else of genbench. Plugins import these
names from the top-level ``genbench`` package, never from here."""
