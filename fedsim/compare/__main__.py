"""``python -m fedsim.compare`` = ``fedsim-compare``."""

import sys

from fedsim.compare.cli import main

sys.exit(main())
