#!/usr/bin/python3
"""Self-test for the AWS emulator: starts it, drives it with real botocore-signed calls.

    /usr/bin/python3 tests/aws-emulator/selftest.py [-v]

Prints one line per check and ends with "N passed, N failed"; exits non-zero on failure.
"""

import http.client
import json
import re
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, 'emulator.py')
PY = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable
REGION = 'ap-northeast-1'
ACCOUNT = '111122223333'
BROKER_KEY = 'AKIDBROKER0000000001'
BROKER_SECRET = 'broker-secret-key-for-tests-only'
VERBOSE = '-v' in sys.argv

import botocore.session  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

passed = 0
failed = 0


def check(name, cond, detail=''):
    global passed, failed
    if cond:
        passed += 1
        print('ok   - %s' % name)
    else:
        failed += 1
        print('FAIL - %s%s' % (name, (': ' + str(detail)) if detail else ''))
    sys.stdout.flush()
    return cond


def run(name, fn):
    """Run fn(); a raised exception fails the check."""
    try:
        res = fn()
    except Exception as e:  # noqa: BLE001
        return check(name, False, '%s: %s' % (type(e).__name__, e))
    if isinstance(res, tuple):
        return check(name, res[0], res[1] if len(res) > 1 else '')
    return check(name, bool(res))


def err_code(fn):
    """Run fn, return (code, http status, message) of the ClientError or (None, 200, '')."""
    try:
        fn()
    except ClientError as e:
        return (e.response['Error'].get('Code'), e.response['ResponseMetadata'].get('HTTPStatusCode'),
                e.response['Error'].get('Message', ''))
    return None, 200, ''


class Emu:
    def __init__(self, port):
        self.port = port
        self.url = 'http://127.0.0.1:%d' % port

    def ctl(self, method, path, body=None):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, '/_emulator/' + path, body=data,
                     headers={'Content-Type': 'application/json'} if data else {})
        r = conn.getresponse()
        out = r.read()
        conn.close()
        return r.status, json.loads(out) if out else None

    def raw(self, method, path, body=b'', headers=None):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        out = r.read()
        hdrs = dict((k.lower(), v) for k, v in r.getheaders())
        conn.close()
        return r.status, out, hdrs


def client(emu, service, key=BROKER_KEY, secret=BROKER_SECRET, token=None, region=None, validate=True):
    sess = botocore.session.get_session()
    if service == 'iam' and region is None:
        region = 'us-east-1'
    return sess.create_client(
        service, region_name=region or REGION, endpoint_url=emu.url,
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(retries={'total_max_attempts': 1}, parameter_validation=validate))


def creds_kw(r):
    c = r['Credentials']
    return {'key': c['AccessKeyId'], 'secret': c['SecretAccessKey'], 'token': c['SessionToken']}


def sign_like_c(emu, body, key=BROKER_KEY, secret=BROKER_SECRET, token=None, service='sts',
                region=REGION, ts=None, ctype='application/x-www-form-urlencoded; charset=utf-8'):
    """Sign exactly content-type;host;x-amz-date(;x-amz-security-token) like the C client."""
    host = '127.0.0.1:%d' % emu.port
    req = AWSRequest(method='POST', url=emu.url + '/', data=body,
                     headers={'Content-Type': ctype, 'Host': host})
    if token:
        req.headers['X-Amz-Security-Token'] = token
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(ts if ts is not None else time.time()))
    req.headers['X-Amz-Date'] = stamp
    req.context['timestamp'] = stamp
    auth = SigV4Auth(Credentials(key, secret, token), service, region)
    cr = auth.canonical_request(req)
    sig = auth.signature(auth.string_to_sign(req, cr), req)
    auth._inject_signature_to_request(req, sig)
    return dict(req.headers.items())


def background(fn):
    """Run fn() in a thread; returns a dict that gets 'result' or 'error', then 'done' (time)."""
    box = {}

    def runner():
        try:
            box['result'] = fn()
        except Exception as e:  # noqa: BLE001
            box['error'] = e
        box['done'] = time.time()
    box['thread'] = threading.Thread(target=runner, daemon=True)
    box['thread'].start()
    return box


def wait_held(emu, n, timeout=10.0):
    """Poll GET /_emulator/hold until at least n requests are held; returns the last status."""
    deadline = time.time() + timeout
    while True:
        _, st = emu.ctl('GET', 'hold')
        if st['held'] >= n or time.time() >= deadline:
            return st
        time.sleep(0.02)


def xml_code(body):
    m = re.search(rb'<Code>([^<]*)</Code>', body)
    return m.group(1).decode() if m else None


def policy_until(ts_iso):
    return json.dumps({'Version': '2012-10-17', 'Statement': [{
        'Effect': 'Allow', 'Action': '*', 'Resource': '*',
        'Condition': {'DateLessThan': {'aws:CurrentTime': ts_iso}}}]})


