"""Issue 4: approval by email — signed single-use links, a safe approval page, a durable
outbox. A real SMTP server on loopback (aiosmtpd), the real daemon, and headless Debian
Chromium (tests/browser/browse.mjs) opening the link taken from the mail."""
import base64
import email.utils
import json
import os
import re
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import harness
from harness import OUT_DIR, browse, mail_links, mail_parts, wait_for, wait_mail

FROM = 'elevate@example.com'
HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>'
UNICODE = 'Zoë Ñandú — 日本語の確認 ✓ Ελληνικά'


# ---- helpers ----

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


_opener = urllib.request.build_opener(NoRedirect)


def fetch(url, method='GET', form=None):
    """A plain client (a mail scanner, or curl): (status, lower-cased headers, body text)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': 'MailScanner/1.0'})
    try:
        with _opener.open(req, timeout=15) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def race_post(url, form, n):
    """POSTs the same form on n connections released at the same instant: statuses."""
    import socket
    u = urllib.parse.urlsplit(url)
    body = urllib.parse.urlencode(form).encode()
    req = ('POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded'
           '\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % (u.path, u.netloc,
                                                                   len(body))).encode() + body
    socks = []
    for _ in range(n):
        c = socket.create_connection((u.hostname, u.port), 10)
        c.sendall(req[:-1])
        socks.append(c)
    time.sleep(0.2)
    for c in socks:
        c.sendall(req[-1:])
    out = []
    for c in socks:
        c.settimeout(20)
        data = b''
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
        c.close()
        out.append(int(data.split(b' ', 2)[1]))
    return out


def h1(body):
    m = re.search(r'<h1>(.*?)</h1>', body, re.S)
    return m.group(1) if m else None


def assert_page_headers(h, what):
    """The approval and result pages' security headers (names lower-cased)."""
    csp = h.get('content-security-policy', '')
    directives = {d.strip().split(' ')[0]: d.strip() for d in csp.split(';') if d.strip()}
    assert directives.get('default-src') == "default-src 'none'", (what, csp)
    assert directives.get('form-action') == "form-action 'self'", (what, csp)
    assert directives.get('frame-ancestors') == "frame-ancestors 'none'", (what, csp)
    assert 'script-src' not in directives, (what, csp)     # no script at all
    assert h.get('x-frame-options') == 'DENY', (what, h)
    assert h.get('referrer-policy') == 'no-referrer', (what, h)
    assert h.get('cache-control') == 'no-store', (what, h)
    assert h.get('content-type', '').startswith('text/html'), (what, h)
    assert 'charset=utf-8' in h.get('content-type', '').lower(), (what, h)


def approval_mails(smtp, rid):
    return [m for m in smtp.messages() if '(%s)' % rid in str(m['msg']['Subject'])
            and str(m['msg']['Subject']).startswith('Approve ')]


def links_by_user(msgs):
    """{user: link} from approval mails, checking the text and HTML parts agree."""
    out = {}
    for m in msgs:
        text, html = mail_links(m['msg'])
        assert len(text) == 1 and html == text, (m['rcpt'], text, html)
        user = m['rcpt'][0].split('@')[0]
        assert user not in out, 'two approval mails for %s' % user
        out[user] = text[0]
    return out


def refusals(b, after_seq):
    return [r for r in b.audit() if r['seq'] > after_seq and r['event'] == 'token.refused']


def last_seq(b):
    a = b.audit()
    return a[-1]['seq'] if a else 0


def check_refused(b, url, status, title, reason, actor, rid, decide=True):
    """GET (and POST) on a link that must be refused: its page, its headers, its audit
    record, and nothing decided."""
    before = b.get(rid)['approvals'] if rid else None
    seq = last_seq(b)
    st, h, body = fetch(url)
    assert st == status, (url, st, body[:500])
    assert h1(body) == title, (title, body[:800])
    assert_page_headers(h, 'refusal page')
    assert '<form' not in body, 'a refused link must not offer the buttons'
    methods = ['GET']
    if decide:
        st, h, body = fetch(url, 'POST', {'decision': 'approve', 'comment': 'sneaky'})
        assert st == status, (url, st, body[:500])
        assert h1(body) == title, (title, body[:800])
        methods.append('POST')
    got = refusals(b, seq)
    assert [r['data'].get('method') for r in got] == methods, got
    for r in got:
        assert r['data'].get('reason') == reason, (reason, r)
        assert r['actor'] == actor, (actor, r)
        assert r['request_id'] == rid, (rid, r)
    if rid:
        assert b.get(rid)['approvals'] == before, 'a refused link changed the approvals'
    return got


