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


def _help_and_loaded(argv: list[str], modules) -> str:
    """What ``affect-ens ARGV`` prints in a new interpreter, then a line 'LOADED' naming those of ``modules``
    it imported."""
    code = (
        f"import sys\nfrom ensemble.cli import main\nsys.argv = ['affect-ens', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', ' '.join(m for m in {tuple(modules)!r} if m in sys.modules))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout


def test_help_lists_every_command_without_them():
    out = _help_and_loaded(["--help"], HEAVY)
    assert "fuse" in out and "train-member" in out and "submit" in out
    assert out.rstrip().endswith("LOADED"), out[-200:]


def test_member_help_imports_neither_torchvision_nor_timm():
    """``train-member --help`` imports the member modules (torch) for their options, but not torchvision (which
    brings torch's compiler modules) or timm: they made its help take 5 s instead of 3 on this 2-core CPU."""
    out = _help_and_loaded(["train-member", "--help"], ("torchvision", "timm"))
    assert all(name in out for name in ("cnn", "cnn_rnn", "cnn_transformer", "committee", "keras"))
    assert out.rstrip().endswith("LOADED"), out[-200:]
