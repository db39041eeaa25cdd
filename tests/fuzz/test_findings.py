"""The fuzzers' findings, fixed: one test per finding, on the public function that had it
(docs/fuzzing.md lists them; the inputs that found them are kept under fuzz/crashes/)."""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pilotchain.apps.credentials.diploma import Presentation
from pilotchain.apps.credentials.sdjwt import SdJwtInvalid
from pilotchain.apps.exchange.delivery import FrameReader, open_payload, read_header, verify_receipt
from pilotchain.apps.exchange.records import (
    RECEIPT_DOMAIN,
    DeliveryHeader,
    ExchangeError,
    SignedRecord,
)
from pilotchain.apps.supply.epcis import EpcisError, canonical_identifier
from pilotchain.codec import CodecError, encode
from pilotchain.identity.errors import IdentityFileError
from pilotchain.identity.files import load_identity
from pilotchain.ledger.genesis import ChainParams, Genesis, GenesisError
from pilotchain.ledger.tx import (
    RejectCode,
    TxBody,
    TxRejected,
    check_transaction,
    decode_args,
    encode_args,
    sign_transaction,
)
from pilotchain.node.config import NodeConfigError, load_genesis

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def test_f1_arguments_with_a_non_string_map_key_are_refused_not_a_type_error() -> None:
    # {1: 2}: msgspec decodes it, then the codec's canonical re-encoding raised TypeError, which
    # escaped execution and stopped block production (any member could halt the chain)
    with pytest.raises(CodecError):
        decode_args(b"\x81\x01\x02")
    with pytest.raises(CodecError):
        decode_args(b"\x91\x81\xc0\x01")  # [{nil: 1}]


def test_f2_an_identity_file_with_invalid_utf8_in_a_string_is_an_identity_file_error(tmp_path: Path) -> None:
    # msgspec's JSON decoder raises UnicodeDecodeError (not DecodeError) for such bytes
    path = tmp_path / "bad.id"
    path.write_bytes(b'{"format": "pilotchain-identity/1", "suite": "intl", "org": "\xce"}')
    path.chmod(0o600)
    with pytest.raises(IdentityFileError, match="is not a pilotchain identity file"):
        load_identity(path)


def _genesis(**changes: Any) -> Genesis:
    from fuzz.harness import consortium

    return msgspec.structs.replace(consortium("intl").genesis, **changes)


@pytest.mark.parametrize("changes, says", [
    # an organisation certificate that is not self-signed (its signature byte flipped)
    ({"organizations": (b"\x00",)}, "organisation certificate is unusable"),
    ({"params": ChainParams(timeout_propose_ms=0)}, "at least 1 ms"),  # InvariantBroken at start before
    ({"params": ChainParams(timeout_vote_ms=-5)}, "at least 1 ms"),
    ({"chain_id": "fuzz-chain\n"}, "chain_id must be"),  # '$' matched before the newline
])
def test_f3_genesis_check_refuses_what_no_node_could_start_from(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(GenesisError, match=says):
        _genesis(**changes).check()


def test_f3_genesis_check_refuses_validator_power_the_consensus_set_refuses() -> None:
    genesis = _genesis()
    validators = (msgspec.structs.replace(genesis.validators[0], power=2**40 + 1), *genesis.validators[1:])
    with pytest.raises(GenesisError, match="validator power"):
        msgspec.structs.replace(genesis, validators=validators).check()


def test_f3_a_forged_organisation_signature_is_refused() -> None:
    genesis = _genesis()
    forged = bytearray(genesis.organizations[1])
    forged[-1] ^= 1
    with pytest.raises(GenesisError, match="not correctly self-signed"):
        msgspec.structs.replace(genesis, organizations=(genesis.organizations[0], bytes(forged))).check()


def test_f4_a_genesis_file_naming_an_unknown_suite_is_a_node_config_error(tmp_path: Path) -> None:
    genesis = _genesis(suite="\tntl")
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps({"canonical_base64": base64.b64encode(encode(genesis)).decode(), "hash": "00"}))
    with pytest.raises(NodeConfigError, match="names crypto suite"):
        load_genesis(path)


def _package(**changes: Any) -> tuple[bytes, int]:
    """A delivery package from the fuzz target's seed, with header fields changed; the data key size."""
    from fuzz.targets import exchange

    seed = next(data for data in exchange.seeds() if data[0] == 3)
    length = int.from_bytes(seed[2:4], "big")
    header = msgspec.msgpack.decode(seed[4:4 + length], type=DeliveryHeader)
    changed = encode(msgspec.structs.replace(header, **changes))
    return seed[:2] + len(changed).to_bytes(2, "big") + changed + seed[4 + length:], seed[1]


