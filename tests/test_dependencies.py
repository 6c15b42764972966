"""Every third-party library the three packages import is declared in pyproject.toml (issue 24: ``filelock``
was imported by ``ensemble.outputs`` but declared nowhere, so a fresh install failed on the first write)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = {"PIL": "pillow", "cv2": "opencv-python-headless", "sklearn": "scikit-learn", "av": "av"}
"""Import names whose distribution is named otherwise."""
PROVIDED = {
    "click": "typer",  # typer's own dependency, whose types the CLI names
    "facenet_pytorch": None,  # installed with --no-deps (it pins an old torch; README, pyproject comment)
}


def imported_libraries(root: Path = ROOT) -> set[str]:
    found = set()
    for package in ("ensemble", "members", "submissions"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names} - {"ensemble", "members", "submissions"}


def declared(root: Path = ROOT) -> set[str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]}


def test_every_imported_library_is_declared():
    names = declared()
    missing = [
        lib
        for lib in sorted(imported_libraries())
        if lib not in PROVIDED and DISTRIBUTION.get(lib, lib).lower().replace("_", "-") not in names
    ]
    assert missing == []
    assert all(owner is None or owner in names for owner in PROVIDED.values())
