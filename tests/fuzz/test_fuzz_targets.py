"""Every fuzz target, briefly: its whole kept corpus (regressions) and a few seconds of fuzzing.

The long runs are `make fuzz` (docs/fuzzing.md). atheris is a pinned dev dependency: when it is
missing these tests fail and say how to install it; they never skip.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fuzz.targets import TARGET_NAMES  # noqa: E402

from fuzz import run  # noqa: E402

#: seconds of fuzzing per target in make test (the long run is make fuzz)
SHORT_SECONDS = 2
#: libFuzzer's seed in make test: the same inputs are tried on every run
SHORT_SEED = 20
#: a short run that takes longer than this is stuck (start-up is ~2-4 s on a loaded 2-core machine)
SHORT_RUN_TIMEOUT_S = 120


def _fuzz(target: str, scratch: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "fuzz", target, "--seconds", str(SHORT_SECONDS),
         "--seed", str(SHORT_SEED), "--scratch", str(scratch), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=SHORT_RUN_TIMEOUT_S, check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        pytest.fail(f"`python -m fuzz.run fuzz {target}` printed no outcome (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}")
    outcome: dict[str, object] = json.loads(lines[-1])
    if not outcome["ok"]:
        pytest.fail(f"fuzz target {target} broke its contract; the input is {outcome['artifacts']} "
                    f"(keep it under fuzz/crashes/{target}/ once fixed):\n{result.stderr[-6000:]}")
    return outcome


def test_atheris_is_installed() -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        pytest.fail("atheris is not installed; it is a pinned dev dependency (pyproject.toml): run `make`, "
                    "or .venv/bin/pip install -e '.[dev]'")


def test_every_target_module_is_listed_and_has_a_contract_and_a_corpus() -> None:
    modules = {path.stem for path in (REPO / "fuzz" / "targets").glob("*.py") if path.stem != "__init__"}
    assert modules == set(TARGET_NAMES)
    for name in TARGET_NAMES:
        module = run.load_target(name)
        assert len(module.CONTRACT.split()) > 20, f"{name} does not state its contract"
        assert run.kept_inputs(name), f"{name} has no kept inputs: run `python -m fuzz.run seed {name}`"


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_kept_inputs_hold_the_contract(target: str) -> None:
    failures = run.replay(target)
    assert not failures, f"{len(failures)} kept inputs of {target} break its contract:\n" + "\n".join(failures)


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_short_fuzz_run_holds_the_contract(target: str, tmp_path: Path) -> None:
    outcome = _fuzz(target, tmp_path)
    assert int(str(outcome["runs"])) > 0, f"{target} ran no inputs"


def test_every_known_finding_has_a_reproducer_that_still_reproduces() -> None:
    """A known finding (code this project may not change now) is marked in its target, kept as
    fuzz/crashes/<target>/<ident>-*, and still happens; once its owner fixes it, this says to
    remove the mark (and docs/fuzzing.md's line) so a fixed finding is not tolerated forever."""
    from fuzz.harness import known_hits

    marked: dict[str, tuple[Any, ...]] = {}
    for name in TARGET_NAMES:
        marked.setdefault(name, tuple(getattr(run.load_target(name), "KNOWN", ())))
    for name, findings in marked.items():
        module = run.load_target(name)
        for finding in findings:
            reproducers = sorted((REPO / "fuzz" / "crashes" / name).glob(f"{finding.ident}-*"))
            assert reproducers, f"known finding {finding.ident} of {name} has no fuzz/crashes/{name}/{finding.ident}-* input"
            before = known_hits().get(finding.ident, 0)
            for path in reproducers:
                module.one_input(path.read_bytes())
            assert known_hits().get(finding.ident, 0) > before, (
                f"known finding {finding.ident} of {name} no longer reproduces ({finding.summary}): it was "
                f"fixed — remove it from the target's known findings and from docs/fuzzing.md")


def test_a_broken_decoder_is_caught_and_its_input_saved(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "fuzz", "tests.fuzz.broken_target", "--seconds", "20",
         "--seed", "1", "--scratch", str(tmp_path), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=SHORT_RUN_TIMEOUT_S, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    outcome = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert not outcome["ok"]
    (artifact,) = outcome["artifacts"]
    assert Path(artifact).read_bytes().startswith(b"PC")
    assert "KeyError" in result.stderr


def test_a_target_leaves_the_process_as_it_found_it() -> None:
    """Targets run inside pytest workers that go on to other tests: the gateway-auth target
    freezes the signature library's clock only while an input runs (a module-level patch once
    made every later signed request in the worker fail as too old)."""
    from http_message_signatures import signatures

    real = signatures.datetime  # type: ignore[attr-defined]
    module = run.load_target("gateway_auth")
    for path in sorted((REPO / "fuzz" / "corpus" / "gateway_auth").glob("*"))[:5]:
        module.one_input(path.read_bytes())
    assert signatures.datetime is real  # type: ignore[attr-defined]
