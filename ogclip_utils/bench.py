"""Deprecated name of :mod:`ogclip_utils.perf` (``make bench``); kept for one release."""
import sys

from .perf import *  # noqa: F401,F403
from .perf import guided_vs_grid, main, notebook_runtimes, peak_memory, table  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
