"""Issue 13, several profiles in one request: `elevate request A,B --for 30m ...` makes a
bundle (bun_...) over one member request per profile. Each member keeps its own approvers,
quorum, credentials and revocation; approve, cancel, revoke and extend on the bundle's id
act on every member, each through its own state machine. A refused profile creates
nothing."""
import copy
import json
import os
import shutil
import tempfile

from harness import (DEFAULT_PROFILES, browse, mail_links, mail_parts, parse_iso, wait_for,
                     wait_mail)
from test_ssm import INSTANCE, NEW_PLUGIN, FakePlugin

BOTH = 'prod-readonly,prod-admin'   # quorum: 1 sre-lead / 1 sre-lead and 1 of security


def _member(bundle, profile):
    return next(m for m in bundle['members'] if m['profile'] == profile)


def _create(b, user='alice', profiles=BOTH, *extra):
    r = b.cli(user, '--json', 'request', profiles, '--for', '20m', '--reason', 'incident',
              '--ticket', 'INC-7', *extra)
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def _active_bundle(b):
    """A bundle of prod-readonly and prod-admin, both active: carol approves (both need
    her), erin completes prod-admin's quorum."""
    j = _create(b)
    assert b.cli('carol', 'approve', j['id']).returncode == 0
    assert b.cli('erin', 'approve', j['id']).returncode == 0
    for m in j['members']:
        b.wait_state(m['id'], 'active')
    return b.get(j['id'])


