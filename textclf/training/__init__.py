"""Training a model: data preparation, the loop, checkpoints, fine-tuning, pretraining."""