def flip(link, index):
    """The same link with one byte of the decoded token flipped (index < 0 from the end)."""
    base, tok = link.rsplit('/', 1)
    raw = bytearray(base64.urlsafe_b64decode(tok + '=' * (-len(tok) % 4)))
    raw[index] ^= 0x01
    return base + '/' + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')


def outbox(b, rid=None):
    rows = b.query('SELECT id, request_id, rcpt, state, attempts, next_attempt_at, '
                   'last_error, message, message_id FROM outbox ORDER BY id')
    keys = ['id', 'request_id', 'rcpt', 'state', 'attempts', 'next_attempt_at', 'last_error',
            'message', 'message_id']
    out = [dict(zip(keys, r)) for r in rows]
    return [r for r in out if rid is None or r['request_id'] == rid]


def message_id(raw):
    m = re.search(r'^Message-ID:\s*(<[^>\r\n]+>)', raw, re.M | re.I)
    return m.group(1) if m else None


def out_path(name):
    os.makedirs(OUT_DIR, exist_ok=True)
    return os.path.join(OUT_DIR, name)


def tmpdir(ctx, name):
    d = os.path.join(tempfile.mkdtemp(prefix='elevate-mail-'), name)
    os.makedirs(d)
    ctx._cleanup.append(lambda: shutil.rmtree(os.path.dirname(d), ignore_errors=True))
    return d


# ---- the tests ----

