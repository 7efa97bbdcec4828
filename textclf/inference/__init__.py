"""A saved model at work: running it, Classifier, explanations, export; no training code."""
