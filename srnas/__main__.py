"""`python -m srnas`: the command line, the same as the `srnas` script."""
import sys

from srnas.search.cli import main

sys.exit(main())
