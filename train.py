"""Train a textclf model: `python train.py [--config OVERRIDES.yaml] key=value ...` (no file: the IMDB recipe)."""

import sys

from textclf.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
