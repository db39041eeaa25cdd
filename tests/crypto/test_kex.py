"""Key agreement and HKDF through the crypto package's public API (``pilotchain.crypto.kex``).

The p2p tests cross-check SM2-curve ECDH against an independent pure-Python curve; these pin
the published vectors and that p2p uses crypto's public API only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pilotchain.crypto
import pilotchain.p2p
from pilotchain.crypto import (
    CryptoError,
    get_suite,
    hkdf_expand,
    hkdf_extract,
    hmac_digest,
    key_exchange_for,
)
from pilotchain.crypto.kex import HKDF_OUTPUT_BYTES_MAX, Sm2KeyExchange, X25519KeyExchange

from .helpers import SUITE_NAMES


def test_each_suite_has_its_exchange() -> None:
    intl, gm = key_exchange_for(get_suite("intl")), key_exchange_for(get_suite("gm"))
    assert isinstance(intl, X25519KeyExchange) and isinstance(gm, Sm2KeyExchange)
    assert key_exchange_for(get_suite("intl")) is intl  # one per suite
    assert (intl.public_key_bytes, gm.public_key_bytes) == (32, 65)


def test_x25519_rfc7748_section_6_1() -> None:
    exchange = key_exchange_for(get_suite("intl"))
    alice, alice_public = exchange.keypair(
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    bob, bob_public = exchange.keypair(
        bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    )
    assert alice_public.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert bob_public.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert exchange.shared_secret(alice, bob_public).hex() == shared
    assert exchange.shared_secret(bob, alice_public).hex() == shared


def test_x25519_refuses_low_order_and_wrong_sizes() -> None:
    exchange = key_exchange_for(get_suite("intl"))
    private, _ = exchange.keypair(bytes(range(32)))
    for bad in [bytes(32), (1).to_bytes(32, "little"), bytes(31)]:
        with pytest.raises(CryptoError):
            exchange.shared_secret(private, bad)


def test_sm2_public_point_of_the_gbt_32918_5_example_key() -> None:
    # GB/T 32918.5 example: d = 3945208F...C5B8 has public key (09F9DF31..., CCEA490C...)
    exchange = key_exchange_for(get_suite("gm"))
    scalar = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
    peer_private, peer_public = exchange.keypair(bytes(64))
    assert exchange.shared_secret(scalar, peer_public) == exchange.shared_secret(
        peer_private,
        bytes.fromhex(
            "04"
            "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
            "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
        ),
    )


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
def test_keypair_is_a_function_of_its_randomness(suite_name: str) -> None:
    exchange = key_exchange_for(get_suite(suite_name))
    random = bytes(range(exchange.private_key_bytes))
    assert exchange.keypair(random) == exchange.keypair(random)
    assert exchange.keypair(random) != exchange.keypair(bytes(exchange.private_key_bytes))


def test_hkdf_sha256_rfc5869_case_3_empty_salt_and_info() -> None:
    suite = get_suite("intl")
    prk = hkdf_extract(suite, b"", bytes.fromhex("0b" * 22))
    assert prk.hex() == "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"
    assert hkdf_expand(suite, prk, b"", 42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )
    with pytest.raises(CryptoError, match="HKDF output"):
        hkdf_expand(suite, prk, b"", HKDF_OUTPUT_BYTES_MAX + 1)


def test_hmac_sha256_rfc4231_case_2() -> None:
    mac = hmac_digest(get_suite("intl"), b"Jefe", b"what do ya want for nothing?")
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_hmac_sm3_is_keyed_sm3() -> None:
    # HMAC-SM3 with a key of one block (64 bytes): SM3((K ^ opad) || SM3((K ^ ipad) || m))
    gm = get_suite("gm")
    key, message = bytes(range(64)), b"abc"
    inner = gm.hash(bytes(k ^ 0x36 for k in key) + message)
    assert hmac_digest(gm, key, message) == gm.hash(bytes(k ^ 0x5C for k in key) + inner)


def test_p2p_uses_no_private_crypto_module() -> None:
    package = Path(pilotchain.p2p.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if name.startswith("pilotchain.crypto."):
                    assert not name.split(".")[2].startswith("_"), f"{path.name} imports {name}"


def test_public_api_is_exported() -> None:
    for name in pilotchain.crypto.__all__:
        assert hasattr(pilotchain.crypto, name), name
