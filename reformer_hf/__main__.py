"""``python -m reformer_hf`` runs the ``reformer-hf`` command line."""

import sys

from .cli import main

sys.exit(main())
