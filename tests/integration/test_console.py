"""Issue 13, the AWS console: `elevate console` turns an active grant's credentials into a
federation sign-in URL (getSigninToken at the emulator's federation endpoint, then the
Action=login URL with a Destination). The emulator checks what it gets (the session JSON,
the credentials themselves, no SessionDuration, a token used once) and redirects a good
login to the Destination. The URL goes to the grant's requester only, while it is active,
and each one is audited."""
import json
import urllib.error
import urllib.parse
import urllib.request

from harness import wait_for


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def login(url):
    """GET the sign-in URL as a browser's first hop: (status, Location)."""
    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as r:
            return r.status, r.headers.get('Location')
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get('Location')


def active(b, user='alice', profile='dev'):
    rid = b.request(user=user, profile=profile, ticket=None)['id']
    b.approve_until(rid)
    return rid


def test_console_url_signs_in_at_the_federation_endpoint(ctx):
    """--print gives a login URL on the configured federation endpoint, naming the broker as
    Issuer; the emulator got the grant's own credentials (getSigninToken by its role
    session), the login redirects to the console once and is refused the second time;
    --profile and --destination land on the page asked for; each hand-out is audited."""
    emu = ctx.emulator
    b = ctx.broker().start()
    rid = active(b)
    since = emu.last_seq()
    r = b.cli('alice', 'console', rid, '--print')
    assert r.returncode == 0, r
    url = r.stdout.strip()
    assert '15 minutes' in r.stderr and 'window' in r.stderr, r.stderr
    base, _, query = url.partition('?')
    q = dict(urllib.parse.parse_qsl(query))
    assert base == emu.url + '/federation', url
    assert q['Action'] == 'login' and q['Issuer'] == b.url, q
    assert q['Destination'] == 'https://console.aws.amazon.com/', q
    calls = [e for e in emu.log_entries(since) if e['service'] == 'signin']
    assert [(c['action'], c['status']) for c in calls] == [('getSigninToken', 200)], calls
    (key,) = emu.keys_of(request_id=rid)              # the one key AWS issued to the grant
    assert calls[0]['access_key_id'] == key, (calls, key)
    assert login(url) == (302, 'https://console.aws.amazon.com/')
    assert login(url)[0] == 400                      # a sign-in token is used once
    consoles = emu.state()['consoles']
    assert [(c['access_key_id'], c['issuer']) for c in consoles] == [(key, b.url)], consoles

    dest = 'https://console.aws.amazon.com/ec2/home?region=ap-northeast-1'
    r = b.cli('alice', 'console', '--profile', 'dev', '--print', '--destination', dest)
    assert r.returncode == 0, r
    assert login(r.stdout.strip()) == (302, dest)
    ev = [a for a in b.audit(rid) if a['event'] == 'grant.console']
    assert [(a['actor'], a['data']['destination'], a['data']['access_key_id']) for a in ev] == \
        [('alice', 'https://console.aws.amazon.com/', key), ('alice', dest, key)], ev
    assert all('url' not in a['data'] and 'SigninToken' not in json.dumps(a) for a in ev)


def test_console_only_for_the_requester_while_active(ctx):
    """Another user gets nothing; a pending request, a revoked grant and a bad destination
    are refused with a message that says why; no URL, no audit record of a hand-out."""
    b = ctx.broker().start()
    rid = active(b)
    st, e = b.api('bob', 'POST', '/v1/requests/%s/console' % rid, {})
    assert st in (403, 404), (st, e)
    st, e = b.api('alice', 'POST', '/v1/requests/%s/console' % rid,
                  {'destination': 'http://evil.example/'})
    assert st == 400 and 'https://' in e['error']['message'], (st, e)
    pending = b.request(user='alice', profile='dev', ticket=None)['id']
    r = b.cli('alice', 'console', pending, '--print')
    assert r.returncode == 3 and 'pending' in r.stderr and r.stdout == '', r
    st, e = b.api('alice', 'POST', '/v1/requests/%s/revoke' % rid, {'reason': 'done'})
    assert st == 200, (st, e)
    b.wait_state(rid, ('revoked', 'ended'))
    r = b.cli('alice', 'console', rid, '--print')
    assert r.returncode == 3 and r.stdout == '', r
    assert 'grant.console' not in b.events(rid) + b.events(pending)


def test_revoke_while_the_signin_token_is_made_hands_out_nothing(ctx):
    """The emulator holds getSigninToken; the grant is revoked meanwhile; once AWS answers,
    the broker reads the grant afresh and hands out no URL (409), audits no hand-out."""
    emu = ctx.emulator
    b = ctx.broker(config={'aws': {'timeout': '120s'}}).start()
    rid = active(b)
    emu.hold('getSigninToken')
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.update(
        r=b.api('alice', 'POST', '/v1/requests/%s/console' % rid, {})))
    t.start()
    (call,) = emu.wait_held(1)['calls']
    assert call['action'] == 'getSigninToken', call
    st, e = b.api('frank', 'POST', '/v1/requests/%s/revoke' % rid, {'reason': 'incident'})
    assert st == 200, (st, e)
    emu.release()
    t.join(30)
    st, e = out['r']
    assert st == 409 and 'nothing handed out' in e['error']['message'], (st, e)
    assert 'grant.console' not in b.events(rid)


def test_federation_endpoint_checks_what_it_gets(ctx):
    """The emulator's federation endpoint itself: unknown credentials 403, a SessionDuration
    with role credentials 400, a malformed Session 400, a made-up token 400."""
    emu = ctx.emulator

    def get(**q):
        try:
            with urllib.request.urlopen(emu.url + '/federation?' + urllib.parse.urlencode(q),
                                        timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
    sess = json.dumps({'sessionId': 'ASIAFAKE', 'sessionKey': 'x', 'sessionToken': 'y'})
    assert get(Action='getSigninToken', Session=sess) == 403
    assert get(Action='getSigninToken', Session=sess, SessionDuration='3600') == 400
    assert get(Action='getSigninToken', Session='{') == 400
    assert get(Action='login', Issuer='x', Destination='https://console.aws.amazon.com/',
               SigninToken='made-up') == 400
