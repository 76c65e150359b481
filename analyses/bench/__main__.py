"""``python -m analyses.bench`` = ``landscape bench``."""
import sys

from analyses.cli import main

raise SystemExit(main(["bench", *sys.argv[1:]]))
