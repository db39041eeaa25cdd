"""The built-in ``kv`` contract: a shared key-value table every new network has.

It lets a fresh consortium be exercised before any contract is deployed. Access rule: the first
organisation to write a key owns it; only members of that organisation may overwrite or delete
it; anyone in the consortium may read it.

Methods (arguments are one canonical value each):
    put    {"key": str, "value": any}   -> None
    get    {"key": str}                  -> value | None
    delete {"key": str}                  -> bool (whether it existed)
"""

from __future__ import annotations

from typing import Any

from pilotchain.codec import decode, encode
from pilotchain.ledger.execution import ContractError, ContractState, TxContext
from pilotchain.ledger.tx import RejectCode

KEY_CHARS_MAX = 256
_WRITE_ROLES = frozenset({"client", "admin"})


def _key_of(args: Any) -> bytes:
    if not isinstance(args, dict) or not isinstance(args.get("key"), str):
        raise ContractError('arguments must be a map with a string "key"', RejectCode.BAD_ARGUMENTS)
    key: str = args["key"]
    if not 1 <= len(key) <= KEY_CHARS_MAX:
        raise ContractError(f"key must be 1..{KEY_CHARS_MAX} characters", RejectCode.BAD_ARGUMENTS)
    return b"v/" + key.encode()


class KvContract:
    name = "kv"

    def call(self, method: str, args: Any, ctx: TxContext, state: ContractState) -> tuple[Any, int]:
        key = _key_of(args)
        stored = state.get(key)
        owner, value = decode(stored, tuple[str, Any]) if stored is not None else (None, None)
        if method == "get":
            return value, 1
        if not _WRITE_ROLES.intersection(ctx.caller.roles):
            raise ContractError("writing kv needs the client or admin role", RejectCode.PERMISSION_DENIED)
        if owner is not None and owner != ctx.caller.org:
            raise ContractError(f"key is owned by organisation {owner!r}", RejectCode.PERMISSION_DENIED)
        if method == "put":
            if "value" not in args:
                raise ContractError('put needs a "value"', RejectCode.BAD_ARGUMENTS)
            encoded = encode((ctx.caller.org, args["value"]))
            state.put(key, encoded)
            state.emit("put", {"key": args["key"], "org": ctx.caller.org})
            return None, 1 + len(encoded) // 1024
        if method == "delete":
            if stored is None:
                return False, 1
            state.delete(key)
            state.emit("delete", {"key": args["key"], "org": ctx.caller.org})
            return True, 1
        raise ContractError(f"kv has no method {method!r} (put, get, delete)", RejectCode.UNKNOWN_METHOD)