def test_mail_link_page_and_approve(ctx):
    """The approval mail reaches the approvers only (text + HTML, one link each); a scanner's
    GET and the browser's GET decide nothing; Approve in Chromium without JavaScript
    answers "access is being activated" while AWS still holds the AssumeRole (the page
    never waits for AWS), and the grant becomes active once AWS answers; the same link
    again says "already decided"."""
    emu = ctx.emulator
    smtp = ctx.smtp(tmpdir(ctx, 'smtp')).start()
    # a held AssumeRole stays held until released (no per-attempt timeout and retry)
    b = ctx.broker(smtp_port=smtp.port, config={'aws': {'timeout': '120s'}}).start()
    t0 = time.time()
    j = b.request(reason='read the prod logs for INC-1')
    rid = j['id']
    wait_mail(smtp, 2)
    time.sleep(0.5)   # anything else queued with them has been sent by now
    msgs = smtp.messages()
    # approvers of prod-readonly (group:sre-leads) only: carol and dave, never alice
    assert sorted(m['rcpt'][0] for m in msgs) == ['carol@example.com', 'dave@example.com'], \
        [m['rcpt'] for m in msgs]
    ids = set()
    for m in msgs:
        msg, rcpt = m['msg'], m['rcpt'][0]
        assert m['rcpt'] == [rcpt] and m['from'] == FROM, (m['rcpt'], m['from'])
        assert msg['To'] == rcpt and msg['From'] == FROM, (msg['To'], msg['From'])
        assert msg['Subject'] == 'Approve prod-readonly for alice? (%s)' % rid, msg['Subject']
        mid = msg['Message-ID']
        assert re.fullmatch(r'<[^<>@\s]+@[^<>@\s]+>', mid), mid
        ids.add(mid)
        sent = email.utils.parsedate_to_datetime(msg['Date']).timestamp()
        assert t0 - 120 < sent < time.time() + 120, msg['Date']
        assert msg['MIME-Version'] == '1.0'
        assert msg.get_content_type() == 'multipart/alternative', msg.get_content_type()
        kinds = [p.get_content_type() for p in msg.iter_parts()]
        assert kinds == ['text/plain', 'text/html'], kinds
        for p in msg.iter_parts():
            assert p.get_content_charset() == 'utf-8', p['Content-Type']
        parts = mail_parts(msg)
        for part in parts.values():
            for want in (rid, 'alice', 'prod-readonly', 'read the prod logs for INC-1', '15m'):
                assert want in part, (want, part[:300])
        assert not any(h in msg for h in ('Bcc', 'Cc', 'Reply-To')), msg.keys()
    assert len(ids) == 2, 'Message-IDs must differ: %s' % ids
    links = links_by_user(msgs)
    assert set(links) == {'carol', 'dave'}, links
    assert links['carol'] != links['dave']
    for link in links.values():
        assert link.startswith(b.url + '/approve/'), link
    link = links['carol']

    # a mail scanner prefetching the link (twice, as they do) decides nothing
    # the broker signs the chain's tail within a second on its own (audit.checkpoint):
    # what counts is that the page itself records nothing
    def decisions():
        return [r for r in b.audit() if r['event'] != 'audit.checkpoint']
    audit_before = decisions()
    for _ in range(2):
        st, h, body = fetch(link)
        assert st == 200, (st, body[:500])
        assert_page_headers(h, 'approval page (plain GET)')
        assert h1(body) == 'Access request' and '<form method="post"' in body, body[:800]
        assert '<script' not in body.lower()
    st, h, body = fetch(link, 'HEAD')
    assert st in (200, 404, 405), st          # whatever it answers, it decides nothing
    r = b.get(rid)
    assert r['state'] == 'pending' and r['approvals'] == [], r
    assert decisions() == audit_before, 'a GET on the link wrote to the audit log'

    # the approver opens it in Chromium: the page, screenshots (desktop and phone)
    res = browse([{'goto': link},
                  {'text': 'dd.text'},
                  {'count': 'form button[name=decision]'},
                  {'screenshot': out_path('approval_page.png'), 'fullPage': True},
                  {'viewport': [390, 844]},
                  {'mobile': True},
                  {'goto': link},
                  {'count': 'form button[name=decision]'},
                  {'screenshot': out_path('approval_page_phone.png'), 'fullPage': True}])
    assert [n['status'] for n in res['navigations']] == [200, 200], res['navigations']
    assert_page_headers(res['headers'], 'approval page (Chromium)')
    assert res['title'] == 'Review access request %s' % rid, res['title']
    text = res['steps'][0]['text']
    for want in ('alice', 'prod-readonly', 'Approve', 'Deny', 'carol', rid):
        assert want in text, (want, text)
    assert res['texts'] == ['read the prod logs for INC-1'], res['texts']
    assert res['counts'] == [2, 2], res['counts']
    assert not res['dialogs'] and not res['pageerrors'], res
    assert not [c for c in res['console'] if 'Content Security Policy' in c['text']], \
        res['console']   # the stylesheet and everything else load under the CSP
    assert all(q['url'].startswith(b.url + '/') for q in res['requests']), res['requests']
    for p in ('approval_page.png', 'approval_page_phone.png'):
        assert os.path.getsize(out_path(p)) > 5000, p
    r = b.get(rid)
    assert r['state'] == 'pending' and r['approvals'] == [], r
    assert decisions() == audit_before, 'opening the page in a browser wrote to the audit log'

    # decide without JavaScript: the form alone works; then the same link again. AWS holds
    # the AssumeRole the approval starts: the result page comes all the same
    comment = 'ok — vu ✓ 確認'
    emu.hold('AssumeRole')
    res = browse([{'javascript': False},
                  {'goto': link},
                  {'fill': ['#comment', comment]},
                  {'click': 'button[value=approve]'},
                  {'screenshot': out_path('approval_result.png'), 'fullPage': True},
                  {'goto': link},
                  {'screenshot': out_path('approval_already_decided.png')}])
    navs = [(n['method'], n['status']) for n in res['navigations']]
    assert navs == [('GET', 200), ('POST', 200), ('GET', 409)], navs
    after_click, again = res['steps'][3]['text'], res['steps'][5]['text']
    assert 'Approved' in after_click and 'access is being activated' in after_click, \
        after_click
    assert comment in after_click, after_click
    (call,) = emu.wait_held(1)['calls']         # still held: the page did not wait for it
    assert call['action'] == 'AssumeRole' and emu.held() == 1, call
    assert b.get(rid)['state'] == 'activating'
    emu.release()
    assert 'Already decided' in again and 'already been decided' in again, again
    assert_page_headers(res['navigations'][1]['headers'], 'result page')
    assert_page_headers(res['navigations'][2]['headers'], 'already decided page')
    assert not res['pageerrors'], res['pageerrors']

    r = b.wait_state(rid, 'active')
    assert r['grant'], r
    assert [(a['approver'], a['decision'], a['comment']) for a in r['approvals']] == \
        [('carol', 'approve', comment)], r['approvals']
    ev = b.audit(rid)
    names = [e['event'] for e in ev]
    assert names.count('request.approval') == 1 and 'grant.activated' in names, names
    appr = [e for e in ev if e['event'] == 'request.approval'][0]
    assert appr['actor'] == 'carol' and appr['data'].get('via') == 'email', appr
    assert appr['data'].get('comment') == comment, appr
    ref = [e for e in ev if e['event'] == 'token.refused']
    assert [(e['actor'], e['data']) for e in ref] == \
        [('carol', {'reason': 'already_decided', 'method': 'GET', 'peer': '127.0.0.1'})], ref

    # a replayed POST of the used link, and the other approver's link: both refused
    check_refused(b, link, 409, 'Already decided', 'already_decided', 'carol', rid)
    check_refused(b, links['dave'], 409, 'Already decided', 'already_decided', 'dave', rid)
    assert b.get(rid)['state'] == 'active'
    assert [e['event'] for e in b.audit(rid)].count('request.approval') == 1

    # the requester is told, and the comment's UTF-8 survived form -> store -> mail
    m = wait_mail(smtp, 1, pred=lambda m: m['rcpt'] == ['alice@example.com'])[0]
    assert str(m['msg']['Subject']).startswith('Approved: prod-readonly'), m['msg']['Subject']
    text = mail_parts(m['msg'])['text/plain']
    assert re.search(r'\n  - carol at \d{4}-\d\d-\d\dT[\d:]+Z\r?\n    > %s\r?\n' %
                     re.escape(comment), text), text
    # the approval mails went out once each: nobody got a second approval mail
    assert len(approval_mails(smtp, rid)) == 2


