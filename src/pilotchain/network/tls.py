"""TLS for the gateways: a network TLS CA and a server certificate per node.

The gateway's HTTP is authenticated per request (RFC 9421 signatures by members' keys), but the
bytes on the wire — transaction arguments, state values, query results — are only private under TLS.
``pilotchain network init --tls`` (and ``add-node`` for such a network) writes:

* ``tls-ca.pem`` in the network folder (public: clients trust it; ``network.json`` names it as
  ``tls_ca``) and ``tls-ca.key`` beside it (0600: the operator's, to issue later nodes' certificates);
* ``tls.crt`` / ``tls.key`` (0600) in each node home, for its gateway; ``node.json`` names them and the
  node's ``gateway_url`` becomes ``https://``.

Certificates are X.509 with ECDSA P-256 (what every TLS stack speaks), made with ``cryptography``;
a server certificate names the node's advertised host (as an IP address or DNS name) and is valid for
``valid_days``. With the ceremony (docs/operations.md) each organisation can equally use a certificate
from its own PKI: ``node.json``'s ``tls_cert_file`` / ``tls_key_file`` are all the node needs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TLS_CA_FILE", "TLS_CA_KEY_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE", "TlsAuthority"]

TLS_CA_FILE = "tls-ca.pem"
TLS_CA_KEY_FILE = "tls-ca.key"
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class TlsAuthority:
    """A network's TLS CA (key and self-signed certificate)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate

    @classmethod
    def create(cls, network_name: str, *, now: datetime.datetime, valid_days: int = 3650) -> TlsAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(f"{network_name} gateway TLS CA")
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def load(cls, directory: Path) -> TlsAuthority:
        key = serialization.load_pem_private_key((directory / TLS_CA_KEY_FILE).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{directory / TLS_CA_KEY_FILE} is not an EC key")
        return cls(key, x509.load_pem_x509_certificate((directory / TLS_CA_FILE).read_bytes()))

    def save(self, directory: Path) -> None:
        (directory / TLS_CA_FILE).write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        _write_private(directory / TLS_CA_KEY_FILE, self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def issue_server(self, node_name: str, hosts: list[str], home: Path, *, now: datetime.datetime,
                     valid_days: int = 825) -> None:
        """Write ``tls.crt`` / ``tls.key`` for a gateway reachable as ``hosts`` into ``home``."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(node_name)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + datetime.timedelta(days=valid_days), self.certificate.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName([_san(host) for host in dict.fromkeys(hosts)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        (home / TLS_CERT_FILE).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_private(home / TLS_KEY_FILE, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
