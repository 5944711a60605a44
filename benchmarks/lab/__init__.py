"""The estimator lab behind ``python -m benchmarks.compare_estimators``: variants, training
runs, summaries with spreads over seeds, verdicts and plots."""