def test_refused_links(ctx):
    """A flipped byte, another approver's link after a policy change, a vote already cast
    through the CLI, a used link, an expired link: each refused with its page, audited as
    token.refused with its reason, and nothing decided."""
    profiles = json.loads(json.dumps(harness.DEFAULT_PROFILES))
    quick = dict(profiles['dev'], pending_ttl='3s')
    profiles['quick'] = quick
    smtp = ctx.smtp(tmpdir(ctx, 'smtp')).start()
    # 16 anonymous refusals ('invalid') follow, each checked for its own record: more than
    # the default 5 a minute audited one by one (test_refusals checks the summaries)
    b = ctx.broker(smtp_port=smtp.port, profiles=profiles,
                   config={'audit': {'refusals_individual': 100}}).start()

    # started first: its links expire while the other checks run
    lapsing = b.request(profile='quick', ticket=None, reason='will lapse')['id']
    rid = b.request(reason='flip test')['id']
    admin = b.request(profile='prod-admin', duration='5m', ticket=None,
                      reason='needs two groups')['id']
    wait_mail(smtp, 2 + 2 + 3, pred=lambda m: str(m['msg']['Subject']).startswith('Approve '))
    links = {r: links_by_user(approval_mails(smtp, r)) for r in (lapsing, rid, admin)}
    assert set(links[admin]) == {'carol', 'dave', 'erin'}, links[admin]

    # one byte flipped: in the request id, the approver, the expiry, the nonce, the
    # signature; and tokens that are not tokens at all
    good = links[rid]['carol']
    raw = base64.urlsafe_b64decode(good.rsplit('/', 1)[1] + '==')
    rlen = raw[1]
    for index in (3, 2 + rlen + 2, 2 + rlen + 1 + 5 + 3, -70, -1):
        check_refused(b, flip(good, index), 403, 'Invalid link', 'invalid', 'anonymous', None)
    for bad in (good[:-4], good + 'AAAA', good.rsplit('/', 1)[0] + '/' + 'A' * 40,
                good.rsplit('/', 1)[0] + '/%3Cscript%3E'):
        check_refused(b, bad, 403, 'Invalid link', 'invalid', 'anonymous', None, decide=False)
    # the same token under another approver's name does not verify either: the approver
    # is signed (carol's token with dave's name in it)
    body = bytearray(raw)
    pos = 2 + rlen + 1
    assert bytes(body[pos:pos + 5]) == b'carol'
    body[pos - 1:pos + 5] = b'\x04dave'
    forged = '%s/%s' % (good.rsplit('/', 1)[0],
                        base64.urlsafe_b64encode(bytes(body)).decode().rstrip('='))
    check_refused(b, forged, 403, 'Invalid link', 'invalid', 'anonymous', None)
    st, _, _ = fetch(good)
    assert st == 200, 'the untouched link must still work'
    assert b.get(rid)['state'] == 'pending' and b.get(rid)['approvals'] == []

    # carol voted through the CLI; her mailed link is then refused ("already decided")
    r = b.cli('carol', 'approve', admin, '--comment', 'via cli')
    assert r.returncode == 0, r.stdout + r.stderr
    assert b.get(admin)['state'] == 'pending'      # prod-admin needs security too
    check_refused(b, links[admin]['carol'], 409, 'Already decided', 'already_decided',
                  'carol', admin)
    st, _, body = fetch(links[admin]['carol'])
    assert 'You have already decided this request.' in body, body
    assert [a['via'] for a in b.get(admin)['approvals']] == ['cli']

    # the other approvers' pages show carol's vote, with its time and comment
    st, _, body = fetch(links[admin]['dave'])
    assert st == 200 and 'Approvals: 1 of' in body, body
    li = re.search(r'<ul class="approvals">\s*<li>(.*?)</li>', body, re.S)
    assert li and re.search(r'carol.*approve.*\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ.*via cli',
                            li.group(1), re.S), body

    # a used link: dave approves by mail (the request stays pending), then reuses it
    st, h, body = fetch(links[admin]['dave'], 'POST', {'decision': 'approve'})
    assert st == 200 and h1(body) == 'Approved', (st, body[:600])
    assert 'More approvals are needed' in body, body
    check_refused(b, links[admin]['dave'], 409, 'Already decided', 'already_decided', 'dave',
                  admin)

    # single use under a race: erin's link posted on 8 connections at once (each request
    # complete but for its last byte, then all last bytes together) decides exactly once
    seq = last_seq(b)
    results = race_post(links[admin]['erin'], {'decision': 'approve'}, 8)
    assert sorted(results) == [200] + [409] * 7, results
    r = b.wait_state(admin, 'active')
    assert [a['approver'] for a in r['approvals']] == ['carol', 'dave', 'erin'], r['approvals']
    got = refusals(b, seq)
    if os.environ.get('ELEVATE_TEST_DEBUG'):
        print('race refusals:', sorted(g['data']['reason'] for g in got))
    assert len(got) == 7 and all(g['actor'] == 'erin' and g['data']['method'] == 'POST' and
                                 g['data']['reason'] in ('used', 'already_decided')
                                 for g in got), got
    assert [e['event'] for e in b.audit(admin)].count('grant.activated') == 1

    # another approver's link: dave leaves group:sre-leads (policy change + SIGHUP)
    other = b.request(reason='after the reorg')['id']
    wait_mail(smtp, 2, pred=lambda m: '(%s)' % other in str(m['msg']['Subject']))
    links[other] = links_by_user(approval_mails(smtp, other))
    doc = json.load(open(os.path.join(b.policy_dir, 'policy.json')))
    doc['groups']['sre-leads'] = ['carol']
    with open(os.path.join(b.policy_dir, 'policy.json'), 'w') as f:
        json.dump(doc, f, indent=2)
    n = b.logtext().count('policies reloaded')
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b.logtext().count('policies reloaded') > n, 10, what='policy reload')
    check_refused(b, links[other]['dave'], 403, 'You are no longer an approver',
                  'not_an_approver', 'dave', other)
    st, _, body = fetch(links[other]['carol'])
    assert st == 200 and h1(body) == 'Access request', 'carol is still an approver'
    assert b.get(other)['state'] == 'pending' and b.get(other)['approvals'] == []

    # an expired link: the request lapsed (pending_ttl 3s); the signature still names it
    wait_for(lambda: b.get(lapsing)['state'] == 'lapsed', 15, what='lapse')
    check_refused(b, links[lapsing]['carol'], 410, 'This link has expired', 'expired',
                  'carol', lapsing)
    assert b.get(lapsing)['approvals'] == []
    # every refusal above is in the audit log, and none of them decided anything
    reasons = {r['data']['reason'] for r in refusals(b, 0)}
    want = {'invalid', 'already_decided', 'not_an_approver', 'expired'}
    assert want <= reasons <= want | {'used'}, reasons


