"""Issue 13, auto-approval rules: a profile's `auto_approve` says when no human is needed
(requesters, max_duration, ticket_pattern, hours in a time zone). A request that meets
every condition of a rule is approved by that rule when it is created (its vote is
"auto:RULE", via "auto"; the audit names the rule) and minted at once; any other request
waits for its approvers as before. `elevated check` validates the rules."""
import copy
import datetime
import os
import subprocess
import zoneinfo

import harness
from harness import BIN

TZ = 'Asia/Tokyo'
DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']


def hours_now(shift_days=0):
    """An `hours` object whose window holds the current minute in TZ (shift_days=0), or
    one on every weekday but today (shift_days=1): same times, today excluded."""
    now = datetime.datetime.now(zoneinfo.ZoneInfo(TZ))
    start = now.hour
    end = min(start + 2, 24)
    today = DAYS[(now.weekday() + 1) % 7]        # Python's Monday is 0
    days = ','.join(d for d in DAYS if d != today) if shift_days else today
    return {'tz': TZ, 'days': days, 'from': '%02d:00' % start, 'to': '%02d:00' % end}


def profiles(rules):
    p = copy.deepcopy(harness.DEFAULT_PROFILES)
    p['prod-readonly']['auto_approve'] = rules
    return p


def test_a_request_that_meets_a_rule_is_approved_by_it(ctx):
    """alice (in the rule's requesters), 15m (under its 30m), ticket INC-7 (its pattern),
    within its hours: active without a human, the audit reads request.created,
    request.auto_approved (naming the rule), request.approved, grant.activated; the request
    shows the rule. Each condition broken alone leaves the request pending."""
    rules = [{'name': 'oncall-office-hours', 'requesters': ['alice'], 'max_duration': '30m',
              'ticket_pattern': '^INC-[0-9]+$', 'hours': hours_now()},
             {'name': 'never-today', 'requesters': ['group:engineers'],
              'hours': hours_now(shift_days=1)}]
    b = ctx.broker(profiles=profiles(rules)).start()
    rid = b.request(user='alice', duration='15m', ticket='INC-7')['id']
    j = b.wait_state(rid, 'active')
    assert j['auto_approved'] == 'oncall-office-hours' and j['quorum']['met'] is True, j
    assert [(a['approver'], a['via']) for a in j['approvals']] == \
        [('auto:oncall-office-hours', 'auto')], j['approvals']
    ev = b.events(rid)
    assert ev[:4] == ['request.created', 'request.auto_approved', 'request.approved',
                      'grant.activated'], ev
    (aa,) = [a for a in b.audit(rid) if a['event'] == 'request.auto_approved']
    assert aa['actor'] == 'system' and aa['data']['rule'] == 'oncall-office-hours', aa
    assert aa['data']['hours']['tz'] == TZ and aa['data']['ticket_pattern'] == '^INC-[0-9]+$'
    st, c = b.api('alice', 'GET', '/v1/requests/%s/credentials' % rid)
    assert st == 200 and c['AccessKeyId'], (st, c)

    for user, duration, ticket, why in (('alice', '45m', 'INC-8', 'longer than 30m'),
                                        ('alice', '15m', 'CHG-9', 'ticket not INC-'),
                                        ('bob', '15m', 'INC-10', 'not a requester of it')):
        j = b.request(user=user, duration=duration, ticket=ticket)
        assert j['state'] == 'pending' and j['auto_approved'] is None, (why, j)
        assert 'request.auto_approved' not in b.events(j['id']), why


def test_elevated_check_validates_rules(ctx):
    """Unknown zone, overnight window, bad days, unknown principal, a max_duration above
    the profile's, an unknown key: each reported with its JSON path; a good rule passes."""
    b = ctx.broker()
    bad = [{'requesters': ['group:nobody'], 'max_duration': '2h'},
           {'requesters': ['alice'], 'hours': {'tz': 'Mars/Olympus', 'from': '09:00',
                                              'to': '17:00'}},
           {'requesters': ['alice'], 'hours': {'tz': 'UTC', 'from': '22:00', 'to': '06:00'}},
           {'requesters': ['alice'], 'hours': {'tz': 'UTC', 'days': 'mon-fry',
                                              'from': '09:00', 'to': '17:00'}},
           {'requesters': ['alice'], 'when': 'always'}]
    b.profiles = profiles(bad)
    b.write_policy()
    r = subprocess.run([os.path.join(BIN, 'elevated'), 'check', '--config', b.config_path],
                       capture_output=True, text=True, env=b.env())
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    base = '$.profiles.prod-readonly.auto_approve'
    for path, text in (('[0].requesters[0]', 'unknown group "nobody"'),
                       ('[0].max_duration', "longer than the profile's max_duration 1h"),
                       ('[1].hours.tz', 'unknown time zone Mars/Olympus'),
                       ('[2].hours.to', 'a window over midnight is two rules'),
                       ('[3].hours.days', 'is not a list of days'),
                       ('[4].when', '')):
        assert any(base + path in ln and text in ln for ln in out.splitlines()), (path, out)
    b.profiles = profiles([{'requesters': ['group:engineers'], 'max_duration': '30m',
                            'ticket_pattern': '^INC-[0-9]+$',
                            'hours': {'tz': TZ, 'days': 'mon-fri', 'from': '09:00',
                                      'to': '19:00'}}])
    b.write_policy()
    r = subprocess.run([os.path.join(BIN, 'elevated'), 'check', '--config', b.config_path],
                       capture_output=True, text=True, env=b.env())
    assert r.returncode == 0, r.stdout + r.stderr
