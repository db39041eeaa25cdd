"""Consortium set-up and operation: network init, node homes, the manifest (network.json)."""
