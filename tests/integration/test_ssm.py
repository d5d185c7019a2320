"""SSM sessions through the broker (`elevate ssm`), compared with the real AWS CLI's
`aws ssm start-session` against the same fake session-manager-plugin; grant extension
(`elevate extend`) and revoking several grants at once (`elevate revoke A B`)."""
import json
import os
import signal
import subprocess
import time

from harness import parse_iso, wait_for

INSTANCE = 'i-0123456789abcdef0'
OLD_PLUGIN = '1.2.463.0'          # before AWS_SSM_START_SESSION_RESPONSE
NEW_PLUGIN = '1.2.650.0'
# non-ASCII on purpose: both sides must escape it as Python's json.dumps does
REASON = 'prod check \u00e9t\u00e9 \u2713'

PLUGIN_SRC = r'''#!/usr/bin/python3
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
cfg = json.load(open(os.path.join(here, 'plugin.json')))
if sys.argv[1:] == ['--version']:
    sys.stdout.write(cfg['version'] + '\n')
    sys.exit(0)
with open(os.path.join(here, 'calls.jsonl'), 'a') as f:
    f.write(json.dumps({'argv': sys.argv, 'env': dict(os.environ), 'pid': os.getpid()}) + '\n')
time.sleep(cfg.get('sleep', 0))
sys.exit(cfg.get('exit', 0))
'''


class FakePlugin:
    """A session-manager-plugin that records its argv and environment."""

    def __init__(self, tmp, name, version=OLD_PLUGIN, sleep=0, exit=0):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, 'session-manager-plugin')
        with open(self.path, 'w') as f:
            f.write(PLUGIN_SRC)
        os.chmod(self.path, 0o755)
        with open(os.path.join(self.dir, 'plugin.json'), 'w') as f:
            json.dump({'version': version, 'sleep': sleep, 'exit': exit}, f)

    def calls(self):
        try:
            with open(os.path.join(self.dir, 'calls.jsonl')) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def path_env(self):
        return self.dir + os.pathsep + '/usr/bin:/bin'


def _active(b, profile='prod-readonly', duration='10m', user='alice', ticket='INC-7'):
    j = b.request(user=user, profile=profile, duration=duration, ticket=ticket)
    st, d = b.approve(j['id'], 'carol')
    assert st == 200 and d['state'] == 'active', (st, d)
    return d


def _sessions(emu):
    return {s['SessionId']: s for s in emu.control('GET', 'sessions')}


def _ssm(b, plugin_env, *args, user='alice', env=None):
    e = {'PATH': plugin_env}
    e.update(env or {})
    return b.cli(user, 'ssm', *args, env=e)


def _creds_env(creds, cfgfile, path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}
    env.update({'AWS_ACCESS_KEY_ID': creds['AccessKeyId'],
                'AWS_SECRET_ACCESS_KEY': creds['SecretAccessKey'],
                'AWS_SESSION_TOKEN': creds['SessionToken'],
                'AWS_CONFIG_FILE': cfgfile, 'AWS_SHARED_CREDENTIALS_FILE': cfgfile,
                'AWS_EC2_METADATA_DISABLED': 'true', 'PATH': path})
    return env