def sigv4_suite_check():
    """Verify the official SigV4 vectors with the emulator's verifier, when the suite is present."""
    here_root = os.path.dirname(os.path.dirname(HERE))
    candidates = [os.environ.get('SIGV4_SUITE') or '',
                  os.path.join(here_root, 'tests', 'sigv4-suite'),
                  os.path.join(here_root, 'testdata', 'sigv4-suite'),
                  os.path.join(os.path.dirname(here_root), 'shared', 'testdata', 'sigv4-suite')]
    suite = next((c for c in candidates if c and os.path.isdir(c)), None)
    if not suite:
        print('# skip: SigV4 suite not found (set SIGV4_SUITE)')
        return
    import io
    sys.path.insert(0, HERE)
    sys.dont_write_bytecode = True
    import emulator as E
    good, bad = 0, []
    for case in sorted(os.listdir(suite)):
        d = os.path.join(suite, case)
        try:
            with open(os.path.join(d, 'context.json')) as f:
                ctx = json.load(f)
            with open(os.path.join(d, 'header-signed-request.txt'), 'rb') as f:
                raw = f.read()
        except OSError:
            continue
        if ctx.get('normalize') is False:
            continue  # S3-style unnormalized paths: not used by sts/iam/ssm/ec2
        head, _, body = raw.partition(b'\n\n')
        lines = head.split(b'\n')
        l0 = lines[0].decode()
        method = l0.split(' ', 1)[0]
        path = l0[len(method) + 1:l0.rindex(' HTTP/')]
        msg = http.client.parse_headers(io.BytesIO(b'\r\n'.join(lines[1:]) + b'\r\n\r\n'))
        auth = E.parse_authorization(msg.get('Authorization'))
        ok, _, _ = E.verify_signature(method, path, msg, body, auth,
                                      ctx['credentials']['secret_access_key'], msg.get('X-Amz-Date'))
        if ok:
            good += 1
        else:
            bad.append(case)
    check('official SigV4 vectors verify (%d normalized cases)' % good, good > 0 and not bad, bad)


