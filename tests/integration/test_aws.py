"""Issue 3: approved requests become real, time-bound AWS credentials (against the
emulator, which verifies every signature and enforces the session policy)."""
import json
import os
import re
import subprocess
import time

from harness import ACCOUNT, wait_for, parse_iso


def _client(emu, service, creds):
    import botocore.session
    s = botocore.session.get_session()
    return s.create_client(service, region_name='ap-northeast-1', endpoint_url=emu.url,
                           aws_access_key_id=creds['AccessKeyId'],
                           aws_secret_access_key=creds['SecretAccessKey'],
                           aws_session_token=creds['SessionToken'])


def _describe(emu, creds):
    import botocore.exceptions
    try:
        _client(emu, 'ec2', creds).describe_instances()
        return 'ok'
    except botocore.exceptions.ClientError as e:
        return e.response['Error']['Code']


def _active(b, profile='dev', duration='5m', user='alice', approver='carol', ticket=None):
    j = b.request(user=user, profile=profile, duration=duration, ticket=ticket)
    st, d = b.approve(j['id'], approver)
    assert st == 200 and d['state'] == 'active', (st, d)
    return d


def test_assume_role_parameters(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    since = emu.last_seq()
    d = _active(b, duration='10m')
    calls = [e for e in emu.log_entries(since) if e['action'] == 'AssumeRole']
    assert len(calls) == 1, calls
    p = calls[0]['params']
    assert calls[0]['status'] == 200, calls[0]
    assert p['RoleArn'] == 'arn:aws:iam::%s:role/Dev' % ACCOUNT
    assert p['RoleSessionName'] == d['grant']['role_session_name']
    assert p['SourceIdentity'] == 'alice'
    assert int(p['DurationSeconds']) == 900          # 10 minutes: STS's floor
    tags = {t['Key']: t['Value'] for t in p.get('Tags', [])}
    for k, v in p.items():
        if k.startswith('Tags.member.') and k.endswith('.Key'):
            tags[v] = p[k[:-4] + '.Value']
    # the grant and its revocation cohort (denypolicy.h), which a revocation policy names
    assert tags == {'elevate:request-id': d['id'], 'elevate:profile': 'dev',
                    'elevate:cohort': d['grant']['revocation_cohort']}, tags
    assert re.fullmatch('[a-z2-9]{8}', tags['elevate:cohort']), tags
    pol = json.loads(p['Policy'])
    for st in pol['Statement']:
        if st['Effect'] == 'Allow':
            assert st['Condition']['DateLessThan']['aws:CurrentTime'] == d['window_end'], pol
    assert calls[0]['principal'] == 'broker'


def test_credentials_die_at_window_end_without_iam(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _active(b, duration='6s')
    creds = b.cli_json('alice', 'creds', d['id'])
    assert creds['Version'] == 1 and creds['AccessKeyId'].startswith('ASIA')
    assert _describe(emu, creds) == 'ok'
    since = emu.last_seq()
    end = parse_iso(d['window_end'])
    time.sleep(max(0, end - time.time()) + 0.5)
    # EC2 answers a policy denial with UnauthorizedOperation (AWS's code for AccessDenied)
    assert _describe(emu, creds) == 'UnauthorizedOperation'
    iam = [e for e in emu.log_entries(since) if e['service'] == 'iam' and
           e['action'] in ('PutRolePolicy', 'DeleteRolePolicy')]
    assert iam == [], iam
    # STS's own expiry is still 15 minutes away: only the session policy ended it
    assert parse_iso(d['grant']['credentials_expire_at']) > end + 600
    # and what the CLI hands to SDKs never claims more than the window
    assert parse_iso(creds['Expiration']) <= end


def test_aws_cli_with_credential_process(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    d = _active(b, profile='prod-readonly', duration='10m', ticket='INC-7')
    awsdir = os.path.join(b.tmp, 'aws')
    os.makedirs(awsdir, exist_ok=True)
    cfgfile = os.path.join(awsdir, 'config')
    with open(cfgfile, 'w') as f:
        f.write('[profile elevate-prod]\nregion = ap-northeast-1\ncredential_process = %s creds '
                '--profile prod-readonly\n' % os.path.join(ctx.bin, 'elevate'))
    env = dict(os.environ, AWS_CONFIG_FILE=cfgfile,
               AWS_SHARED_CREDENTIALS_FILE=os.path.join(awsdir, 'nothing'),
               AWS_PROFILE='elevate-prod', ELEVATE_CONFIG_DIR=b.users['alice'].cfgdir,
               ELEVATE_CACHE_DIR=os.path.join(b.tmp, 'cache', 'alice'), HOME=b.tmp)
    for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'):
        env.pop(k, None)
    r = subprocess.run(['/usr/bin/aws', '--endpoint-url', emu.url, 'sts', 'get-caller-identity'],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    ident = json.loads(r.stdout)
    assert ident['Arn'] == d['grant']['assumed_role_arn'], (ident, d['grant'])
    r = subprocess.run(['/usr/bin/aws', '--endpoint-url', emu.url, 'ec2', 'describe-instances'],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert 'i-0123456789abcdef0' in r.stdout
    # the cache file is private
    cache = os.path.join(b.tmp, 'cache', 'alice')
    for root, _, files in os.walk(cache):
        for fn in files:
            assert os.stat(os.path.join(root, fn)).st_mode & 0o077 == 0


def test_cached_creds_need_neither_broker_nor_full_cli(ctx):
    """bin/elevate answers `creds` from the cache alone (no libcurl, no elevate-full, no
    broker); anything the cache cannot answer goes to elevate-full next to it."""
    import shutil
    b = ctx.broker().start()
    d = _active(b, duration='10m')
    first = b.cli_json('alice', 'creds', '--profile', 'dev')
    lone = os.path.join(b.tmp, 'lone')
    os.makedirs(lone)
    shutil.copy(os.path.join(ctx.bin, 'elevate'), lone)
    b.stop()
    env = dict(os.environ, ELEVATE_CONFIG_DIR=b.users['alice'].cfgdir, HOME=b.tmp,
               ELEVATE_CACHE_DIR=os.path.join(b.tmp, 'cache', 'alice'))

    def run(*args):
        return subprocess.run([os.path.join(lone, 'elevate')] + list(args),
                              capture_output=True, text=True, env=env, timeout=60)
    for args in (('creds', '--profile', 'dev'), ('creds', '--profile=dev'),
                 ('--json', 'creds', d['id'])):
        r = run(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert json.loads(r.stdout) == first and r.stderr == '', (args, r.stdout, r.stderr)
    # not in the cache (another profile, another broker, an entry past its end): the
    # full CLI is asked, and this lone copy says it is missing
    path = os.path.join(b.tmp, 'cache', 'alice', 'creds-%s.json' % d['id'])
    for args in (('creds', '--profile', 'prod-readonly'),
                 ('--server', 'http://127.0.0.1:9', 'creds', '--profile', 'dev'),
                 ('status', d['id'])):
        r = run(*args)
        assert r.returncode != 0 and r.stdout == '', (args, r.stdout)
        assert 'elevate-full' in r.stderr, (args, r.stderr)
    entry = json.load(open(path))
    entry['valid_until'] = int(time.time()) - 1
    with open(path, 'w') as f:
        json.dump(entry, f)
    r = run('creds', '--profile', 'dev')
    assert r.returncode != 0 and r.stdout == '' and 'elevate-full' in r.stderr, r
    # the real one, with elevate-full beside it and the broker down, says the broker is
    # unreachable: nothing served past the entry's end
    r = b.cli('alice', 'creds', '--profile', 'dev')
    assert r.returncode != 0 and r.stdout == '', r


def test_creds_profile_without_grant(ctx):
    b = ctx.broker().start()
    r = b.cli('alice', 'creds', '--profile', 'prod-readonly')
    assert r.returncode != 0
    assert 'no active grant for prod-readonly' in r.stderr, r.stderr
    assert r.stdout == ''


def test_exec_sets_environment(ctx):
    b = ctx.broker().start()
    d = _active(b)
    r = b.cli('alice', 'exec', d['id'], '--', '/bin/sh', '-c',
              'echo "$AWS_ACCESS_KEY_ID|$AWS_REGION|${#AWS_SESSION_TOKEN}"')
    assert r.returncode == 0, r.stderr
    key, region, toklen = r.stdout.strip().split('|')
    assert key.startswith('ASIA') and region == 'ap-northeast-1' and int(toklen) > 100
    r = b.cli('bob', 'creds', d['id'])
    assert r.returncode != 0            # not bob's grant


def test_aws_refusal_fails_request(ctx):
    emu = ctx.emulator
    emu.control('POST', 'roles', {'name': 'Untrusted', 'max_session_duration': 3600, 'trust': []})
    import harness
    profiles = json.loads(json.dumps(harness.DEFAULT_PROFILES))
    profiles['untrusted'] = dict(profiles['dev'], role_arn='arn:aws:iam::%s:role/Untrusted' % ACCOUNT)
    b = ctx.broker(profiles=profiles).start()
    j = b.request(profile='untrusted', ticket=None)
    st, d = b.approve(j['id'])
    assert st == 200 and d['state'] == 'failed', d
    assert d['failure']['code'] == 'AccessDenied', d['failure']
    r = b.cli('alice', 'status', j['id'])
    assert 'AccessDenied' in r.stdout, r.stdout
    fails = [a for a in b.audit(j['id']) if a['event'] == 'request.failed']
    assert fails and fails[0]['data']['code'] == 'AccessDenied'


def test_no_plaintext_secret_in_database(ctx):
    b = ctx.broker().start()
    d = _active(b)
    creds = b.cli_json('alice', 'creds', d['id'])
    b.stop()
    blob = b''
    for fn in os.listdir(b.state_dir):
        with open(os.path.join(b.state_dir, fn), 'rb') as f:
            blob += f.read()
    assert creds['SecretAccessKey'].encode() not in blob
    assert creds['SessionToken'][:64].encode() not in blob
    audit = open(b.audit_file, 'rb').read()
    assert creds['SecretAccessKey'].encode() not in audit
    assert b'SessionToken' not in audit


def test_throttled_assume_role_is_retried(ctx):
    emu = ctx.emulator
    b = ctx.broker().start()
    j = b.request(profile='dev', ticket=None)
    emu.faults(throttle_rate=0.6, seed=7, actions=['AssumeRole'])
    st, d = b.approve(j['id'])
    assert st == 200 and d['state'] in ('pending', 'active'), d
    # throttling is not a refusal: the broker keeps trying until AWS answers
    wait_for(lambda: b.get(j['id'])['state'] == 'active', 30, what='activation despite throttling')
    emu.faults()
    assert 'request.failed' not in b.events(j['id'])


def test_session_policy_too_large_is_clear(ctx):
    import harness
    profiles = json.loads(json.dumps(harness.DEFAULT_PROFILES))
    # under STS's 2,048 characters as written, over it once every Allow carries its end time
    big = {'Version': '2012-10-17', 'Statement': [
        {'Effect': 'Allow', 'Action': 'ec2:DescribeInstances', 'Resource': '*'}
        for i in range(28)]}
    assert len(json.dumps(big, separators=(',', ':'))) < 2048
    profiles['dev']['session_policy'] = big
    b = ctx.broker(profiles=profiles).start()
    j = b.request(profile='dev', ticket=None)
    st, d = b.approve(j['id'])
    assert d['state'] == 'failed' and '2048' in d['failure']['message'], d


def test_elevated_check_aws(ctx):
    import harness
    profiles = json.loads(json.dumps(harness.DEFAULT_PROFILES))
    b = ctx.broker(profiles=profiles)
    run = lambda env: subprocess.run([os.path.join(ctx.bin, 'elevated'), 'check', '--aws',
                                      '--config', b.config_path], capture_output=True,
                                     text=True, env=env, timeout=60)
    r = run(b.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'AWS credentials: found (environment)' in r.stdout, r.stdout
    assert 'arn:aws:iam::%s:user/elevate-broker' % ACCOUNT in r.stdout, r.stdout
    assert 'broker-secret-key' not in r.stdout + r.stderr
    profiles['ghost'] = dict(profiles['dev'], role_arn='arn:aws:iam::%s:role/Ghost' % ACCOUNT)
    b.profiles = profiles
    b.write_policy()
    r = run(b.env())
    assert r.returncode == 1 and 'profile ghost: iam:GetRole Ghost: NoSuchEntity' in r.stderr, \
        r.stdout + r.stderr
    env = b.env()
    env.pop('AWS_ACCESS_KEY_ID')
    env.pop('AWS_SECRET_ACCESS_KEY')
    env['AWS_SHARED_CREDENTIALS_FILE'] = os.path.join(b.tmp, 'none')
    env['AWS_CONFIG_FILE'] = os.path.join(b.tmp, 'none')
    r = run(env)
    assert r.returncode == 1 and 'no AWS credentials for the broker' in r.stderr, r.stderr


def test_window_longer_than_credentials_is_minted_again(ctx):
    """A window that outlives its credentials (STS caps them at the role's maximum) gets
    fresh ones under the same role session name when the CLI asks near their expiry."""
    emu = ctx.emulator
    # AWS's clock 3,400 s behind ours: the 1-hour credentials it issues expire in ~200 s
    emu.control('POST', 'clock', {'offset': -3400, 'skew_tolerance': None})
    try:
        b = ctx.broker().start()
        d = _active(b, duration='2h')
        first = b.cli_json('alice', 'creds', d['id'])
        assert parse_iso(d['grant']['credentials_expire_at']) - time.time() < 300
        since = emu.last_seq()
        b.cli('alice', 'creds', d['id'])                    # cached: no new mint
        import shutil
        shutil.rmtree(os.path.join(b.tmp, 'cache', 'alice'), ignore_errors=True)
        second = b.cli_json('alice', 'creds', d['id'])
        assert second['AccessKeyId'] != first['AccessKeyId']
        calls = [e for e in emu.log_entries(since) if e['action'] == 'AssumeRole']
        assert len(calls) == 1, calls
        assert calls[0]['params']['RoleSessionName'] == d['grant']['role_session_name']
        # the same grant and cohort tags: the revocation policy names all its credentials
        tags = {c['access_key_id']: c['tags'] for c in emu.state()['credentials']}
        assert tags[second['AccessKeyId']] == tags[first['AccessKeyId']], tags
        assert tags[first['AccessKeyId']]['elevate:cohort'] == \
            d['grant']['revocation_cohort']
        pol = json.loads(calls[0]['params']['Policy'])
        assert pol['Statement'][0]['Condition']['DateLessThan']['aws:CurrentTime'] == \
            d['window_end']
        assert 'grant.reminted' in b.events(d['id'])
    finally:
        emu.control('POST', 'clock', {'offset': 0, 'skew_tolerance': 300})
