"""An issuer's home folder: its signing keys, its status lists' allocations and its register of
issued diplomas — what the university keeps (the chain keeps the public half).

::

    issuer.json              iss, name, organisation, suite, chain, keys (kid, validity), lists
    keys/<kid>.pem           signing keys (encrypted PKCS#8 when a passphrase is set:
                             $PILOTCHAIN_KEY_PASSPHRASE), mode 0600
    lists/<list_id>.alloc    which entries of the list are taken (1 bit each)
    batches/<batch_id>.jsonl a signed batch, written before its anchoring is sent (mode 0600)
    issued.jsonl             one line per diploma: batch, roll position, student id, list, index

Files are replaced atomically (write, fsync, rename); the allocation is written before a batch
is anchored, so a crash can waste indices but never hand one out twice.

``issue`` is the whole issuing step: allocate random status indices, sign the class's diplomas,
anchor the batch in one transaction, record the register, and return the diplomas to hand out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotchain.apps.credentials import chain as chain_calls
from pilotchain.apps.credentials.diploma import (
    IssuedBatch,
    IssuedDiploma,
    Presentation,
    issue_batch,
)
from pilotchain.apps.credentials.sdjwt import algorithm_for
from pilotchain.apps.credentials.snapshot import CONTRACT
from pilotchain.apps.credentials.statuslist import (
    LIST_SIZE_DEFAULT,
    STATUS_BITS_DEFAULT,
    allocate,
    mark_allocated,
)
from pilotchain.crypto import PrivateKey, get_suite
from pilotchain.errors import CoreError
from pilotchain.identity.files import (
    decrypt_private_key_pem,
    encrypt_private_key_pem,
    is_encrypted_key_file,
    key_passphrase,
)
from pilotchain.sdk import Client, Identity

__all__ = ["IssuerError", "IssuerHome", "IssuedRecord", "create_issuer"]

HOME_FORMAT = "pilotchain-issuer/1"
KEY_VALIDITY_DAYS_DEFAULT = 5 * 365
DAY_MS = 86_400_000
#: a new key's validity starts this much before now, so a proposer whose clock is a little behind
#: ours still finds it valid when it anchors the next batch (the chain refuses anchoring before
#: registration anyway)
CLOCK_MARGIN_MS = 5 * 60_000


class IssuerError(CoreError):
    """An issuer home that cannot do what was asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class IssuedRecord:
    batch: str
    position: int
    student_id: str | None
    list_id: str
    index: int


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


