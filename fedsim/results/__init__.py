"""Run records (metrics.jsonl, summary.json, partition statistics) and their comparison."""
