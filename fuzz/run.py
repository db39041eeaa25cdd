"""Run the fuzz targets: long (``make fuzz``), short (``make test``), or replay what is kept.

Usage (from the repository root)::

    python -m fuzz.run list                          # the targets and their contracts
    python -m fuzz.run fuzz [TARGET ...]             # fuzz each for --seconds (default 180), one at a time;
                                                     # new interesting inputs go to fuzz/corpus/<target>/,
                                                     # a crash input to fuzz/crashes/<target>/
    python -m fuzz.run fuzz TARGET --seconds 2 --seed 1 --scratch DIR   # the short run the tests make:
                                                     # kept inputs are read, nothing is written to the tree
    python -m fuzz.run replay [TARGET ...]           # every kept input, in this process (no atheris needed)
    python -m fuzz.run seed [TARGET ...]             # (re)write each target's seeds into its corpus
    python -m fuzz.run minimise TARGET               # libFuzzer -merge=1: keep a smallest covering corpus

Each target runs in a child process (``python -m fuzz.run _child``) under libFuzzer with a
per-input timeout, an RSS limit and an address-space limit, the modules ``INSTRUMENTED`` names
for it instrumented for coverage. Exit status: 0 when every target
held its contract, 1 when one did not (the crash input's path is printed), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from fuzz.targets import INSTRUMENTED, TARGET_NAMES

FUZZ_DIR = Path(__file__).resolve().parent
REPO_DIR = FUZZ_DIR.parent
CORPUS_DIR = FUZZ_DIR / "corpus"
CRASHES_DIR = FUZZ_DIR / "crashes"

SECONDS_DEFAULT = 180
#: a single input taking longer than this is a hang (libFuzzer -timeout)
INPUT_TIMEOUT_S = 20
#: resident memory beyond this is a finding (libFuzzer -rss_limit_mb)
RSS_LIMIT_MB = 2048
#: address space of a child: a decoder that asks for more gets MemoryError (a finding), not swap
ADDRESS_SPACE_BYTES_MAX = 8 * 1024**3
#: inputs longer than this are not generated unless a target says otherwise (MAX_LEN)
MAX_LEN_DEFAULT = 16 * 1024

#: the command libFuzzer runs again for a merge (minimise sets it to an executable launcher)
_ARGV0 = "PILOTCHAIN_FUZZ_ARGV0"
#: what libFuzzer names the inputs it saves (a crash, a hang, a memory blow-up, a leak)
_ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.MULTILINE)


def load_target(name: str) -> ModuleType:
    """The target module ``fuzz.targets.<name>`` (or a dotted module path, for tests)."""
    module_name = name if "." in name else f"fuzz.targets.{name}"
    module = importlib.import_module(module_name)
    for attribute in ("CONTRACT", "one_input", "seeds"):
        if not hasattr(module, attribute):
            raise SystemExit(f"fuzz target {name!r} has no {attribute}; see fuzz/harness.py")
    return module


def kept_inputs(name: str) -> list[Path]:
    """Every kept input of a target: its corpus, then its crash regressions."""
    found: list[Path] = []
    for directory in (CORPUS_DIR / name, CRASHES_DIR / name):
        if directory.is_dir():
            found.extend(sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")))
    return found


def replay(name: str) -> list[str]:
    """Run every kept input of ``name`` in this process; the failures, one text each."""
    module = load_target(name)
    failures = []
    for path in kept_inputs(name):
        try:
            module.one_input(path.read_bytes())
        except Exception:  # noqa: BLE001 - every failure is reported with its input
            failures.append(f"{path.relative_to(REPO_DIR)}:\n{traceback.format_exc()}")
    return failures


def write_seeds(name: str) -> int:
    """Write the target's seeds into its corpus (named by content); how many were new."""
    module = load_target(name)
    directory = CORPUS_DIR / name
    directory.mkdir(parents=True, exist_ok=True)
    new = 0
    for data in module.seeds():
        path = directory / hashlib.sha1(data).hexdigest()  # noqa: S324 - libFuzzer's naming
        if not path.exists():
            path.write_bytes(data)
            new += 1
    return new


