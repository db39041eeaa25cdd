"""The identity core is deterministic: no clock, randomness, sockets or file I/O outside files.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pilotchain.identity

CORE = ("records.py", "authority.py", "membership.py", "expiry.py", "armor.py", "errors.py")
BANNED = {"time", "random", "os", "socket", "asyncio", "secrets", "pathlib", "io", "shutil"}


def test_core_modules_import_nothing_impure():
    root = Path(pilotchain.identity.__file__).parent
    for name in CORE:
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                modules = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not modules & BANNED, f"{name} imports {modules & BANNED}"
            assert "pilotchain.identity.files" not in {getattr(node, "module", None)}, name


def test_public_api_is_curated():
    exported = set(pilotchain.identity.__all__)
    assert {
        "Membership",
        "CertificateAuthority",
        "Certificate",
        "IdentityRejected",
        "RejectReason",
    } <= exported
    assert all(hasattr(pilotchain.identity, name) for name in exported)
