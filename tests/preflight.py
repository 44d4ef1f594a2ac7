"""`make test` step 1: say in one line what is missing, instead of a wall of connection errors."""

from __future__ import annotations

import sys

from tests.services import START_HINT, find_postgres, redis_ok


def main() -> int:
    missing = []
    if find_postgres() is None:
        missing.append("Postgres (REAL_TEST_DATABASE_URL, or the local `test` database on 127.0.0.1:5432)")
    if not redis_ok():
        missing.append("Redis (REAL_TEST_REDIS_URL, or 127.0.0.1:6379)")
    if missing:
        sys.stderr.write(f"make test needs {' and '.join(missing)}; start them with: {START_HINT}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
