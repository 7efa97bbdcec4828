"""Train a textclf model: `python train.py [--config configs/imdb.yaml] key=value ...`."""

import sys

from textclf.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