def _header_names(raw):
    head = re.split(rb'\r?\n\r?\n', raw, 1)[0]
    return [ln.split(b':', 1)[0].decode() for ln in re.split(rb'\r?\n', head)
            if ln and not ln[:1].isspace()]


MAIL_HEADERS = sorted(['Date', 'From', 'To', 'Subject', 'Message-ID', 'MIME-Version',
                       'Auto-Submitted', 'Content-Type'])


def _one_line_subject(m):
    """The raw message is 7-bit, has exactly the broker's headers, one Subject, and
    nothing anywhere that looks like an injected header; returns the decoded subject."""
    raw = m['raw']
    raw.decode('ascii')                       # 8-bit never reaches the wire
    assert not re.search(rb'(?<!\r)\n|\r(?!\n)', raw), 'a bare CR or LF on the wire'
    if os.environ.get('ELEVATE_TEST_DEBUG'):
        print(raw.decode()[:1200])
    assert sorted(_header_names(raw)) == MAIL_HEADERS, _header_names(raw)
    msg = m['msg']
    assert len(msg.get_all('Subject')) == 1
    # RFC 2047: each encoded word holds whole characters (clients decode word by word)
    head = re.split(rb'\r\n\r\n', raw, 1)[0].decode()
    for charset, enc, data in re.findall(r'=\?([^?]+)\?([BbQq])\?([^?]*)\?=', head):
        assert charset.upper() == 'UTF-8', charset
        if enc in 'Bb':
            base64.b64decode(data).decode('utf-8')
        else:
            import quopri
            quopri.decodestring(data.replace('_', ' ').encode(), header=True).decode('utf-8')
    for part in msg.walk():
        assert 'Bcc' not in part and 'X-Injected' not in part, part.keys()
    subject = str(msg['Subject'])
    assert '\r' not in subject and '\n' not in subject, repr(subject)
    return subject


