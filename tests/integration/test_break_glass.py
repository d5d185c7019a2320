"""Issue 13, break-glass: a profile may allow `break_glass` (who may, for how long, who is
told, how soon it is reviewed). `elevate request P --break-glass --reason ...` is active at
once without approval; the people the profile names and the auditors are told at once
(the notice waits in the outbox while mail is down: it never holds up access); the grant
is marked in status, list, audit and report. An approver reviews it afterwards: approve
ratifies it, deny revokes it at once and flags it. Unreviewed past review_within, it is
escalated to the auditors."""
import copy
import os
import time

import harness
from harness import free_port, wait_for

GLASS = {'requesters': ['group:engineers'], 'max_duration': '30m',
         'notify': ['group:sre-leads'], 'review_within': '1h'}


def profiles(**glass):
    p = copy.deepcopy(harness.DEFAULT_PROFILES)
    p['prod-readonly']['break_glass'] = dict(GLASS, **glass)
    return p


def glass_request(b, user='alice', *extra):
    return b.cli(user, 'request', 'prod-readonly', '--break-glass', '--for', '10m',
                 '--reason', 'the database is down', *extra)


def test_break_glass_while_mail_is_down(ctx):
    """SMTP refuses connections: alice breaks the glass and is active at once (the CLI says
    so); the credentials work; the audit reads request.created (break_glass), request.break_glass
    (naming who was told), grant.activated; status, list and report mark it. The notices
    wait in the outbox and go out once SMTP is up: to the sre-leads and the auditors, not
    to alice."""
    port = free_port()                     # nothing listens here yet
    b = ctx.broker(profiles=profiles(), smtp_port=port).start()
    r = glass_request(b, 'alice', '--wait')
    assert r.returncode == 0, r
    assert 'BREAK-GLASS' in r.stderr, r.stderr
    rid = r.stdout.split()[0]
    j = b.get(rid)
    assert j['state'] == 'active' and j['approvals'] == [], j
    assert j['break_glass']['review'] is None and j['break_glass']['review_due_at'], j
    st, c = b.api('alice', 'GET', '/v1/requests/%s/credentials' % rid)
    assert st == 200 and c['AccessKeyId'], (st, c)
    ev = b.events(rid)
    assert ev[:3] == ['request.created', 'request.break_glass', 'grant.activated'], ev
    (bg,) = [a for a in b.audit(rid) if a['event'] == 'request.break_glass']
    assert bg['actor'] == 'alice' and sorted(bg['data']['notified']) == \
        ['carol', 'dave', 'erin'], bg
    (cr,) = [a for a in b.audit(rid) if a['event'] == 'request.created']
    assert cr['data']['break_glass'] is True, cr
    r = b.cli('alice', 'status', rid)
    assert 'break-glass' in r.stdout and 'NOT REVIEWED' in r.stdout, r.stdout
    r = b.cli('frank', 'list')
    assert '!glass' in r.stdout, r.stdout
    st, rep = b.api('erin', 'GET', '/v1/report?since=1h')
    assert st == 200, rep
    (g,) = [g for g in rep['grants'] if g['id'] == rid]
    assert g['break_glass'] and g['break_glass']['review'] is None, g
    queued = b.query("SELECT rcpt FROM outbox WHERE request_id = ? AND state = 'queued'"
                     " AND subject LIKE 'BREAK-GLASS%'", (rid,))
    assert sorted(x[0] for x in queued) == ['carol@example.com', 'dave@example.com',
                                            'erin@example.com'], queued
    smtp = ctx.smtp(b.tmp + '/smtp')
    smtp.port = port
    smtp.start()
    def notices():
        return sorted((m['rcpt'][0], str(m['msg']['Subject'])) for m in smtp.messages()
                      if str(m['msg']['Subject']).startswith('BREAK-GLASS'))
    wait_for(lambda: len(notices()) >= 3, 60, what='the three break-glass notices')
    got = notices()
    assert [x[0] for x in got] == ['carol@example.com', 'dave@example.com',
                                   'erin@example.com'], got
    assert all(s.startswith('BREAK-GLASS: alice took prod-readonly') for _, s in got), got
    assert b.query("SELECT COUNT(*) FROM outbox WHERE request_id = ? AND subject LIKE"
                   " 'BREAK-GLASS%' AND state = 'sent'", (rid,))[0][0] == 3


