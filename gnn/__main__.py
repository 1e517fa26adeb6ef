"""python -m gnn: the gnn command."""

import sys

from gnn.cli import command

sys.exit(command())
