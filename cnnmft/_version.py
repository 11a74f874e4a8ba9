"""The package version, read from the installed metadata (its one source is ``pyproject.toml``).

A module of its own so that ``cnnmft.__version__`` and ``cnnmft --version`` pay for
:mod:`importlib.metadata` only when the version is asked for.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cnnmft")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
