#!/usr/bin/python3
"""test_sigv4_botocore.py — cross-checks `elevate debug sigv4` against botocore.

Generates seeded random requests (methods, paths with unicode, spaces, dots and
escapes, query strings with repeated keys and special characters, headers with odd
whitespace, folded lines and repeats, binary bodies, regions, services including s3,
timestamps, session tokens), signs each with botocore's SigV4Auth (S3SigV4Auth for
s3) and with the elevate binary, and requires identical Authorization values; on a
mismatch it shows both canonical requests.

Run with Debian's /usr/bin/python3 (python3-botocore). The runner calls every test_*
with ctx (ctx.root = repo root, ctx.bin = directory holding `elevate`); ELEVATE_BIN
overrides the binary. Standalone: /usr/bin/python3 tests/integration/test_sigv4_botocore.py

Like-for-like choices (botocore and elevate agree on SigV4; these keep the inputs
inside what both accept the same way):
- botocore is driven through its signing pieces (canonical_request, string_to_sign,
  signature, _inject_signature_to_request) with request.context['timestamp'] set, so
  the clock is fixed; X-Amz-Date and X-Amz-Security-Token are put on the botocore
  request the way its add_auth would, while elevate gets --time / --session-token and
  adds them itself when the raw request lacks them.
- Query parameters go to botocore as request.params (decoded key/value pairs, which
  it encodes itself); botocore's URL-query path assumes an already canonical query.
  elevate gets a raw query string with each character randomly left raw or
  percent-encoded (either hex case), '+' meaning plus, and stray empty pieces ("&&"),
  which SigV4 ignores.
- Header names are never user-agent, expect or x-amzn-trace-id (botocore never signs
  them; elevate signs whatever the caller gives it), and values hold only ASCII
  space/tab as whitespace: Python's str.split() also splits on \\x1c-\\x1f and Unicode
  spaces, which HTTP does not treat as whitespace.
- Paths never contain '?', '#', CR, LF or tab, which cannot be in a request line or a
  URL path; botocore reads the path through urlsplit, checked here to be lossless.
- An x-amz-content-sha256 header, when generated, carries a clean value (botocore
  uses it untrimmed as the payload hash, elevate trimmed).
"""
import hashlib
import os
import random
import string
import subprocess
import sys
from types import SimpleNamespace
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SEED = 20150830
N_REQUESTS = 1200

REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-2', 'ap-southeast-3',
           'af-south-1', 'cn-north-1', 'us-gov-west-1']
SERVICES = ['sts', 'iam', 'ssm', 'ec2', 'execute-api', 'service', 'lambda', 's3']
METHODS = ['GET', 'POST', 'PUT', 'DELETE']

SEGMENTS = ['a', 'b', 'example', 'ሴ', 'é', '日本語', 'with space', ' lead', 'trail ',
            '.', '..', '', '...', '.hidden', 'a.b', '%20', '%2F', '%41', '%e1%88%b4',
            "!$&'()*+,;=:@", '~user', 'x-y_z', 'UPPER', '100%25', 'ü ö']
QKEYS = ['a', 'A', 'b', 'Param', 'param', 'Action', 'x-y', 'k.k', '~t', 'a b', 'ключ',
         'ሴ', 'tags.member.1.Key', '', 'p+q', 'a=b', 'x&y', '%', '*']
QCHARS = (string.ascii_letters + string.digits + "-._~ +&=%/?#*!$'(),;:@[]\"<>^`{|}"
          + 'éሴ日€😀')
HNAMES = ['My-Header', 'X-Custom', 'x-custom', 'X-DUP', 'x-dup', 'Content-Type',
          'Accept', 'X-Amz-Target', 'X-Amz-Meta-Foo', 'If-Match', 'Cache-Control',
          'x_under', "X-Odd!#$%&'*+.^`|~"]
HWORDS = ['value', 'VALUE', '"a   b   c"', 'a,b', 'x:y', 'application/json',
          'AmazonSSM.StartSession', 'é', 'ሴ', '=', ';q=0.5', '*/*', '']
WS = [' ', '  ', '\t', ' \t ', '   ']
B64 = string.ascii_letters + string.digits + '+/='


def _bin(ctx):
    return os.environ.get('ELEVATE_BIN') or os.path.join(ctx.bin, 'elevate')


def _rand_path(rng):
    while True:
        segs = [rng.choice(SEGMENTS) for _ in range(rng.randint(0, 5))]
        path = '/' + '/'.join(segs)
        if rng.random() < 0.3:
            path += '/'
        if rng.random() < 0.1:
            path = '/' + path   # leading double slash
        # The URL botocore sees must give this path back unchanged.
        if urlsplit('https://h' + path).path == path:
            return path


def _raw_escape(rng, s, always):
    """Percent-encodes s character by character, randomly leaving safe ones raw."""
    out = []
    for ch in s:
        if ch in always or rng.random() < 0.4:
            hexes = ['%02X' % b for b in ch.encode('utf-8')]
            if rng.random() < 0.3:
                hexes = [h.lower() for h in hexes]
            out.append(''.join('%' + h for h in hexes))
        else:
            out.append(ch)
    return ''.join(out)


