"""``pilotchain bench exchange``: mounted through the pilotchain.bench_workloads entry point, its
payload list parsed strictly, and one tiny live run on a real 4-validator network with vaults.

No timing is asserted: the live run checks the structure of the JSON document (every field, of the
right type, with counts that add up) and the name of the recorded result file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilotchain.apps.exchange.bench import PayloadSize, parse_payloads, trend_ms
from pilotchain.cli.main import app

NUMBER = (int, float)


def test_payload_lists_parse_strictly() -> None:
    assert parse_payloads("10KiB=200,1MiB=20") == [PayloadSize("10KiB", 10240, 200),
                                                   PayloadSize("1MiB", 1048576, 20)]
    assert parse_payloads("512=3, 3kib = 2") == [PayloadSize("512B", 512, 3), PayloadSize("3KiB", 3072, 2)]
    for bad in ("10KB=2", "10KiB", "0=3", "1KiB=0", "65MiB=1", "1KiB=2,1024B=3", ""):
        with pytest.raises(ValueError):
            parse_payloads(bad)


def test_the_platform_bench_mounts_the_exchange_workload() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["bench", "--help"])
    assert listed.exit_code == 0 and "exchange" in listed.output
    own = runner.invoke(app, ["bench", "exchange", "--help"])
    assert own.exit_code == 0 and "--payloads" in own.output and "--concurrency" in own.output
    bad = runner.invoke(app, ["bench", "exchange", "--payloads", "10 parsecs=3"])
    assert bad.exit_code == 2 and "SIZE=COUNT" in bad.output


def test_the_trend_is_the_median_of_each_tenth() -> None:
    assert trend_ms([0.1] * 4 + [0.2] * 16) == [100.0] * 2 + [200.0] * 8  # tenths of two values each
    assert trend_ms([0.3, 0.1]) == [300.0, 100.0] and trend_ms([]) == []


def _latency(summary: dict[str, object]) -> None:
    assert set(summary) == {"p50", "p95", "p99", "mean", "max"}
    assert all(isinstance(value, NUMBER) and value >= 0 for value in summary.values()), summary


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_tiny_exchange_run_reports_every_measure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pilotchain.bench import results

    monkeypatch.setattr(results, "results_dir", lambda: tmp_path / "results")
    outcome = CliRunner().invoke(app, ["bench", "exchange", "--payloads", "10KiB=3,64KiB=2", "--concurrency", "2",
                                       "--json", "--record"])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)

    config = document["config"]
    assert config["nodes"] == 4 and config["orgs"] == 2 and config["suite"] == "intl"
    assert config["provider"] != config["consumer"] and config["concurrency"] == 2
    assert [p["label"] for p in config["payloads"]] == ["10KiB", "64KiB"]
    assert isinstance(document["deployment"]["network_up_s"], NUMBER)
    assert set(document["summary"]) == {"10KiB", "64KiB"}
    assert len(document["load_average_at_start"]) == len(document["load_average_at_end"]) == 3

    for size, expected in zip(document["sizes"], (3, 2), strict=True):
        store, delivery, anchoring = size["store"], size["delivery"], size["anchoring"]
        assert size["count"] == expected
        assert store["payloads_per_s"] > 0 and store["mb_per_s"] > 0
        _latency(store["latency_ms"])
        assert delivery["deliveries"] == expected and delivery["failed"] == 0 and not delivery["failures"]
        assert delivery["deliveries_per_s"] > 0 and delivery["mb_per_s"] > 0 and delivery["seconds"] > 0
        for measure in ("latency_ms", "fetch_ms", "permit_commit_ms"):
            _latency(delivery[measure])
        assert len(delivery["latency_trend_ms"]) == expected  # one part per delivery when fewer than ten
        assert isinstance(delivery["retries"], int) and delivery["permit_events_missed"] == 0
        # each delivery is one PERMIT; both vaults keep the delivered and the received receipt
        assert anchoring["transactions"].get("dataex.decide") == expected
        assert anchoring["anchor_txs"] == anchoring["transactions"]["dataex.anchor"] >= 1
        assert anchoring["receipts"] == {config["provider"]: 2 * expected, config["consumer"]: 2 * expected}
        assert anchoring["anchor_txs_per_delivery"] == round(anchoring["anchor_txs"] / expected, 4)
        first, last = anchoring["blocks"]
        assert 1 <= first <= last
        summary = document["summary"][size["label"]]
        assert summary["deliveries_per_s"] == delivery["deliveries_per_s"]
        assert summary["latency_p99_ms"] == delivery["latency_ms"]["p99"]

    recorded = Path(document["result_file"])
    assert re.fullmatch(r"exchange-intl-4n-\d{8}T\d{6}Z-([0-9a-f]+(-dirty)?|unknown)\.json", recorded.name), recorded.name
    assert json.loads(recorded.read_text())["results"]["sizes"] == document["sizes"]