def _child_command(name: str, libfuzzer_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "fuzz.run", "_child", name, "--", *libfuzzer_args]


def fuzz(name: str, *, seconds: int, seed: int | None, scratch: Path | None, quiet: bool) -> dict[str, Any]:
    """Fuzz one target for ``seconds`` in a child process; its statistics and outcome."""
    corpus = CORPUS_DIR / name
    crashes = CRASHES_DIR / name
    if scratch is None:  # the long run keeps what it finds
        corpus.mkdir(parents=True, exist_ok=True)
        crashes.mkdir(parents=True, exist_ok=True)
        write_dir, artifacts = corpus, crashes
        read_dirs = [crashes]
    else:  # the short run only reads the tree
        write_dir, artifacts = scratch / "corpus", scratch / "artifacts"
        write_dir.mkdir(parents=True, exist_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)
        read_dirs = [d for d in (corpus, crashes) if d.is_dir()]
    args = [
        str(write_dir), *map(str, read_dirs),
        f"-max_total_time={seconds}",
        f"-timeout={INPUT_TIMEOUT_S}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    if seed is not None:
        args.append(f"-seed={seed}")
    before = {p.name for p in artifacts.iterdir()}
    started = time.monotonic()
    result = subprocess.run(_child_command(name, args), cwd=REPO_DIR, capture_output=True, text=True,
                            errors="replace", check=False)
    elapsed = time.monotonic() - started
    log = result.stdout + result.stderr
    stats = {key: int(value) for key, value in _STAT.findall(log)}
    new_artifacts = sorted(str(artifacts / n) for n in {p.name for p in artifacts.iterdir()} - before
                           if n.startswith(_ARTIFACT_PREFIXES))
    outcome = {
        "target": name,
        "ok": result.returncode == 0,
        "returncode": result.returncode,
        "seconds": round(elapsed, 1),
        "runs": stats.get("number_of_executed_units", 0),
        "execs_per_s": stats.get("average_exec_per_sec", 0),
        "new_units": stats.get("new_units_added", 0),
        "peak_rss_mb": stats.get("peak_rss_mb", 0),
        "corpus_files": len(kept_inputs(name)),
        "artifacts": new_artifacts,
    }
    if not outcome["ok"] or not quiet:
        print(f"--- {name}: libFuzzer output\n{_report(log)}", file=sys.stderr)
    return outcome


def _report(log: str) -> str:
    """What to show of a child's output: the Python exception and libFuzzer's verdict (from the
    first "Uncaught Python exception" on), else the last lines; never the instrumentation list."""
    lines = [line for line in log.splitlines() if not line.startswith("INFO: Instrumenting")]
    for index, line in enumerate(lines):
        if "Uncaught Python exception" in line or "ERROR: libFuzzer" in line:
            return "\n".join(lines[index:index + 80])
    return "\n".join(lines[-40:])


def minimise(name: str) -> None:
    """Replace the target's corpus with a smallest subset of it that covers as much."""
    corpus = CORPUS_DIR / name
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as temporary:
        merged = Path(temporary) / "merged"
        merged.mkdir()
        # libFuzzer's merge runs its own command line again in a child: give it one that execs
        launcher = Path(temporary) / "launch"
        launcher.write_text(f'#!/bin/sh\ncd "{REPO_DIR}" && exec "{sys.executable}" -m fuzz.run _child {name} -- "$@"\n')
        launcher.chmod(0o700)
        result = subprocess.run([str(launcher), "-merge=1", f"-timeout={INPUT_TIMEOUT_S}",
                                 f"-rss_limit_mb={RSS_LIMIT_MB}", str(merged), str(corpus)],
                                cwd=REPO_DIR, check=False, env={**os.environ, _ARGV0: str(launcher)})
        if result.returncode != 0:
            raise SystemExit(f"merging {name}'s corpus failed (exit {result.returncode}); the corpus is unchanged")
        kept = list(merged.iterdir())
        if not kept:
            raise SystemExit(f"merging {name}'s corpus kept nothing; the corpus is unchanged")
        for path in corpus.iterdir():
            path.unlink()
        for path in kept:
            shutil.move(str(path), corpus / path.name)
        print(f"{name}: {len(kept)} inputs kept")


def _modules_outside(packages: list[str], wanted: tuple[str, ...]) -> list[str]:
    """Every module of ``packages`` that is not (inside) one of ``wanted``, found on disk without
    importing anything (atheris instruments whole top-level packages unless told what to skip)."""
    import importlib.util

    outside = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec is not None else []:
            root = Path(location)
            for path in root.rglob("*.py"):
                parts = [package, *path.relative_to(root).with_suffix("").parts]
                if parts[-1] == "__init__":
                    parts.pop()
                module = ".".join(parts)
                if not any(module == w or module.startswith(w + ".") or w.startswith(module + ".") for w in wanted):
                    outside.append(module)
    return outside


def _child(name: str, libfuzzer_args: list[str]) -> None:
    """Inside the child: limits, instrumentation, then libFuzzer (never returns)."""
    import resource

    try:
        import atheris
    except ImportError:
        raise SystemExit("atheris is not installed: it is a pinned dev dependency; run `make` "
                         "(or .venv/bin/pip install -e '.[dev]')") from None
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES_MAX, ADDRESS_SPACE_BYTES_MAX))
    wanted = INSTRUMENTED.get(name, ("pilotchain",))
    packages = sorted({module.split(".")[0] for module in wanted})
    with atheris.instrument_imports(include=packages, exclude=_modules_outside(packages, wanted)):
        module = load_target(name)
    if not any(arg.startswith("-max_len=") for arg in libfuzzer_args):
        libfuzzer_args = [*libfuzzer_args, f"-max_len={getattr(module, 'MAX_LEN', MAX_LEN_DEFAULT)}"]
    atheris.Setup([os.environ.get(_ARGV0, sys.argv[0]), *libfuzzer_args], module.one_input)
    atheris.Fuzz()


