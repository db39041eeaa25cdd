"""Verifiable credentials on pilotchain (docs/credentials.md): university diplomas as SD-JWT VC
(RFC 9901), issued in batches anchored by one Merkle root each, selectively disclosed, revocable
through an on-chain status list, verified offline from a presentation, a chain snapshot and the
chain's genesis.

Pure core: ``sdjwt.py`` (SD-JWT for both suites), ``diploma.py`` (the profile, batches, the
holder's envelope), ``statuslist.py``, ``snapshot.py`` (what a chain snapshot proves),
``verify.py`` (the verification report). Shell: ``chain.py`` (SDK calls, snapshot export),
``issuer.py`` (the issuer's home), ``cli.py`` (``pilotchain credential``), ``network.py``
(``network up`` and the demo). The on-chain half is ``contracts/credentials.py``.
"""
