"""The government directory chain (pilot scenario S2): catalogue-driven data sharing between departments.

Departments publish their duties and catalogue entries (fields, sharing class, update frequency,
usage policy) on chain, every change a new version; a consumer files a request citing its duty,
the fields, a purpose and a period; the provider — or the Big-Data Bureau, as the entry's policy
says — approves, and the agreement is final on chain. Calls go vault to vault: the provider's
vault releases only the agreed fields of its structured records, only within the agreed period,
each value with a proof against a salted per-field commitment on chain; both sides sign matching
receipts, anchored through the data exchange. The Big-Data Bureau computes usage statistics from
the anchored receipts. See ``docs/catalogue.md``.

Built on :mod:`pilotchain.apps.exchange` (vaults, receipts, anchoring): the vault mounts this
application's routes through the ``pilotchain.vault_extensions`` entry points.
"""
