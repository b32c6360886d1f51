"""``python -m viewer PATH... [--screenshot PNG]``."""

import sys

from .app import main

sys.exit(main())
