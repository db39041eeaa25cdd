"""Coverage-guided fuzz targets (atheris) for every decoder that takes bytes from strangers.

``fuzz/targets/<name>.py`` holds one target each: what it checks (``CONTRACT``), the one function
libFuzzer drives (``one_input``), and seed inputs (``seeds``). ``fuzz/harness.py`` holds what the
targets share (the contract checks, a deterministic consortium). ``python -m fuzz.run`` runs them:
see docs/fuzzing.md.
"""