def test_hostile_and_unicode_input(ctx):
    """<script> in a reason renders as text (no script runs in Chromium, on the page or in
    the HTML mail); CR/LF cannot add a mail header (refused in a reason; neutralised in a
    multi-line comment typed into the page); UTF-8 survives in subjects, bodies and pages."""
    # A deployment may put the reason or the comment in a subject (templates are
    # configurable): that is where CR/LF could add a header. The default subjects carry
    # only policy names, which the policy limits to [A-Za-z0-9_.@-]: names are ASCII.
    tdir = tmpdir(ctx, 'templates')
    os.rmdir(tdir)
    shutil.copytree(os.path.join(harness.ROOT, 'templates'), tdir)
    for name, var in (('approval_request.txt', 'reason'), ('denied.txt', 'comment')):
        p = os.path.join(tdir, name)
        first, rest = open(p, encoding='utf-8').read().split('\n', 1)
        assert first.startswith('Subject: ')
        open(p, 'w', encoding='utf-8').write('%s {{%s}}\n%s' % (first, var, rest))
    smtp = ctx.smtp(tmpdir(ctx, 'smtp')).start()
    b = ctx.broker(smtp_port=smtp.port, config={'templates': tdir}).start()
    injected = 'Bcc: mallory@evil.example'

    # CR in a reason: refused by the API and the CLI, nothing queued
    for bad in ('fix\r\n%s' % injected, 'fix\r%s' % injected):
        st, j = b.api('alice', 'POST', '/v1/requests', {'profile': 'dev', 'duration': '15m',
                                                         'reason': bad})
        assert st == 400 and 'control character' in j['error']['message'], (st, j)
    r = b.cli('alice', 'request', 'dev', '--for', '15m', '--reason', 'fix\r\n' + injected)
    assert r.returncode != 0 and 'control character' in r.stderr, (r.returncode, r.stderr)
    assert 'request.created' not in b.events() and outbox(b) == []

    # a multi-line reason is allowed (LF): with <script>, non-ASCII text, and the other
    # line-breaking or reordering characters a reason may hold (U+2028, NEL, a bidi
    # override, a tab); in the subject it all stays on one line
    reason = '%s %s\n%s\nX-Injected: yes\u2028tail\x85nel \u202egnp.exe\tend' % (
        HOSTILE, UNICODE, injected)
    st, j = b.api('alice', 'POST', '/v1/requests', {'profile': 'dev', 'duration': '15m',
                                                     'reason': reason})
    assert st == 201, (st, j)
    rid = j['id']
    assert j['reason'] == reason, 'the API keeps the reason as given: %r' % j['reason']
    wait_mail(smtp, 2)
    time.sleep(0.5)
    msgs = smtp.messages()
    assert sorted(m['rcpt'][0] for m in msgs) == ['carol@example.com', 'dave@example.com'], \
        [m['rcpt'] for m in msgs]
    for m in msgs:
        subject = _one_line_subject(m)
        assert subject.startswith('Approve dev for alice? (%s) ' % rid), subject
        for want in (HOSTILE, UNICODE, injected, 'X-Injected: yes'):
            assert want in subject, (want, subject)
        parts = mail_parts(m['msg'])
        text, html = parts['text/plain'], parts['text/html']
        assert HOSTILE in text and UNICODE in text, text
        assert '\n  > %s\n' % injected in text.replace('\r\n', '\n'), text   # a quoted line
        assert '<script' not in html.lower() and '<img' not in html.lower(), html
        assert '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;' \
            in html.replace('&#39;', "'").replace('&quot;', '"'), html
        assert UNICODE in html, html
        for where in (subject, text, html):   # C1 controls and bidi overrides removed
            assert '\x85' not in where and '\u202e' not in where, repr(where)
    link = links_by_user([m for m in msgs if m['rcpt'] == ['carol@example.com']])['carol']

    # the page with JavaScript on (an injected script would run, or trip the CSP), and the
    # HTML mail itself; then carol types a multi-line comment and denies
    mail_html = os.path.join(tmpdir(ctx, 'mailhtml'), 'mail.html')
    with open(mail_html, 'w', encoding='utf-8') as f:
        f.write(mail_parts(msgs[0]['msg'])['text/html'])
    comment = 'line one %s\n%s\nX-Injected: yes\n%s' % (UNICODE, injected, HOSTILE)
    res = browse([{'goto': 'file://' + mail_html},
                  {'count': 'script'},
                  {'count': 'img'},
                  {'wait': 200},
                  {'goto': link},
                  {'text': 'dd.text'},
                  {'count': 'script'},
                  {'count': 'img'},
                  {'screenshot': out_path('approval_page_hostile.png'), 'fullPage': True},
                  {'fill': ['#comment', comment]},
                  {'click': 'button[value=deny]'},
                  {'text': 'dd.text'},
                  {'count': 'script'},
                  {'wait': 200}])
    navs = [(n['method'], n['status']) for n in res['navigations'] if n['url'].startswith('http')]
    assert navs == [('GET', 200), ('POST', 200)], res['navigations']
    assert res['dialogs'] == [], 'a script ran: %s' % res['dialogs']
    assert res['pageerrors'] == [], res['pageerrors']
    assert not [c for c in res['console'] if 'Content Security Policy' in c['text']], \
        'the page tried to run something: %s' % res['console']
    assert res['counts'] == [0, 0, 0, 0, 0], res['counts']
    shown, shown_comment = res['texts']
    assert HOSTILE in shown and UNICODE in shown and '\u202e' not in shown, repr(shown)
    assert '\n%s\nX-Injected: yes' % injected in shown, repr(shown)
    assert UNICODE in res['steps'][5]['text']
    assert 'Denied' in res['steps'][10]['text'], res['steps'][10]['text']
    for want in (HOSTILE, UNICODE, injected, 'X-Injected: yes'):
        assert want in shown_comment, (want, shown_comment)

    # the comment is stored as typed (the browser sends CR LF), and the denied mail's
    # subject holds it on one line: no Bcc, no X-Injected, only alice as recipient
    r = b.get(rid)
    assert r['state'] == 'denied', r
    stored = r['approvals'][0]['comment']
    assert stored.replace('\r\n', '\n') == comment, repr(stored)
    assert '\r\n' in stored, 'a textarea posts CR LF line breaks: %r' % stored
    m = wait_mail(smtp, 1, pred=lambda m: m['rcpt'] == ['alice@example.com'])[0]
    # dave, who was asked too, hears that his decision is no longer needed
    other = wait_mail(smtp, 1, pred=lambda m: m['rcpt'] == ['dave@example.com'] and
                      'No longer needed' in str(m['msg']['Subject']))[0]
    assert 'denied by carol' in mail_parts(other['msg'])['text/plain']
    time.sleep(0.3)
    assert len(smtp.messages()) == 4, [x['rcpt'] for x in smtp.messages()]
    subject = _one_line_subject(m)
    assert subject.startswith('Denied: dev (%s) ' % rid), subject
    for want in (UNICODE, injected, 'X-Injected: yes', HOSTILE):
        assert want in subject, (want, subject)
    text = mail_parts(m['msg'])['text/plain']
    assert UNICODE in text and HOSTILE in text, text

    # Issue 9: a reason of blank lines and a fake "open this link" (and a ticket with the
    # fake link) cannot pass for the mail's own words: in the plain-text part the real link
    # comes first and every line the requester typed is quoted, the blank ones too
    fake = 'http://evil.example/approve/AAAAAAAAAAAA'
    attack = 'need the logs\n\n\n\nTo approve or deny, open this link:\n\n%s\n\n' % fake
    st, j = b.api('alice', 'POST', '/v1/requests', {'profile': 'dev', 'duration': '15m',
                                                     'reason': attack,
                                                     'ticket': 'INC-9 ' + fake})
    assert st == 201, (st, j)
    rid = j['id']
    msgs = wait_mail(smtp, 2, pred=lambda m: str(m['msg']['Subject']).startswith(
        'Approve dev for alice? (%s) ' % rid))
    assert sorted(m['rcpt'][0] for m in msgs) == ['carol@example.com', 'dave@example.com']
    for m in msgs:
        parts = mail_parts(m['msg'])
        text, html = parts['text/plain'].replace('\r\n', '\n'), parts['text/html']
        in_text, in_html = mail_links(m['msg'])
        real = in_text[0]
        assert real.startswith(b.url + '/approve/') and in_text[1:] == [fake, fake], in_text
        assert in_html == [real], in_html
        lines = text.split('\n')
        assert real in lines, text                        # the real link, a line of its own
        assert text.index(real) < text.index('evil.example'), text
        assert [x for x in lines if x.startswith('To approve or deny')] == \
            ['To approve or deny, open this link:'], text  # the mail's own sentence, once
        for i, line in enumerate(lines):
            if 'evil.example' in line:
                assert line.startswith('  > '), (line, text)
            if i == 0 or lines[i - 1] == '':              # a paragraph starts here
                assert 'evil.example' not in line and not line.startswith(fake), (line, text)
        quoted = ''.join('  >%s\n' % (' ' + x if x else '') for x in attack[:-1].split('\n'))
        assert '\nReason given by alice:\n' + quoted + '\n' in text, text
        assert '\n  > INC-9 %s\n' % fake in text, text
        # the HTML part shows the real link before the requester's words too
        assert html.index('href="%s"' % real) < html.index('evil.example'), html


