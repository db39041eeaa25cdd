"""The data-exchange application: organisations exchange payloads off chain against on-chain decisions.

Each organisation runs a vault that keeps payloads (its own and copies delivered to it), never puts
payload bytes on chain, and releases them only against decisions recorded on chain.
:mod:`pilotchain.apps.exchange.store` is the vault's encrypted, crash-safe payload store.
See ``docs/exchange.md``.
"""
