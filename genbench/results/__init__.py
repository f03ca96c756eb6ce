"""Layer 5, results: the store of finished jobs, statistics over seeds, leaderboards, their
output formats, figures and the HTML report."""
