"""The language grammar, the Thrift IDL and the golden programs, as package data.

Installed as ``exathunk.grammar`` so that an installed exathunk finds these files
outside the checkout.
"""

from importlib import resources


def path(name: str):
    """A Traversable for a file in this folder, e.g. ``path("exathunk.thrift")``."""
    return resources.files(__name__).joinpath(name)
