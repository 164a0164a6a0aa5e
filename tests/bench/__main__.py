"""Run the benchmarks: ``python -m tests.bench --out DIR [NAME ...]``.

Each benchmark is a module ``tests/bench/bench_<name>.py`` with ``run() -> dict``; its figures go
to ``DIR/<name>.json`` (machine-readable, with the machine and time they were taken on).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def default() -> list[str]:
    """Every benchmark but those that re-run a part of another (``PART_OF`` names it)."""
    return [name for name in available()
            if not hasattr(importlib.import_module(f"tests.bench.bench_{name}"), "PART_OF")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--out", type=Path, default=Path(".bench"))
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {available()})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in args.names or default():
        module = importlib.import_module(f"tests.bench.bench_{name}")
        started = time.time()
        try:
            figures = module.run()
        except Exception as e:  # one broken benchmark must not hide the others' figures
            print(f"bench {name}: FAILED: {e!r}", file=sys.stderr)
            failed += 1
            continue
        result = {"benchmark": name, "taken_at": int(started),
                  "wall_s": round(time.time() - started, 2),
                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                              "platform": platform.platform()},
                  "figures": figures}
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"bench {name}: {json.dumps(figures)}  -> {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
