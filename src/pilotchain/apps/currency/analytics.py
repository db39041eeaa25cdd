"""The regulator's view at scale: the movement history as Parquet, the AML rules as SQL.

AML and flow analytics over the whole history must not be Python loops over blocks. The history is
exported once (:func:`export_history` reads the certified blocks; :func:`write_parquet` writes any
iterable of movements) to two Parquet files, and the rules run as SQL in DuckDB, locally — the
same SQL a Spark cluster runs over the same files when the history outgrows one machine (the
queries use only ANSI SQL and ``split_part``, which both engines have; thresholds are written into
the text as integers, not bound as parameters, so the text runs as is in either).

``moves.parquet``: one row per movement — ``n, height, time_ms, day`` (the Asia/Shanghai calendar
day, as the limits count days), ``tx_id, kind, source, target, amount, ref``. ``wallets.parquet``:
``wallet, operator, kind, tier`` from the wallet openings. A payment is the movements sharing its
``ref`` (a payment paid partly by red envelopes is two movements).
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from pilotchain.apps.currency.audit import Movement, movements
from pilotchain.apps.currency.statements import civil_from_day, day_of
from pilotchain.errors import CoreError
from pilotchain.ledger.tx import decode_args
from pilotchain.sdk import Client

__all__ = ["AML_QUERIES", "Analytics", "PAYMENTS_VIEW", "SparkAnalytics", "SparkUnavailable", "export_history",
           "write_parquet"]

MOVE_COLUMNS = ("n", "height", "time_ms", "day", "tx_id", "kind", "source", "target", "amount", "ref")
WALLET_COLUMNS = ("wallet", "operator", "kind", "tier")

#: one row per payment (and sub-wallet charge): its payer, payee, day and whole amount
PAYMENTS_VIEW = """
SELECT ref AS payment, min(height) AS height, min(day) AS day,
       split_part(min(source), ':', 2) AS payer, split_part(min(target), ':', 2) AS payee,
       sum(amount) AS amount
FROM moves WHERE kind IN ('pay', 'charge') GROUP BY ref
"""

AML_QUERIES = {
    # more payments in one (Shanghai) day than the velocity rule allows
    "velocity": """
SELECT payer AS wallet, day, count(*) AS payments, sum(amount) AS total
FROM payments GROUP BY payer, day HAVING count(*) > {velocity_per_day}
ORDER BY payments DESC, wallet, day""",
    # structuring: several payments in a day just under the large-value threshold
    "structuring": """
SELECT payer AS wallet, day, count(*) AS near_threshold, sum(amount) AS total
FROM payments WHERE amount >= {near_low} AND amount < {large_value}
GROUP BY payer, day HAVING count(*) >= {structuring_count}
ORDER BY total DESC, wallet, day""",
    # large-value payments: the traceable ones
    "large_value": """
SELECT payment, day, payer, payee, amount FROM payments WHERE amount >= {large_value}
ORDER BY amount DESC, payment""",
    # flows between operators per day (whose customers pay whose)
    "operator_flows": """
SELECT p.day, a.operator AS from_operator, b.operator AS to_operator, count(*) AS payments, sum(p.amount) AS total
FROM payments p JOIN wallets a ON a.wallet = p.payer JOIN wallets b ON b.wallet = p.payee
GROUP BY p.day, a.operator, b.operator ORDER BY p.day, total DESC""",
}


def _day_text(time_ms: int) -> str:
    year, month, day = civil_from_day(day_of(time_ms))
    return f"{year:04d}-{month:02d}-{day:02d}"


def write_parquet(moves: Iterable[Movement], wallets: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Write ``moves.parquet`` and ``wallets.parquet`` under ``out_dir`` (streamed through CSV:
    memory stays flat whatever the history's length)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pilotchain-history-") as tmp:
        moves_csv, wallets_csv = Path(tmp) / "moves.csv", Path(tmp) / "wallets.csv"
        count = 0
        with moves_csv.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(MOVE_COLUMNS)
            for move in moves:
                writer.writerow((move.n, move.height, move.time_ms, _day_text(move.time_ms), move.tx_id, move.kind,
                                 move.source, move.target, move.amount, move.ref))
                count += 1
        with wallets_csv.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(WALLET_COLUMNS)
            for wallet in wallets:
                writer.writerow(tuple(wallet[name] for name in WALLET_COLUMNS))
        with duckdb.connect() as db:
            db.execute(f"""CREATE TABLE moves AS SELECT * FROM read_csv('{moves_csv}', header = true, columns = {{
                'n': 'BIGINT', 'height': 'BIGINT', 'time_ms': 'BIGINT', 'day': 'DATE', 'tx_id': 'VARCHAR',
                'kind': 'VARCHAR', 'source': 'VARCHAR', 'target': 'VARCHAR', 'amount': 'BIGINT', 'ref': 'VARCHAR'}})""")
            db.execute(f"""CREATE TABLE wallets AS SELECT * FROM read_csv('{wallets_csv}', header = true, columns = {{
                'wallet': 'VARCHAR', 'operator': 'VARCHAR', 'kind': 'VARCHAR', 'tier': 'INTEGER'}})""")
            db.execute(f"COPY moves TO '{out_dir / 'moves.parquet'}' (FORMAT PARQUET)")
            db.execute(f"COPY wallets TO '{out_dir / 'wallets.parquet'}' (FORMAT PARQUET)")
    return {"moves": count, "directory": str(out_dir)}


def export_history(client: Client, out_dir: Path, *, contract: str = "currency", height: int | None = None) -> dict[str, Any]:
    """Export the movement history and wallet openings of blocks 1..``height`` (default: the head)."""
    head = client.status().height
    target = head if height is None else min(height, head)
    wallets: list[dict[str, Any]] = []

    def each_move() -> Iterable[Movement]:
        for number in range(1, target + 1):
            block = client.get_block(number)
            for receipt in block.receipts:
                if receipt.status != "OK":
                    continue
                for event in receipt.events:
                    if event.contract == contract and event.name == "wallet_opened":
                        data = decode_args(event.data)
                        wallets.append({"wallet": data["wallet"], "operator": data["operator"], "kind": data["kind"],
                                        "tier": data["tier"]})
            yield from movements(block, contract)

    written = write_parquet(each_move(), _Deferred(wallets), out_dir)
    return {**written, "height": target, "wallets": len(wallets)}


class _Deferred:
    """Iterates the list when it is read, i.e. after the movements filled it."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __iter__(self) -> Any:
        return iter(self.items)


