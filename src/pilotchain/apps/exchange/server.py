"""The vault process: its home folder, how it opens, and its serve loop.

A vault home (``pilotchain vault init``)::

    vault.json        configuration (below)
    genesis.json      the chain's genesis: the trust anchor for every header the vault checks
    encryption.pem    the organisation's encryption private key (a suite key, 0600), apart from
                      the signing identity; its public half is registered on chain
    store/            the payload store (encrypted at rest)
    receipts/         the receipt book
    vault.pid, vault.log

``vault.json``: ``org``, ``suite``, ``genesis_hash``, ``nodes`` (gateway URLs of the org's node
first), ``identity`` (the org's client identity file), ``admin_identity`` (optional: lets the vault
register its key and URL on chain itself), ``listen`` (host:port), ``public_url`` (what other
vaults use), ``tls_ca`` (optional), ``require_certificates`` (true; false only for a development
node), ``freshness_ms``, ``anchor_interval_ms``, ``reconcile_interval_ms``.

The serve loop runs uvicorn and, beside it, one maintenance thread: it registers the vault on
chain once ``dataex`` is active, anchors receipt batches, sends queued acknowledgements, purge
confirmations and complaints, and deletes copies whose payloads were purged (also those purged
while the vault was down). Each step logs and retries; none stops the vault.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotchain.apps.exchange.chainview import ChainView, HeaderCertifier
from pilotchain.apps.exchange.receipts import ReceiptBook
from pilotchain.apps.exchange.records import CONTRACT, ExchangeError
from pilotchain.apps.exchange.store import VaultStore
from pilotchain.apps.exchange.vault import Vault
from pilotchain.crypto import get_suite
from pilotchain.node.config import load_genesis
from pilotchain.sdk import Client, Identity, PilotchainError
from pilotchain.sdk._network import pin_of

__all__ = ["VaultConfig", "VaultConfigError", "init_vault", "load_config", "open_vault", "serve"]

CONFIG_FILE = "vault.json"
PID_FILE = "vault.pid"
LOG_FILE = "vault.log"
PASSPHRASE_ENV = "PILOTCHAIN_VAULT_PASSPHRASE"

_log = logging.getLogger("pilotchain.vault")


class VaultConfigError(ExchangeError):
    def __init__(self, message: str) -> None:
        super().__init__("CONFIG", message)


@dataclass(frozen=True, slots=True)
class VaultConfig:
    home: Path
    org: str
    suite: str
    genesis_hash: str
    nodes: tuple[str, ...]
    identity: Path
    admin_identity: Path | None
    listen: str
    public_url: str
    tls_ca: Path | None = None
    require_certificates: bool = True
    freshness_ms: int = 30_000
    anchor_interval_ms: int = 2_000
    reconcile_interval_ms: int = 5_000

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


def _path(home: Path, value: Any) -> Path | None:
    if not value:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else (home / path).resolve()


def load_config(home: Path) -> VaultConfig:
    path = home / CONFIG_FILE
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise VaultConfigError(f"no vault at {home} ({exc.strerror}); create one with `pilotchain vault init`") from exc
    except ValueError as exc:
        raise VaultConfigError(f"{path} is not valid JSON: {exc}") from exc
    try:
        identity = _path(home, document["identity"])
        if identity is None:
            raise KeyError("identity")
        return VaultConfig(
            home=home.resolve(), org=str(document["org"]), suite=str(document["suite"]),
            genesis_hash=str(document["genesis_hash"]), nodes=tuple(document["nodes"]), identity=identity,
            admin_identity=_path(home, document.get("admin_identity")), listen=str(document["listen"]),
            public_url=str(document["public_url"]), tls_ca=_path(home, document.get("tls_ca")),
            require_certificates=bool(document.get("require_certificates", True)),
            freshness_ms=int(document.get("freshness_ms", 30_000)),
            anchor_interval_ms=int(document.get("anchor_interval_ms", 2_000)),
            reconcile_interval_ms=int(document.get("reconcile_interval_ms", 5_000)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VaultConfigError(f"{path} lacks or has a wrong field: {exc}") from exc


def init_vault(home: Path, *, network: Path, org: str, host: str = "127.0.0.1", port: int,
               nodes: list[str] | None = None, overwrite: bool = False) -> VaultConfig:
    """A vault home for ``org`` of the ``network init`` folder ``network`` (its identities, genesis
    and nodes), listening on ``host:port``; a fresh encryption key."""
    manifest = json.loads((network / "network.json").read_text())
    entry = next((o for o in manifest["organizations"] if o["org"] == org), None)
    if entry is None:
        raise VaultConfigError(f"{org} is not an organisation of {network} "
                               f"({', '.join(o['org'] for o in manifest['organizations'])})")
    if (home / CONFIG_FILE).exists() and not overwrite:
        return load_config(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / "genesis.json").write_bytes((network / manifest["genesis"]).read_bytes())
    own = [n["gateway_url"] for n in manifest["nodes"] if n["org"] == org]
    others = [n["gateway_url"] for n in manifest["nodes"] if n["org"] != org]
    suite = get_suite(manifest["suite"])
    key_path = home / "encryption.pem"
    if not key_path.exists() or overwrite:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(suite.generate_private_key().to_pem())
    document = {
        "format": "pilotchain-vault/1", "org": org, "suite": manifest["suite"],
        "genesis_hash": manifest["genesis_hash"], "nodes": nodes or own + others,
        "identity": str((network / entry["client_identity"]).resolve()),
        "admin_identity": str((network / entry["admin_identity"]).resolve()),
        "listen": f"{host}:{port}", "public_url": f"http://{host}:{port}",
        "tls_ca": str((network / manifest["tls_ca"]).resolve()) if manifest.get("tls_ca") else None,
        "require_certificates": True, "freshness_ms": 30_000, "anchor_interval_ms": 1_000,
        "reconcile_interval_ms": 2_000,
    }
    (home / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return load_config(home)


def open_vault(config: VaultConfig) -> Vault:
    genesis = load_genesis(config.home / "genesis.json")
    suite = get_suite(genesis.suite)
    identity = Identity.load(config.identity)
    certifier = HeaderCertifier(genesis, require_certificates=config.require_certificates)
    tls: Any = str(config.tls_ca) if config.tls_ca is not None else None
    client = Client(config.nodes[0], identity=identity, network=pin_of(config.genesis_hash, genesis.chain_id),
                    verify_header=certifier, tls_ca=tls)
    view = ChainView(client, genesis, certifier=certifier, freshness_ms=config.freshness_ms)
    passphrase = os.environ.get(PASSPHRASE_ENV)
    store = VaultStore.open(config.home / "store", genesis.suite,
                            passphrase=passphrase.encode() if passphrase else None)
    book = ReceiptBook(config.home / "receipts", suite)
    encryption_key = suite.load_private_key_pem((config.home / "encryption.pem").read_bytes())
    return Vault(org=config.org, store=store, book=book, chain=view, identity=identity,
                 encryption_key=encryption_key, client=client, peer_tls_verify=tls if tls else True)


class Maintenance:
    """The vault's background duties, one step at a time (the serve loop calls :meth:`step`)."""

    def __init__(self, vault: Vault, config: VaultConfig, steps: Sequence[Callable[[], None]] = ()) -> None:
        self.vault = vault
        self.config = config
        #: the vault extensions' duties (create_vault_app's ``app.state.maintenance_steps``)
        self.steps = list(steps)
        self.registered = False
        self._last_reconcile_ms = 0

    def register(self) -> bool:
        """Register the vault's key and URL on chain when it is not there yet (needs the admin
        identity); True once the chain holds this vault's key and URL."""
        fact = self.vault.chain.org(self.vault.org)
        record = fact.value
        if isinstance(record, dict) and record.get("public_key") == self.vault.encryption_public_key \
                and record.get("endpoint") == self.config.public_url:
            return True
        if self.config.admin_identity is None:
            _log.warning("this vault is not registered on chain; run `pilotchain vault register` with an admin identity")
            return False
        self.vault.register_org(Identity.load(self.config.admin_identity), self.config.public_url)
        _log.info("registered the vault's key and URL on chain", extra={"event": "vault.registered"})
        return True

    def step(self) -> None:
        if not self.registered:
            self.registered = self.register()
            if not self.registered:
                return
        while self.vault.anchor_once() is not None:
            pass
        self.vault.flush_outbox()
        for extension_step in self.steps:
            try:
                extension_step()
            except Exception as exc:  # noqa: BLE001 - an extension's failure must not stop the vault's duties
                _log.warning("a vault extension's step failed (will retry): %s", exc,
                             extra={"event": "vault.extension_step"})
        now = self.vault.now_ms()
        if now - self._last_reconcile_ms >= self.config.reconcile_interval_ms:
            for payload_id in self.vault.reconcile_purges():
                _log.info("deleted the copy of %s (purged on chain)", payload_id, extra={"event": "vault.purged_copy"})
            self.vault.flush_outbox()
            self._last_reconcile_ms = now


