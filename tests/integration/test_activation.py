"""Issue 11: AWS calls off the HTTP thread. The vote that completes a quorum is answered
as soon as it is durable (`activating`); the credentials are minted on a worker of the
engine, and `elevate approve --wait` / `elevate request --wait` follow the minting to its
end. A stop or a crash while AWS mints loses nothing.

The emulator holds AssumeRole open while the test looks (no sleep hopes for a window),
and each broker here waits up to 120 s per AWS attempt, so a held call stays held until
the test releases it instead of timing out and being retried."""
import json
import os
import signal
import subprocess
import threading

import harness
from harness import ACCOUNT, wait_for

SLOW_AWS = {'aws': {'timeout': '120s'}}


def broker(ctx, **kw):
    profiles = json.loads(json.dumps(harness.DEFAULT_PROFILES))
    # a role that does not trust the broker: AWS refuses AssumeRole (AccessDenied)
    ctx.emulator.control('POST', 'roles', {'name': 'Untrusted', 'max_session_duration': 3600,
                                           'trust': []})
    profiles['untrusted'] = dict(profiles['dev'],
                                 role_arn='arn:aws:iam::%s:role/Untrusted' % ACCOUNT)
    return ctx.broker(profiles=profiles, config=SLOW_AWS, **kw).start()


def pending(b, profile='dev', user='alice'):
    return b.request(user=user, profile=profile, ticket=None)


def held_assume_role(emu):
    """The one AssumeRole the emulator holds (waits for it)."""
    (call,) = emu.wait_held(1)['calls']
    assert call['action'] == 'AssumeRole', call
    return call


def approved_while_held(ctx):
    """A broker, and a request whose approval started an AssumeRole that the emulator now
    holds: (broker, request id, the approval's answer, the held call)."""
    b = broker(ctx)
    rid = pending(b)['id']
    ctx.emulator.hold('AssumeRole')
    st, d = b.approve(rid)
    assert st == 200 and d['state'] == 'activating', (st, d)
    return b, rid, d, held_assume_role(ctx.emulator)


def issued_key(emu, seq):
    e = [x for x in emu.log_entries(seq - 1) if x['seq'] == seq]
    assert e and e[0]['status'] == 200 and e[0].get('issued_access_key_id'), e
    return e[0]['issued_access_key_id']


