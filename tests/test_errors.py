"""One error tree per side, and invariants that `python -O` cannot remove.

The platform's errors derive from :class:`pilotchain.errors.CoreError` (drawn in errors.py), the
SDK's from :class:`pilotchain.sdk.PilotchainError` (drawn in sdk/_errors.py). No module uses
``assert`` for an invariant: ``python -O`` strips asserts, and a node must not go on signing on a
wrong assumption because of an optimisation flag.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pilotchain
from pilotchain.errors import CoreError, InvariantBroken

PACKAGE = Path(pilotchain.__file__).parent
#: exceptions that are not errors the platform raises to a caller: a test's crash injection and
#: control flow that never leaves its module
NOT_IN_A_TREE = {"CrashInjected", "_DialFailed", "_ApiError", "UserError"}


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a pilotchain module (imported, so inheritance is real)."""
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(pilotchain.__path__, "pilotchain."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            # Exception subclasses: the sandbox's aborts are BaseExceptions on purpose (contract code
            # must not catch them) and never leave the runtime, which turns them into ContractError
            if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_no_module_uses_assert() -> None:
    offenders = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in sorted(PACKAGE.rglob("*.py"))
                 for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert offenders == []


def test_every_error_class_has_one_of_the_two_roots() -> None:
    from pilotchain.sdk import PilotchainError

    classes = _exception_classes()
    assert len(classes) >= 40
    strays = sorted(name for name, error in classes.items()
                    if name.rsplit(".", 1)[1] not in NOT_IN_A_TREE and not issubclass(error, (CoreError, PilotchainError)))
    assert strays == []


def test_the_former_roots_are_core_errors() -> None:
    from pilotchain.codec import CodecError
    from pilotchain.consensus.certificate import ConsensusError
    from pilotchain.contracts.sandbox import CodeRejected
    from pilotchain.crypto import CryptoError, SealError
    from pilotchain.identity.errors import IdentityLayerError
    from pilotchain.ledger.execution import ContractError
    from pilotchain.ledger.genesis import GenesisError
    from pilotchain.ledger.tx import TxRejected
    from pilotchain.node.chain import BlockInvalid
    from pilotchain.node.config import NodeConfigError
    from pilotchain.node.core import NodeHalted
    from pilotchain.p2p.errors import P2PError
    from pilotchain.sdk import PilotchainError
    from pilotchain.sdk.wire import WireError
    from pilotchain.storage.errors import StorageError

    for error in (CodecError, ConsensusError, CodeRejected, CryptoError, SealError, IdentityLayerError,
                  ContractError, GenesisError, TxRejected, BlockInvalid, NodeConfigError, P2PError,
                  WireError, StorageError):
        assert issubclass(error, CoreError), error
    assert issubclass(NodeHalted, InvariantBroken)
    assert not issubclass(PilotchainError, CoreError)  # the SDK's tree is its own
    assert issubclass(CodecError, ValueError) and issubclass(GenesisError, ValueError)  # unchanged for callers


def test_a_broken_invariant_still_raises_under_python_O() -> None:
    probe = (
        "from pilotchain.errors import InvariantBroken\n"
        "from pilotchain.consensus.replica import ConsensusConfig\n"
        "try:\n    ConsensusConfig(chain_id=b'')\nexcept InvariantBroken as exc:\n    print('raised', exc)\n"
    )
    result = subprocess.run([sys.executable, "-O", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.startswith("raised chain id must be 1..64 bytes")


def test_the_tree_is_drawn_where_it_is_defined() -> None:
    import pilotchain.errors

    drawing = pilotchain.errors.__doc__ or ""
    for name in ("CodecError", "CryptoError", "IdentityLayerError", "TxRejected", "ContractError", "BlockInvalid",
                 "StorageError", "P2PError", "NodeConfigError", "NodeHalted"):
        assert name in drawing
