"""Identities as the SDK uses them: a certificate and its private key, loaded from a file."""

from __future__ import annotations

import os

from pilotchain.codec import encode
from pilotchain.crypto import Suite
from pilotchain.identity.errors import IdentityLayerError as _IdentityLayerError
from pilotchain.identity.files import PASSPHRASE_ENV, IdentityBundle, load_identity
from pilotchain.identity.records import Certificate, certificate_id
from pilotchain.sdk._errors import IdentityError

__all__ = ["Identity"]


class Identity:
    """Who signs: an org-issued certificate with its private key (never printed)."""

    __slots__ = ("_bundle", "_certificate_bytes")

    def __init__(self, bundle: IdentityBundle) -> None:
        self._bundle = bundle
        self._certificate_bytes = encode(bundle.certificate)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, passphrase: str | bytes | None = None) -> Identity:
        """Load an identity file (``pilotchain identity issue`` / ``network init`` / ``ceremony``
        write them); ``passphrase`` unlocks a key encrypted at rest (None: the
        ``PILOTCHAIN_KEY_PASSPHRASE`` environment variable when set)."""
        if passphrase is None:
            passphrase = os.environ.get(PASSPHRASE_ENV) or None
        secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        try:
            return cls(load_identity(path, passphrase=secret))
        except _IdentityLayerError as exc:
            raise IdentityError(
                f"{exc}; create identities with `pilotchain identity issue`"
            ) from exc

    @property
    def bundle(self) -> IdentityBundle:
        return self._bundle

    @property
    def suite(self) -> Suite:
        return self._bundle.suite

    @property
    def certificate(self) -> Certificate:
        return self._bundle.certificate

    @property
    def certificate_bytes(self) -> bytes:
        """The canonical certificate bytes a transaction names its signer by."""
        return self._certificate_bytes

    @property
    def certificate_id(self) -> bytes:
        return certificate_id(self.suite, self.certificate)

    @property
    def org(self) -> str:
        return self.certificate.org_id

    @property
    def subject(self) -> str:
        return self.certificate.subject

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(str(role) for role in self.certificate.roles)

    def sign(self, message: bytes) -> bytes:
        return self._bundle.private_key.sign(message)

    def __repr__(self) -> str:
        return f"Identity({self.org}/{self.subject}, suite={self.suite.name})"