def _targets(names: list[str]) -> list[str]:
    for name in names:
        if name not in TARGET_NAMES and "." not in name:
            raise SystemExit(f"no fuzz target {name!r}; `python -m fuzz.run list` names them")
    return names or list(TARGET_NAMES)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        separator = argv.index("--")
        _child(argv[1], argv[separator + 1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("list", "fuzz", "replay", "seed", "minimise"))
    parser.add_argument("targets", nargs="*")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", SECONDS_DEFAULT)),
                        help="fuzzing time per target (default: $FUZZ_SECONDS or 180)")
    parser.add_argument("--seed", type=int, default=None, help="libFuzzer's random seed (default: time-based)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="write new inputs and crashes here instead of fuzz/corpus and fuzz/crashes")
    parser.add_argument("--json", action="store_true", help="print each target's outcome as a JSON line")
    options = parser.parse_args(argv)
    names = _targets(options.targets)
    if options.command == "list":
        for name in names:
            contract = " ".join(load_target(name).CONTRACT.split())
            print(f"{name:16} {contract}")
        return 0
    if options.command == "seed":
        for name in names:
            print(f"{name}: {write_seeds(name)} new seed inputs")
        return 0
    if options.command == "minimise":
        for name in names:
            minimise(name)
        return 0
    if options.command == "replay":
        failed = 0
        for name in names:
            failures = replay(name)
            print(f"{name}: {len(kept_inputs(name))} kept inputs, {len(failures)} failing")
            for failure in failures:
                print(failure, file=sys.stderr)
            failed += bool(failures)
        return 1 if failed else 0
    outcomes = []
    for name in names:  # one at a time: a target gets the core it runs on
        outcome = fuzz(name, seconds=options.seconds, seed=options.seed, scratch=options.scratch,
                       quiet=options.json)
        outcomes.append(outcome)
        if options.json:
            print(json.dumps(outcome), flush=True)
        else:
            verdict = "ok" if outcome["ok"] else f"FAILED (exit {outcome['returncode']}): {outcome['artifacts']}"
            print(f"{name:16} {outcome['seconds']:>7.1f} s {outcome['runs']:>10} runs "
                  f"{outcome['execs_per_s']:>7}/s  +{outcome['new_units']} inputs  "
                  f"{outcome['peak_rss_mb']} MB  {verdict}", flush=True)
    return 0 if all(o["ok"] for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
