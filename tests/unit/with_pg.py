"""Runs a command with ELEVATE_TEST_PG_URL set to a database of a throwaway PostgreSQL
(tests/integration/pg.py: initdb into a temporary directory, a free port, removed
afterwards), for the unit tests that run on PostgreSQL too (test_store): tests/run-all.sh
runs every unit binary whose source reads ELEVATE_TEST_PG_URL through this.

    /usr/bin/python3 tests/unit/with_pg.py build/tests/test_store

Exits with the command's status. A server that cannot start is a failure (exit 1, with
the reason), never a skip. With ELEVATE_TEST_PG_URL already set, runs the command on it."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                'integration'))
import pg  # noqa: E402


def main(argv):
    if len(argv) < 2:
        print('usage: with_pg.py COMMAND [ARG...]', file=sys.stderr)
        return 2
    if os.environ.get('ELEVATE_TEST_PG_URL'):
        return subprocess.call(argv[1:])
    try:
        server = pg.PostgreSQL().start()
    except Exception as e:  # noqa: BLE001 - any reason it did not start fails the run
        print('with_pg.py: PostgreSQL did not start, so %s cannot run on it: %s' %
              (argv[1], e), file=sys.stderr, flush=True)
        return 1
    try:
        env = dict(os.environ, ELEVATE_TEST_PG_URL=server.url)
        return subprocess.call(argv[1:], env=env)
    finally:
        server.stop()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