def main():
    tmp = tempfile.mkdtemp(prefix='aws-emu-selftest-')
    port_file = os.path.join(tmp, 'port')
    state_file = os.path.join(tmp, 'state.json')
    with open(state_file, 'w') as f:
        json.dump({
            'account': ACCOUNT,
            'broker': {'access_key_id': BROKER_KEY, 'secret_access_key': BROKER_SECRET},
            'roles': {
                'ProdReadOnly': {'max_session_duration': 3600, 'trust': ['broker'],
                                 'policies': {'base': {'Version': '2012-10-17', 'Statement': [
                                     {'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}}},
                'ProdAdmin': {},
                'Dev': {},
                'Long': {'max_session_duration': 43200, 'trust': ['broker', 'ProdReadOnly']},
                'Restricted': {'policies': {'p': {'Version': '2012-10-17', 'Statement': [
                    {'Effect': 'Allow', 'Action': ['ec2:Describe*', 'ssm:StartSession'],
                     'Resource': '*',
                     'Condition': {'StringEquals': {'ssm:resourceTag/env': 'dev'}}},
                    {'Effect': 'Allow', 'Action': 'ec2:Describe*', 'Resource': '*'}]}}},
                'NoTrust': {'trust': []},
            },
            'instances': [{'id': 'i-0123456789abcdef0', 'tags': {'env': 'prod'}},
                          {'id': 'i-0fedcba9876543210', 'tags': {'env': 'dev'}},
                          {'id': 'i-0aaaaaaaaaaaaaaa1', 'tags': {'env': 'dev'}, 'ssm_online': False}],
        }, f)
    t0 = time.time()
    proc = subprocess.Popen([PY, EMULATOR, '--port', '0', '--state', state_file, '--port-file', port_file]
                            + ([] if VERBOSE else ['--quiet']),
                            stderr=None if VERBOSE else subprocess.DEVNULL)
    try:
        while not os.path.exists(port_file):
            if proc.poll() is not None or time.time() - t0 > 15:
                check('emulator starts', False, 'exit code %s' % proc.poll())
                return
            time.sleep(0.01)
        startup = time.time() - t0
        emu = Emu(int(open(port_file).read().strip()))
        check('emulator listens and writes --port-file (%.0f ms)' % (startup * 1000), startup < 5)
        try:
            tests(emu)
        except Exception:  # noqa: BLE001
            import traceback
            check('self-test ran to completion', False, traceback.format_exc())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(5)
                check('SIGTERM exits cleanly (rc %s)' % rc, rc == 0)
            except subprocess.TimeoutExpired:
                proc.kill()
                check('SIGTERM exits cleanly', False, 'did not exit within 5 s')
        sigv4_suite_check()
        print('%d passed, %d failed' % (passed, failed))


def tests(emu):
    st, health = emu.ctl('GET', 'health')
    check('control API health', st == 200 and health.get('ok'), health)

    sts = client(emu, 'sts')
    iam = client(emu, 'iam')

    # --- broker identity ------------------------------------------------------------
    ident = sts.get_caller_identity()
    check('broker GetCallerIdentity (botocore-signed)',
          ident['Arn'] == 'arn:aws:iam::%s:user/elevate-broker' % ACCOUNT and ident['Account'] == ACCOUNT, ident)

    # --- AssumeRole ---------------------------------------------------------------------
    role_arn = 'arn:aws:iam::%s:role/ProdReadOnly' % ACCOUNT
    r1 = sts.assume_role(RoleArn=role_arn, RoleSessionName='selftest-s1', SourceIdentity='alice',
                         Tags=[{'Key': 'grant', 'Value': 'g-1'}])
    c1 = r1['Credentials']
    check('AssumeRole returns credentials',
          c1['AccessKeyId'].startswith('ASIA') and len(c1['AccessKeyId']) == 20 and
          len(c1['SecretAccessKey']) == 40 and len(c1['SessionToken']) > 1000, c1['AccessKeyId'])
    exp_delta = (c1['Expiration'] - datetime.now(timezone.utc)).total_seconds()
    check('AssumeRole default duration 3600 s', 3500 < exp_delta <= 3601, exp_delta)
    check('AssumedRoleUser Arn/AssumedRoleId',
          r1['AssumedRoleUser']['Arn'] == 'arn:aws:sts::%s:assumed-role/ProdReadOnly/selftest-s1' % ACCOUNT and
          r1['AssumedRoleUser']['AssumedRoleId'].startswith('AROA') and
          r1['AssumedRoleUser']['AssumedRoleId'].endswith(':selftest-s1') and
          len(r1['AssumedRoleUser']['AssumedRoleId'].split(':')[0]) == 21, r1['AssumedRoleUser'])
    check('AssumeRole echoes SourceIdentity and PackedPolicySize',
          r1.get('SourceIdentity') == 'alice' and isinstance(r1.get('PackedPolicySize'), int), r1.get('SourceIdentity'))
    k1 = creds_kw(r1)
    ident1 = client(emu, 'sts', **k1).get_caller_identity()
    check('issued creds GetCallerIdentity', ident1['Arn'] == r1['AssumedRoleUser']['Arn'] and
          ident1['UserId'] == r1['AssumedRoleUser']['AssumedRoleId'], ident1)

    role = iam.get_role(RoleName='ProdReadOnly')['Role']
    check('IAM GetRole (RoleId, MaxSessionDuration, trust doc)',
          role['RoleId'] == r1['AssumedRoleUser']['AssumedRoleId'].split(':')[0] and
          role['MaxSessionDuration'] == 3600 and
          isinstance(role['AssumeRolePolicyDocument'], dict), role)

    # --- EC2 with issued creds -----------------------------------------------------------
    ec2_1 = client(emu, 'ec2', **k1)
    res = ec2_1.describe_instances()
    ids = sorted(i['InstanceId'] for rv in res['Reservations'] for i in rv['Instances'])
    check('issued creds may call ec2 DescribeInstances', 'i-0123456789abcdef0' in ids and len(ids) == 3, ids)
    res = ec2_1.describe_instances(Filters=[{'Name': 'tag:env', 'Values': ['prod']}])
    ids = [i['InstanceId'] for rv in res['Reservations'] for i in rv['Instances']]
    tags = [t for rv in res['Reservations'] for i in rv['Instances'] for t in i.get('Tags', [])]
    check('DescribeInstances tag:env filter', ids == ['i-0123456789abcdef0'] and
          {'Key': 'env', 'Value': 'prod'} in tags, ids)
    res = ec2_1.describe_instances(InstanceIds=['i-0fedcba9876543210'])
    ids = [i['InstanceId'] for rv in res['Reservations'] for i in rv['Instances']]
    check('DescribeInstances InstanceId.N', ids == ['i-0fedcba9876543210'], ids)
    code, status, _ = err_code(lambda: ec2_1.describe_instances(InstanceIds=['i-0123456789abcdef9']))
    check('DescribeInstances unknown id -> InvalidInstanceID.NotFound', code == 'InvalidInstanceID.NotFound', code)

    # --- time-bound session policy ---------------------------------------------------------
    _, clock = emu.ctl('GET', 'clock')
    until = datetime.fromtimestamp(clock['now'] + 2, tz=timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'
    r2 = sts.assume_role(RoleArn=role_arn, RoleSessionName='selftest-s2', Policy=policy_until(until),
                         DurationSeconds=900)
    k2 = creds_kw(r2)
    ec2_2 = client(emu, 'ec2', **k2)
    ssm_2 = client(emu, 'ssm', **k2)
    iam_2 = client(emu, 'iam', **k2)
    run('session policy DateLessThan aws:CurrentTime: allowed now',
        lambda: len(ec2_2.describe_instances()['Reservations']) == 3)
    emu.ctl('POST', 'clock', {'offset': 5})
    code, status, msg = err_code(lambda: ec2_2.describe_instances())
    check('... denied after clock +5 s (ec2 UnauthorizedOperation 403)',
          code == 'UnauthorizedOperation' and status == 403 and 'no session policy allows' in msg, (code, msg))
    code, status, msg = err_code(lambda: iam_2.get_role(RoleName='ProdReadOnly'))
    check('... IAM AccessDenied 403 with AWS-style message',
          code == 'AccessDenied' and status == 403 and msg.startswith(
              'User: arn:aws:sts::%s:assumed-role/ProdReadOnly/selftest-s2 is not authorized to perform: iam:GetRole' % ACCOUNT),
          (code, msg))
    code, status, _ = err_code(lambda: ssm_2.describe_sessions(State='Active'))
    check('... SSM AccessDeniedException 400', code == 'AccessDeniedException' and status == 400, (code, status))
    run('... GetCallerIdentity is never denied by policy',
        lambda: client(emu, 'sts', **k2).get_caller_identity()['Arn'].endswith('/selftest-s2'))
    st, chk = emu.ctl('POST', 'check', {'access_key_id': k2['key'], 'action': 'ec2:DescribeInstances'})
    check('control check endpoint agrees (denied)', st == 200 and chk['allowed'] is False, chk)
    emu.ctl('POST', 'clock', {'offset': 0})
    st, chk = emu.ctl('POST', 'check', {'access_key_id': k1['key'], 'action': 'ec2:DescribeInstances'})
    check('control check endpoint (allowed)', st == 200 and chk['allowed'] is True, chk)

    # --- early revoke by aws:userid --------------------------------------------------------
    r3 = sts.assume_role(RoleArn=role_arn, RoleSessionName='selftest-s3')
    k3 = creds_kw(r3)
    revoke = {'Version': '2012-10-17', 'Statement': [{
        'Effect': 'Deny', 'Action': '*', 'Resource': '*',
        'Condition': {'StringEquals': {'aws:userid': [r1['AssumedRoleUser']['AssumedRoleId']]}}}]}
    iam.put_role_policy(RoleName='ProdReadOnly', PolicyName='elevate-revoke',
                        PolicyDocument=json.dumps(revoke, indent=2))
    code, _, msg = err_code(lambda: ec2_1.describe_instances())
    check('PutRolePolicy deny aws:userid -> revoked session denied',
          code == 'UnauthorizedOperation' and 'explicit deny' in msg, (code, msg))
    run('... second session of the same role still works',
        lambda: len(client(emu, 'ec2', **k3).describe_instances()['Reservations']) == 3)
    got = iam.get_role_policy(RoleName='ProdReadOnly', PolicyName='elevate-revoke')
    check('GetRolePolicy round trip (url-encoded document)', got['PolicyDocument'] == revoke, got['PolicyDocument'])
    names = iam.list_role_policies(RoleName='ProdReadOnly')['PolicyNames']
    check('ListRolePolicies', names == ['base', 'elevate-revoke'], names)
    iam.delete_role_policy(RoleName='ProdReadOnly', PolicyName='elevate-revoke')
    run('DeleteRolePolicy restores access', lambda: len(ec2_1.describe_instances()['Reservations']) == 3)
    code, status, _ = err_code(lambda: iam.delete_role_policy(RoleName='ProdReadOnly', PolicyName='nope'))
    check('DeleteRolePolicy unknown -> NoSuchEntity 404', code == 'NoSuchEntity' and status == 404, (code, status))
    code, status, _ = err_code(lambda: iam.get_role(RoleName='NoSuchRole'))
    check('GetRole unknown -> NoSuchEntity 404', code == 'NoSuchEntity' and status == 404, (code, status))
    code, status, _ = err_code(lambda: iam.put_role_policy(RoleName='ProdReadOnly', PolicyName='bad',
                                                           PolicyDocument='{"Statement": [}'))
    check('PutRolePolicy invalid JSON -> MalformedPolicyDocument', code == 'MalformedPolicyDocument', code)

    # --- early revoke by session tags (elevate's revocation policy, denypolicy.h) ----------------
    def tagged(name, tags):
        kw = {'RoleArn': role_arn, 'RoleSessionName': name}
        if tags:
            kw['Tags'] = [{'Key': k, 'Value': v} for k, v in tags.items()]
        return client(emu, 'ec2', **creds_kw(sts.assume_role(**kw)))
    swept = tagged('selftest-t1', {'elevate:request-id': 'req_a', 'elevate:cohort': 'c1'})
    excepted = tagged('selftest-t2', {'elevate:request-id': 'req_b', 'elevate:cohort': 'c1'})
    listed = tagged('selftest-t3', {'elevate:request-id': 'req_c', 'elevate:cohort': 'c2'})
    other = tagged('selftest-t4', {'elevate:request-id': 'req_d', 'elevate:cohort': 'c2'})
    untagged = tagged('selftest-t5', {})
    revoke = {'Version': '2012-10-17', 'Statement': [
        {'Sid': 'Named', 'Effect': 'Deny', 'Action': '*', 'Resource': '*',
         'Condition': {'StringEquals': {'aws:PrincipalTag/elevate:request-id': ['req_c']}}},
        {'Sid': 'Cohorts', 'Effect': 'Deny', 'Action': '*', 'Resource': '*',
         'Condition': {'StringEquals': {'aws:PrincipalTag/Elevate:Cohort': ['c1']},
                       'StringNotEquals': {'aws:PrincipalTag/elevate:request-id':
                                           ['req_x', 'req_b']}}}]}
    iam.put_role_policy(RoleName='ProdReadOnly', PolicyName='elevate-revoke',
                        PolicyDocument=json.dumps(revoke))
    for what, c, want in (('a session tag in a StringEquals list', listed, 'UnauthorizedOperation'),
                          ('its cohort tag listed (tag keys match in any case)', swept,
                           'UnauthorizedOperation'),
                          ('... but its request-id among StringNotEquals values (NOR)', excepted, None),
                          ('neither listed', other, None),
                          ('no tags: StringEquals on an absent key does not match', untagged, None)):
        code, _, msg = err_code(lambda: c.describe_instances())
        check('deny by aws:PrincipalTag: %s -> %s' % (what, want or 'allowed'), code == want and
              (want is None or 'explicit deny in an identity-based policy' in msg), (code, msg))
    iam.delete_role_policy(RoleName='ProdReadOnly', PolicyName='elevate-revoke')

    # --- inline policy size limit ---------------------------------------------------------------
    _, state = emu.ctl('GET', 'state')
    used = state['roles']['ProdReadOnly']['inline_policy_bytes']

    def big_policy(stripped_len):
        doc = {'Version': '2012-10-17', 'Statement': [
            {'Sid': '', 'Effect': 'Deny', 'Action': 'ec2:NoSuchThing', 'Resource': '*'}]}
        l0 = len(re.sub(r'\s', '', json.dumps(doc)))
        doc['Statement'][0]['Sid'] = 'A' * (stripped_len - l0)
        return json.dumps(doc, indent=4)
    room = 10240 - used
    iam.put_role_policy(RoleName='ProdReadOnly', PolicyName='fill', PolicyDocument=big_policy(room))
    st, state = emu.ctl('GET', 'state')
    check('inline policies exactly at 10240 non-whitespace chars accepted',
          state['roles']['ProdReadOnly']['inline_policy_bytes'] == 10240,
          state['roles']['ProdReadOnly']['inline_policy_bytes'])
    code, status, msg = err_code(lambda: iam.put_role_policy(RoleName='ProdReadOnly', PolicyName='fill',
                                                             PolicyDocument=big_policy(room + 1)))
    check('10241 chars -> LimitExceeded 409', code == 'LimitExceeded' and status == 409 and
          msg == 'Maximum policy size of 10240 bytes exceeded for role ProdReadOnly', (code, status, msg))
    iam.delete_role_policy(RoleName='ProdReadOnly', PolicyName='fill')

    # --- signatures ---------------------------------------------------------------------------------
    body = b'Action=GetCallerIdentity&Version=2011-06-15'
    h = sign_like_c(emu, body)
    st, out, _ = emu.raw('POST', '/', body, h)
    check('C-style signing (content-type;host;x-amz-date) accepted', st == 200 and b'elevate-broker' in out, out[:200])
    h = sign_like_c(emu, body, token=k3['token'], key=k3['key'], secret=k3['secret'])
    st, out, _ = emu.raw('POST', '/', body, h)
    check('C-style signing with x-amz-security-token accepted', st == 200 and b'selftest-s3' in out, out[:200])
    h = sign_like_c(emu, body)
    sig = h['Authorization'][-1]
    h['Authorization'] = h['Authorization'][:-1] + ('0' if sig != '0' else '1')
    st, out, _ = emu.raw('POST', '/', body, h)
    check('signature changed by one character -> SignatureDoesNotMatch 403',
          st == 403 and xml_code(out) == 'SignatureDoesNotMatch', (st, out[:300]))
    h = sign_like_c(emu, body)
    st, out, _ = emu.raw('POST', '/', body.replace(b'2011', b'2011') + b'&x=1', h)
    check('body changed after signing -> SignatureDoesNotMatch', xml_code(out) == 'SignatureDoesNotMatch', out[:200])
    h = sign_like_c(emu, body, key='AKIDUNKNOWN000000000')
    st, out, _ = emu.raw('POST', '/', body, h)
    check('unknown key -> InvalidClientTokenId 403', st == 403 and xml_code(out) == 'InvalidClientTokenId', out[:200])
    h = sign_like_c(emu, body, key=k3['key'], secret=k3['secret'])
    st, out, _ = emu.raw('POST', '/', body, h)
    check('issued key without its session token -> InvalidClientTokenId', xml_code(out) == 'InvalidClientTokenId', out[:200])
    h = sign_like_c(emu, body, ts=time.time() - 400)
    st, out, _ = emu.raw('POST', '/', body, h)
    check('X-Amz-Date 400 s old -> SignatureDoesNotMatch "Signature expired"',
          st == 403 and xml_code(out) == 'SignatureDoesNotMatch' and b'Signature expired' in out, out[:300])
    st, out, _ = emu.raw('POST', '/', body, {'Content-Type': 'application/x-www-form-urlencoded'})
    check('no Authorization -> MissingAuthenticationToken', xml_code(out) == 'MissingAuthenticationToken', out[:200])
    st, out, _ = emu.raw('POST', '/', body, {'Authorization': 'AWS4-HMAC-SHA256 garbage',
                                             'Content-Type': 'application/x-www-form-urlencoded'})
    check('garbled Authorization -> IncompleteSignature 400', st == 400 and xml_code(out) == 'IncompleteSignature', out[:200])
    jb = b'{"State": "Active"}'
    h = sign_like_c(emu, jb, service='ssm', ctype='application/x-amz-json-1.1')
    h['X-Amz-Target'] = 'AmazonSSM.DescribeSessions'
    st, out, _ = emu.raw('POST', '/', jb, h)
    check('unsigned X-Amz-Target header still accepted if not in SignedHeaders', st == 200, out[:200])

    # --- validation -----------------------------------------------------------------------------------
    stsn = client(emu, 'sts', validate=False)
    code, status, msg = err_code(lambda: stsn.assume_role(RoleArn=role_arn, RoleSessionName='a'))
    check('RoleSessionName "a" -> ValidationError 400',
          code == 'ValidationError' and status == 400 and "at 'roleSessionName'" in msg and
          'greater than or equal to 2' in msg, (code, msg))
    code, _, msg = err_code(lambda: stsn.assume_role(RoleArn=role_arn, RoleSessionName='a b'))
    check('RoleSessionName with a space -> ValidationError (pattern)',
          code == 'ValidationError' and 'regular expression pattern' in msg, (code, msg))
    code, _, msg = err_code(lambda: stsn.assume_role(RoleArn=role_arn, RoleSessionName='ok-name', DurationSeconds=60))
    check('DurationSeconds 60 -> ValidationError', code == 'ValidationError' and "durationSeconds" in msg, (code, msg))
    code, _, msg = err_code(lambda: sts.assume_role(RoleArn=role_arn, RoleSessionName='ok-name', DurationSeconds=7200))
    check('DurationSeconds > MaxSessionDuration -> ValidationError',
          code == 'ValidationError' and 'MaxSessionDuration' in msg, (code, msg))
    code, _, msg = err_code(lambda: sts.assume_role(RoleArn=role_arn, RoleSessionName='ok-name', Policy='{not json'))
    check('invalid session policy JSON -> MalformedPolicyDocument', code == 'MalformedPolicyDocument', (code, msg))
    code, _, msg = err_code(lambda: stsn.assume_role(RoleArn=role_arn, RoleSessionName='ok-name', Policy='x' * 2049))
    check('session policy > 2048 chars -> ValidationError', code == 'ValidationError' and "'policy'" in msg, (code, msg[-120:]))
    code, status, _ = err_code(lambda: sts.assume_role(RoleArn='arn:aws:iam::%s:role/NoSuchRole' % ACCOUNT, RoleSessionName='x1'))
    check('AssumeRole missing role -> AccessDenied 403', code == 'AccessDenied' and status == 403, code)
    code, _, _ = err_code(lambda: sts.assume_role(RoleArn='arn:aws:iam::%s:role/NoTrust' % ACCOUNT, RoleSessionName='x1'))
    check('AssumeRole without broker trust -> AccessDenied', code == 'AccessDenied', code)
    h = sign_like_c(emu, b'Action=NoSuchAction&Version=2011-06-15')
    st, out, _ = emu.raw('POST', '/', b'Action=NoSuchAction&Version=2011-06-15', h)
    check('unknown action -> InvalidAction 400', st == 400 and xml_code(out) == 'InvalidAction', out[:200])

    # --- role chaining -------------------------------------------------------------------------------
    long_arn = 'arn:aws:iam::%s:role/Long' % ACCOUNT
    run('broker AssumeRole DurationSeconds 7200 on a 12 h role',
        lambda: sts.assume_role(RoleArn=long_arn, RoleSessionName='long1', DurationSeconds=7200))
    sts3 = client(emu, 'sts', **k3)
    code, _, msg = err_code(lambda: sts3.assume_role(RoleArn=long_arn, RoleSessionName='chain1', DurationSeconds=7200))
    check('role chaining DurationSeconds 7200 -> ValidationError', code == 'ValidationError' and 'chaining' in msg, (code, msg))
    run('role chaining DurationSeconds 3600 allowed',
        lambda: sts3.assume_role(RoleArn=long_arn, RoleSessionName='chain1', DurationSeconds=3600)
        ['AssumedRoleUser']['Arn'].endswith('/Long/chain1'))

    # --- SSM ------------------------------------------------------------------------------------------
    ssm3 = client(emu, 'ssm', **k3)
    owner3 = r3['AssumedRoleUser']['Arn']
    s = ssm3.start_session(Target='i-0123456789abcdef0', Reason='selftest')
    sid = s['SessionId']
    check('SSM StartSession', sid.startswith('selftest-s3-') and len(sid) == len('selftest-s3-') + 17 and
          s['StreamUrl'] == 'wss://ssmmessages.%s.amazonaws.com/v1/data-channel/%s?role=publish_subscribe' % (REGION, sid)
          and s['TokenValue'], s)
    ssmb = client(emu, 'ssm')
    ds = ssmb.describe_sessions(State='Active', Filters=[{'key': 'Owner', 'value': owner3}])['Sessions']
    check('DescribeSessions Active + Owner filter (broker creds)',
          [x['SessionId'] for x in ds] == [sid] and ds[0]['Owner'] == owner3 and ds[0]['Target'] == 'i-0123456789abcdef0',
          ds)
    ds = ssmb.describe_sessions(State='Active', Filters=[{'key': 'Owner', 'value': 'arn:aws:sts::1:assumed-role/x/y'}])
    check('DescribeSessions Owner filter excludes others', ds['Sessions'] == [], ds['Sessions'])
    t = ssmb.terminate_session(SessionId=sid)
    check('TerminateSession', t['SessionId'] == sid, t)
    run('TerminateSession again still succeeds', lambda: ssmb.terminate_session(SessionId=sid)['SessionId'] == sid)
    hist = ssmb.describe_sessions(State='History', Filters=[{'key': 'SessionId', 'value': sid}])['Sessions']
    check('DescribeSessions History shows Terminated with EndDate',
          len(hist) == 1 and hist[0]['Status'] == 'Terminated' and 'EndDate' in hist[0], hist)
    act = ssmb.describe_sessions(State='Active', Filters=[{'key': 'SessionId', 'value': sid}])['Sessions']
    check('... and not Active', act == [], act)
    code, status, _ = err_code(lambda: ssm3.start_session(Target='i-0999999999abcdef0'))
    check('StartSession unknown target -> TargetNotConnected 400', code == 'TargetNotConnected' and status == 400, code)
    code, _, _ = err_code(lambda: ssm3.start_session(Target='i-0aaaaaaaaaaaaaaa1'))
    check('StartSession offline instance -> TargetNotConnected', code == 'TargetNotConnected', code)
    for _ in range(3):
        ssm3.start_session(Target='i-0fedcba9876543210')
    p1 = ssmb.describe_sessions(State='Active', MaxResults=2)
    p2 = ssmb.describe_sessions(State='Active', MaxResults=2, NextToken=p1['NextToken'])
    check('DescribeSessions pagination', len(p1['Sessions']) == 2 and len(p2['Sessions']) == 1 and
          'NextToken' not in p2, (len(p1['Sessions']), len(p2['Sessions'])))
    ssmn = client(emu, 'ssm', validate=False)
    code, _, msg = err_code(lambda: ssmn.describe_sessions(State='Bogus'))
    check('SSM validation -> ValidationException', code == 'ValidationException' and "'state'" in msg, (code, msg))
    rr = sts.assume_role(RoleArn='arn:aws:iam::%s:role/Restricted' % ACCOUNT, RoleSessionName='restricted')
    ssmr = client(emu, 'ssm', **creds_kw(rr))
    code, _, msg = err_code(lambda: ssmr.start_session(Target='i-0123456789abcdef0'))
    check('StartSession denied by ssm:resourceTag condition',
          code == 'AccessDeniedException' and 'instance/i-0123456789abcdef0' in msg, (code, msg))
    run('StartSession allowed on matching tag', lambda: ssmr.start_session(Target='i-0fedcba9876543210')['SessionId'])

    # --- expiry ---------------------------------------------------------------------------------------
    emu.ctl('POST', 'clock', {'offset': 901, 'skew_tolerance': None})
    code, status, _ = err_code(lambda: client(emu, 'sts', **k2).get_caller_identity())
    check('expired credentials -> ExpiredToken (sts)', code == 'ExpiredToken', (code, status))
    code, status, _ = err_code(lambda: client(emu, 'ssm', **k2).describe_sessions(State='Active'))
    check('expired credentials -> ExpiredTokenException 400 (ssm)', code == 'ExpiredTokenException' and status == 400, (code, status))
    emu.ctl('POST', 'clock', {'offset': 0, 'skew_tolerance': 300})

    # --- faults ---------------------------------------------------------------------------------------
    emu.ctl('POST', 'faults', {'throttle_rate': 1.0, 'seed': 1})
    code, status, msg = err_code(lambda: sts.get_caller_identity())
    check('throttle_rate 1.0 -> Throttling 400 "Rate exceeded"',
          code == 'Throttling' and status == 400 and msg == 'Rate exceeded', (code, status, msg))
    code, status, _ = err_code(lambda: ssmb.describe_sessions(State='Active'))
    check('... ThrottlingException for ssm', code == 'ThrottlingException', code)
    emu.ctl('POST', 'faults', {'error_rate': 1.0, 'error_status': 503})
    code, status, _ = err_code(lambda: sts.get_caller_identity())
    check('error_rate 1.0 -> 503 ServiceUnavailable', code == 'ServiceUnavailable' and status == 503, (code, status))
    emu.ctl('POST', 'faults', {'throttle_next': 1, 'actions': ['AssumeRole']})
    run('throttle_next/actions scoping leaves other actions alone', lambda: sts.get_caller_identity())
    code, _, _ = err_code(lambda: sts.assume_role(RoleArn=role_arn, RoleSessionName='fault1'))
    run('... and throttles the next AssumeRole once', lambda: code == 'Throttling' and
        sts.assume_role(RoleArn=role_arn, RoleSessionName='fault2'))
    emu.ctl('POST', 'faults', {})

    # --- request log ---------------------------------------------------------------------------------
    st, entries = emu.ctl('GET', 'log')
    ar = [e for e in entries if e['action'] == 'AssumeRole' and e['status'] == 200]
    check('log contains AssumeRole calls with params',
          any(e['params'].get('RoleSessionName') == 'selftest-s1' and e['principal'] == 'broker' and
              e['params'].get('Tags') == [{'Key': 'grant', 'Value': 'g-1'}] for e in ar), len(ar))
    check('log records error codes (Throttling, SignatureDoesNotMatch)',
          any(e['error_code'] == 'Throttling' for e in entries) and
          any(e['error_code'] == 'SignatureDoesNotMatch' for e in entries))
    check('log records assumed-role principal and request ids',
          any(e['principal'] == owner3 and e['service'] == 'ssm' and e['action'] == 'StartSession' for e in entries) and
          all(e['request_id'] for e in entries))
    seqs = [e['seq'] for e in entries]
    check('log is ordered by seq', seqs == sorted(seqs) and len(set(seqs)) == len(seqs))
    st, since = emu.ctl('GET', 'log?since=%d' % seqs[-3])
    check('log ?since=SEQ', [e['seq'] for e in since] == seqs[-2:], [e['seq'] for e in since])
    st, state = emu.ctl('GET', 'state')
    cr = [c for c in state['credentials'] if c['access_key_id'] == k1['key']]
    check('state lists issued credentials without secrets',
          cr and cr[0]['session_name'] == 'selftest-s1' and cr[0]['source_identity'] == 'alice' and
          'secret' not in json.dumps(state).lower().replace('secret_access_key', '') and
          k1['secret'] not in json.dumps(state), cr)

    # --- robustness -------------------------------------------------------------------------------
    st, out, _ = emu.raw('POST', '/', b'\x00\xff garbage \xfe', {'Content-Type': 'application/x-www-form-urlencoded'})
    check('garbage body -> AWS-style 4xx', 400 <= st < 500 and xml_code(out), (st, out[:100]))
    # Announced, not sent: the emulator refuses on Content-Length alone, and a client still
    # writing a body it will not read can get a broken pipe instead of the answer.
    conn = http.client.HTTPConnection('127.0.0.1', emu.port, timeout=10)
    conn.putrequest('POST', '/')
    conn.putheader('Content-Type', 'application/x-www-form-urlencoded')
    conn.putheader('Content-Length', str(1024 * 1024 + 1))
    conn.endheaders()
    st = conn.getresponse().status
    conn.close()
    check('body over 1 MiB -> 413', st == 413, st)
    jb = b'{"State": '
    h = sign_like_c(emu, jb, service='ssm', ctype='application/x-amz-json-1.1')
    h['X-Amz-Target'] = 'AmazonSSM.DescribeSessions'
    st, out, hd = emu.raw('POST', '/', jb, h)
    check('bad JSON -> 400 SerializationException with x-amzn-RequestId',
          st == 400 and b'SerializationException' in out and hd.get('x-amzn-requestid'), (st, out))
    st, out, _ = emu.raw('GET', '/_emulator/nope')
    check('unknown control endpoint -> 404', st == 404, st)
    run('still serving after abuse', lambda: sts.get_caller_identity()['Account'] == ACCOUNT)

    holds(emu, role_arn)


def holds(emu, role_arn):
    """POST /_emulator/hold and /release; runs last because it ends with a reset."""
    def assume(name):
        return lambda: client(emu, 'sts').assume_role(RoleArn=role_arn, RoleSessionName=name)

    def issued(name):
        return [c for c in emu.ctl('GET', 'state')[1]['credentials'] if c['session_name'] == name]

    st, hs = emu.ctl('POST', 'hold', {'action': 'AssumeRole', 'service': 'sts'})
    check('POST hold arms a hold', st == 200 and hs['held'] == 0 and
          hs['armed'] == [{'action': 'AssumeRole', 'service': 'sts', 'count': 1, 'timeout': 60.0}], hs)
    a = background(assume('hold-a'))
    hs = wait_held(emu, 1)
    check('held AssumeRole blocks (GET hold: held 1, arm consumed)',
          hs['held'] == 1 and hs['armed'] == [] and 'done' not in a and
          [(c['service'], c['action']) for c in hs['calls']] == [('sts', 'AssumeRole')] and
          hs['calls'][0]['since'] <= time.time(), hs)
    run('... GetCallerIdentity still answers while it is held',
        lambda: client(emu, 'sts').get_caller_identity()['Account'] == ACCOUNT)
    check('... and its action has not run yet (no credentials issued)', not issued('hold-a'))
    emu.ctl('POST', 'clock', {'advance': 120, 'skew_tolerance': None})
    time.sleep(0.3)
    check('... still unanswered after 0.3 s', 'done' not in a)
    t_rel = time.time()
    st, hs = emu.ctl('POST', 'release', {})
    a['thread'].join(10)
    res = a.get('result')
    exp_delta = (res['Credentials']['Expiration'] - datetime.now(timezone.utc)).total_seconds() if res else None
    check('POST release {} lets it answer; the action runs at release, on the clock then',
          st == 200 and hs['released'] == 1 and hs['held'] == 0 and a.get('done', 0) >= t_rel and
          res and 3700 < exp_delta <= 3721 and len(issued('hold-a')) == 1, (hs, a.get('error'), exp_delta))
    emu.ctl('POST', 'clock', {'offset': 0, 'skew_tolerance': 300})
    _, entries = emu.ctl('GET', 'log')
    ent = [e for e in entries if e['action'] == 'AssumeRole' and (e['params'] or {}).get('RoleSessionName') == 'hold-a']
    check('log entry of a held call has held_ms', ent and ent[0].get('held_ms', 0) >= 300 and ent[0]['status'] == 200, ent)

    # count=2 holds exactly two; the third passes
    emu.ctl('POST', 'hold', {'action': 'AssumeRole', 'count': 2})
    b1 = background(assume('hold-b1'))
    hs1 = wait_held(emu, 1)
    b2 = background(assume('hold-b2'))
    hs2 = wait_held(emu, 2)
    b3 = background(assume('hold-b3'))
    b3['thread'].join(10)
    _, hs3 = emu.ctl('GET', 'hold')
    check('count=2 holds exactly two AssumeRoles; the third answers',
          hs1['held'] == 1 and hs2['held'] == 2 and hs2['armed'] == [] and hs3['held'] == 2 and
          b3.get('result') and 'done' not in b1 and 'done' not in b2, (hs2, hs3, b3.get('error')))
    # release count=1 releases the oldest, leaves the other held
    st, hs = emu.ctl('POST', 'release', {'count': 1})
    b1['thread'].join(10)
    time.sleep(0.2)
    check('release {"count": 1} releases the oldest only',
          st == 200 and hs['released'] == 1 and hs['held'] == 1 and b1.get('result') and 'done' not in b2 and
          hs['calls'][0]['seq'] == hs2['calls'][1]['seq'], (hs, b1.get('error')))
    emu.ctl('POST', 'hold', {'action': 'GetRole', 'service': 'iam'})
    st, hs = emu.ctl('POST', 'release', {'count': 5})
    check('release {"count": k} leaves the arms as they are',
          hs['released'] == 1 and hs['held'] == 0 and [x['action'] for x in hs['armed']] == ['GetRole'], hs)
    b2['thread'].join(10)
    emu.ctl('POST', 'release', {})
    _, hs = emu.ctl('GET', 'hold')
    check('release {} disarms', b2.get('result') and hs['armed'] == [] and hs['held'] == 0, hs)
    run('... so the next AssumeRole is not held', lambda: assume('hold-free')())

    # the service filter
    emu.ctl('POST', 'hold', {'action': 'GetCallerIdentity', 'service': 'iam'})
    run('a hold for another service does not match',
        lambda: client(emu, 'sts').get_caller_identity()['Account'] == ACCOUNT)
    emu.ctl('POST', 'release', {})

    # safety timeout
    emu.ctl('POST', 'hold', {'action': 'AssumeRole', 'timeout': 0.5})
    t0 = time.time()
    c = background(assume('hold-timeout'))
    hs = wait_held(emu, 1)
    c['thread'].join(10)
    took = c.get('done', t0 + 99) - t0
    _, hs2 = emu.ctl('GET', 'hold')
    check('a held call releases itself after its safety timeout (0.5 s)',
          hs['held'] == 1 and hs['calls'][0]['timeout'] == 0.5 and c.get('result') and 0.45 <= took < 5 and
          hs2['held'] == 0, (took, hs2, c.get('error')))

    # faults decide first
    emu.ctl('POST', 'faults', {'throttle_next': 1, 'actions': ['AssumeRole']})
    emu.ctl('POST', 'hold', {'action': 'AssumeRole'})
    t0 = time.time()
    code, _, _ = err_code(assume('hold-throttled'))
    _, hs = emu.ctl('GET', 'hold')
    check('a throttled request answers its error and is not held (arm kept)',
          code == 'Throttling' and time.time() - t0 < 5 and hs['held'] == 0 and len(hs['armed']) == 1, (code, hs))
    emu.ctl('POST', 'faults', {})

    # bad bodies
    bad = [emu.ctl('POST', 'hold', b)[0] for b in
           ({}, {'action': ''}, {'action': 'AssumeRole', 'count': 0}, {'action': 'AssumeRole', 'timeout': -1},
            {'action': 'AssumeRole', 'count': 'x'})]
    bad.append(emu.ctl('POST', 'release', {'count': -1})[0])
    check('invalid hold / release bodies -> 400', bad == [400] * 6, bad)

    # reset releases and disarms (the pending AssumeRole hold from above, plus one more)
    emu.ctl('POST', 'hold', {'action': 'AssumeRole', 'count': 3})
    d = background(assume('hold-reset'))
    hs = wait_held(emu, 1)
    st, _ = emu.ctl('POST', 'reset', {})
    d['thread'].join(10)
    _, hs2 = emu.ctl('GET', 'hold')
    check('POST reset releases held requests and disarms',
          hs['held'] == 1 and st == 200 and 'done' in d and hs2 == {'held': 0, 'armed': [], 'calls': []},
          (hs, hs2, d.get('error')))


if __name__ == '__main__':
    main()
    sys.exit(1 if failed else 0)
