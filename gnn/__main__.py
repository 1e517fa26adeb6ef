"""python -m gnn: the gnn command."""

import sys

from gnn.cli import main

sys.exit(main())