def test_each_member_has_its_quorum_and_its_credentials(ctx):
    """carol's approval of the bundle activates prod-readonly only; prod-admin stays
    pending until erin (security) approves. Each member's credentials are its own role's,
    minted separately and accepted by the emulator; creds --profile picks the right one;
    without --profile the CLI names the profiles."""
    emu = ctx.emulator
    b = ctx.broker().start()
    r = b.cli('alice', 'request', BOTH, '--for', '20m', '--reason', 'incident', '--ticket',
              'INC-7')
    assert r.returncode == 0, r
    bid = r.stdout.split()[0]
    assert bid.startswith('bun_') and 'bundle of 2' in r.stdout, r.stdout
    assert 'prod-readonly  pending' in r.stdout and 'prod-admin  pending' in r.stdout, r.stdout
    j = b.get(bid)
    assert j['state'] == 'pending' and j['profiles'] == ['prod-readonly', 'prod-admin'], j
    ro, adm = _member(j, 'prod-readonly'), _member(j, 'prod-admin')
    assert ro['bundle'] == bid and adm['bundle'] == bid
    assert ro['duration'] == adm['duration'] == 1200 and ro['ticket'] == adm['ticket'] == 'INC-7'

    r = b.cli('carol', 'approve', bid)
    assert r.returncode == 0, r
    assert b.wait_state(ro['id'], 'active')['state'] == 'active'
    j = b.get(bid)
    assert _member(j, 'prod-admin')['state'] == 'pending', j
    assert not _member(j, 'prod-admin')['quorum']['met']
    assert j['state'] == 'mixed' and j['states'] == {'active': 1, 'pending': 1}, j
    # erin may approve prod-admin only: prod-readonly is not hers and is left alone
    st, d = b.api('erin', 'POST', '/v1/requests/%s/approve' % bid, {})
    assert st == 200, (st, d)
    res = {x['profile']: x for x in d['results']}
    assert res['prod-admin']['ok'] and not res['prod-readonly']['ok'], d
    b.wait_state(adm['id'], 'active')
    assert b.get(bid)['state'] == 'active'

    c_ro = b.cli_json('alice', 'creds', bid, '--profile', 'prod-readonly')
    c_adm = b.cli_json('alice', 'creds', bid, '--profile', 'prod-admin')
    assert c_ro['AccessKeyId'] != c_adm['AccessKeyId']
    assert c_ro['AccessKeyId'] in emu.keys_of(request_id=ro['id'])
    assert c_adm['AccessKeyId'] in emu.keys_of(request_id=adm['id'])
    assert emu.decision(c_ro['AccessKeyId']) == 'allow'
    assert emu.decision(c_adm['AccessKeyId']) == 'allow'
    j = b.get(bid)
    assert ':assumed-role/ProdReadOnly/' in _member(j, 'prod-readonly')['grant']['assumed_role_arn']
    assert ':assumed-role/ProdAdmin/' in _member(j, 'prod-admin')['grant']['assumed_role_arn']
    r = b.cli('alice', 'exec', bid, '--profile', 'prod-admin', '--', 'sh', '-c',
              'echo $AWS_ACCESS_KEY_ID $ELEVATE_REQUEST_ID')
    assert r.returncode == 0 and r.stdout.split() == [c_adm['AccessKeyId'], adm['id']], r
    r = b.cli('alice', 'console', bid, '--profile', 'prod-readonly', '--print')
    assert r.returncode == 0 and '/federation?Action=login' in r.stdout, r
    assert [a['request_id'] for a in b.audit() if a['event'] == 'grant.console'] == [ro['id']]
    # an SSM session with the prod-readonly member's credentials (a recording plugin)
    plugin = FakePlugin(b.tmp, 'plugin', NEW_PLUGIN)
    r = b.cli('alice', 'ssm', bid, '--profile', 'prod-readonly', INSTANCE,
              env={'PATH': '/usr/bin:/bin', 'ELEVATE_SSM_PLUGIN': plugin.path})
    assert r.returncode == 0, r.stderr
    (call,) = plugin.calls()
    assert call['env']['AWS_ACCESS_KEY_ID'] == c_ro['AccessKeyId'], call['env']
    sid = json.loads(call['env']['AWS_SSM_START_SESSION_RESPONSE'])['SessionId']
    assert [x['session_id'] for x in b.get(ro['id'])['sessions']] == [sid]
    r = b.cli('alice', 'ssm', ro['id'], '--profile', 'prod-readonly', INSTANCE)
    assert r.returncode == 2 and "bundle's ID with --profile" in r.stderr, r
    r = b.cli('alice', 'creds', bid)
    assert r.returncode == 2 and 'prod-readonly, prod-admin' in r.stderr, r
    assert '--profile' in r.stderr and r.stdout == '', r
    r = b.cli('alice', 'creds', bid, '--profile', 'dev')
    assert r.returncode == 2 and 'has no profile dev' in r.stderr, r
    st, e = b.api('alice', 'GET', '/v1/requests/%s/credentials' % bid)
    assert st == 400 and 'prod-readonly, prod-admin' in e['error']['message'], (st, e)
    # status shows the members, list marks them
    r = b.cli('alice', 'status', bid)
    assert r.returncode == 0 and r.stdout.count('ProdReadOnly') >= 1, r
    assert 'bundle %s  active' % bid in r.stdout, r.stdout
    r = b.cli('alice', 'list', '--mine')
    assert r.stdout.count('[%s]' % bid) == 2, r.stdout


