"""``python -m vdm_cli``: the ``vdm`` program (torchrun and the terminal UI's trainer start it so)."""

import sys

from vdm_cli.main import main

sys.exit(main())
