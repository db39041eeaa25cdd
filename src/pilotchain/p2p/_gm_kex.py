"""Probe for the ``gm`` key exchange: importing this module fails where SM2 is unavailable.

SM2-curve ECDH itself now lives in :mod:`pilotchain.crypto.kex` (:class:`Sm2KeyExchange`).
The p2p tests skip their gm-only cases with ``pytest.importorskip("pilotchain.p2p._gm_kex")``;
importing :mod:`pilotchain.crypto.gm` below loads OpenSSL 3's ``libcrypto.so.3``, as this
module's import always did.
"""

from __future__ import annotations

import pilotchain.crypto.gm  # noqa: F401  (loads the gm backend)
from pilotchain.crypto.kex import Sm2KeyExchange

__all__ = ["Sm2KeyExchange"]
