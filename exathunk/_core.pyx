# cython: language_level=3
"""The graph-reduction engine (filled in by the engine issue)."""
