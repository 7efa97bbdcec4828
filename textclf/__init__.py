"""textclf: sentiment and review classification with a packed-sequence LSTM, in plain PyTorch."""

__version__ = "0.1.0"
__all__ = ["Classifier", "__version__"]


def __getattr__(name: str):
    if name == "Classifier":  # lazy: `import textclf` stays cheap for the CLI's --help
        from .predict import Classifier

        return Classifier
    raise AttributeError(f"module 'textclf' has no attribute {name!r}")
