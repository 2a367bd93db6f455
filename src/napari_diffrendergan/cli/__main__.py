"""``python -m napari_diffrendergan.cli``: the ``diffrendergan`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
