"""textclf: sentiment and review classification with a packed-sequence LSTM, in plain PyTorch."""

import os

# oneDNN (PyTorch's CPU LSTM) caches a compiled kernel with its buffers per input shape, up to 1,024 of them.
# Texts come in ever-new lengths, so that cache only grows (by gigabytes over language-model pretraining);
# 64 kernels bound it at the same speed (figures: benchmarks/README.md, "Memory while training"). Read by
# oneDNN when it makes its first kernel, so this works as long as textclf is imported before the first CPU
# op; a value already in the environment wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

from ._version import __version__

__all__ = ["Classifier", "__version__"]


def __getattr__(name: str):
    if name == "Classifier":  # lazy: `import textclf` stays cheap for the CLI's --help
        from .inference.classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'textclf' has no attribute {name!r}")
