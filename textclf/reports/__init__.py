"""Metrics, evaluation of a saved model, plots; `textclf baseline` is textclf/baseline.py."""
