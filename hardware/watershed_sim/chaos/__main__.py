"""``python -m watershed_sim.chaos [--long] [--no-full-disk] [--out FILE]``: one chaos run; its
report on stdout, its figures as JSON in FILE; exit 0 on pass, 1 on fail."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from .run import calm, run_chaos, settings, well_behaved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m watershed_sim.chaos", description=__doc__)
    parser.add_argument("--long", action="store_true",
                        help="the long run (1,000,000 readings, 32 stations on 4 links)")
    parser.add_argument("--no-full-disk", dest="full_disk", action="store_false",
                        help="do not fill the gateway's disk (needs root to mount a tmpfs)")
    parser.add_argument("--calm", action="store_true",
                        help="no faults and no misbehaving stations: what the machine carries")
    parser.add_argument("--well-behaved", action="store_true",
                        help="honest stations only (the faults stay)")
    parser.add_argument("--seed", type=int, default=1, help="the fault schedule's seed")
    parser.add_argument("--readings", type=int, help="override the number of readings")
    parser.add_argument("--rate", type=float, help="override readings a second")
    parser.add_argument("--workdir", type=Path, help="keep servers' data and logs here")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {k: v for k, v in (("readings", args.readings),
                                                   ("rate", args.rate)) if v is not None}
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        workdir = args.workdir or Path(tmp)
        chosen = settings(workdir, args.long, args.full_disk, seed=args.seed, **overrides)
        if args.well_behaved:
            chosen = well_behaved(chosen)
        if args.calm:
            chosen = calm(chosen)
        result = run_chaos(chosen)
    print(result.report())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result.figures(), indent=2) + "\n")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