def test_outbox_survives_smtp_outage_and_restart(ctx):
    """SMTP down, a request is made, the daemon restarts, SMTP comes back: each approval
    mail is delivered exactly once (by Message-ID), and its link works."""
    smtp = ctx.smtp(tmpdir(ctx, 'smtp')).start()
    b = ctx.broker(smtp_port=smtp.port).start()
    smtp.stop()
    rid = b.request(reason='during the outage')['id']
    # the first attempt fails at once: connection refused (retry in 2 s)
    wait_for(lambda: len(outbox(b, rid)) == 2 and all(r['attempts'] >= 1 and r['last_error']
             for r in outbox(b, rid)), 10, what='first failed attempt')
    rows = outbox(b, rid)
    assert all(r['state'] == 'queued' for r in rows), rows
    stored_ids = sorted(r['message_id'] for r in rows)
    assert all(stored_ids) and len(set(stored_ids)) == 2, stored_ids
    # the queued body is sealed: no live approval link lies in the database
    assert all(r['message'].startswith('box:') and '/approve/' not in r['message']
               for r in rows), rows
    due = max(r['next_attempt_at'] for r in rows)
    assert due <= time.time() + 3, rows       # 2 s backoff after the first failure

    # the daemon stops; while it is down the retry falls due; it starts again (SMTP still
    # down): the due mails are tried at once, the stored attempt count goes on
    b.stop()
    while time.time() < due + 0.5:
        time.sleep(0.1)
    t_start = time.time()
    b.start()
    wait_for(lambda: all(r['attempts'] >= 2 for r in outbox(b, rid)), 5,
             what='a retry right after the restart')
    assert time.time() - t_start < 3, 'due mails must be sent at start, not after a delay'
    rows = outbox(b, rid)
    assert all(r['state'] == 'queued' and r['attempts'] == 2 for r in rows), rows
    assert sorted(r['message_id'] for r in rows) == stored_ids
    nxt = max(r['next_attempt_at'] for r in rows)
    assert time.time() + 2 <= nxt <= time.time() + 5, (rows, time.time())   # 4 s backoff

    # SMTP comes back on the same port: delivered with the next retry, once each
    smtp.start()
    msgs = wait_mail(smtp, 2, timeout=15)
    rows = outbox(b, rid)
    assert all(r['state'] == 'sent' and r['attempts'] == 3 for r in rows), rows
    time.sleep(2.5)     # room for a duplicate to show up, if the mailer were to send one
    msgs = smtp.messages()
    got = sorted(m['msg']['Message-ID'] for m in msgs)
    assert got == stored_ids, (got, stored_ids)
    assert sorted(m['rcpt'][0] for m in msgs) == ['carol@example.com', 'dave@example.com']
    assert 'mail.failed' not in b.events()
    # the link signed before the restart still opens (the key is in the state dir)
    link = links_by_user(msgs)['carol']
    st, _, body = fetch(link)
    assert st == 200 and h1(body) == 'Access request', (st, body[:500])
    assert b.get(rid)['state'] == 'pending'
