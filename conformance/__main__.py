"""``python -m conformance`` runs the command-line tool."""

import sys

from conformance.cli import main

sys.exit(main())
