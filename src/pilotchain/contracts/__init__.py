"""Contracts: the built-in native ones, and (issue 5) the Python contract sandbox."""
