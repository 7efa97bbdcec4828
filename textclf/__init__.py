"""textclf: sentiment and review classification with a packed-sequence LSTM, in plain PyTorch."""

__version__ = "0.1.0"
