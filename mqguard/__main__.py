"""Allow ``python -m mqguard``."""

import sys

from mqguard.cli import main

sys.exit(main())