def test_revoke_and_extend_apply_to_every_member(ctx):
    """extend on the bundle asks an extension of each member (each approved by its own
    quorum) and both windows grow; revoke on the bundle marks both grants ending, then
    waits once for both to end, and the emulator then denies both credentials."""
    emu = ctx.emulator
    b = ctx.broker().start()
    j = _active_bundle(b)
    bid = j['id']
    ends = {m['profile']: m['window_end'] for m in j['members']}
    keys = {m['profile']: b.cli_json('alice', 'creds', bid, '--profile', m['profile'])
            ['AccessKeyId'] for m in j['members']}

    st, d = b.api('alice', 'POST', '/v1/requests/%s/extend' % bid, {'by': '5m'})
    assert st == 201 and all(x['ok'] for x in d['results']), (st, d)
    ext = {x['profile']: x['request']['id'] for x in d['results']}
    assert all(x['request']['extends'] == x['id'] for x in d['results']), d
    assert b.approve(ext['prod-readonly'])[0] == 200
    assert b.approve(ext['prod-admin'])[0] == 200
    assert b.approve(ext['prod-admin'], user='erin')[0] == 200
    for p in ext:
        b.wait_state(ext[p], 'ended')             # an extension ends once applied
    j = b.get(bid)
    for m in j['members']:
        assert parse_iso(m['window_end']) == parse_iso(ends[m['profile']]) + 300, m

    r = b.cli('alice', 'revoke', bid, '--reason', 'done')
    assert r.returncode == 0, r
    assert 'bundle %s  ended' % bid in r.stdout, r.stdout
    j = b.get(bid)
    assert [m['state'] for m in j['members']] == ['ended', 'ended'], j
    for p, k in keys.items():
        assert emu.decision(k) == 'explicit_deny', p
    ev = b.audit()
    revoked = [a['request_id'] for a in ev if a['data'].get('to') == 'ending']
    assert sorted(revoked) == sorted(m['id'] for m in j['members']), revoked
    # both members were ending before either ended: revoked together, not in turn
    ending = [a['seq'] for a in ev if a['data'].get('to') == 'ending']
    ended = [a['seq'] for a in ev if a['event'] == 'grant.ended']
    assert len(ended) == 2 and max(ending) < min(ended), (ending, ended)


def test_a_refused_profile_creates_nothing(ctx):
    """An unknown profile, one alice may not request, a profile named twice, more than 10
    profiles, a bundle with break-glass: each refused with a 4xx naming the problem, and
    no request, bundle or audit record of one is stored. The CLI refuses an empty name."""
    profiles = copy.deepcopy(DEFAULT_PROFILES)
    profiles['billing-readonly'] = dict(profiles['dev'], requesters=['group:sre-leads'],
                                        role_arn=profiles['dev']['role_arn'] + 'Billing')
    b = ctx.broker(profiles=profiles).start()
    base = {'duration': '10m', 'reason': 'x', 'ticket': 'INC-1'}
    for prof, st_want, text in (
            (['prod-readonly', 'nope'], 400, 'no profile named "nope"'),
            (['prod-readonly', 'billing-readonly'], 403,
             'profile billing-readonly: alice is not in its requesters'),
            (['dev', 'dev'], 400, '"dev" is listed twice'),
            (['dev'] * 11, 400, 'at most 10'),
            (['dev'], 400, 'at least 2')):
        st, e = b.api('alice', 'POST', '/v1/requests', dict(base, profiles=prof))
        assert st == st_want and text in e['error']['message'], (prof, st, e)
    st, e = b.api('alice', 'POST', '/v1/requests', dict(base, profiles=['dev', 'prod-admin'],
                                                        break_glass=True))
    assert st == 400, (st, e)
    assert b.query('SELECT COUNT(*) FROM requests')[0][0] == 0
    assert b.query('SELECT COUNT(*) FROM bundles')[0][0] == 0
    assert 'bundle.created' not in b.events() and 'request.created' not in b.events()
    r = b.cli('alice', 'request', 'dev,,prod-admin', '--reason', 'x')
    assert r.returncode == 2 and 'empty name' in r.stderr, r
    r = b.cli('alice', 'request', 'dev,prod-admin', '--reason', 'x', '--wait')
    assert r.returncode == 2 and '--wait takes one profile' in r.stderr, r
    # one profile answers as before: no bundle key
    j = b.request(profile='dev')
    assert 'bundle' not in j and j['id'].startswith('req_'), j