def _rand_query(rng):
    params = []
    for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 8])):
        key = rng.choice(QKEYS)
        if rng.random() < 0.5:
            value = ''.join(rng.choice(QCHARS) for _ in range(rng.randint(0, 8)))
        else:
            value = rng.choice(['', '1', 'value', 'ሴ', 'a b', 'x+y', '%41'])
        params.append((key, value))
    pieces = []
    for key, value in params:
        # '&' splits pieces, '%' starts an escape, a raw '=' in the key would end it.
        k = _raw_escape(rng, key, '&%=#')
        v = _raw_escape(rng, value, '&%#')
        if value == '' and key != '' and rng.random() < 0.5:
            pieces.append(k)            # "key" alone means an empty value
        else:
            pieces.append(k + '=' + v)
        if rng.random() < 0.05:
            pieces.append('')           # "a&&b": an empty piece, ignored
    return params, '&'.join(pieces)


def _rand_value(rng):
    words = [rng.choice(HWORDS) for _ in range(rng.randint(0, 4))]
    v = ''
    for i, w in enumerate(words):
        v += (rng.choice(WS) if i else '') + w
    if rng.random() < 0.4:
        v = rng.choice(WS) + v
    if rng.random() < 0.4:
        v = v + rng.choice(WS)
    return v


def _rand_token(rng):
    n = rng.choice([16, 64, 356, 1200])
    return ''.join(rng.choice(B64) for _ in range(n))


