"""pilotchain: a permissioned consortium blockchain."""
__version__ = "0.1.0"
