"""make bench-revoke: N grants (default 1,000, across 5 roles) end in the same second;
measures, per grant, (last revocation step done - window end) from the broker's audit
trail, and counts the AWS calls the reaper made. Prints one line:
bench revoke grants=N p50_ms=.. p99_ms=.. max_ms=.. iam_calls=.. ssm_calls=..
Loopback only: the project's AWS emulator stands in for AWS."""
import argparse
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests',
                                'integration'))
import harness  # noqa: E402


def pct(v, p):
    v = sorted(v)
    if not v:
        return 0.0
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--grants', type=int, default=int(os.environ.get('BENCH_GRANTS', 1000)))
    ap.add_argument('--roles', type=int, default=5)
    ap.add_argument('--sessions-every', type=int, default=10,
                    help='every Nth grant has an open SSM session to terminate')
    ap.add_argument('--workers', type=int, default=4)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='elevate-bench-')
    emu = harness.Emulator(tmp).start()
    profiles = {}
    for i in range(a.roles):
        name = 'Bench%d' % (i + 1)
        emu.control('POST', 'roles', {'name': name, 'max_session_duration': 3600,
                                      'trust': ['broker']})
        profiles['bench-%d' % (i + 1)] = {
            'role_arn': 'arn:aws:iam::%s:role/%s' % (harness.ACCOUNT, name),
            'region': 'ap-northeast-1', 'requesters': ['group:engineers'],
            'approvers': ['group:sre-leads'], 'approvals_required': 1,
            'default_duration': '15m', 'max_duration': '1h', 'pending_ttl': '30m',
            'reason_required': False,
            'ssm': {'targets': ['i-0123456789abcdef0'], 'documents': ['SSM-SessionManagerRunShell']}}
    b = harness.Broker(emu, tmp=os.path.join(tmp, 'broker'), profiles=profiles,
                       config={'log': {'level': 'info'}})
    b.start()
    try:
        # All grants end at second T: each request asks for exactly T - now.
        setup = max(20, a.grants // 25)
        T = int(time.time()) + setup
        grants, errors = [], []
        lock = threading.Lock()

        def worker(k):
            users = ('alice', 'bob')
            i = k
            while i < a.grants:
                user = users[i % 2]
                prof = 'bench-%d' % (i % a.roles + 1)
                dur = T - int(time.time())
                if dur < 3:
                    errors.append('setup too slow: raise the setup time')
                    return
                try:
                    j = b.request(user=user, profile=prof, duration=dur, reason='bench',
                                  ticket=None)
                    d = b.approve_until(j['id'])
                    if a.sessions_every and i % a.sessions_every == 0:
                        st, s = b.api(user, 'POST', '/v1/requests/%s/sessions' % j['id'],
                                      {'target': 'i-0123456789abcdef0'})
                        assert st == 201, s
                    with lock:
                        grants.append(d)
                except Exception as e:
                    errors.append(repr(e))
                    return
                i += a.workers
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(a.workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            print('bench revoke: setup failed: %s' % errors[0], file=sys.stderr)
            return 1
        since = emu.last_seq()
        on_time = sum(1 for g in grants if harness.parse_iso(g['window_end']) == T)
        # wait for every grant to end
        ids = {g['id'] for g in grants}
        deadline = time.time() + max(60, T - time.time() + 60)
        while time.time() < deadline:
            ended = {r['request_id'] for r in b.audit() if r['event'] == 'grant.ended'}
            if ids <= ended:
                break
            time.sleep(0.5)
        lags = []
        recs = {r['request_id']: r for r in b.audit() if r['event'] == 'grant.ended'}
        for g in grants:
            r = recs.get(g['id'])
            if r is None:
                print('bench revoke: %s never ended' % g['id'], file=sys.stderr)
                return 1
            done = harness.parse_iso(r['time']) + int(r['time'][20:23]) / 1000.0
            lags.append((done - harness.parse_iso(g['window_end'])) * 1000.0)
        calls = emu.log_entries(since)
        iam = sum(1 for c in calls if c['service'] == 'iam')
        ssm = sum(1 for c in calls if c['service'] == 'ssm')
        print('bench revoke grants=%d p50_ms=%.0f p99_ms=%.0f max_ms=%.0f iam_calls=%d ssm_calls=%d'
              % (len(grants), pct(lags, 50), pct(lags, 99), max(lags), iam, ssm))
        print('  (%d of %d grants ended in the target second; setup %.0fs; state in %s)'
              % (on_time, len(grants), setup, tmp), file=sys.stderr)
        return 0
    finally:
        b.stop()
        emu.stop()


if __name__ == '__main__':
    sys.exit(main())
