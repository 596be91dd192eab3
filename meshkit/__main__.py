"""``python -m meshkit``: the same command line as the ``meshkit`` console script."""

from meshkit.cli import main

main()
