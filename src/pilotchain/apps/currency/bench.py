"""``pilotchain bench payments``: the CAICT stress method on a currency network, every payment
signed by a wallet key and by its operator.

Mounted under ``pilotchain bench`` through the ``pilotchain.bench_workloads`` entry-point group
(the platform's benchmark command finds it and never imports it).

Theory of operation. A currency network is made with the currency's own ``network init`` profile
(``--nodes`` validators, all the central bank's; two operators) in a temporary folder, its nodes
started as processes (no vaults: the validators are what is measured) and founded as ``network up``
founds it (governance to the central bank, the contract, the operators by maker-checker). The
officers issue to both operators; ``--wallets`` tier-3 wallets are opened (half at each operator)
and loaded. Then the platform's stress ladder runs (``pilotchain.bench.network``: open loop, steps
of ``--step`` seconds at rates rising by ``--factor``, a step keeps up while ≥ 95 % of what was sent
commits within 10 s, the committed rate stays ≥ 90 % of the offered one and p99 ≤ 2 s; then a
bisection), with payments instead of ``kv.put``: payment *i* is from wallet ``i mod W`` to the next
wallet, 0.01 CNY, its instruction signed by the payer's wallet key (sequence ``i div W + 1``, so a
wallet's payments are ``W / rate`` seconds apart and reach the chain in order) and its transaction
by the payer's operator — both signed in worker processes before the step, outside the window.

After the ladder the supply audit replays every movement from genesis through a validator's
gateway and checks it against the contract's aggregates and history head (``audit_chain``); the
replay also counts the payments that executed OK (a committed transaction may have failed in the
contract), and each step reports ``ok_tps`` beside ``committed_tps``. The floor (1,500 payments/s
OK at ≥ 95 % success and p99 ≤ 2 s on this 2-core machine) is judged on the best passing step's
``ok_tps``. Nothing is asserted about speed: the document is printed (``--json``) and recorded as
``bench/results/payments-<suite>-<n>n-<UTC time>-<commit>.json``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from pilotchain.bench.network import BenchOptions

__all__ = ["FLOOR_OK_TPS", "PaymentSigner", "app", "run"]

FLOOR_OK_TPS = 1_500
CNY = 100
SIGN_CHUNK = 1_000
#: the module-level context the forked signing workers inherit (set before the pool forks)
_CONTEXT: dict[str, Any] = {}


def _warm() -> int:
    return os.getpid()


def _instructions(first: int, count: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(index, payer's operator, signed ``pay`` arguments) of payments ``first .. first + count - 1``:
    payment *i* from wallet ``i mod W`` to the next, 1 fen, sequence ``i div W + 1``."""
    from pilotchain.apps.currency.statements import statement
    from pilotchain.crypto import get_suite
    from pilotchain.sdk import Identity

    context = _CONTEXT
    if "keys" not in context:
        suite = get_suite(context["suite"])
        context["keys"] = [suite.load_private_key_pem(pem) for pem in context["key_pems"]]
        context["operators"] = {org: Identity.load(path) for org, path in context["operator_paths"].items()}
    keys, wallets, chain_id, tag = context["keys"], context["wallets"], context["chain_id"], context["tag"]
    for index in range(first, first + count):
        payer = index % len(wallets)
        payee = (payer + 1) % len(wallets)
        seq = index // len(wallets) + 1
        client_key = f"{tag}{index}"
        text = statement(chain_id, "pay", wallets[payer][0], seq, [wallets[payee][0], 1, client_key])
        yield index, wallets[payer][1], {
            "payer": wallets[payer][0], "payee": wallets[payee][0], "amount": 1, "client_key": client_key,
            "seq": seq, "signature": keys[payer].sign(text.encode()), "memo": ""}


