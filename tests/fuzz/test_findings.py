"""The fuzzers' findings, fixed: one test per finding, on the public function that had it
(docs/fuzzing.md lists them; the inputs that found them are kept under fuzz/crashes/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotchain.codec import CodecError
from pilotchain.identity.errors import IdentityFileError
from pilotchain.identity.files import load_identity
from pilotchain.ledger.tx import decode_args


def test_f1_arguments_with_a_non_string_map_key_are_refused_not_a_type_error() -> None:
    # {1: 2}: msgspec decodes it, then the codec's canonical re-encoding raised TypeError, which
    # escaped execution and stopped block production (any member could halt the chain)
    with pytest.raises(CodecError, match="map keys are strings"):
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
