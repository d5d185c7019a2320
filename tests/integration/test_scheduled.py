"""Issue 13, scheduled windows: `elevate request P --at TIME --for D` (or `--in DUR`). The
approval may come earlier; the window starts at the scheduled time, not at the approval,
and the policy is checked again then: a requester removed from the policy meanwhile gets
`failed` with the reason. `elevate list` shows scheduled grants."""
import copy
import json
import signal
import time

from harness import iso, parse_iso, wait_for


def assume_roles(emu, since):
    return [e for e in emu.log_entries(since) if e['action'] == 'AssumeRole']


def test_window_starts_at_its_time_not_at_the_approval(ctx):
    """--in 4s, approved at once: activating and scheduled (the CLI's --wait returns on the
    approval), no AssumeRole before the start, then active with its window starting within
    1 s of the scheduled time and lasting the duration asked."""
    emu = ctx.emulator
    b = ctx.broker().start()
    since = emu.last_seq()
    r = b.cli('alice', '--json', 'request', 'dev', '--in', '4s', '--for', '2m', '--reason',
              'maintenance window')
    assert r.returncode == 0, r
    j = json.loads(r.stdout)
    rid, start = j['id'], parse_iso(j['scheduled_start'])
    assert j['state'] == 'pending' and start > time.time(), j
    st, d = b.approve(rid)
    assert st == 200 and d['state'] == 'activating', (st, d)
    assert d['scheduled_start'] == j['scheduled_start'], d
    r = b.cli('alice', 'list', '--mine')
    assert 'scheduled' in r.stdout and 'starts ' in r.stdout, r.stdout
    r = b.cli('alice', 'status', rid)
    assert 'scheduled to start at' in r.stdout, r.stdout
    assert assume_roles(emu, since) == []            # nothing minted before the start
    j = b.wait_state(rid, 'active', timeout=15)
    ws, we = parse_iso(j['window_start']), parse_iso(j['window_end'])
    assert start <= ws <= start + 1, (j['window_start'], j['scheduled_start'])
    assert we == start + 120, (j['window_end'], j['scheduled_start'])
    assert len(assume_roles(emu, since)) == 1


def test_removed_requester_fails_at_the_start(ctx):
    """Scheduled and approved, then alice leaves the profile's requesters (policy reload):
    at the start the request fails with code PolicyChanged naming why; AWS is never
    asked; she is told."""
    emu = ctx.emulator
    b = ctx.broker().start()
    since = emu.last_seq()
    j = b.request(user='alice', profile='dev', ticket=None,
                  start_at=iso(time.time() + 4))
    st, d = b.approve(j['id'])
    assert st == 200 and d['state'] == 'activating', (st, d)
    profiles = copy.deepcopy(b.profiles)
    profiles['dev']['requesters'] = ['group:sre-leads']
    b.profiles = profiles
    b.write_policy()
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: 'policies reloaded' in b.logtext(), 10,
             what='the policy reload')
    j = b.wait_state(j['id'], 'failed', timeout=15)
    assert j['failure']['code'] == 'PolicyChanged', j
    assert 'alice is not in its requesters' in j['failure']['message'], j
    assert assume_roles(emu, since) == []


def test_schedule_refusals(ctx):
    """A start in the past, one more than 30 days ahead, a malformed one, and break-glass
    with a start are refused with what to do; the CLI refuses --at with --in."""
    b = ctx.broker().start()
    for start, text in ((iso(time.time() - 60), 'not in the future'),
                        (iso(time.time() + 31 * 86400), 'more than 30d ahead'),
                        ('tomorrow', 'must be a time like')):
        st, e = b.api('alice', 'POST', '/v1/requests', {'profile': 'dev', 'reason': 'x',
                                                         'start_at': start})
        assert st == 400 and text in e['error']['message'], (start, st, e)
    r = b.cli('alice', 'request', 'dev', '--at', '2030-01-01T00:00:00+09:00', '--in', '1h')
    assert r.returncode == 2 and 'not both' in r.stderr, r
    r = b.cli('alice', 'request', 'dev', '--at', 'soon')
    assert r.returncode == 2 and 'not a time' in r.stderr, r
    assert b.query('SELECT COUNT(*) FROM requests')[0][0] == 0