class Cli:
    """`elevate` running in the background as `user`; its stderr is collected line by line
    as it comes, so the test can see progress while the command still waits."""

    def __init__(self, ctx, b, user, *args):
        env = dict(os.environ, ELEVATE_CONFIG_DIR=b.users[user].cfgdir, HOME=b.tmp,
                   ELEVATE_CACHE_DIR=os.path.join(b.tmp, 'cache', user))
        self.p = subprocess.Popen([os.path.join(harness.BIN, 'elevate')] + list(args),
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        self.err = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        ctx._cleanup.append(self.kill)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def _read(self):
        for line in self.p.stderr:
            self.err.append(line)

    def running(self):
        return self.p.poll() is None

    def wait_stderr(self, text, timeout=10):
        wait_for(lambda: any(text in ln for ln in self.err), timeout,
                 what='%r on the command\'s stderr (so far: %r)' % (text, self.err))

    def follows_minting(self, emu, rid):
        """While AWS holds rid's AssumeRole the command keeps waiting and says so on stderr
        (no terminal: one line after 2 s); then AWS answers. Returns finish()."""
        held_assume_role(emu)
        self.wait_stderr('activating %s' % rid)
        assert self.running(), 'the command returned while AWS was still minting'
        emu.release()
        return self.finish()

    def finish(self, timeout=30):
        """(exit code, stdout, stderr) once the command has ended."""
        try:
            self.p.wait(timeout)
        finally:
            self.kill()
        out = self.p.stdout.read()
        self.reader.join(5)
        return self.p.returncode, out, ''.join(self.err)


def test_approval_answers_before_aws_mints(ctx):
    """The approver's POST answers `activating` (the vote and the transition are
    committed) while the AssumeRole it started is still held; nothing is handed out and
    cancel is refused meanwhile; once AWS answers the grant is active with exactly the
    credentials that call issued, and the audit trail reads vote, approved, activated."""
    emu = ctx.emulator
    b, rid, d, call = approved_while_held(ctx)   # the minting started with the answer ...
    assert emu.held() == 1                       # ... and AWS has not answered it yet
    assert [(a['approver'], a['decision']) for a in d['approvals']] == [('carol', 'approve')]
    assert d['quorum']['met'] is True and d['grant'] is None, d
    j = b.get(rid)
    assert j['state'] == 'activating' and j['grant'] is None, j
    st, e = b.api('alice', 'GET', '/v1/requests/%s/credentials' % rid)
    assert st == 409, (st, e)                    # nothing handed out while activating
    st, e = b.api('alice', 'POST', '/v1/requests/%s/cancel' % rid, {})
    assert st == 409 and 'activating' in e['error']['message'], (st, e)
    assert 'grant.activated' not in b.events(rid)
    emu.release()
    j = b.wait_state(rid, 'active')
    st, c = b.api('alice', 'GET', '/v1/requests/%s/credentials' % rid)
    assert st == 200 and c['AccessKeyId'] == issued_key(emu, call['seq']), (st, c)
    ev = [e for e in b.events(rid) if e in ('request.approval', 'request.approved',
                                             'grant.activated')]
    assert ev == ['request.approval', 'request.approved', 'grant.activated'], ev


def test_creds_right_after_the_approval_waits_for_the_minting(ctx):
    """credential_process runs `elevate creds` the moment the approver has clicked: while
    AWS holds the AssumeRole the command waits (and says so on stderr after 2 s), then
    prints exactly the credentials that call issued; `creds ID` the same way."""
    emu = ctx.emulator
    b, rid, d, call = approved_while_held(ctx)
    by_profile = Cli(ctx, b, 'alice', 'creds', '--profile', 'dev')
    by_id = Cli(ctx, b, 'alice', 'creds', rid)
    by_profile.wait_stderr('waiting for the broker to mint')
    by_id.wait_stderr('waiting for the broker to mint')
    assert by_profile.running() and by_id.running()
    emu.release()
    done = [cli.finish() for cli in (by_profile, by_id)]
    key = issued_key(emu, call['seq'])      # logged once the call has answered
    for rc, out, err in done:
        assert rc == 0, (rc, out, err)
        assert json.loads(out)['AccessKeyId'] == key, out


def test_cli_approve_follows_the_activation(ctx):
    """`elevate approve ID --wait` is still waiting (saying "activating" on stderr) while
    AWS holds the AssumeRole its vote started, and exits 0 once the grant is active.
    Without --wait the command returns at once and says how to follow the activation."""
    emu = ctx.emulator
    b = broker(ctx)
    rid = pending(b)['id']
    emu.hold('AssumeRole')
    cli = Cli(ctx, b, 'carol', 'approve', rid, '--comment', 'go', '--wait')
    held_assume_role(emu)
    j = b.get(rid)                                # the vote is in: the POST was answered
    assert j['state'] == 'activating' and j['approvals'][0]['comment'] == 'go', j
    rc, out, err = cli.follows_minting(emu, rid)
    assert rc == 0, (rc, out, err)
    assert 'approved %s (dev for alice)' % rid in out and 'active until' in out, out
    assert b.get(rid)['state'] == 'active'

    # without --wait: answered while AWS still holds the call; it says how to follow it
    rid2 = pending(b)['id']
    emu.hold('AssumeRole')
    r = b.cli('carol', 'approve', rid2, timeout=20)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert 'access is being activated' in r.stdout and 'elevate status %s' % rid2 in r.stdout, \
        r.stdout
    held_assume_role(emu)
    assert b.get(rid2)['state'] == 'activating'
    emu.release()
    b.wait_state(rid2, 'active')


def test_cli_wait_fails_when_aws_refuses(ctx):
    """AWS refuses the role: `elevate approve --wait` exits 3 and says why (also with
    --json, whose document is the failed request); `elevate request --wait` by the
    requester, approved meanwhile, exits 3 too. The same request --wait on a role AWS
    grants stays waiting while the AssumeRole is held and exits 0 once active."""
    emu = ctx.emulator
    b = broker(ctx)
    rid = pending(b, 'untrusted')['id']
    r = b.cli('carol', 'approve', rid, '--wait', timeout=60)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert 'failed: AWS refused the role: AccessDenied' in r.stdout, r.stdout
    rid = pending(b, 'untrusted')['id']
    r = b.cli('carol', '--json', 'approve', rid, '--wait', timeout=60)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    j = json.loads(r.stdout)
    assert j['id'] == rid and j['state'] == 'failed' and \
        j['failure']['code'] == 'AccessDenied', j

    def requested(profile):
        """alice's `request PROFILE --wait` in the background, and her pending request."""
        before = {x['id'] for x in b.api('alice', 'GET', '/v1/requests')[1]['requests']}
        cli = Cli(ctx, b, 'alice', 'request', profile, '--for', '10m', '--reason', 'logs',
                  '--wait')

        def mine():
            new = [x for x in b.api('alice', 'GET', '/v1/requests')[1]['requests']
                   if x['id'] not in before]
            return new[0] if new else None
        return cli, wait_for(mine, 20, what='the request of request --wait')
    cli, x = requested('untrusted')
    st, d = b.approve(x['id'])
    assert st == 200 and d['state'] == 'activating', (st, d)
    rc, out, err = cli.finish(60)
    assert rc == 3, (rc, out, err)
    assert 'failed: AWS refused the role: AccessDenied' in out, out
    assert 'carol approved' in err, err

    emu.hold('AssumeRole')
    cli, x = requested('dev')
    st, d = b.approve(x['id'])
    assert st == 200 and d['state'] == 'activating', (st, d)
    rc, out, err = cli.follows_minting(emu, x['id'])
    assert rc == 0 and 'active until' in out, (rc, out, err)


def test_approve_wait_on_an_extension(ctx):
    """approve --wait on an extension follows it until it is applied: exit 0 and the
    grant's new end."""
    b = broker(ctx)
    g = b.approve_until(pending(b)['id'])
    st, x = b.api('alice', 'POST', '/v1/requests/%s/extend' % g['id'], {'by': '5m'})
    assert st == 201, (st, x)
    r = b.cli('carol', 'approve', x['id'], '--wait', timeout=60)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    end = b.get(g['id'])['window_end']
    assert 'extended %s: active until %s' % (g['id'], end) in r.stdout, (r.stdout, end)
    assert harness.parse_iso(end) - harness.parse_iso(g['window_end']) == 300


def test_sigterm_while_minting_waits_for_it(ctx):
    """SIGTERM while an activation worker is in AWS (AssumeRole held): the engine stops
    only once the minting is recorded, so the request is active (grant.activated before
    daemon.stopped) and its credentials are served after the restart."""
    emu = ctx.emulator
    b, rid, _, call = approved_while_held(ctx)
    b.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: 'engine: signal 15: stopping' in b.logtext(), 20,
             what='the engine told to stop')
    assert b.proc.poll() is None, 'the broker stopped with its activation in AWS'
    emu.release()
    assert b.proc.wait(30) == 0
    evs = [r['event'] for r in b.audit() if r['request_id'] in (rid, None) and
           r['event'] in ('grant.activated', 'daemon.stopped')]
    assert evs[-2:] == ['grant.activated', 'daemon.stopped'], evs
    b.start()
    assert b.get(rid)['state'] == 'active'
    st, c = b.api('alice', 'GET', '/v1/requests/%s/credentials' % rid)
    assert st == 200 and c['AccessKeyId'] == issued_key(emu, call['seq']), (st, c)


def test_kill9_while_minting_resumes_at_start(ctx):
    """The broker is killed (SIGKILL) while its AssumeRole is held: nothing recorded the
    minting, and the next start mints again at once under the same role session name;
    the request becomes active once, with the new credentials."""
    emu = ctx.emulator
    b, rid, _, first = approved_while_held(ctx)
    b.kill9()
    emu.release()                       # its answer goes to a dead engine
    b.start()
    j = b.wait_state(rid, 'active')
    calls = [e for e in emu.log_entries(first['seq'] - 1) if e['action'] == 'AssumeRole']
    assert len(calls) == 2, calls
    assert calls[1]['params']['RoleSessionName'] == calls[0]['params']['RoleSessionName'] \
        == j['grant']['role_session_name'], calls
    st, c = b.api('alice', 'GET', '/v1/requests/%s/credentials' % rid)
    assert st == 200 and c['AccessKeyId'] == issued_key(emu, calls[1]['seq']), (st, c)
    assert b.events(rid).count('grant.activated') == 1