@pytest.mark.parametrize("changes, key_bytes, says", [
    ({"chunk_bytes": 0}, 32, "in chunks of 0"),                 # ZeroDivisionError before
    ({"chunk_bytes": 2**40}, 32, "chunks are 1.."),
    ({"size": -1}, 32, "announces -1 bytes"),
    ({"nonce_prefix": b"\x00"}, 32, "nonce prefix"),            # InvariantBroken in ChunkCipher before
    ({}, 5, "data key is 5 bytes"),                              # InvariantBroken in ChunkCipher before
])
def test_f5_a_provider_s_delivery_header_out_of_bounds_is_an_exchange_error(
        changes: dict[str, Any], key_bytes: int, says: str) -> None:
    from fuzz.targets import exchange

    package, _ = _package(**changes)
    package = exchange._malicious_provider(bytes([key_bytes]) + package[2:])
    suite = exchange.consortium("intl").suite
    reader = FrameReader([package])
    header, _signed, _certificate, _receipt = read_header(suite, reader)
    with pytest.raises(ExchangeError, match=says):
        list(open_payload(suite, exchange._keys()[0], header, exchange.REQUEST_ID, reader))


def test_f5_a_signed_record_that_holds_no_receipt_is_an_exchange_error() -> None:
    from fuzz.targets import exchange

    members = exchange.consortium("intl")
    provider = members.members["org-b-client"]
    body = b"\x93\x01\x02\x03"
    signature = provider.key.sign(b"pilotchain/exchange/receipt\x00" + body)
    raw = encode(SignedRecord(domain=RECEIPT_DOMAIN, body=body, certificate=provider.certificate, signature=signature))
    with pytest.raises(ExchangeError, match="holds no receipt"):  # CodecError escaped before
        verify_receipt(members.suite, raw)


def test_f6_a_presentation_with_a_key_binding_jwt_is_not_packed_into_a_qr_code_without_it() -> None:
    from fuzz.targets import credentials

    seed = next(data for data in credentials.seeds() if data[:2] == b"\x00{")
    presentation = Presentation.from_text(seed[1:].decode())
    with_binding = dataclasses.replace(presentation, sd_jwt=presentation.sd_jwt + "eyJhbGciOiJub25lIn0.e30.")
    with pytest.raises(SdJwtInvalid, match="key-binding JWT"):  # it vanished from the QR text before
        with_binding.to_qr_text()
    assert Presentation.from_text(presentation.to_qr_text()) == presentation


@pytest.mark.parametrize("urn", ["urn:epc:id:sgln:4012345.00005.0?", "urn:epc:id:sgtin:4012345.011111.1/2",
                                 "urn:epc:id:sgtin:4012345.011111.1#x"])
def test_f7_an_epc_urn_whose_serial_would_reshape_the_digital_link_is_refused(urn: str) -> None:
    # '?' became the Digital Link's query, which canonicalisation drops: the event and its
    # normalised form hashed to different Event Hash IDs
    with pytest.raises(EpcisError, match="malformed EPC URI"):
        canonical_identifier(urn)
    assert canonical_identifier("urn:epc:id:sgtin:4012345.011111.A%2Fb-1") == \
        "https://id.gs1.org/01/04012345111118/21/A%2Fb-1"


@pytest.mark.parametrize("contract, method", [("kv\n", "put"), ("kv", "put\n")])
def test_f9_a_name_with_a_trailing_newline_is_refused_at_admission(contract: str, method: str) -> None:
    from fuzz.harness import NOW_MS, consortium

    members = consortium("intl")
    signer = members.members["org-a-client"]
    body = TxBody(chain_id=members.genesis.chain_id, signer_certificate=signer.certificate, nonce=b"\x01" * 16,
                  expires_at_ms=NOW_MS + 60_000, contract=contract, method=method, args=encode_args({"key": "k"}))
    raw = sign_transaction(members.suite, signer.key, body)
    with pytest.raises(TxRejected) as refused:  # admitted before: "$" matches before a final newline
        check_transaction(members.suite, raw, chain_id=members.genesis.chain_id, now_ms=NOW_MS,
                          signer_public_key=lambda _certificate: signer.public_key_der)
    assert refused.value.code is RejectCode.BAD_NAME
