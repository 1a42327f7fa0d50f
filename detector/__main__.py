"""``python -m detector`` runs the ``stormwatch`` command."""

import sys

from detector.cli import main

sys.exit(main())