def _sign_payments(first: int, count: int, expires_in_ms: int) -> list[tuple[bytes, str]]:
    from pilotchain.sdk import build_transaction

    out = []
    for _, org, args in _instructions(first, count):
        tx = build_transaction(_CONTEXT["operators"][org], _CONTEXT["chain_id"], "currency", "pay", args,
                               expires_in_ms=expires_in_ms)
        out.append((tx.raw, tx.tx_id))
    return out


def _sign_batches(first: int, count: int, batch: int, expires_in_ms: int) -> list[tuple[bytes, str, list[int]]]:
    """Payments ``first .. first + count - 1`` as ``pay_batch`` transactions: each operator's
    payments in arrival order, ``batch`` to a transaction (the operator signs each)."""
    from pilotchain.sdk import build_transaction

    by_operator: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, org, args in _instructions(first, count):
        by_operator.setdefault(org, []).append((index, args))
    out = []
    for org, items in by_operator.items():
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            tx = build_transaction(_CONTEXT["operators"][org], _CONTEXT["chain_id"], "currency", "pay_batch",
                                   {"payments": [item for _, item in chunk]}, expires_in_ms=expires_in_ms)
            out.append((tx.raw, tx.tx_id, [index for index, _ in chunk]))
    return out


class PaymentSigner:
    """Pre-signs payments in forked worker processes (the platform's stress ladder calls
    ``sign(count)`` before each step, as with its own kv signer)."""

    def __init__(self, workers: int, suite: str, key_pems: list[bytes], wallets: list[tuple[str, str]],
                 operator_paths: dict[str, str], chain_id: str) -> None:
        _CONTEXT.clear()
        _CONTEXT.update({"suite": suite, "key_pems": key_pems, "wallets": wallets, "operator_paths": operator_paths,
                         "chain_id": chain_id, "tag": f"b{random.randrange(16**6):06x}-"})
        self.next_index = 0
        self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers,
                                                            mp_context=multiprocessing.get_context("fork"))
        self._pool.submit(_warm).result()

    def sign(self, count: int, expires_in_ms: int = 5 * 60 * 1000) -> list[tuple[bytes, str]]:
        first = self.next_index
        self.next_index += count
        futures = [self._pool.submit(_sign_payments, start, min(SIGN_CHUNK, first + count - start), expires_in_ms)
                   for start in range(first, first + count, SIGN_CHUNK)]
        out: list[tuple[bytes, str]] = []
        for future in futures:
            out.extend(future.result())
        return out

    def key_of(self, index: int) -> str:
        return f"{_CONTEXT['tag']}{index}"

    def sign_batches(self, count: int, batch: int, expires_in_ms: int = 5 * 60 * 1000) -> list[tuple[bytes, str, list[int]]]:
        """``count`` payments as ``pay_batch`` transactions of ``batch`` payments per operator
        (signed in the workers; a worker's share holds whole batches of every operator)."""
        first = self.next_index
        self.next_index += count
        operators = len({org for _, org in _CONTEXT["wallets"]})
        chunk = max(SIGN_CHUNK // (batch * operators), 1) * batch * operators
        futures = [self._pool.submit(_sign_batches, start, min(chunk, first + count - start), batch, expires_in_ms)
                   for start in range(first, first + count, chunk)]
        out: list[tuple[bytes, str, list[int]]] = []
        for future in futures:
            out.extend(future.result())
        return out

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def batch_size_for(rate: float, operators: int, window_ms: int, batch_max: int) -> int:
    """Payments per ``pay_batch`` transaction at an offered ``rate``: what one operator's front end
    gathers in ``window_ms`` (at least 1, at most ``batch_max``)."""
    return max(1, min(batch_max, round(rate / max(operators, 1) * window_ms / 1000)))


class _BatchedSigner:
    """The stress ladder's signer in batch mode: ``sign(count)`` gives ``pay_batch`` transactions
    carrying ``count`` payments, sized for the step's rate (``count / step_s``)."""

    def __init__(self, signer: PaymentSigner, step_s: float, window_ms: int, batch_max: int) -> None:
        self.signer = signer
        self.step_s = step_s
        self.window_ms = window_ms
        self.batch_max = batch_max
        self.operators = len({org for _, org in _CONTEXT["wallets"]})
        self.sizes: list[int] = []

    def sign(self, count: int) -> list[tuple[bytes, str, list[int]]]:
        size = batch_size_for(count / self.step_s, self.operators, self.window_ms, self.batch_max)
        self.sizes.append(size)
        return self.signer.sign_batches(count, size)


def _batched_harness() -> type:
    """The platform's harness with payments as the unit: a ``pay_batch`` transaction goes out when
    the last payment it carries is due (so each payment's latency includes the time its operator
    gathered it), and the step's figures count payments, each timed from when it was due."""
    from pilotchain.bench.network import INFLIGHT_PER_GATEWAY, TICK_S_MAX, Harness, Phase, Tracker

    class BatchedHarness(Harness):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            #: per phase (by id): (transaction id, due time) of every payment, in order
            self.units: dict[int, list[tuple[str, float]]] = {}

        async def offer(self, name: str, txs: list[tuple[bytes, str, list[int]]], rate_tps: float) -> Any:  # type: ignore[override]
            gateways = self.gateways()
            gate = asyncio.Semaphore(INFLIGHT_PER_GATEWAY * len(gateways))
            phase = Phase(name=name, target_tps=rate_tps, started=self.now())
            self.phases.append(phase)
            units = self.units[id(phase)] = []
            base_index = min(min(indices) for _, _, indices in txs)
            schedule = sorted(((max(indices) - base_index) / rate_tps, raw, tx_id, indices)
                              for raw, tx_id, indices in txs)
            pending: set[asyncio.Task[None]] = set()
            turn = position = 0
            while position < len(schedule):
                elapsed = self.now() - phase.started
                due: list[tuple[bytes, str]] = []
                while (position < len(schedule) and schedule[position][0] <= elapsed
                       and len(due) < self.options.batch_size):
                    _, raw, tx_id, indices = schedule[position]
                    position += 1
                    due.append((raw, tx_id))
                    phase.tx_ids.append(tx_id)
                    units.extend((tx_id, phase.started + (index - base_index) / rate_tps) for index in indices)
                if due:
                    task = asyncio.create_task(self.post_batch(gateways[turn % len(gateways)], due, gate))
                    turn += 1
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                elif position < len(schedule):
                    await asyncio.sleep(min(TICK_S_MAX, max(0.001, schedule[position][0] - elapsed)))
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            phase.ended = self.now()
            return phase

        def phase_result(self, phases: Any, *, steady_skip_s: float | None = None) -> dict[str, Any]:
            tracker: Tracker = self.tracker
            view = Tracker()
            payment_phases = []
            for phase in phases:
                ids = []
                for number, (tx_id, due_at) in enumerate(self.units.get(id(phase), [])):
                    unit = f"{tx_id}#{number}"
                    ids.append(unit)
                    view.sent_at[unit] = due_at
                    if tx_id in tracker.accepted:
                        view.accepted.add(unit)
                    at = tracker.committed_at.get(tx_id)
                    if at is not None:
                        view.committed_at[unit] = at
                    if tx_id in tracker.backfilled:
                        view.backfilled.add(unit)
                payment_phases.append(Phase(name=phase.name, target_tps=phase.target_tps, started=phase.started,
                                            ended=phase.ended, tx_ids=ids))
            self.tracker = view
            try:
                result: dict[str, Any] = super().phase_result(payment_phases, steady_skip_s=steady_skip_s)
            finally:
                self.tracker = tracker
            transactions = sum(len(phase.tx_ids) for phase in phases)
            result["transactions"] = transactions
            result["payments_per_transaction"] = round(result["sent"] / transactions, 1) if transactions else None
            return result

    return BatchedHarness


def _setup(directory: Path, wallets_count: int, log: Any) -> tuple[list[bytes], list[tuple[str, str]], dict[str, str]]:
    """Found the network, issue, open and load the wallets (in batches); keys, (wallet, operator)."""
    from pilotchain.apps.currency.client import CurrencyClient, HolderKey
    from pilotchain.apps.currency.network import activate, load_profile, officers_of
    from pilotchain.apps.currency.statements import statement
    from pilotchain.network.consortium import load_manifest
    from pilotchain.sdk import Client, Identity, build_transaction
    from pilotchain.sdk._network import load_network

    manifest = load_manifest(directory)
    suite = str(manifest["suite"])
    activate(directory, Console(stderr=True, quiet=True))
    operators = list(load_profile(directory)["operators"])
    paths = {org: str(directory / "orgs" / org / "client.id") for org in operators}
    who = {org: Identity.load(path) for org, path in paths.items()}
    with Client(network=load_network(directory), identity=who[operators[0]], timeout=120.0) as client:
        maker, checker = (CurrencyClient(client, o) for o in officers_of(directory)[:2])
        for org in operators:
            proposed = maker.propose("issue", {"operator": org, "amount": wallets_count * 1_000 * CNY})
            checker.approve(proposed["id"])
        chain_id = client.chain_id()
        keys = [HolderKey.generate(suite) for _ in range(wallets_count)]
        wallets = [(f"bench-{index}", operators[index % len(operators)]) for index in range(wallets_count)]
        log(f"opening and loading {wallets_count:,} wallets…")
        for method in ("open_wallet", "load"):
            txs = []
            for (wallet, org), key in zip(wallets, keys, strict=True):
                if method == "open_wallet":
                    text = statement(chain_id, "open", wallet, 0, [org, "personal", 3, key.public_key])
                    args: dict[str, Any] = {"wallet": wallet, "public_key": key.public_key, "kind": "personal",
                                            "tier": 3, "linked": "", "kyc": "", "signature": key.sign(text)}
                else:
                    args = {"wallet": wallet, "amount": 1_000 * CNY, "ref": "bench"}
                txs.append(build_transaction(who[org], chain_id, "currency", method, args))
            for start in range(0, len(txs), 500):
                chunk = txs[start:start + 500]
                client.submit_many(chunk)
                for tx in chunk[-1:]:
                    client.wait(tx.tx_id, timeout_s=120)
            last = client.wait(txs[-1].tx_id, timeout_s=120)
            if not last.ok:
                raise RuntimeError(f"{method} failed during setup: {last.receipt}")
        return [k.private_key.to_pem() for k in keys], wallets, paths


def stress_options(*, nodes: int, suite: str, step_s: float, rate_start: float, rate_factor: float,
                   steps_max: int) -> BenchOptions:
    """The platform's stress-ladder options for this workload, checked; ValueError says what is wrong."""
    from pilotchain.bench.network import BenchOptions

    options = BenchOptions(nodes=nodes, suite=suite, step_s=step_s, rate_start=rate_start, rate_factor=rate_factor,
                           steps_max=steps_max, catchup_s=0.0, query_s=0.0)
    options.check()
    return options


def run(*, nodes: int = 4, suite: str = "intl", wallets: int = 4_000, step_s: float = 10.0, rate_start: float = 200.0,
        rate_factor: float = 1.4, steps_max: int = 10, workdir: Path | None = None, batch_window_ms: int = 100,
        batch_max: int = 100, log: Any = lambda message: None) -> dict[str, Any]:
    from pilotchain.apps.currency.network import init_currency_network
    from pilotchain.bench.network import free_port_block
    from pilotchain.node.daemon import tune_gc

    options = stress_options(nodes=nodes, suite=suite, step_s=step_s, rate_start=rate_start,
                             rate_factor=rate_factor, steps_max=steps_max)
    directory = workdir or Path(tempfile.mkdtemp(prefix="pilotchain-bench-payments-"))
    cleanup = workdir is None
    started = time.monotonic()
    init_currency_network(directory, validators=nodes, suite_name=suite, base_port=free_port_block(2 * nodes),
                          now_ms=int(time.time() * 1000), config={"kyc_required": False})
    signer: PaymentSigner | None = None
    try:
        up = subprocess.run([sys.executable, "-m", "pilotchain", "network", "up", "--dir", str(directory),
                             "--no-services", "--timeout", "180"], capture_output=True, text=True, timeout=600,
                            check=False)
        if up.returncode != 0:
            raise RuntimeError(f"the network did not start: {up.stdout[-600:]} {up.stderr[-600:]}")
        key_pems, wallet_list, operator_paths = _setup(directory, wallets, log)
        setup_s = time.monotonic() - started
        from pilotchain.network.consortium import load_manifest

        signer = PaymentSigner(os.cpu_count() or 1, suite, key_pems, wallet_list, operator_paths,
                               str(load_manifest(directory)["chain_id"]))
        tune_gc()
        document = asyncio.run(_measure(options, directory, signer, log, batch_window_ms, batch_max))
        document["setup_s"] = round(setup_s, 1)
        document["wallets"] = wallets
        return document
    finally:
        if signer is not None:
            signer.close()
        subprocess.run([sys.executable, "-m", "pilotchain", "network", "down", "--dir", str(directory)],
                       capture_output=True, timeout=300, check=False)
        if cleanup:
            shutil.rmtree(directory, ignore_errors=True)


async def _measure(options: Any, directory: Path, signer: PaymentSigner, log: Any, batch_window_ms: int = 0,
                   batch_max: int = 100) -> dict[str, Any]:
    from pilotchain.apps.currency.audit import AuditError, Movement, audit_chain
    from pilotchain.bench.network import Harness, node_resources, stress_ladder
    from pilotchain.network.consortium import load_manifest
    from pilotchain.network.processes import nodes_of, reader_identity
    from pilotchain.sdk import Client
    from pilotchain.sdk._network import load_network

    batched = _BatchedSigner(signer, options.step_s, batch_window_ms, batch_max) if batch_window_ms > 0 else None
    harness = (_batched_harness() if batched is not None else Harness)(options, directory, log)
    harness.manifest = load_manifest(directory)
    harness.nodes = nodes_of(directory)
    harness.data_bytes_at_start = [0] * len(harness.nodes)
    url = harness.nodes[0].gateway_url
    harness._tasks += [asyncio.create_task(harness.listen(url, "block")),
                       asyncio.create_task(harness.listen(url, "tx")),
                       asyncio.create_task(harness.sample())]
    try:
        for event in harness._connected.values():
            await asyncio.wait_for(event.wait(), timeout=30)
        await asyncio.to_thread(signer.sign, 2)  # the workers load their keys before anything is measured
        began = harness.now() - harness.origin
        stress = await stress_ladder(harness, batched or signer)  # type: ignore[arg-type]
        resources = node_resources(harness, began, harness.now() - harness.origin)
    finally:
        await harness.close()

    def audit() -> dict[str, Any]:
        ok_ids: Counter[str] = Counter()  # transaction -> payments it applied (one "pay" move each)

        def seen(move: Movement) -> None:
            if move.kind == "pay":
                ok_ids[move.tx_id] += 1

        reader = reader_identity(directory)
        with Client(network=load_network(directory), identity=reader, timeout=120.0) as client:
            try:
                report = audit_chain(client, check_buckets=False, on_move=seen)
                report["mismatch"] = None
            except AuditError as exc:
                report = {"balanced": False, "mismatch": str(exc)}
        return {"report": report, "ok_ids": ok_ids}

    log("supply audit: replaying every movement from genesis…")
    checked = await asyncio.to_thread(audit)
    ok_ids = checked.pop("ok_ids")
    for step, phase in zip(stress["steps"], harness.phases, strict=True):  # one phase per step, in order
        step["name"] = phase.name
        ok = sum(ok_ids[tx_id] for tx_id in phase.tx_ids)
        step["ok"] = ok
        step["ok_share"] = round(ok / step["sent"], 4) if step["sent"] else None
        step["ok_tps"] = round(step["committed_tps"] * (step["ok_share"] or 0), 1)
    passing = [s for s in stress["steps"] if s.get("passed")]
    best = max(passing, key=lambda s: s["ok_tps"]) if passing else None
    return {
        "kind": "payments", "nodes": options.nodes, "suite": options.suite,
        "batching": ({"window_ms": batch_window_ms, "batch_max": batch_max, "sizes_per_step": batched.sizes,
                      "method": "pay_batch"} if batched is not None else {"method": "pay", "window_ms": 0}),
        "stress": stress, "resources": resources,
        "supply_audit": checked["report"],
        "summary": {
            "sustained_ok_payments_per_s": best["ok_tps"] if best else 0.0,
            "p99_ms": best["latency_ms"]["p99"] if best else None,
            "success_rate": best["success_rate"] if best else None,
            "floor_ok_tps": FLOOR_OK_TPS,
            "floor_met": bool(best and best["ok_tps"] >= FLOOR_OK_TPS),
            "supply_balanced": checked["report"]["balanced"] and checked["report"]["mismatch"] is None,
        },
    }


app = typer.Typer(help="Payments on a currency network (the CAICT stress method), the supply audited after.")


@app.callback(invoke_without_command=True)
def payments(
    nodes: int = typer.Option(4, help="validators (all the central bank's)"),
    crypto: str = typer.Option("intl", "--crypto", help="intl or gm"),
    wallets: int = typer.Option(4_000, min=10, max=100_000, help="wallets paying each other in a ring"),
    step: float = typer.Option(10.0, help="seconds per stress step"),
    rate_start: float = typer.Option(200.0, help="first offered rate (payments/s)"),
    factor: float = typer.Option(1.4, help="rate factor between steps"),
    steps_max: int = typer.Option(10, help="at most this many steps (ladder and bisection)"),
    workdir: Path | None = typer.Option(None, help="keep the network in this (new) folder"),
    batch_window_ms: int = typer.Option(100, "--batch-window-ms", min=0, max=2_000,
                                        help="each operator gathers its holders' payments this long into one "
                                             "pay_batch transaction (0: one pay transaction per payment)"),
    batch_max: int = typer.Option(100, "--batch-max", min=1, max=200, help="payments per transaction at most"),
    json_output: bool = typer.Option(False, "--json", help="print the result document as JSON"),
    record: bool = typer.Option(True, "--record/--no-record", help="write bench/results/payments-…json"),
) -> None:
    """The CAICT stress method on a currency network: every payment signed by a wallet key and by
    its operator; the supply audited after the run."""
    try:
        stress_options(nodes=nodes, suite=crypto, step_s=step, rate_start=rate_start, rate_factor=factor,
                       steps_max=steps_max)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console = Console(stderr=True)
    document = run(nodes=nodes, suite=crypto, wallets=wallets, step_s=step, rate_start=rate_start,
                   rate_factor=factor, steps_max=steps_max, workdir=workdir, batch_window_ms=batch_window_ms,
                   batch_max=batch_max, log=console.print)
    if record:
        from pilotchain.bench.results import record as save

        path = save(f"payments-{crypto}-{nodes}n", document)
        console.print(f"recorded {path}")
    summary = document["summary"]
    if json_output:
        typer.echo(json.dumps(document, indent=2, default=str))
    else:
        Console().print(
            f"payments OK/s (best passing step): [bold]{summary['sustained_ok_payments_per_s']:,.0f}[/] "
            f"(floor {FLOOR_OK_TPS:,}: {'met' if summary['floor_met'] else 'not met'}), p99 {summary['p99_ms']} ms, "
            f"success {summary['success_rate']}; supply audit: "
            f"{'balanced, matches state' if summary['supply_balanced'] else 'DOES NOT BALANCE'}")
