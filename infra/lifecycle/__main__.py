"""`python -m infra.lifecycle`: infra/lifecycle/cli.py."""

import sys

from infra.lifecycle.cli import main

sys.exit(main())