def _make_case(rng, i):
    method = rng.choice(METHODS)
    region = rng.choice(REGIONS)
    service = rng.choice(SERVICES)
    path = _rand_path(rng)
    params, raw_query = _rand_query(rng)
    ts = '%04d%02d%02dT%02d%02d%02dZ' % (
        rng.randint(2011, 2037), rng.randint(1, 12), rng.randint(1, 28),
        rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
    access = 'AKIA' + ''.join(rng.choice(string.ascii_uppercase + string.digits)
                              for _ in range(16))
    secret = ''.join(rng.choice(B64) for _ in range(40))
    token = _rand_token(rng) if rng.random() < 0.3 else None
    if rng.random() < 0.5:
        body = b''
    elif rng.random() < 0.5:
        body = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    else:
        body = ('Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&n=' +
                str(i)).encode()

    # (name, logical value, raw value lines): the raw form may fold the value.
    headers = [('Host', '%s.%s.amazonaws.com' % (service, region))]
    for _ in range(rng.randint(0, 6)):
        name = rng.choice(HNAMES)
        headers.append((name, _rand_value(rng)))
        if rng.random() < 0.15:       # repeated header
            headers.append((name.lower() if rng.random() < 0.5 else name,
                            _rand_value(rng)))
    if body and rng.random() < 0.5:
        headers.append(('Content-Length', str(len(body))))
    if rng.random() < 0.3:
        headers.append(('X-Amz-Date', rng.choice(['', ' ', '\t']) + ts))
    if token is not None and rng.random() < 0.3:
        headers.append(('x-amz-security-token', ' ' + token))
    if rng.random() < 0.08:
        hv = rng.choice(['UNSIGNED-PAYLOAD', hashlib.sha256(body).hexdigest()])
        headers.append(('X-Amz-Content-SHA256', hv))
    rng.shuffle(headers)

    eol = '\r\n' if rng.random() < 0.3 else '\n'
    target = path + ('?' + raw_query if raw_query or rng.random() < 0.1 else '')
    lines = ['%s %s HTTP/1.1' % (method, target)]
    for name, value in headers:
        # Fold at a whitespace run: the continuation line starts with it.
        cut = [j for j in range(1, len(value)) if value[j] in ' \t'
               and value[j - 1] not in ' \t']
        if cut and name not in ('Host',) and rng.random() < 0.2:
            j = rng.choice(cut)
            lines.append('%s:%s' % (name, value[:j]))
            lines.append(value[j:])
        else:
            lines.append('%s:%s' % (name, value))
    raw = (eol.join(lines) + eol + eol).encode('utf-8') + body
    return SimpleNamespace(method=method, region=region, service=service, path=path,
                           params=params, ts=ts, access=access, secret=secret,
                           token=token, body=body, headers=headers, raw=raw)


def _botocore_sign(c):
    creds = Credentials(c.access, c.secret, c.token)
    cls = S3SigV4Auth if c.service == 's3' else SigV4Auth
    auth = cls(creds, c.service, c.region)
    req = AWSRequest(method=c.method, url='https://%s.%s.amazonaws.com%s' % (
        c.service, c.region, c.path), data=c.body, params=list(c.params))
    for name, value in c.headers:
        req.headers[name] = value
    # What add_auth's _modify_request_before_signing does, minus the clock.
    req.context['timestamp'] = c.ts
    if 'X-Amz-Date' not in req.headers:
        req.headers['X-Amz-Date'] = c.ts
    if c.token is not None and 'X-Amz-Security-Token' not in req.headers:
        req.headers['X-Amz-Security-Token'] = c.token
    cr = auth.canonical_request(req)
    sts = auth.string_to_sign(req, cr)
    sig = auth.signature(sts, req)
    auth._inject_signature_to_request(req, sig)
    return req.headers['Authorization'], cr


def _elevate(ctx, c, what='authorization'):
    argv = [_bin(ctx), 'debug', 'sigv4', '--access-key', c.access, '--secret-key',
            c.secret, '--region', c.region, '--service', c.service, '--time', c.ts,
            '--print', what]
    if c.token is not None:
        argv += ['--session-token', c.token]
    p = subprocess.run(argv, input=c.raw, capture_output=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError('elevate debug sigv4 exited %d: %s\nrequest: %r' % (
            p.returncode, p.stderr.decode('utf-8', 'replace'), c.raw[:2000]))
    out = p.stdout.decode('utf-8')
    if not out.endswith('\n'):
        raise AssertionError('output does not end with a newline: %r' % out)
    return out[:-1]


def test_sigv4_matches_botocore(ctx):
    rng = random.Random(SEED)
    failures = []
    checked = 0
    for i in range(N_REQUESTS):
        c = _make_case(rng, i)
        want, want_cr = _botocore_sign(c)
        got = _elevate(ctx, c)
        checked += 1
        if got != want:
            got_cr = _elevate(ctx, c, 'canonical-request')
            failures.append('case %d (%s %s)\n  botocore: %s\n  elevate:  %s\n'
                            '--- botocore canonical request\n%s\n'
                            '--- elevate canonical request\n%s\n---' % (
                                i, c.method, c.service, want, got, want_cr, got_cr))
    print('sigv4 cross-check: %d/%d requests match botocore' % (
        checked - len(failures), checked))
    if failures:
        raise AssertionError('%d of %d requests differ from botocore; first:\n%s' % (
            len(failures), checked, failures[0]))


def _run(ctx, args, stdin=b''):
    return subprocess.run([_bin(ctx), 'debug'] + args, input=stdin,
                          capture_output=True, timeout=30)


def test_debug_sigv4_cli_contract(ctx):
    creds = ['--access-key', 'AKIDEXAMPLE', '--secret-key', 'secret', '--region',
             'us-east-1', '--service', 'service', '--time', '20150830T123600Z']
    req = b'GET / HTTP/1.1\nHost:example.amazonaws.com\n'

    p = _run(ctx, ['--help'])
    assert p.returncode == 0 and b'debug sigv4' in p.stdout, p
    p = _run(ctx, ['sigv4', '--help'])
    assert p.returncode == 0 and b'--session-token' in p.stdout, p
    for bad in ([], ['nosuchtool'], ['sigv4', '--bogus'], ['sigv4'] + creds[:-2],
                ['sigv4'] + creds + ['--print', 'everything'],
                ['sigv4'] + creds[:-1] + ['2015-08-30T12:36:00Z'],
                ['sigv4'] + creds + ['extra']):
        p = _run(ctx, bad, req)
        assert p.returncode == 2, (bad, p)
        assert p.stdout == b'', (bad, p)

    # The suite's get-vanilla vector, end to end through the CLI.
    p = _run(ctx, ['sigv4'] + creds[:3] + ['wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY']
             + creds[4:], req)
    assert p.returncode == 0, p
    assert p.stdout == (
        b'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/'
        b'aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf19'
        b'42676e86291e8372ff2a2260956d9b8aae1d763fbf31\n'), p.stdout
    p = _run(ctx, ['sigv4'] + creds + ['--print', 'string-to-sign'], req)
    assert p.stdout.startswith(b'AWS4-HMAC-SHA256\n20150830T123600Z\n'
                               b'20150830/us-east-1/service/aws4_request\n'), p
    p = _run(ctx, ['sigv4'] + creds + ['--session-token', 'TOK', '--print',
                                       'canonical-request'], req)
    assert b'\nx-amz-security-token:TOK\n\nhost;x-amz-date;x-amz-security-token\n' \
        in p.stdout, p

    # Ceiling and malformed input: a clear error, exit 1, nothing on stdout.
    p = _run(ctx, ['sigv4'] + creds, req + b'\n' + b'x' * (1024 * 1024))
    assert p.returncode == 1 and p.stdout == b'' and b'larger than' in p.stderr, p
    p = _run(ctx, ['sigv4'] + creds, b'not a request\n')
    assert p.returncode == 1 and p.stdout == b'' and b'line 1' in p.stderr, p
    p = _run(ctx, ['sigv4'] + creds, req + b'X-Amz-Date: 20150830T000000Z\n')
    assert p.returncode == 1 and p.stdout == b'', p


if __name__ == '__main__':
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ctx = SimpleNamespace(root=root, bin=os.path.join(root, 'bin'))
    failed = 0
    for name, fn in sorted(globals().items()):
        if name.startswith('test_') and callable(fn):
            try:
                fn(ctx)
                print('ok   %s' % name)
            except AssertionError as e:
                failed += 1
                print('FAIL %s: %s' % (name, e))
    sys.exit(1 if failed else 0)
