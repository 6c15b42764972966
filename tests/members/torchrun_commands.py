"""Test helper: run several affect-ens commands one after another in the same torchrun processes.

``torchrun ... tests/members/torchrun_commands.py '[["predict-member", ...], ["extract-features", ...]]'``
runs each command exactly as ``torchrun ... -m ensemble.cli ARGS`` would, and saves the tests one torchrun
start-up (several seconds) per command.
"""

import json
import sys

from ensemble.cli import main


def run_all(commands: list[list[str]]) -> None:
    for argv in commands:
        sys.argv = ["affect-ens", *argv]
        try:
            main()
        except SystemExit as done:
            if done.code:
                raise


if __name__ == "__main__":
    run_all(json.loads(sys.argv[1]))
