"""A saved model at work: running it (runtime.py), the Classifier API (classifier.py), explanations (explain.py),
ONNX export (export.py). None of it imports training code or the config."""

# Texts per forward pass when predicting and evaluating (and validating, train.eval_batch_size). On a CPU, small
# batches run faster: their [batch, length, 2 x hidden] tensors stay in its cache. On a GPU, larger ones (256+) pay.
PREDICT_BATCH_SIZE = 64
