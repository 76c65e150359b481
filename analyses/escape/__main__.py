"""``python -m analyses.escape`` = ``landscape escape``."""
import sys

from analyses.cli import main

raise SystemExit(main(["escape", *sys.argv[1:]]))
