"""Regenerate the golden vectors (``<topic>-<suite>.json`` beside this file).

    .venv/bin/python -m tests.vectors.generate            # writes missing files only
    .venv/bin/python tests/vectors/generate.py --force    # also rewrites files that changed

Without ``--force`` an existing file is never overwritten: the differences are printed and the
command exits 1. A difference is a wire-format change; make it only on purpose (README.md).
SM2 signatures are randomized: regenerating keeps each pinned gm signature that still verifies
over its recomputed message, so only real changes show up as differences.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__:
    from .compute import SUITES, TOPICS, VECTOR_DIR, compute_suite, path_of, pinned_signatures
else:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.vectors.compute import (
        SUITES,
        TOPICS,
        VECTOR_DIR,
        compute_suite,
        path_of,
        pinned_signatures,
    )


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two documents, one line per vector or section."""
    lines = [f"{section} changed" for section in ("description", "suite", "inputs")
             if old.get(section) != new.get(section)]
    old_vectors, new_vectors = old.get("vectors", {}), new.get("vectors", {})
    for name in sorted(old_vectors.keys() | new_vectors.keys()):
        if name not in new_vectors:
            lines.append(f"removed {name}")
        elif name not in old_vectors:
            lines.append(f"added   {name}")
        elif old_vectors[name] != new_vectors[name]:
            fields = sorted(key for key in old_vectors[name].keys() | new_vectors[name].keys()
                            if old_vectors[name].get(key) != new_vectors[name].get(key))
            lines.append(f"changed {name} ({', '.join(fields)})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite files whose vectors changed")
    parser.add_argument("--suite", choices=SUITES, action="append", help="only this suite (repeatable)")
    parser.add_argument("--dir", type=Path, default=VECTOR_DIR, help="where the JSON files are")
    args = parser.parse_args(argv)
    refused = 0
    for suite_name in args.suite or SUITES:
        paths = {topic: path_of(args.dir, topic, suite_name) for topic in TOPICS}
        existing = {topic: json.loads(path.read_text()) for topic, path in paths.items() if path.exists()}
        documents = compute_suite(suite_name, pinned_signatures(existing), strict=False)
        for topic, path in paths.items():
            text = render(documents[topic])
            if topic not in existing:
                path.write_text(text)
                print(f"{path.name}: created ({len(documents[topic]['vectors'])} vectors)")
                continue
            if path.read_text() == text:
                print(f"{path.name}: unchanged")
                continue
            differences = changes(existing[topic], documents[topic]) or ["formatting only"]
            if args.force:
                path.write_text(text)
                print(f"{path.name}: rewritten")
            else:
                refused += 1
                print(f"{path.name}: differs, NOT written (pass --force to overwrite)")
            for line in differences:
                print(f"    {line}")
    if refused:
        print(f"{refused} file(s) differ from the current code: a wire-format change. "
              "Rerun with --force only if the change is deliberate.", file=sys.stderr)
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
