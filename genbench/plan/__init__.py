"""Layer 4, planning: suite specs, model references, the jobs a spec expands into and the
order they run in. Nothing here trains."""
