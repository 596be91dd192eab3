"""How fast ``meshkit guard`` takes a failing canary's traffic away, on the local cluster with a real node: a
stand-in canary failing a fifth of its requests at 30% of a steady 25 requests a second; the guard judges it
every 2 s (analysis window 20 s), rolls back after 2 failed checks in a row and performs the step. Runs the
data-plane test that measures it and prints its numbers: seconds from the guard's start to the rollback performed
and to the requests no longer failing, and how many requests failed in between.

    .venv/bin/python -m bench.guard_reaction      # one real node: check `pgrep -a kubelet` shows none first
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "tests/dataplane/test_canary_guard.py"


def main() -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("GUARD_REACTION ")]
    if result.returncode != 0 or not lines:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-2000:])
        return 1
    # What the test printed (graph --live's numbers, the guard's own lines) for the record, then the numbers.
    said = [line for line in result.stdout.splitlines() if line.startswith(("graph --live:", "["))]
    sys.stderr.write("\n".join(said) + "\n")
    print(json.dumps(json.loads(lines[-1].removeprefix("GUARD_REACTION ")), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
