"""`python -m infra.workspace`: infra/workspace/cli.py."""

import sys

from infra.workspace.cli import main

sys.exit(main())