def _contract_active(vault: Vault) -> bool:
    try:
        return vault.client.query("gov", "contract", {"name": CONTRACT}) is not None
    except PilotchainError:
        return False


def serve(config: VaultConfig) -> None:
    """Run the vault until SIGTERM/SIGINT (the HTTP service and the maintenance thread)."""
    import uvicorn

    from pilotchain.apps.exchange.service import create_vault_app

    vault = open_vault(config)
    app = create_vault_app(vault)
    maintenance = Maintenance(vault, config, app.state.maintenance_steps)
    stopping = threading.Event()

    active = False

    def loop() -> None:
        nonlocal active
        while not stopping.is_set():
            try:
                active = active or _contract_active(vault)  # once active, a contract stays deployed
                if active:
                    maintenance.step()
            except (ExchangeError, PilotchainError, OSError) as exc:
                _log.warning("maintenance step failed (will retry): %s", exc, extra={"event": "vault.maintenance"})
            stopping.wait(config.anchor_interval_ms / 1000)

    worker = threading.Thread(target=loop, name="vault-maintenance", daemon=True)
    host, port = config.host_port
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    (config.home / PID_FILE).write_text(f"{os.getpid()}\n")
    worker.start()
    try:
        _log.info("vault of %s serving on %s", config.org, config.public_url, extra={"event": "vault.started"})
        server.run()
    finally:
        stopping.set()
        worker.join(30)
        for close in app.state.closers:
            close()
        vault.store.close()
        vault.book.close()
        (config.home / PID_FILE).unlink(missing_ok=True)