def test_audit_names_the_bundle_and_verifies(ctx):
    """bundle.created lists the profiles and members; each member's request.created names
    the bundle; cancel on the bundle cancels each member with its own record; the exported
    trail verifies."""
    b = ctx.broker().start()
    j = _create(b)
    bid = j['id']
    ids = [m['id'] for m in j['members']]
    created = [a for a in b.audit() if a['event'] == 'bundle.created']
    assert len(created) == 1 and created[0]['request_id'] == bid, created
    assert created[0]['data']['members'] == ids, created
    assert created[0]['data']['profiles'] == ['prod-readonly', 'prod-admin']
    for i in ids:
        rc = [a for a in b.audit(i) if a['event'] == 'request.created']
        assert rc and rc[0]['data']['bundle'] == bid, rc
    r = b.cli('alice', 'cancel', bid)
    assert r.returncode == 0, r
    assert [m['state'] for m in b.get(bid)['members']] == ['cancelled', 'cancelled']
    for i in ids:
        assert [a for a in b.audit(i) if a['data'].get('to') == 'cancelled'], i
    r = b.cli('alice', 'cancel', bid)
    assert r.returncode != 0 and 'no member of bundle' in r.stderr, r
    pub = open(os.path.join(b.state_dir, 'audit.pub')).read().strip()
    wait_for(lambda: b.cli('erin', 'audit', 'verify', b.audit_file, '--pubkey',
                           pub).returncode == 0, 10, what='audit verify')


def test_scheduled_bundle_starts_every_member_at_its_time(ctx):
    """--in with several profiles: every member scheduled for the same start; approved,
    neither is minted before it, both are active after it."""
    emu = ctx.emulator
    b = ctx.broker().start()
    since = emu.last_seq()
    j = _create(b, 'alice', BOTH, '--in', '4s')
    starts = {m['scheduled_start'] for m in j['members']}
    assert len(starts) == 1 and None not in starts, j
    assert b.cli('carol', 'approve', j['id']).returncode == 0
    assert b.cli('erin', 'approve', j['id']).returncode == 0
    assert [a for a in emu.log_entries(since) if a['action'] == 'AssumeRole'] == []
    for m in j['members']:
        b.wait_state(m['id'], 'active', timeout=15)
    assert len([a for a in emu.log_entries(since) if a['action'] == 'AssumeRole']) == 2
    start = parse_iso(starts.pop())
    for m in b.get(j['id'])['members']:
        assert start <= parse_iso(m['window_start']) <= start + 1, m


def _links(msgs):
    """{approver: the one approval link of their mail}, the text and HTML parts agreeing."""
    out = {}
    for m in msgs:
        text, html = mail_links(m['msg'])
        assert len(set(text)) == 1 and set(text) == set(html), (text, html)
        user = m['rcpt'][0].split('@')[0]
        assert user not in out, 'two approval mails for %s' % user
        out[user] = text[0]
    return out


