"""Evaluate a saved model: `python evaluate.py RUN_DIR --data PATH [--split test] [--output m.json]`."""

import sys

from textclf.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
