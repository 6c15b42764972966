"""`affect-ens --help` and the command line's start-up import no heavy library: tables, models and LightGBM
are imported by the commands that use them (issue 16; the start-up time itself is measured by
benchmarks/bench_startup.py, not here)."""

import subprocess
import sys

HEAVY = ("pandas", "pyarrow", "scipy", "sklearn", "lightgbm", "torch", "timm", "matplotlib", "cv2")


def test_the_command_line_starts_without_heavy_libraries():
    code = f"import sys, ensemble.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_help_lists_every_command_without_them():
    code = (
        "import sys\nfrom ensemble.cli import main\nsys.argv = ['affect-ens', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', ' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "fuse" in done.stdout and "train-member" in done.stdout and "submit" in done.stdout
    assert done.stdout.rstrip().endswith("LOADED"), done.stdout[-200:]
