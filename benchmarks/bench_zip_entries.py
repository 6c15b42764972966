"""validate-submission on a zip of many tiny entries: the time grows linearly with the entries (issue "Trust on
every surface", harm 9: 100,000 one-byte entries took 114 s with a linear search per entry).

    python benchmarks/bench_zip_entries.py [--entries 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from pathlib import Path

from submissions.validator import validate_submission
from submissions.writer import as_source


def main(entries: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in (entries // 10, entries):
            archive = root / f"many{n}.zip"
            with zipfile.ZipFile(archive, "w") as z:
                for i in range(n):
                    z.writestr(f"v{i}.txt", "xxxx")  # together more than a valid submission holds
            start = time.perf_counter()
            report = validate_submission(archive, "va", as_source({"v0": 3, "v1": 3}), "abaw3")
            print(f"{n:>8,} entries: {time.perf_counter() - start:6.2f} s, {len(report.problems)} problem(s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    main(parser.parse_args().entries)