def _rule_text(name: str, large_value: int, velocity_per_day: int, structuring_margin_bp: int,
               structuring_count: int) -> str:
    near_low = (large_value * (10_000 - structuring_margin_bp) + 9_999) // 10_000
    return AML_QUERIES[name].format(large_value=int(large_value), velocity_per_day=int(velocity_per_day),
                                    near_low=int(near_low), structuring_count=int(structuring_count))


class Analytics:
    """DuckDB over an exported history: ``payments`` (a view), ``moves``, ``wallets``."""

    def __init__(self, directory: Path) -> None:
        self.db = duckdb.connect()
        self.db.execute(f"CREATE VIEW moves AS SELECT * FROM read_parquet('{directory / 'moves.parquet'}')")
        self.db.execute(f"CREATE VIEW wallets AS SELECT * FROM read_parquet('{directory / 'wallets.parquet'}')")
        self.db.execute(f"CREATE VIEW payments AS {PAYMENTS_VIEW}")

    def __enter__(self) -> Analytics:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def sql(self, text: str) -> list[dict[str, Any]]:
        cursor = self.db.execute(text)
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, _plain(row), strict=True)) for row in cursor.fetchall()]

    def rule(self, name: str, *, large_value: int, velocity_per_day: int = 50, structuring_margin_bp: int = 1000,
             structuring_count: int = 3) -> list[dict[str, Any]]:
        """Run one of :data:`AML_QUERIES` with the currency's configured thresholds (integers)."""
        return self.sql(_rule_text(name, large_value, velocity_per_day, structuring_margin_bp, structuring_count))


class SparkUnavailable(CoreError):
    """PySpark (or the Java runtime it needs) is not installed here."""


class SparkAnalytics(Analytics):
    """The same views and the same SQL text on Apache Spark (``master``: ``local[*]`` on this
    machine, or a cluster's ``spark://…`` / ``yarn``), over the same Parquet files — what the
    regulator runs when the history outgrows one machine. Needs the ``spark`` extra
    (``pip install 'pilotchain[spark]'``) and a Java runtime."""

    def __init__(self, directory: Path, *, master: str = "local[2]") -> None:  # noqa: D107
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise SparkUnavailable("PySpark is not installed: pip install 'pilotchain[spark]' (and a Java "
                                   "runtime, e.g. Debian's openjdk-17-jre-headless)") from exc
        try:
            self.spark = (SparkSession.builder.master(master).appName("pilotchain-aml")
                          .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
                          .config("spark.sql.shuffle.partitions", "4").getOrCreate())
        except Exception as exc:  # noqa: BLE001 - the JVM's start-up failures have no common type
            raise SparkUnavailable(f"Spark did not start ({type(exc).__name__}: {str(exc)[:300]}); is a Java "
                                   "runtime installed (JAVA_HOME or java on PATH)?") from exc
        self.spark.read.parquet(str(directory / "moves.parquet")).createOrReplaceTempView("moves")
        self.spark.read.parquet(str(directory / "wallets.parquet")).createOrReplaceTempView("wallets")
        self.spark.sql(PAYMENTS_VIEW).createOrReplaceTempView("payments")

    def close(self) -> None:
        self.spark.stop()

    def sql(self, text: str) -> list[dict[str, Any]]:
        frame = self.spark.sql(text)
        names = frame.columns
        return [dict(zip(names, _plain(tuple(row)), strict=True)) for row in frame.collect()]


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(value.isoformat() if isinstance(value, dt.date) else value for value in row)
