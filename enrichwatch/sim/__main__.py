"""`python -m enrichwatch.sim [PORT [SPEED [SEED]]]`: the simulator without the CLI."""

from __future__ import annotations

import sys

from enrichwatch.sim.standalone import run_standalone


def main(argv: list[str]) -> None:
    port = int(argv[0]) if argv else 0
    speed = float(argv[1]) if len(argv) > 1 else 60.0
    seed = int(argv[2]) if len(argv) > 2 else 0
    run_standalone(port, speed if speed > 0 else None, seed)


if __name__ == "__main__":
    main(sys.argv[1:])