def test_argv_and_env_match_aws_cli(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _active(b)
    rid = d['id']
    plugin = FakePlugin(b.tmp, 'plugin-old', OLD_PLUGIN)
    r = _ssm(b, plugin.path_env(), rid, INSTANCE, '--reason', REASON,
             env={'AWS_PROFILE': 'someone-else'})
    assert r.returncode == 0, r.stderr
    ours = plugin.calls()
    assert len(ours) == 1, ours
    ours = ours[0]

    # the real AWS CLI, with the same grant's credentials, against the same plugin
    creds = b.cli_json('alice', 'creds', rid)
    empty = os.path.join(b.tmp, 'aws-empty-config')
    open(empty, 'w').close()
    r = subprocess.run(['/usr/bin/aws', 'ssm', 'start-session', '--target', INSTANCE,
                        '--document-name', 'SSM-SessionManagerRunShell', '--reason', REASON,
                        '--endpoint-url', emu.url, '--region', 'ap-northeast-1'],
                       capture_output=True, text=True, timeout=60,
                       env=_creds_env(creds, empty, plugin.path_env()))
    assert r.returncode == 0, r.stderr
    calls = plugin.calls()
    assert len(calls) == 2, calls
    cli = calls[1]
    a, c = ours['argv'], cli['argv']
    assert len(a) == len(c) == 7, (a, c)
    assert os.path.basename(a[0]) == os.path.basename(c[0]) == 'session-manager-plugin'
    assert a[2] == c[2] == 'ap-northeast-1', (a[2], c[2])
    assert a[3] == c[3] == 'StartSession'
    assert a[4] == c[4] == '', (a[4], c[4])
    # the request parameters: the same object, and the same text as Python writes it
    ap, cp = json.loads(a[5]), json.loads(c[5])
    assert ap == cp, (ap, cp)
    assert ap == {'Target': INSTANCE, 'DocumentName': 'SSM-SessionManagerRunShell',
                  'Reason': REASON}, ap
    assert a[5] == json.dumps(ap) and c[5] == json.dumps(cp), (a[5], c[5])
    assert a[5] == c[5], (a[5], c[5])
    assert '\\u00e9' in a[5] and '\\u2713' in a[5], a[5]
    assert a[6] == c[6] == emu.url, (a[6], c[6])
    # the response: what botocore returns, minus ResponseMetadata
    ar, cr = json.loads(a[1]), json.loads(c[1])
    assert set(ar) == set(cr) - {'ResponseMetadata'} == {'SessionId', 'TokenValue',
                                                         'StreamUrl'}, (ar, cr)
    assert a[1] == json.dumps(ar), a[1]
    # the plugin gets the grant's credentials and region, no profile
    env = ours['env']
    for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'):
        assert env[k] == cli['env'][k], k
    assert env['AWS_ACCESS_KEY_ID'] == creds['AccessKeyId']
    assert env['AWS_SECRET_ACCESS_KEY'] == creds['SecretAccessKey']
    assert env['AWS_SESSION_TOKEN'] == creds['SessionToken']
    assert env['AWS_REGION'] == 'ap-northeast-1'
    assert 'AWS_PROFILE' not in env and 'AWS_PROFILE' not in cli['env']
    assert 'AWS_SSM_START_SESSION_RESPONSE' not in env
    # both sessions are real, owned by the grant's role session
    ss = _sessions(emu)
    for sid in (ar['SessionId'], cr['SessionId']):
        assert ss[sid]['Owner'] == d['grant']['assumed_role_arn'], ss[sid]
        assert ss[sid]['Target'] == INSTANCE
        assert ss[sid]['Reason'] == REASON
    # the broker recorded ours
    got = b.get(rid)
    assert ar['SessionId'] in json.dumps(got['sessions']), got['sessions']
    print('     argv[0..6] compared: len %d/%d, [0] %s, [2] %s, [3] %s, [4] %r, [6] %s; '
          '[5] ours %s | aws %s; [1] keys %s | %s'
          % (len(a), len(c), os.path.basename(a[0]), a[2], a[3], a[4], a[6], a[5], c[5],
             sorted(ar), sorted(cr)))


def test_newer_plugin_gets_response_in_env(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _active(b)
    plugin = FakePlugin(b.tmp, 'plugin-new', NEW_PLUGIN)
    # ELEVATE_SSM_PLUGIN wins over PATH (which has no plugin here)
    r = _ssm(b, '/usr/bin:/bin', d['id'], INSTANCE, env={'ELEVATE_SSM_PLUGIN': plugin.path})
    assert r.returncode == 0, r.stderr
    (call,) = plugin.calls()
    argv, env = call['argv'], call['env']
    assert len(argv) == 7 and argv[1] == 'AWS_SSM_START_SESSION_RESPONSE', argv
    resp = json.loads(env['AWS_SSM_START_SESSION_RESPONSE'])
    assert set(resp) == {'SessionId', 'TokenValue', 'StreamUrl'}, resp
    assert env['AWS_SSM_START_SESSION_RESPONSE'] == json.dumps(resp)
    assert _sessions(emu)[resp['SessionId']]['Owner'] == d['grant']['assumed_role_arn']
    # a plugin whose --version is garbage gets the old form
    bad = FakePlugin(b.tmp, 'plugin-bad', 'session-manager-plugin version: unknown')
    r = _ssm(b, bad.path_env(), d['id'], INSTANCE)
    assert r.returncode == 0, r.stderr
    (call,) = bad.calls()
    assert json.loads(call['argv'][1])['SessionId'], call['argv']
    assert 'AWS_SSM_START_SESSION_RESPONSE' not in call['env']


def test_port_forwarding_parameters(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _active(b)
    plugin = FakePlugin(b.tmp, 'plugin', OLD_PLUGIN)
    r = _ssm(b, plugin.path_env(), d['id'], INSTANCE, '--document',
             'AWS-StartPortForwardingSession', '--param', 'portNumber=80', '--param',
             'localPortNumber=8080')
    assert r.returncode == 0, r.stderr
    (call,) = plugin.calls()
    req = json.loads(call['argv'][5])
    assert req['DocumentName'] == 'AWS-StartPortForwardingSession', req
    assert req['Parameters'] == {'portNumber': ['80'], 'localPortNumber': ['8080']}, req
    sid = json.loads(call['argv'][1])['SessionId']
    assert _sessions(emu)[sid]['Parameters'] == req['Parameters']
    # a repeated name makes a list; --profile instead of the id
    r = _ssm(b, plugin.path_env(), '--profile', 'prod-readonly', INSTANCE, '--document',
             'AWS-StartPortForwardingSession', '--param', 'portNumber=80', '--param',
             'portNumber=443')
    assert r.returncode == 0, r.stderr
    req = json.loads(plugin.calls()[1]['argv'][5])
    assert req['Parameters'] == {'portNumber': ['80', '443']}, req


def test_no_plugin_terminates_session(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _active(b)
    before = set(_sessions(emu))
    r = _ssm(b, '/usr/bin:/bin', d['id'], INSTANCE)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert 'session-manager-plugin not found on PATH' in r.stderr, r.stderr
    assert 'install' in r.stderr and 'session-manager-working-with-install-plugin' in r.stderr
    new = [s for sid, s in _sessions(emu).items() if sid not in before]
    assert len(new) == 1, new
    assert new[0]['Status'] == 'Terminated', new[0]
    assert new[0]['SessionId'] in r.stderr and 'was terminated' in r.stderr, r.stderr
    assert 'session.terminated' in b.events(d['id'])


def test_target_and_document_not_allowed(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _active(b)
    plugin = FakePlugin(b.tmp, 'plugin', OLD_PLUGIN)
    since = emu.last_seq()
    r = _ssm(b, plugin.path_env(), d['id'], 'i-0fedcba9876543210')     # tagged env=dev
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert 'does not allow' in r.stderr, r.stderr
    r = _ssm(b, plugin.path_env(), d['id'], INSTANCE, '--document', 'AWS-RunShellScript')
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert 'AWS-RunShellScript' in r.stderr, r.stderr
    starts = [e for e in emu.log_entries(since) if e['action'] == 'StartSession']
    assert starts == [], starts
    assert plugin.calls() == []
    # and a request that is not active starts nothing either
    j = b.request(profile='prod-readonly', ticket='INC-9')
    r = _ssm(b, plugin.path_env(), j['id'], INSTANCE)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert [e for e in emu.log_entries(since) if e['action'] == 'StartSession'] == []


def test_sigint_goes_to_plugin_not_elevate(ctx):
    b = ctx.broker().start()
    d = _active(b)
    plugin = FakePlugin(b.tmp, 'plugin', OLD_PLUGIN, sleep=2, exit=7)
    env = dict(os.environ, ELEVATE_CONFIG_DIR=b.users['alice'].cfgdir, HOME=b.tmp,
               ELEVATE_CACHE_DIR=os.path.join(b.tmp, 'cache', 'alice'),
               PATH=plugin.path_env())
    p = subprocess.Popen([os.path.join(ctx.bin, 'elevate'), 'ssm', d['id'], INSTANCE],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: plugin.calls(), 20, what='the plugin to start')
        p.send_signal(signal.SIGINT)
        time.sleep(0.2)
        assert p.poll() is None, 'elevate died of SIGINT while the plugin ran'
        p.send_signal(signal.SIGQUIT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 7, (p.returncode, err)


def test_extend_moves_window_end(ctx):
    b = ctx.broker().start()
    d = _active(b, profile='dev', duration='1m', ticket=None)
    rid = d['id']
    end0 = parse_iso(d['window_end'])
    env = dict(os.environ, ELEVATE_CONFIG_DIR=b.users['alice'].cfgdir, HOME=b.tmp,
               ELEVATE_CACHE_DIR=os.path.join(b.tmp, 'cache', 'alice'))
    p = subprocess.Popen([os.path.join(ctx.bin, 'elevate'), '--json', 'extend', rid, '--by',
                          '2m', '--reason', 'more', '--wait'], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def pending_extension():
            st, j = b.api('carol', 'GET', '/v1/requests?state=pending')
            return [x for x in j.get('requests', []) if x.get('extends') == rid]
        (x,) = wait_for(pending_extension, 20, what='the extension request')
        assert x['reason'] == 'more' and x['duration'] == 120, x
        # the grant is untouched until someone approves
        assert parse_iso(b.get(rid)['window_end']) == end0
        r = b.cli('carol', 'approve', x['id'])
        assert r.returncode == 0, r.stderr
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (p.returncode, out, err)
    assert json.loads(out)['id'] == x['id']
    g = b.get(rid)
    assert g['state'] == 'active', g
    assert parse_iso(g['window_end']) - end0 == 120, (g['window_end'], d['window_end'])
    assert b.get(x['id'])['state'] == 'ended'
    assert 'grant.extended' in b.events(rid), b.events(rid)
    ext = [a for a in b.audit(rid) if a['event'] == 'grant.extended'][0]['data']
    assert ext['new_window_end'] - ext['old_window_end'] == 120, ext
    # without --wait: the new pending request's id, and usage errors stay usage errors
    r = b.cli('alice', 'extend', rid, '--by', '1m')
    assert r.returncode == 0 and 'pending' in r.stdout and rid in r.stdout, r
    r = b.cli('alice', 'extend', rid)
    assert r.returncode == 2, r


def test_revoke_several_grants(ctx):
    b = ctx.broker().start()
    d1 = _active(b, profile='dev', duration='10m', ticket=None)
    d2 = _active(b, profile='dev', duration='10m', ticket=None)
    since = ctx.emulator.last_seq()
    r = b.cli('alice', 'revoke', d1['id'], d2['id'], '--reason', 'incident over')
    assert r.returncode == 0, r.stderr
    assert 'revoked %s' % d1['id'] in r.stdout and 'revoked %s' % d2['id'] in r.stdout, r.stdout
    for d in (d1, d2):
        g = wait_for(lambda: b.get(d['id'])['state'] == 'ended' and b.get(d['id']), 15,
                     what='%s ended' % d['id'])
        assert g['state'] == 'ended'
    evs = [a for a in b.audit() if a['event'] == 'grant.revoke_requested']
    assert {a['request_id'] for a in evs} == {d1['id'], d2['id']}, evs
    assert all(a['data'].get('reason') == 'incident over' for a in evs), evs
    # one sweep (POST /v1/revoke): one deny-policy update naming both grants
    puts = [e for e in ctx.emulator.log_entries(since) if e['action'] == 'PutRolePolicy']
    assert len(puts) == 1, puts
    doc = json.loads(puts[0]['params']['PolicyDocument'])
    ids = doc['Statement'][0]['Condition']['StringEquals']['aws:PrincipalTag/elevate:request-id']
    assert sorted(ids) == sorted([d1['id'], d2['id']]), doc
    assert all(ctx.emulator.session_denied(request_id=d['id']) for d in (d1, d2))
    # an id that cannot be revoked refuses the whole call
    d3 = _active(b, profile='dev', duration='10m', ticket=None)
    r = b.cli('alice', 'revoke', d3['id'], d1['id'])
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert b.get(d3['id'])['state'] == 'active'
