"""``python -m glotbench.harness.cli`` is the ``glotbench`` command."""

import os
import sys

from glotbench.harness.cli.main import main

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.exit(main())
