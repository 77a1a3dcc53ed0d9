"""``python -m glotbench.harness.cli`` is the ``glotbench`` command."""

import sys

from glotbench.harness.cli.main import main

sys.exit(main())