class IssuerHome:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.config: dict[str, Any] = json.loads((self.path / "issuer.json").read_text())
        except (OSError, ValueError) as exc:
            raise IssuerError(f"{self.path} is not an issuer home (issuer.json: {exc}); create one with "
                              "`pilotchain credential issuer init`") from exc
        if self.config.get("format") != HOME_FORMAT:
            raise IssuerError(f"{self.path}/issuer.json is not a {HOME_FORMAT} file")
        self.suite = get_suite(self.config["suite"])
        self.algorithm = algorithm_for(self.config["suite"])

    # -------------------------------------------------------------- creating

    @classmethod
    def create(cls, path: Path, *, iss: str, name: str, org: str, suite: str, genesis_hash: str) -> IssuerHome:
        path = Path(path)
        if (path / "issuer.json").exists():
            raise IssuerError(f"{path} already holds an issuer ({path / 'issuer.json'})")
        for folder in (path, path / "keys", path / "lists"):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(path / "keys", 0o700)
        config = {"format": HOME_FORMAT, "iss": iss, "name": name, "org": org, "suite": suite,
                  "genesis_hash": genesis_hash, "keys": [], "lists": [], "batches": []}
        _write_atomic(path / "issuer.json", json.dumps(config, indent=2).encode())
        return cls(path)

    def _save(self) -> None:
        _write_atomic(self.path / "issuer.json", json.dumps(self.config, indent=2).encode())

    @property
    def iss(self) -> str:
        return str(self.config["iss"])

    @property
    def genesis_hash(self) -> bytes:
        return bytes.fromhex(self.config["genesis_hash"])

    # -------------------------------------------------------------- keys

    def active_key(self, now_ms: int) -> dict[str, Any]:
        """The newest registered key valid now."""
        for entry in reversed(self.config["keys"]):
            if entry["not_before_ms"] <= now_ms < entry["not_after_ms"]:
                return dict(entry)
        raise IssuerError(f"no key of {self.iss} is valid now; add one with `pilotchain credential key rotate`")

    def private_key(self, kid: str) -> PrivateKey:
        pem = (self.path / "keys" / f"{kid}.pem").read_bytes()
        if is_encrypted_key_file(pem):
            passphrase = key_passphrase()
            if passphrase is None:
                raise IssuerError(f"key {kid} is encrypted: set PILOTCHAIN_KEY_PASSPHRASE")
            pem = decrypt_private_key_pem(pem.decode("ascii"), passphrase)
        return self.suite.load_private_key_pem(pem)

    def add_key(self, client: Client, admin: Identity, *, now_ms: int, valid_days: int = KEY_VALIDITY_DAYS_DEFAULT,
                key: PrivateKey | None = None, not_before_ms: int | None = None) -> str:
        """A fresh signing key, saved, then registered on chain valid from ``not_before_ms`` (now)
        for ``valid_days``; its kid."""
        key = key or self.suite.generate_private_key()
        kid = f"k{len(self.config['keys']) + 1}"
        pem = key.to_pem()
        passphrase = key_passphrase()
        if passphrase is not None:
            pem = encrypt_private_key_pem(pem, passphrase)
        _write_atomic(self.path / "keys" / f"{kid}.pem", pem, 0o600)
        start = now_ms - CLOCK_MARGIN_MS if not_before_ms is None else not_before_ms
        end = start + valid_days * DAY_MS
        chain_calls.register_key(client, admin, self.iss, kid, key, start, end)
        self.config["keys"].append({"kid": kid, "not_before_ms": start, "not_after_ms": end})
        self._save()
        return kid

    def retire_key(self, client: Client, admin: Identity, kid: str, not_after_ms: int) -> None:
        chain_calls.retire_key(client, admin, self.iss, kid, not_after_ms)
        for entry in self.config["keys"]:
            if entry["kid"] == kid:
                entry["not_after_ms"] = not_after_ms
        self._save()

    def rotate(self, client: Client, admin: Identity, *, now_ms: int,
               valid_days: int = KEY_VALIDITY_DAYS_DEFAULT) -> tuple[str, str | None]:
        """A new key from now; the current one retired now (diplomas it signed stay valid:
        their batches were anchored while it was). (new kid, retired kid or None)."""
        try:
            old: str | None = self.active_key(now_ms)["kid"]
        except IssuerError:
            old = None
        new = self.add_key(client, admin, now_ms=now_ms, valid_days=valid_days)
        if old is not None:
            self.retire_key(client, admin, old, now_ms)
        return new, old

    # -------------------------------------------------------------- status lists

    def add_list(self, client: Client, member: Identity, *, size: int = LIST_SIZE_DEFAULT,
                 bits: int = STATUS_BITS_DEFAULT) -> str:
        list_id = f"{self._slug()}-l{len(self.config['lists']) + 1}"
        chain_calls.create_status_list(client, member, list_id, self.iss, size, bits)
        _write_atomic(self.path / "lists" / f"{list_id}.alloc", bytes(size // 8))
        self.config["lists"].append({"list_id": list_id, "size": size, "bits": bits})
        self._save()
        return list_id

    def _slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.iss.split("://")[-1])[:48].strip("-") or "issuer"

    def _allocate(self, client: Client, member: Identity, count: int, rng: random.Random) -> tuple[str, list[int]]:
        for entry in reversed(self.config["lists"]):
            path = self.path / "lists" / f"{entry['list_id']}.alloc"
            bitmap = path.read_bytes()
            try:
                indices = allocate(bitmap, count, rng)
            except ValueError:
                continue
            _write_atomic(path, mark_allocated(bitmap, indices))
            return entry["list_id"], indices
        self.add_list(client, member)
        return self._allocate(client, member, count, rng)

    # -------------------------------------------------------------- issuing

    def issue(self, client: Client, member: Identity, records: Sequence[Mapping[str, Any]], *, batch_id: str,
              now_ms: int | None = None, rng: random.Random | None = None) -> IssuedBatch:
        """Sign, anchor (one transaction) and register a batch; the diplomas to hand out.

        The signed batch is written to ``batches/<batch_id>.jsonl`` before its anchoring
        transaction is sent. If that transaction did not go through (or nobody heard that it
        did), issuing the same batch id again sends the same anchoring again — or finds it on
        chain — and hands out the same diplomas; nothing is signed twice."""
        with self._locked():
            if batch_id in self.config["batches"]:
                raise IssuerError(f"batch {batch_id} was already issued from this home")
            pending = self.path / "batches" / f"{batch_id}.jsonl"
            if pending.exists():
                batch = self._load_batch(pending)
                if len(batch.diplomas) != len(records):
                    raise IssuerError(f"batch {batch_id} was signed for {len(batch.diplomas)} graduates, not "
                                      f"{len(records)}: finish it with the same class file or use a new batch id")
            else:
                now_ms = int(time.time() * 1000) if now_ms is None else now_ms
                rng = rng or random.SystemRandom()
                entry = self.active_key(now_ms)
                list_id, indices = self._allocate(client, member, len(records), rng)
                batch = issue_batch(records, algorithm=self.algorithm, key=self.private_key(entry["kid"]),
                                    iss=self.iss, kid=entry["kid"], batch_id=batch_id, genesis_hash=self.genesis_hash,
                                    list_id=list_id, status_indices=indices, issued_at_s=now_ms // 1000, rng=rng)
                self._save_batch(pending, batch)
            on_chain = client.query(CONTRACT, "batch", {"batch_id": batch_id})
            if on_chain is None:
                chain_calls.anchor_batch(client, member, batch.anchor_args())
            elif on_chain.get("root") != batch.tree_head["root"]:
                raise IssuerError(f"a different batch {batch_id} is anchored on chain; use a new batch id")
            self.config["batches"].append(batch_id)
            self._save()
            with open(self.path / "issued.jsonl", "a", encoding="utf-8") as register:
                for diploma in batch.diplomas:
                    register.write(json.dumps({"batch": batch_id, "position": diploma.roll_position,
                                               "student_id": diploma.student_id, "list": batch.list_id,
                                               "index": diploma.status_index}) + "\n")
                register.flush()
                os.fsync(register.fileno())
            return batch

    def _save_batch(self, path: Path, batch: IssuedBatch) -> None:
        path.parent.mkdir(exist_ok=True)
        lines = [json.dumps({"batch_id": batch.batch_id, "iss": batch.iss, "kid": batch.kid, "list_id": batch.list_id,
                             "root": batch.tree_head["root"].hex(), "size": batch.tree_head["size"]})]
        lines += [json.dumps({"position": d.roll_position, "student_id": d.student_id, "index": d.status_index,
                              "credential": d.presentation.to_json()}) for d in batch.diplomas]
        _write_atomic(path, ("\n".join(lines) + "\n").encode(), 0o600)

    def _load_batch(self, path: Path) -> IssuedBatch:
        head, *rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        diplomas = tuple(IssuedDiploma(roll_position=row["position"], student_id=row["student_id"],
                                       status_index=row["index"], presentation=Presentation.from_json(row["credential"]))
                         for row in rows)
        return IssuedBatch(batch_id=head["batch_id"], iss=head["iss"], kid=head["kid"], list_id=head["list_id"],
                           tree_head={"root": bytes.fromhex(head["root"]), "size": head["size"]}, diplomas=diplomas)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One issuing command at a time per home (status indices are allocated from its files)."""
        with open(self.path / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def issued(self) -> list[IssuedRecord]:
        path = self.path / "issued.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                rows.append(IssuedRecord(batch=item["batch"], position=item["position"],
                                         student_id=item["student_id"], list_id=item["list"], index=item["index"]))
        return rows

    def find(self, *, student_id: str | None = None, batch: str | None = None,
             position: int | None = None) -> IssuedRecord:
        matches = [r for r in self.issued() if (student_id is None or r.student_id == student_id)
                   and (batch is None or r.batch == batch) and (position is None or r.position == position)]
        if len(matches) != 1:
            raise IssuerError(f"{len(matches)} diplomas match; name the student (and the batch if they have several)")
        return matches[0]

    def set_status(self, client: Client, member: Identity, records: Sequence[IssuedRecord], status: int) -> int:
        """Change the status of ``records`` (one transaction per list; usually one); the height."""
        by_list: dict[str, list[tuple[int, int]]] = {}
        for record in records:
            by_list.setdefault(record.list_id, []).append((record.index, status))
        height = 0
        for list_id, updates in by_list.items():
            result = chain_calls.set_status(client, member, list_id, updates)
            height = max(height, result.height or 0)
        return height


def create_issuer(path: Path, client: Client, admin: Identity, *, iss: str, name: str, now_ms: int,
                  valid_days: int = KEY_VALIDITY_DAYS_DEFAULT, list_size: int = LIST_SIZE_DEFAULT) -> IssuerHome:
    """A new issuer home, and on chain: the issuer (owned by ``admin``'s organisation), its first
    key (valid from now for ``valid_days``) and its first status list."""
    info = client.status()
    home = IssuerHome.create(path, iss=iss, name=name, org=admin.org, suite=info.suite,
                             genesis_hash=info.genesis_hash)
    chain_calls.register_issuer(client, admin, iss, name)
    home.add_key(client, admin, now_ms=now_ms, valid_days=valid_days)
    home.add_list(client, admin, size=list_size)
    return home
