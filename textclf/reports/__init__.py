"""Metrics, evaluation of a saved model, plots, the baseline."""
