"""Layer 6, the ``meshkit`` command line: thin commands over the layers below."""

from meshkit.cli.app import app

__all__ = ["app"]