def test_review_ratifies_or_revokes(ctx):
    """carol approves one break-glass grant: ratified, still active; a second review is
    refused. She denies another: rejected, revoked at once (the role's revocation policy
    denies its credentials), flagged in the audit. bob (no approver) cannot review; alice
    cannot review her own."""
    emu = ctx.emulator
    b = ctx.broker(profiles=profiles()).start()
    keep = glass_request(b, 'alice', '--wait').stdout.split()[0]
    st, e = b.approve(keep, user='bob')
    assert st in (403, 404), (st, e)            # bob may not even see it
    st, e = b.approve(keep, user='alice')
    assert st == 403, (st, e)
    st, j = b.approve(keep, user='carol', comment='justified: INC-9')
    assert st == 200 and j['state'] == 'active', (st, j)
    assert j['break_glass']['review'] == 'ratified' and j['break_glass']['reviewed_by'] == \
        'carol', j
    st, e = b.api('dave', 'POST', '/v1/requests/%s/deny' % keep, {})
    assert st == 409 and 'already reviewed' in e['error']['message'], (st, e)
    assert 'request.break_glass_ratified' in b.events(keep)

    bad = glass_request(b, 'bob', '--wait').stdout.split()[0]
    st, j = b.api('carol', 'POST', '/v1/requests/%s/deny' % bad, {'comment': 'no incident'})
    assert st == 200 and j['break_glass']['review'] == 'rejected', (st, j)
    j = b.wait_state(bad, 'ended')
    assert emu.session_denied(request_id=bad)
    ev = b.events(bad)
    assert 'request.break_glass_rejected' in ev and 'grant.revoke_requested' in ev, ev
    (rv,) = [a for a in b.audit(bad) if a['event'] == 'grant.revoke_requested']
    assert rv['data']['break_glass_rejected'] is True and rv['actor'] == 'carol', rv
    assert b.get(keep)['state'] == 'active'


def test_unreviewed_grant_is_escalated(ctx):
    """review_within 2s: nobody reviews, so the reaper escalates it to the auditors once
    (request.break_glass_escalated; status says so); a review after that still counts."""
    b = ctx.broker(profiles=profiles(review_within='2s')).start()
    rid = glass_request(b, 'alice', '--wait').stdout.split()[0]
    wait_for(lambda: 'request.break_glass_escalated' in b.events(rid), 30,
             what='the escalation')
    time.sleep(0.5)
    assert b.events(rid).count('request.break_glass_escalated') == 1
    j = b.get(rid)
    assert j['break_glass']['escalated_at'] and j['break_glass']['review'] is None, j
    assert 'escalated to the auditors' in b.cli('alice', 'status', rid).stdout
    st, j = b.approve(rid, user='dave')
    assert st == 200 and j['break_glass']['review'] == 'ratified', (st, j)


def test_who_may_break_glass(ctx):
    """A profile without break_glass refuses it; so does one for a user not in its
    requesters, a window above its max_duration, or no reason (the CLI refuses first)."""
    p = profiles(requesters=['alice'])
    b = ctx.broker(profiles=p).start()
    st, e = b.api('alice', 'POST', '/v1/requests', {'profile': 'dev', 'reason': 'x',
                                                      'break_glass': True})
    assert st == 403 and 'does not allow break-glass' in e['error']['message'], (st, e)
    st, e = b.api('bob', 'POST', '/v1/requests', {'profile': 'prod-readonly', 'reason': 'x',
                                                    'break_glass': True})
    assert st == 403 and 'may not break glass' in e['error']['message'], (st, e)
    st, e = b.api('alice', 'POST', '/v1/requests', {'profile': 'prod-readonly',
                                                      'reason': 'x', 'duration': '45m',
                                                      'break_glass': True})
    assert st == 400 and 'at most 30m' in e['error']['message'], (st, e)
    st, e = b.api('alice', 'POST', '/v1/requests', {'profile': 'prod-readonly',
                                                      'break_glass': True})
    assert st == 400 and 'needs a reason' in e['error']['message'], (st, e)
    r = b.cli('alice', 'request', 'prod-readonly', '--break-glass')
    assert r.returncode == 2 and '--break-glass needs --reason' in r.stderr, r
    assert b.query('SELECT COUNT(*) FROM requests')[0][0] == 0
