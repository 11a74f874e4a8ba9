"""``python -m cnnmft``: the same as the ``cnnmft`` console script."""

import sys

from cnnmft.cli import main

if __name__ == "__main__":
    sys.exit(main())
