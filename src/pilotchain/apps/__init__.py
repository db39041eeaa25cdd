"""Applications built on the platform (data exchange, pilot scenarios, digital currency, explorer).

They sit above every platform package: an application may import the SDK, the node API and the
contract API; no platform package imports an application (the import-linter contract in
``pyproject.toml`` enforces both). Each application lives in its own sub-package here.
"""
