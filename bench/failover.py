"""make bench-failover: two nodes on one PostgreSQL database (a throwaway server,
tests/integration/pg.py), the AWS emulator; 100 grants (BENCH_GRANTS) approved through
node A, their windows ending 6-10 s later, one in ten with an SSM session; A is killed
with SIGKILL, and node B ends them. Per grant, lateness = B's grant.ended record (its
time, to the millisecond) minus the window's end. Prints one line:
bench failover grants=N p50_ms=.. p99_ms=.. max_ms=..

BENCH_FAILOVER_KILL=during kills A instead while it revokes: the emulator holds the
DescribeSessions of A's first revocation sweep (so A holds the leases of that batch), B
starts, A is killed, the call is released; B takes that batch over once A's leases have
run out, and every later grant. Its line is `bench failover-during ...` with
taken_over=N, the grants of that batch. BENCH_FAILOVER_KILL=none kills nobody (the
baseline make bench compares with: both nodes up, each ending what it claims first); its
line is `bench failover-none ...`.
Loopback only: the project's AWS emulator stands in for AWS."""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests',
                                'integration'))
import harness  # noqa: E402
import pg  # noqa: E402
import test_ha  # noqa: E402


def pct(v, p):
    v = sorted(v)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def during(emu, a, b, n):
    """A revoking its first batch, held by AWS, when it dies; B starts meanwhile."""
    ends, _ = test_ha.grants_ending_soon(a, n)
    emu.hold('DescribeSessions')
    emu.wait_held(1, timeout=max(ends.values()) - time.time() + 10)
    b.start()
    held = {r[0] for r in a.query("SELECT id FROM requests WHERE state = 'ending'"
                                  " AND lease_node = 'node-a'")}
    a.kill9()
    emu.release()
    return ends, held


def main():
    n = int(os.environ.get('BENCH_GRANTS', 100))
    mode = os.environ.get('BENCH_FAILOVER_KILL', 'before')
    if mode not in ('before', 'during', 'none'):
        print('BENCH_FAILOVER_KILL=%s: before, during or none' % mode, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix='elevate-bench-failover-')
    emu = harness.Emulator(tmp).start()
    server = None
    ctx = harness.Ctx(harness.ROOT, emu)
    try:
        server = pg.PostgreSQL().start()
        a, b = ctx.nodes(2, pg=server, config={'log': {'level': 'info'}})
        a.start()
        held = set()
        if mode == 'during':
            ends, held = during(emu, a, b, n)
        else:
            b.start()
            ends, _ = test_ha.grants_ending_soon(a, n)
            if mode == 'before':
                a.kill9()
        killed = time.time()
        recs, late = test_ha.ended_late(b, ends)
        by_b = sum(1 for rid in ends if recs[rid]['data'].get('node') == 'node-b')
        ms = [x * 1000.0 for x in late.values()]
        name = 'failover' if mode == 'before' else 'failover-' + mode
        extra = ' taken_over=%d' % len(held) if mode == 'during' else ''
        print('bench %s grants=%d p50_ms=%.0f p99_ms=%.0f max_ms=%.0f%s'
              % (name, len(ms), pct(ms, 50), pct(ms, 99), max(ms), extra), flush=True)
        print('  (%d of %d ended by node-b; A killed %.1fs before the first window end; '
              'load average %s; state in %s)' % (by_b, len(ms), min(ends.values()) - killed,
                                                 ' '.join(open('/proc/loadavg').read()
                                                          .split()[:3]), tmp),
              file=sys.stderr)
        return 0
    finally:
        ctx.cleanup()
        emu.stop()
        if server is not None:
            server.stop()


if __name__ == '__main__':
    sys.exit(main())