def test_one_mail_and_one_page_per_approver(ctx):
    """Each approver gets ONE mail for the bundle listing both roles and which are theirs,
    with one link; the page (headless Chromium) lists every role with its quorum; carol's
    approval there approves both members (each its own request.approval, via email), the
    prod-admin member stays pending for security; erin's page then approves it."""
    d = tempfile.mkdtemp(prefix='elevate-mail-')
    ctx._cleanup.append(lambda: shutil.rmtree(d, ignore_errors=True))
    smtp = ctx.smtp(os.path.join(d, 'smtp')).start()
    b = ctx.broker(smtp_port=smtp.port).start()
    j = _create(b)
    bid = j['id']
    ro, adm = _member(j, 'prod-readonly'), _member(j, 'prod-admin')
    # queued with the bundle, in its transaction: one mail per approver, no more
    assert sorted(r[0] for r in b.query('SELECT rcpt FROM outbox')) == [
        'carol@example.com', 'dave@example.com', 'erin@example.com']
    msgs = wait_mail(smtp, 3)
    assert sorted(m['rcpt'][0] for m in msgs) == ['carol@example.com', 'dave@example.com',
                                                  'erin@example.com'], msgs
    links = _links(msgs)
    for m in msgs:
        text = mail_parts(m['msg'])['text/plain']
        assert bid in str(m['msg']['Subject']) and 'prod-readonly' in text and \
            'prod-admin' in text, text
        if m['rcpt'][0].startswith('erin'):
            # erin (security) may approve prod-admin only
            assert text.count('you may approve it') == 1, text
            assert 'not yours to approve' in text, text

    res = browse([{'goto': links['carol']},
                  {'count': 'li.role'},
                  {'count': 'li.role .yours'},
                  {'text': 'ul.roles'},
                  {'click': 'button[value=approve]'}])
    navs = [(n['method'], n['status']) for n in res['navigations']]
    assert navs == [('GET', 200), ('POST', 200)], navs
    assert res['steps'][0]['title'] == 'Review access request %s' % bid, res['steps'][0]
    assert res['counts'] == [2, 2], res['counts']
    roles = res['texts'][0]
    assert 'prod-readonly' in roles and 'prod-admin' in roles and 'ProdAdmin' in roles, roles
    after = res['steps'][4]['text']
    assert 'prod-readonly: approved, access is being activated' in after, after
    assert 'prod-admin: approved, more approvals needed' in after, after
    assert not res['pageerrors'], res['pageerrors']
    b.wait_state(ro['id'], 'active')
    assert b.get(adm['id'])['state'] == 'pending'
    for i in (ro['id'], adm['id']):
        ap = [a for a in b.audit(i) if a['event'] == 'request.approval']
        assert [(a['actor'], a['data']['via']) for a in ap] == [('carol', 'email')], ap

    res = browse([{'goto': links['erin']},
                  {'count': 'li.role .yours'},
                  {'click': 'button[value=approve]'},
                  {'goto': links['erin']}])
    navs = [(n['method'], n['status']) for n in res['navigations']]
    assert navs == [('GET', 200), ('POST', 200), ('GET', 409)], navs
    assert res['counts'] == [1], res['counts']
    b.wait_state(adm['id'], 'active')
    # dave's link: everything he could decide is decided
    res = browse([{'goto': links['dave']}], allow_fail=True)
    assert [n['status'] for n in res['navigations']] == [409], res['navigations']


def test_auto_approval_rules_act_per_member(ctx):
    """prod-readonly has a rule alice's request meets: in a bundle with prod-admin its
    member is approved by the rule and minted at once, with no approver asked for it;
    prod-admin waits for its approvers, whose one mail says prod-readonly is not theirs."""
    d = tempfile.mkdtemp(prefix='elevate-mail-')
    ctx._cleanup.append(lambda: shutil.rmtree(d, ignore_errors=True))
    smtp = ctx.smtp(os.path.join(d, 'smtp')).start()
    profiles = copy.deepcopy(DEFAULT_PROFILES)
    profiles['prod-readonly']['auto_approve'] = [
        {'name': 'incident', 'requesters': ['alice'], 'max_duration': '30m',
         'ticket_pattern': '^INC-[0-9]+$'}]
    b = ctx.broker(smtp_port=smtp.port, profiles=profiles).start()
    j = _create(b)
    ro, adm = _member(j, 'prod-readonly'), _member(j, 'prod-admin')
    assert b.wait_state(ro['id'], 'active')['auto_approved'] == 'incident'
    assert b.get(adm['id'])['state'] == 'pending'
    def asks(m):
        return str(m['msg']['Subject']).startswith('Approve ')
    assert len(b.query("SELECT rcpt FROM outbox WHERE subject LIKE 'Approve %'")) == 3
    msgs = wait_mail(smtp, 3, pred=asks)
    assert sorted(m['rcpt'][0] for m in msgs) == ['carol@example.com', 'dave@example.com',
                                                  'erin@example.com'], [m['rcpt'] for m in msgs]
    for m in msgs:
        text = mail_parts(m['msg'])['text/plain']
        assert text.count('you may approve it') == 1, text
    r = b.cli('carol', 'approve', j['id'])
    assert r.returncode == 0 and 'prod-admin  done: now pending' in r.stdout, r
