"""``python -m analyses.theorems`` = ``landscape theorems``."""
import sys

from analyses.cli import main

raise SystemExit(main(["theorems", *sys.argv[1:]]))
