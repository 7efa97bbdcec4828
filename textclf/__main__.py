"""`python -m textclf ...` is the `textclf` command."""

import sys

from .cli import main

sys.exit(main())
