"""Issue 8: a store that cannot commit (here: another process holds the write lock, as a
stuck backup or a full disk would) answers 503 `unavailable` with the reason — never 401
`bad_signature`, never a shorter list — and /healthz says so; nothing is lost once the
store is back."""
import time
import urllib.error
import urllib.request

from harness import STORE_LOCKED, wait_for


def _healthz(b):
    try:
        with urllib.request.urlopen(b.url + '/healthz', timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_locked_store_answers_503_not_401(ctx):
    b = ctx.broker().start()
    r1 = b.request(profile='dev', ticket=None)
    refused_before = b.events().count('auth.refused')
    with b.hold_store():                   # the broker's writers now wait, then fail
        time.sleep(1.1)                    # /healthz re-checks the store once a second
        st, body = _healthz(b)
        assert st == 503 and '"unavailable"' in body and STORE_LOCKED in body, (st, body)
        # a signed call: authentication must remember the nonce, which needs a commit
        st, j = b.api('alice', 'GET', '/v1/requests')
        assert st == 503, (st, j)
        assert j['error']['code'] == 'unavailable', j
        assert STORE_LOCKED in j['error']['message'], j
        # the CLI says what happened and exits with its "unreachable" status
        r = b.cli('alice', 'list')
        assert r.returncode != 0 and 'unavailable' in r.stderr, (r.returncode, r.stderr)
        assert 'signature' not in r.stderr, r.stderr
    wait_for(lambda: _healthz(b)[0] == 200, 10, what='healthz back to 200')
    st, j = b.api('alice', 'GET', '/v1/requests')
    assert st == 200 and [x['id'] for x in j['requests']] == [r1['id']], (st, j)
    # the refusals were the broker's, not the caller's: nothing audited as auth.refused
    assert b.events().count('auth.refused') == refused_before
    assert b.get(r1['id'])['state'] == 'pending'
