"""``python -m ebm_bench.claims``: the verdicts alone (see :mod:`ebm_bench.claims`)."""

import sys

from ebm_bench.claims import main

sys.exit(main())
