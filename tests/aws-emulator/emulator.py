#!/usr/bin/python3
"""Local AWS emulator (STS, IAM, SSM, EC2) for elevate's integration tests.

    /usr/bin/python3 tests/aws-emulator/emulator.py --port 0 --state FILE.json --port-file PATH

Standard library + Debian's python3-botocore only.  Every request is SigV4
verified with botocore's own signer, validated against botocore's service
models and authorized with a small IAM policy evaluator.  An unsigned control
API under /_emulator/ lets tests inspect and steer it.  See README.md.
"""

import argparse
import base64
import calendar
import hashlib
import hmac
import json
import math
import os
import random
import re
import secrets
import signal
import string
import sys
import threading
import time
import traceback
import unicodedata
import uuid
import zlib
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape as _xesc

MAX_BODY = 1 << 20
MAX_PARAMS = 10000
DEFAULT_ACCOUNT = '111122223333'
DEFAULT_BROKER_KEY = 'AKIDBROKER0000000001'
DEFAULT_BROKER_SECRET = 'broker-secret-key-for-tests-only'
DEFAULT_BROKER_USER = 'elevate-broker'
DEFAULT_TRUST_ACTIONS = ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity']
DEFAULT_DOCUMENTS = [
    'SSM-SessionManagerRunShell', 'AWS-StartPortForwardingSession',
    'AWS-StartPortForwardingSessionToRemoteHost', 'AWS-StartSSHSession',
    'AWS-StartInteractiveCommand', 'AWS-StartNonInteractiveCommand',
]
ALLOW_ALL = {'Version': '2012-10-17',
             'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}
CHAIN_LIMIT = 3600

STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/'
IAM_NS = 'https://iam.amazonaws.com/doc/2010-05-08/'
EC2_NS = 'http://ec2.amazonaws.com/doc/2016-11-15/'
NAMESPACES = {'sts': STS_NS, 'iam': IAM_NS, 'ec2': EC2_NS}
SERVICES = {'sts': 'query', 'iam': 'query', 'ec2': 'ec2', 'ssm': 'json'}
UPPER_ALNUM = string.ascii_uppercase + string.digits
SIG_MISMATCH_MSG = ('The request signature we calculated does not match the signature you '
                    'provided. Check your AWS Secret Access Key and signing method. Consult '
                    'the service documentation for details.')
REDACT_KEYS = {'sessiontoken', 'secretaccesskey', 'tokenvalue', 'password', 'tokencode',
               'x-amz-security-token'}

# Logical error kind -> (HTTP status, code, default message), per protocol family.
KINDS = {
    'query': {
        'missing_auth': (403, 'MissingAuthenticationToken', 'Request is missing Authentication Token'),
        'incomplete_sig': (400, 'IncompleteSignature', 'Incomplete signature'),
        'unknown_key': (403, 'InvalidClientTokenId', 'The security token included in the request is invalid.'),
        'sig_mismatch': (403, 'SignatureDoesNotMatch', SIG_MISMATCH_MSG),
        'sig_expired': (403, 'SignatureDoesNotMatch', 'Signature expired'),
        'expired_token': (403, 'ExpiredToken', 'The security token included in the request is expired'),
        'access_denied': (403, 'AccessDenied', 'Access denied'),
        'validation': (400, 'ValidationError', 'Validation error'),
        'invalid_action': (400, 'InvalidAction', 'Invalid action'),
        'missing_action': (400, 'MissingAction', 'Missing Action'),
        'malformed': (400, 'MalformedQueryString', 'Malformed query string'),
        'throttle': (400, 'Throttling', 'Rate exceeded'),
        'internal': (500, 'InternalFailure', 'The request processing has failed because of an unknown error, exception or failure.'),
        'unavailable': (503, 'ServiceUnavailable', 'Service is unable to handle request.'),
        'too_large': (413, 'RequestEntityTooLarge', 'Request body must be at most 1048576 bytes'),
    },
    'ec2': {
        'missing_auth': (401, 'MissingAuthenticationToken', 'Request is missing Authentication Token'),
        'incomplete_sig': (400, 'IncompleteSignature', 'Incomplete signature'),
        'unknown_key': (401, 'AuthFailure', 'AWS was not able to validate the provided access credentials'),
        'sig_mismatch': (403, 'SignatureDoesNotMatch', SIG_MISMATCH_MSG),
        'sig_expired': (400, 'RequestExpired', 'Request has expired.'),
        'expired_token': (400, 'RequestExpired', 'Request has expired.'),
        'access_denied': (403, 'UnauthorizedOperation', 'You are not authorized to perform this operation.'),
        'validation': (400, 'InvalidParameterValue', 'Invalid parameter value'),
        'invalid_action': (400, 'InvalidAction', 'Invalid action'),
        'missing_action': (400, 'MissingAction', 'The request must contain the parameter Action'),
        'malformed': (400, 'MalformedQueryString', 'Malformed query string'),
        'throttle': (503, 'RequestLimitExceeded', 'Request limit exceeded.'),
        'internal': (500, 'InternalError', 'An internal error has occurred'),
        'unavailable': (503, 'Unavailable', "The server is overloaded and can't handle the request"),
        'too_large': (413, 'RequestEntityTooLarge', 'Request body must be at most 1048576 bytes'),
    },
    'json': {
        'missing_auth': (400, 'MissingAuthenticationTokenException', 'Missing Authentication Token'),
        'incomplete_sig': (400, 'IncompleteSignatureException', 'Incomplete signature'),
        'unknown_key': (400, 'UnrecognizedClientException', 'The security token included in the request is invalid.'),
        'sig_mismatch': (400, 'InvalidSignatureException', SIG_MISMATCH_MSG),
        'sig_expired': (400, 'InvalidSignatureException', 'Signature expired'),
        'expired_token': (400, 'ExpiredTokenException', 'The security token included in the request is expired'),
        'access_denied': (400, 'AccessDeniedException', 'Access denied'),
        'validation': (400, 'ValidationException', 'Validation error'),
        'invalid_action': (400, 'UnknownOperationException', 'Unknown operation'),
        'missing_action': (400, 'UnknownOperationException', 'Missing X-Amz-Target'),
        'malformed': (400, 'SerializationException', 'Malformed request body'),
        'throttle': (400, 'ThrottlingException', 'Rate exceeded'),
        'internal': (500, 'InternalServerError', 'An internal error occurred.'),
        'unavailable': (503, 'ServiceUnavailable', 'Service is unable to handle request.'),
        'too_large': (413, 'RequestEntityTooLarge', 'Request body must be at most 1048576 bytes'),
    },
    's3': {
        'missing_auth': (403, 'AccessDenied', 'Access Denied'),
        'incomplete_sig': (400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed'),
        'unknown_key': (403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'),
        'sig_mismatch': (403, 'SignatureDoesNotMatch', SIG_MISMATCH_MSG),
        'sig_expired': (403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.'),
        'expired_token': (400, 'ExpiredToken', 'The provided token has expired.'),
        'access_denied': (403, 'AccessDenied', 'Access Denied'),
        'validation': (400, 'InvalidArgument', 'Invalid Argument'),
        'invalid_action': (405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.'),
        'missing_action': (405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.'),
        'malformed': (400, 'InvalidRequest', 'Invalid Request'),
        'throttle': (503, 'SlowDown', 'Please reduce your request rate.'),
        'internal': (500, 'InternalError', 'We encountered an internal error. Please try again.'),
        'unavailable': (503, 'ServiceUnavailable', 'Please reduce your request rate.'),
        'too_large': (400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size'),
    },
}


# --------------------------------------------------------------------------- utilities

_out_lock = threading.Lock()
QUIET = False


def log(msg):
    if QUIET and not msg.startswith('!'):
        return
    with _out_lock:
        try:
            sys.stderr.write('[aws-emulator %s] %s\n' % (time.strftime('%H:%M:%S'), msg))
            sys.stderr.flush()
        except Exception:
            pass


def iso(ts, millis=False):
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    if millis:
        return dt.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (dt.microsecond // 1000)
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


def amz(ts):
    return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(ts))


def parse_date(v):
    """ISO 8601 (with or without zone, fractional seconds, date only) or epoch seconds."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if not isinstance(v, str):
        return None
    s = v.strip()
    if re.fullmatch(r'-?\d+(\.\d+)?', s):
        return float(s)
    try:
        if s.endswith(('Z', 'z')):
            s = s[:-1] + '+00:00'
        dt = datetime.fromisoformat(s)
    except ValueError:
        try:
            dt = datetime.strptime(v.strip(), '%Y%m%dT%H%M%SZ')
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def derived_id(prefix, name, n=17):
    d = hashlib.sha256(('elevate-emulator:' + name).encode()).digest()
    while len(d) < n:
        d += hashlib.sha256(d).digest()
    return prefix + ''.join(UPPER_ALNUM[b % 36] for b in d[:n])


def xe(v):
    return _xesc(str(v))


def x(tag, val):
    return '<%s>%s</%s>' % (tag, xe(val), tag)


def lcfirst(s):
    return s[:1].lower() + s[1:]


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def redact(obj):
    if isinstance(obj, dict):
        return {k: ('<redacted>' if str(k).lower() in REDACT_KEYS else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


class AwsError(Exception):
    """An AWS-shaped error.  kind is a key of KINDS or None with an explicit code/status."""

    def __init__(self, kind, message=None, code=None, status=None, service_error=False):
        super().__init__(message or kind or code)
        self.kind = kind
        self.message = message
        self.code = code
        self.status = status
        self.service_error = service_error

    def resolve(self, family):
        if self.kind:
            status, code, msg = KINDS[family][self.kind]
            return self.status or status, self.code or code, self.message or msg
        return self.status or 400, self.code, self.message or self.code


class ConfigError(Exception):
    pass


# --------------------------------------------------------------------------- botocore (lazy)

_boto_lock = threading.Lock()
_boto = {}


def boto_session():
    with _boto_lock:
        if 'session' not in _boto:
            import botocore.session
            _boto['session'] = botocore.session.get_session()
        return _boto['session']


def service_model(name):
    key = 'model:' + name
    m = _boto.get(key)
    if m is None:
        sess = boto_session()
        with _boto_lock:
            m = _boto.get(key)
            if m is None:
                m = sess.get_service_model(name)
                _boto[key] = m
    return m


def warm_botocore():
    try:
        t = time.time()
        import botocore.auth  # noqa: F401
        import botocore.awsrequest  # noqa: F401
        import botocore.credentials  # noqa: F401
        for s in ('sts', 'iam', 'ssm', 'ec2'):
            service_model(s)

        def walk(sh, depth=0):
            if depth > 8:
                return
            if 'pattern' in sh.metadata:
                py_pattern(sh.metadata['pattern'])
            for sub in getattr(sh, 'members', {}).values():
                walk(sub, depth + 1)
            for attr in ('member', 'key', 'value'):
                if hasattr(sh, attr):
                    walk(getattr(sh, attr), depth + 1)
        for svc, op in HANDLERS:
            ishape = service_model(svc).operation_model(op).input_shape
            if ishape is not None:
                walk(ishape)
        log('botocore %s models loaded in %.0f ms' % (sys.modules['botocore'].__version__, (time.time() - t) * 1000))
    except Exception:
        log('! failed to load botocore: ' + traceback.format_exc())


# --------------------------------------------------------------------------- model patterns

_pat_cache = {}
_ucls_cache = {}


def _unicode_class(cat):
    if cat not in _ucls_cache:
        ranges = []
        start = None
        for cp in range(0x10000):
            ok = 0xD800 > cp or cp > 0xDFFF
            ok = ok and unicodedata.category(chr(cp)).startswith(cat)
            if ok and start is None:
                start = cp
            elif not ok and start is not None:
                ranges.append((start, cp - 1))
                start = None
        if start is not None:
            ranges.append((start, 0xFFFF))
        out = ''.join('\\u%04x-\\u%04x' % (a, b) if a != b else '\\u%04x' % a for a, b in ranges)
        if cat == 'L':
            out += '\\U00010000-\\U0010FFFF'
        _ucls_cache[cat] = out
    return _ucls_cache[cat]


def py_pattern(p):
    """Translate a (Java-flavoured) model pattern into a compiled Python regex, or None."""
    if p in _pat_cache:
        return _pat_cache[p]
    q = p.replace('\\u10000-\\u10FFFF', '\\U00010000-\\U0010FFFF')
    if '\\p{' in q:
        q = re.sub(r'\\p\{(\w+)\}', lambda m: _unicode_class(m.group(1)[:1]), q)
    try:
        rx = re.compile(q, re.ASCII | re.DOTALL)
    except re.error as e:
        log('! model pattern %r not usable in Python (%s); not enforced' % (p, e))
        rx = None
    _pat_cache[p] = rx
    return rx


# --------------------------------------------------------------------------- state

class State:
    def __init__(self):
        self.lock = threading.RLock()
        self.log = []
        self.seq = 0
        self.clock_offset = 0.0
        self.skew_tolerance = 300.0
        self.set_faults({})
        self.load({})

    # time ------------------------------------------------------------------
    def now(self):
        return time.time() + self.clock_offset

    # configuration -----------------------------------------------------------
    def load(self, cfg):
        if not isinstance(cfg, dict):
            raise ConfigError('state must be a JSON object')
        account = str(cfg.get('account', DEFAULT_ACCOUNT))
        if not re.fullmatch(r'\d{12}', account):
            raise ConfigError('account must be 12 digits')
        b = cfg.get('broker') or {}
        if not isinstance(b, dict):
            raise ConfigError('broker must be an object')
        broker = {
            'access_key_id': str(b.get('access_key_id', DEFAULT_BROKER_KEY)),
            'secret_access_key': str(b.get('secret_access_key', DEFAULT_BROKER_SECRET)),
            'session_token': b.get('session_token'),
            'user_name': str(b.get('user_name', DEFAULT_BROKER_USER)),
            'policies': None,
        }
        if b.get('policies') is not None:
            broker['policies'] = self._policies_from_cfg(b['policies'], 'broker')
        roles_cfg = cfg.get('roles')
        if roles_cfg is None:
            roles_cfg = {n: {} for n in ('ProdReadOnly', 'ProdAdmin', 'Dev')}
        if not isinstance(roles_cfg, dict):
            raise ConfigError('roles must be an object {name: {...}}')
        inst_cfg = cfg.get('instances')
        if inst_cfg is None:
            inst_cfg = [{'id': 'i-0123456789abcdef0', 'tags': {'env': 'prod'}},
                        {'id': 'i-0fedcba9876543210', 'tags': {'env': 'dev'}}]
        if not isinstance(inst_cfg, list):
            raise ConfigError('instances must be a list')
        docs = cfg.get('documents', DEFAULT_DOCUMENTS)
        with self.lock:
            self.account = account
            self.broker = broker
            self.roles = {}
            for name, rc in roles_cfg.items():
                self.roles[name] = self.make_role(name, rc or {})
            self.instances = {}
            for ic in inst_cfg:
                inst = self.make_instance(ic)
                self.instances[inst['id']] = inst
            self.documents = list(docs)
            self.creds = {}
            self.sessions = {}
            self.signin_tokens = {}   # sign-in token -> {access_key_id, arn, issued, used}
            self.consoles = []        # console logins (Action=login accepted)
            self.s3 = {}   # (bucket, key) -> [versions], newest last
            self.clock_offset = float(cfg.get('clock_offset', 0) or 0)
            if 'skew_tolerance' in cfg:
                self.skew_tolerance = float(cfg['skew_tolerance'])

    def _policies_from_cfg(self, pols, owner):
        if not isinstance(pols, dict):
            raise ConfigError('%s: policies must be an object {name: document}' % owner)
        out = {}
        for pname, doc in pols.items():
            text = doc if isinstance(doc, str) else json.dumps(doc)
            try:
                parsed = parse_policy(text)
            except AwsError as e:
                raise ConfigError('%s: policy %s: %s' % (owner, pname, e.message))
            out[pname] = {'text': text, 'doc': parsed}
        return out

    def make_role(self, name, rc):
        if not isinstance(rc, dict):
            raise ConfigError('role %s must be an object' % name)
        if not re.fullmatch(r'[\w+=,.@-]{1,64}', name, re.ASCII):
            raise ConfigError('invalid role name %r' % name)
        pols = rc.get('policies')
        if pols is None:
            pols = {'base': ALLOW_ALL}
        path = rc.get('path', '/')
        if not (path.startswith('/') and path.endswith('/')):
            raise ConfigError('role path must start and end with /')
        return {
            'name': name,
            'role_id': rc.get('role_id') or derived_id('AROA', name),
            'path': path,
            'max_session_duration': int(rc.get('max_session_duration', 3600)),
            'trust': [str(t) for t in as_list(rc.get('trust', ['broker']))],
            'trust_actions': [str(t) for t in as_list(rc.get('trust_actions', DEFAULT_TRUST_ACTIONS))],
            'inline_policy_limit': int(rc.get('inline_policy_limit', 10240)),
            'policies': self._policies_from_cfg(pols, 'role ' + name),
            'create_date': time.time(),
        }

    def make_instance(self, ic):
        if isinstance(ic, str):
            ic = {'id': ic}
        if not isinstance(ic, dict) or not isinstance(ic.get('id'), str):
            raise ConfigError('instance must be an object with an "id"')
        tags = ic.get('tags') or {}
        if isinstance(tags, list):
            tags = {t['Key']: t['Value'] for t in tags}
        return {
            'id': ic['id'],
            'tags': {str(k): str(v) for k, v in tags.items()},
            'state': ic.get('state', 'running'),
            'ssm_online': bool(ic.get('ssm_online', True)),
            'instance_type': ic.get('instance_type', 't3.micro'),
            'platform': ic.get('platform', 'Linux/UNIX'),
        }

    def role_arn(self, role):
        return 'arn:aws:iam::%s:role%s%s' % (self.account, role['path'], role['name'])

    def broker_arn(self):
        return 'arn:aws:iam::%s:user/%s' % (self.account, self.broker['user_name'])

    def broker_user_id(self):
        return derived_id('AIDA', 'user:' + self.broker['user_name'])

    # faults --------------------------------------------------------------------
    def set_faults(self, f):
        if not isinstance(f, dict):
            raise ConfigError('faults must be a JSON object')
        faults = {
            'latency_ms': float(f.get('latency_ms', 0) or 0),
            'throttle_rate': float(f.get('throttle_rate', 0) or 0),
            'error_rate': float(f.get('error_rate', 0) or 0),
            'seed': f.get('seed'),
            'throttle_next': int(f.get('throttle_next', 0) or 0),
            'error_next': int(f.get('error_next', 0) or 0),
            'error_status': f.get('error_status'),
            'services': f.get('services'),
            'actions': f.get('actions'),
        }
        if faults['error_status'] not in (None, 500, 503):
            raise ConfigError('error_status must be 500, 503 or null')
        for k in ('services', 'actions'):
            if faults[k] is not None and not isinstance(faults[k], list):
                raise ConfigError('%s must be a list or null' % k)
        with self.lock:
            self.faults = faults
            self.rng = random.Random(faults['seed'])

    def fault_for(self, service, action):
        """Decide the fault for one request: (latency_s, 'throttle'|'internal'|'unavailable'|None)."""
        with self.lock:
            f = self.faults
            if f['services'] is not None and service not in f['services']:
                return 0.0, None
            if f['actions'] is not None and action not in f['actions']:
                return 0.0, None
            lat = f['latency_ms'] / 1000.0
            kind = None
            if f['throttle_next'] > 0:
                f['throttle_next'] -= 1
                kind = 'throttle'
            elif f['error_next'] > 0:
                f['error_next'] -= 1
                kind = 'error'
            elif f['throttle_rate'] > 0 and self.rng.random() < f['throttle_rate']:
                kind = 'throttle'
            elif f['error_rate'] > 0 and self.rng.random() < f['error_rate']:
                kind = 'error'
            if kind == 'error':
                st = f['error_status'] or self.rng.choice((500, 503))
                kind = 'internal' if st == 500 else 'unavailable'
            return lat, kind

    # request log ---------------------------------------------------------------
    def log_start(self, rid):
        with self.lock:
            self.seq += 1
            e = {'seq': self.seq, 'time': time.time(), 'service': None, 'action': None,
                 'access_key_id': None, 'principal': None, 'params': None, 'status': None,
                 'error_code': None, 'error_message': None, 'request_id': rid, 'region': None}
            self.log.append(e)
            return e

    # snapshots -------------------------------------------------------------------
    def snapshot(self):
        with self.lock:
            n = self.now()
            roles = {}
            for name, r in self.roles.items():
                roles[name] = {
                    'role_id': r['role_id'], 'arn': self.role_arn(r), 'path': r['path'],
                    'max_session_duration': r['max_session_duration'], 'trust': r['trust'],
                    'trust_actions': r['trust_actions'],
                    'inline_policy_limit': r['inline_policy_limit'],
                    'inline_policy_bytes': inline_size(r['policies']),
                    'policies': {p: v['doc'] for p, v in r['policies'].items()},
                }
            creds = [cred_public(c, n) for c in self.creds.values()]
            return {
                'account': self.account,
                'broker': {'access_key_id': self.broker['access_key_id'],
                           'arn': self.broker_arn(), 'user_id': self.broker_user_id(),
                           'policies': None if self.broker['policies'] is None else
                           {p: v['doc'] for p, v in self.broker['policies'].items()}},
                'roles': roles,
                'instances': list(self.instances.values()),
                'documents': self.documents,
                'credentials': creds,
                'sessions': [session_public(s) for s in self.sessions.values()],
                'consoles': [dict(c) for c in self.consoles],
                'clock_offset': self.clock_offset,
                'skew_tolerance': self.skew_tolerance,
                'now': n,
                'now_iso': iso(n, True),
                'faults': self.faults_public(),
            }

    def faults_public(self):
        with self.lock:
            return dict(self.faults)


# --------------------------------------------------------------------------- holds

DEFAULT_HOLD_TIMEOUT = 60.0


class Holds:
    """Requests held open just before their action runs, until a test releases them.

    POST /_emulator/hold arms a hold for the next `count` requests of an action; such a
    request blocks in its handler thread (the server is threaded, so everything else is
    still served) until POST /_emulator/release, POST /_emulator/reset or its own safety
    timeout lets it go.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.armed = []     # [{action, service, count, timeout}] in arming order
        self.calls = []     # held requests, oldest first
        self.ids = 0

    def arm(self, data):
        if not isinstance(data, dict):
            raise ConfigError('hold body must be a JSON object')
        action = data.get('action')
        if not isinstance(action, str) or not action:
            raise ConfigError('hold needs "action", e.g. "AssumeRole"')
        service = data.get('service')
        if service is not None and not isinstance(service, str):
            raise ConfigError('service must be a string or null')
        count = data.get('count', 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError('count must be an integer >= 1')
        timeout = data.get('timeout')
        timeout = DEFAULT_HOLD_TIMEOUT if timeout is None else float(timeout)
        if not timeout > 0 or math.isinf(timeout):
            raise ConfigError('timeout must be a positive number of seconds')
        with self.lock:
            self.armed.append({'action': action, 'service': service, 'count': count, 'timeout': timeout})

    def take(self, req):
        """Consume one matching arm for req; returns its held-call record or None."""
        with self.lock:
            for a in self.armed:
                if a['action'] == req.action and a['service'] in (None, req.service):
                    a['count'] -= 1
                    if a['count'] <= 0:
                        self.armed.remove(a)
                    self.ids += 1
                    call = {'id': self.ids, 'seq': req.entry['seq'], 'service': req.service,
                            'action': req.action, 'since': time.time(), 'timeout': a['timeout'],
                            'event': threading.Event()}
                    self.calls.append(call)
                    return call
        return None

    def wait(self, call):
        """Block until released; on the safety timeout release itself. True if released."""
        if call['event'].wait(call['timeout']):
            return True
        with self.lock:
            mine = [c for c in self.calls if c['id'] == call['id']]
            for c in mine:
                self.calls.remove(c)
        if mine:
            log('! hold: #%d %s %s not released within %gs; releasing it (safety timeout)'
                % (call['seq'], call['service'], call['action'], call['timeout']))
            return False
        return True     # released at the same moment

    def release(self, count=None):
        """Release the `count` oldest held requests, or all of them and disarm every hold."""
        with self.lock:
            if count is None:
                out, self.calls, self.armed = self.calls, [], []
            else:
                out, self.calls = self.calls[:count], self.calls[count:]
        for c in out:
            c['event'].set()
        return len(out)

    def status(self):
        with self.lock:
            return {'held': len(self.calls),
                    'armed': [dict(a) for a in self.armed],
                    'calls': [{k: c[k] for k in ('seq', 'service', 'action', 'since', 'timeout')}
                              for c in self.calls]}


H = Holds()


def cred_public(c, n):
    return {
        'access_key_id': c['access_key_id'], 'role': c['role'], 'role_id': c['role_id'],
        'session_name': c['session_name'], 'assumed_role_arn': c['arn'],
        'user_id': c['user_id'], 'source_identity': c['source_identity'], 'tags': c['tags'],
        'issued': c['issued'], 'issued_iso': iso(c['issued'], True),
        'expiration': c['expiration'], 'expiration_iso': iso(c['expiration']),
        'expired': n >= c['expiration'], 'duration_seconds': c['duration'],
        'session_policy': c['session_policy'], 'policy_arns': c['policy_arns'],
        'chained_from': c['chained_from'], 'issued_to': c['issued_to'],
    }


def session_public(s):
    out = {k: v for k, v in s.items() if k not in ('TokenValue',)}
    return out


def inline_size(policies):
    return sum(len(re.sub(r'\s', '', p['text'])) for p in policies.values())



# --------------------------------------------------------------------------- policies

def parse_policy(text):
    """Parse and structurally check a policy document; MalformedPolicyDocument on failure."""
    def bad(msg):
        return AwsError(None, msg, code='MalformedPolicyDocument', status=400)
    try:
        doc = json.loads(text)
    except (ValueError, TypeError):
        raise bad('Syntax errors in policy.')
    if not isinstance(doc, dict):
        raise bad('Syntax errors in policy.')
    ver = doc.get('Version')
    if ver is not None and ver not in ('2012-10-17', '2008-10-17'):
        raise bad('The policy failed legacy parsing')
    if 'Statement' not in doc:
        raise bad('Missing required field Statement')
    stmts = as_list(doc['Statement'])
    if not stmts:
        raise bad('Missing required field Statement')
    for st in stmts:
        if not isinstance(st, dict):
            raise bad('Syntax errors in policy.')
        eff = st.get('Effect')
        if eff not in ('Allow', 'Deny'):
            raise bad('Invalid effect: %s' % (eff,) if eff is not None else 'Missing required field Effect')
        if ('Action' in st) == ('NotAction' in st):
            raise bad('Policy statement must contain actions.' if 'Action' not in st
                      else 'Syntax errors in policy.')
        if ('Resource' in st) == ('NotResource' in st):
            raise bad('Policy statement must contain resources.' if 'Resource' not in st
                      else 'Syntax errors in policy.')
        for key in ('Action', 'NotAction', 'Resource', 'NotResource'):
            if key in st:
                vals = as_list(st[key])
                if not vals or not all(isinstance(v, str) for v in vals):
                    raise bad('Syntax errors in policy.')
                if key in ('Action', 'NotAction'):
                    for v in vals:
                        if v != '*' and ':' not in v:
                            raise bad('Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.')
        cond = st.get('Condition')
        if cond is not None:
            if not isinstance(cond, dict) or not all(isinstance(v, dict) for v in cond.values()):
                raise bad('Syntax errors in policy.')
        if 'Principal' in st or 'NotPrincipal' in st:
            raise bad('Policy document should not specify a principal.')
    return doc


_wild_cache = {}


def wild(pattern, value, ci):
    if not isinstance(pattern, str) or not isinstance(value, str):
        return False
    key = (pattern, ci)
    rx = _wild_cache.get(key)
    if rx is None:
        parts = []
        for ch in pattern:
            if ch == '*':
                parts.append('.*')
            elif ch == '?':
                parts.append('.')
            else:
                parts.append(re.escape(ch))
        rx = re.compile(''.join(parts), re.DOTALL | (re.IGNORECASE if ci else 0))
        if len(_wild_cache) < 10000:
            _wild_cache[key] = rx
    return rx.fullmatch(value) is not None


def ctx_str(v):
    if isinstance(v, float):
        return iso(v)
    return str(v)


def substitute(value, ctx):
    if not isinstance(value, str) or '${' not in value:
        return value

    def rep(m):
        k = m.group(1)
        if k in ('*', '?', '$'):
            return k
        v = ctx.get(k.lower())
        return ctx_str(v) if v is not None else m.group(0)
    return re.sub(r'\$\{([^}]+)\}', rep, value)


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _cmp_string(op):
    def f(c, v):
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            return False
        c, v = ctx_str(c), str(v)
        if op == 'eq':
            return c == v
        if op == 'eqi':
            return c.lower() == v.lower()
        return wild(v, c, False)
    return f


def _cmp_num(op):
    def f(c, v):
        a, b = _num(c), _num(v)
        if a is None or b is None:
            return False
        return {'eq': a == b, 'lt': a < b, 'le': a <= b, 'gt': a > b, 'ge': a >= b}[op]
    return f


def _cmp_date(op):
    def f(c, v):
        a, b = parse_date(c), parse_date(v)
        if a is None or b is None:
            return False
        return {'eq': a == b, 'lt': a < b, 'le': a <= b, 'gt': a > b, 'ge': a >= b}[op]
    return f


def _cmp_bool(c, v):
    return ctx_str(c).lower() == str(v).lower()


# operator -> (comparison, negated)
COND_OPS = {
    'StringEquals': (_cmp_string('eq'), False), 'StringNotEquals': (_cmp_string('eq'), True),
    'StringEqualsIgnoreCase': (_cmp_string('eqi'), False),
    'StringNotEqualsIgnoreCase': (_cmp_string('eqi'), True),
    'StringLike': (_cmp_string('like'), False), 'StringNotLike': (_cmp_string('like'), True),
    'ArnEquals': (_cmp_string('like'), False), 'ArnLike': (_cmp_string('like'), False),
    'ArnNotEquals': (_cmp_string('like'), True), 'ArnNotLike': (_cmp_string('like'), True),
    'NumericEquals': (_cmp_num('eq'), False), 'NumericNotEquals': (_cmp_num('eq'), True),
    'NumericLessThan': (_cmp_num('lt'), False), 'NumericLessThanEquals': (_cmp_num('le'), False),
    'NumericGreaterThan': (_cmp_num('gt'), False), 'NumericGreaterThanEquals': (_cmp_num('ge'), False),
    'DateEquals': (_cmp_date('eq'), False), 'DateNotEquals': (_cmp_date('eq'), True),
    'DateLessThan': (_cmp_date('lt'), False), 'DateLessThanEquals': (_cmp_date('le'), False),
    'DateGreaterThan': (_cmp_date('gt'), False), 'DateGreaterThanEquals': (_cmp_date('ge'), False),
    'Bool': (_cmp_bool, False),
}
_unknown_ops_logged = set()


def conditions_match(cond, ctx, variables):
    """All operators and keys must match (AND); values within one key are OR."""
    for op_full, kv in cond.items():
        if not isinstance(kv, dict):
            return False
        op = op_full
        set_op = None
        for pre in ('ForAnyValue:', 'ForAllValues:'):
            if op.startswith(pre):
                set_op = pre[:-1]
                op = op[len(pre):]
        if_exists = False
        if op.endswith('IfExists') and op != 'IfExists':
            if_exists = True
            op = op[:-len('IfExists')]
        if op == 'Null':
            for key, vals in kv.items():
                absent = ctx.get(key.lower()) is None
                if not any(absent == (str(v).lower() == 'true') for v in as_list(vals)):
                    return False
            continue
        spec = COND_OPS.get(op)
        if spec is None:
            if op_full not in _unknown_ops_logged:
                _unknown_ops_logged.add(op_full)
                log('! policy condition operator %r is not supported: treated as not matching' % op_full)
            return False
        fn, negated = spec
        for key, vals in kv.items():
            vals = as_list(vals)
            if variables and op.startswith(('String', 'Arn')):
                vals = [substitute(v, ctx) for v in vals]
            cv = ctx.get(key.lower())
            if cv is None:
                if if_exists or negated or set_op == 'ForAllValues':
                    continue
                return False
            cvs = cv if isinstance(cv, list) else [cv]
            if set_op == 'ForAllValues':
                hit = all(any(fn(c, v) for v in vals) for c in cvs)
            else:
                hit = any(fn(c, v) for c in cvs for v in vals)
            if negated:
                hit = not hit
            if not hit:
                return False
    return True


def statement_matches(st, action, resource, ctx, variables):
    if 'Action' in st:
        if not any(wild(a, action, True) for a in as_list(st['Action'])):
            return False
    elif 'NotAction' in st:
        if any(wild(a, action, True) for a in as_list(st['NotAction'])):
            return False
    else:
        return False

    def rmatch(p):
        if p == '*':
            return True
        if variables:
            p = substitute(p, ctx)
        return wild(p, resource, False)
    if 'Resource' in st:
        if not any(rmatch(p) for p in as_list(st['Resource'])):
            return False
    elif 'NotResource' in st:
        if any(rmatch(p) for p in as_list(st['NotResource'])):
            return False
    cond = st.get('Condition')
    if cond and not conditions_match(cond, ctx, variables):
        return False
    return True


def eval_policy(doc, action, resource, ctx):
    """'deny', 'allow' or None (no statement applies)."""
    if not isinstance(doc, dict):
        return None
    variables = doc.get('Version') == '2012-10-17'
    allowed = False
    for st in as_list(doc.get('Statement')):
        if not isinstance(st, dict):
            continue
        if not statement_matches(st, action, resource, ctx, variables):
            continue
        if st.get('Effect') == 'Deny':
            return 'deny'
        if st.get('Effect') == 'Allow':
            allowed = True
    return 'allow' if allowed else None


def eval_set(docs, action, resource, ctx):
    allowed = False
    for d in docs:
        r = eval_policy(d, action, resource, ctx)
        if r == 'deny':
            return 'deny'
        if r == 'allow':
            allowed = True
    return 'allow' if allowed else None


class Principal:
    def __init__(self, kind, access_key_id, arn, user_id, cred=None):
        self.kind = kind
        self.access_key_id = access_key_id
        self.arn = arn
        self.user_id = user_id
        self.cred = cred
        self.role_name = cred['role'] if cred else None
        self.session_name = cred['session_name'] if cred else S.broker['user_name']

    @property
    def label(self):
        return 'broker' if self.kind == 'broker' else self.arn


def principal_for_key(akid):
    """(Principal or None, secret, expected_token) under the state lock."""
    with S.lock:
        if akid == S.broker['access_key_id']:
            return (Principal('broker', akid, S.broker_arn(), S.broker_user_id()),
                    S.broker['secret_access_key'], S.broker['session_token'])
        c = S.creds.get(akid)
        if c:
            return Principal('session', akid, c['arn'], c['user_id'], c), c['secret'], c['token']
    return None, None, None


def base_context(pr, region):
    n = S.now()
    ctx = {'aws:currenttime': n, 'aws:epochtime': str(int(n)), 'aws:principalaccount': S.account,
           'aws:securetransport': 'true', 'aws:userid': pr.user_id,
           'aws:viaawsservice': 'false'}
    if region:
        ctx['aws:requestedregion'] = region
    if pr.kind == 'broker':
        ctx['aws:username'] = S.broker['user_name']
        ctx['aws:principalarn'] = pr.arn
        ctx['aws:principaltype'] = 'User'
    else:
        c = pr.cred
        role = S.roles.get(c['role'])
        ctx['aws:principalarn'] = S.role_arn(role) if role else c['role_arn']
        ctx['aws:principaltype'] = 'AssumedRole'
        ctx['aws:tokenissuetime'] = c['issued']
        if c['source_identity']:
            ctx['aws:sourceidentity'] = c['source_identity']
        for k, v in c['tags'].items():
            ctx['aws:principaltag/' + k.lower()] = v
    return ctx


def evaluate(pr, action, resources, extra=None, region=''):
    """(allowed, reason, denied_resource, decision)."""
    with S.lock:
        if pr.kind == 'broker':
            if S.broker['policies'] is None:
                return True, 'the broker is the admin principal', None, 'allow'
            ident = [p['doc'] for p in S.broker['policies'].values()]
            session = None
        else:
            role = S.roles.get(pr.role_name)
            ident = [p['doc'] for p in role['policies'].values()] if role else []
            session = pr.cred['session_policy']
        ctx = base_context(pr, region)
    for k, v in (extra or {}).items():
        ctx[k.lower()] = v
    for res in resources:
        idd = eval_set(ident, action, res, ctx)
        sd = eval_policy(session, action, res, ctx) if session is not None else 'allow'
        if idd == 'deny':
            return False, 'with an explicit deny in an identity-based policy', res, 'explicit_deny'
        if sd == 'deny':
            return False, 'with an explicit deny in a session policy', res, 'explicit_deny'
        if idd != 'allow':
            return False, 'because no identity-based policy allows the %s action' % action, res, 'implicit_deny'
        if sd != 'allow':
            return False, 'because no session policy allows the %s action' % action, res, 'implicit_deny'
    return True, 'allowed', None, 'allow'


def denied_message(pr, action, resource, reason, family):
    msg = 'User: %s is not authorized to perform: %s' % (pr.arn, action)
    if resource and resource != '*':
        msg += ' on resource: %s' % resource
    if reason:
        msg += ' ' + reason
    if family == 'ec2':
        msg = 'You are not authorized to perform this operation. ' + msg
    return msg


# --------------------------------------------------------------------------- SigV4

_verifier_cls = []


def _verifier():
    if not _verifier_cls:
        from botocore.auth import SigV4Auth
        from botocore.compat import HTTPHeaders

        class Verifier(SigV4Auth):
            """botocore's SigV4Auth, fed exactly the headers and query the request signed."""

            def __init__(self, creds, service, region, signed, src_headers, qparams):
                super().__init__(creds, service, region)
                self._signed = signed
                self._src = src_headers
                self._qparams = qparams

            def headers_to_sign(self, request):
                hm = HTTPHeaders()
                for name in self._signed:
                    for v in self._src.get_all(name) or []:
                        hm[name] = v
                return hm

            def canonical_query_string(self, request):
                if not self._qparams:
                    return ''
                return self._canonical_query_string_params(self._qparams)
        _verifier_cls.append(Verifier)
    return _verifier_cls[0]


def parse_authorization(value):
    if value is None:
        raise AwsError('missing_auth')
    v = value.strip()
    alg, _, rest = v.partition(' ')
    if alg != 'AWS4-HMAC-SHA256':
        raise AwsError('incomplete_sig', "Unsupported AWS 'algorithm': '%s'. Authorization=%s" % (alg, v))
    parts = {}
    for piece in rest.split(','):
        k, eq, val = piece.strip().partition('=')
        if eq:
            parts[k.strip()] = val.strip()
    missing = [m for m in ('Credential', 'SignedHeaders', 'Signature') if not parts.get(m)]
    if missing:
        raise AwsError('incomplete_sig', ' '.join("Authorization header requires '%s' parameter." % m
                                                 for m in missing) + ' Authorization=%s' % v)
    cred = parts['Credential'].split('/')
    if len(cred) != 5 or not all(cred):
        raise AwsError('incomplete_sig', "Credential must have exactly 5 slash-delimited elements, "
                       "e.g. keyid/date/region/service/term, got '%s'" % parts['Credential'])
    signed = [h.strip().lower() for h in parts['SignedHeaders'].split(';') if h.strip()]
    if not re.fullmatch(r'[0-9a-fA-F]{64}', parts['Signature']):
        raise AwsError('incomplete_sig', 'Signature must be 64 hex characters. Authorization=%s' % v)
    return {'access_key_id': cred[0], 'date': cred[1], 'region': cred[2], 'service': cred[3],
            'term': cred[4], 'signed_headers': signed, 'signature': parts['Signature'].lower(),
            'raw': v}


def canonical_query_pairs(query):
    pairs = []
    if query:
        for piece in query.split('&'):
            if piece == '':
                continue
            k, _, val = piece.partition('=')
            pairs.append((unquote(k), unquote(val)))
    return pairs


def verify_signature(method, raw_path, headers, body, auth, secret, amz_date):
    """(ok, canonical_request, string_to_sign)."""
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    path, _, query = raw_path.partition('?')
    Verifier = _verifier()
    v = Verifier(Credentials(auth['access_key_id'], secret), auth['service'], auth['region'],
                 auth['signed_headers'], headers, canonical_query_pairs(query))
    req = AWSRequest(method=method, url='http://emulator' + (path or '/'), data=body or b'')
    req.context['timestamp'] = amz_date
    cr = v.canonical_request(req)
    sts = v.string_to_sign(req, cr)
    sig = v.signature(sts, req)
    return hmac.compare_digest(sig, auth['signature']), cr, sts


# --------------------------------------------------------------------------- model-driven parsing

class TypeErr(Exception):
    def __init__(self, path, value, expected):
        super().__init__(path)
        self.path, self.value, self.expected = path, value, expected


def decode_query(flat, shape, ec2):
    """Inverse of botocore's Query/EC2 serializers: flat dict -> nested params."""
    consumed = set()
    keys = list(flat.keys())

    def sname(mshape, default):
        s = mshape.serialization
        if ec2:
            if 'queryName' in s:
                return s['queryName']
            if 'name' in s:
                return s['name'][:1].upper() + s['name'][1:]
            return default
        return s.get('name', default)

    def indexes(prefix):
        rx = re.compile(re.escape(prefix) + r'\.(\d+)(?:\.|$)')
        out = set()
        for k in keys:
            m = rx.match(k)
            if m:
                out.add(int(m.group(1)))
        return sorted(out)

    def dec(sh, prefix, depth):
        if depth > 12:
            return None
        t = sh.type_name
        if t == 'structure':
            out = {}
            for mname, msh in sh.members.items():
                key = sname(msh, mname)
                full = '%s.%s' % (prefix, key) if prefix else key
                val = dec(msh, full, depth + 1)
                if val is not None:
                    out[mname] = val
            return out if (out or not prefix) else None
        if t == 'list':
            empty = False
            if ec2:
                lp = prefix
            elif sh.serialization.get('flattened'):
                lp = prefix
                mn = sh.member.serialization.get('name')
                if mn:
                    lp = '.'.join(prefix.split('.')[:-1] + [mn])
            else:
                lp = '%s.%s' % (prefix, sh.member.serialization.get('name', 'member'))
            if flat.get(prefix) == '':
                consumed.add(prefix)
                empty = True
            idx = indexes(lp)
            if not idx:
                return [] if empty else None
            return [dec(sh.member, '%s.%d' % (lp, i), depth + 1) for i in idx]
        if t == 'map':
            mp = prefix if sh.serialization.get('flattened') else prefix + '.entry'
            ks = sname(sh.key, 'key') if not ec2 else sh.key.serialization.get('name', 'key')
            vs = sname(sh.value, 'value') if not ec2 else sh.value.serialization.get('name', 'value')
            idx = indexes(mp)
            if not idx:
                return None
            out = {}
            for i in idx:
                k = dec(sh.key, '%s.%d.%s' % (mp, i, ks), depth + 1)
                if k is not None:
                    out[k] = dec(sh.value, '%s.%d.%s' % (mp, i, vs), depth + 1)
            return out
        if prefix not in flat:
            return None
        consumed.add(prefix)
        raw = flat[prefix]
        if t in ('integer', 'long'):
            if not re.fullmatch(r'-?\d{1,19}', raw.strip()):
                raise TypeErr(prefix, raw, 'an integer')
            return int(raw)
        if t in ('float', 'double'):
            try:
                return float(raw)
            except ValueError:
                raise TypeErr(prefix, raw, 'a number')
        if t == 'boolean':
            if raw.lower() not in ('true', 'false'):
                raise TypeErr(prefix, raw, 'a boolean')
            return raw.lower() == 'true'
        if t == 'blob':
            try:
                return base64.b64decode(raw, validate=True)
            except Exception:
                raise TypeErr(prefix, raw, 'base64 data')
        return raw

    out = dec(shape, '', 0) if shape is not None else {}
    unknown = [k for k in keys if k not in consumed and k not in ('Action', 'Version')
               and not k.startswith('X-Amz-')]
    return out or {}, unknown


JSON_TYPE_NAMES = {str: 'STRING_VALUE', int: 'NUMBER_VALUE', float: 'NUMBER_VALUE',
                   bool: 'BOOLEAN_VALUE', list: 'START_ARRAY', dict: 'START_OBJECT'}


def check_json_types(sh, v, path='', depth=0):
    """Raise AwsError(SerializationException) on JSON type mismatches; drop nulls."""
    if depth > 12 or v is None:
        return v
    t = sh.type_name

    def bad(expected):
        got = JSON_TYPE_NAMES.get(type(v), 'VALUE')
        raise AwsError('malformed', '%s can not be converted to %s' % (got, expected))
    if t == 'structure':
        if not isinstance(v, dict):
            bad('a Structure')
        out = {}
        for k, val in v.items():
            if k in sh.members and val is not None:
                out[k] = check_json_types(sh.members[k], val, k, depth + 1)
        return out
    if t == 'list':
        if not isinstance(v, list):
            bad('a List')
        return [check_json_types(sh.member, i, path, depth + 1) for i in v]
    if t == 'map':
        if not isinstance(v, dict):
            bad('a Map')
        return {k: check_json_types(sh.value, val, path, depth + 1) for k, val in v.items()}
    if t == 'string':
        if not isinstance(v, str):
            bad('a String')
    elif t in ('integer', 'long'):
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                return int(v)
            bad('an Integer' if t == 'integer' else 'a Long')
    elif t in ('float', 'double'):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            bad('a Double')
    elif t == 'boolean':
        if not isinstance(v, bool):
            bad('a Boolean')
    elif t == 'timestamp':
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            bad('a Timestamp')
    return v


def _show(v):
    if isinstance(v, bytes):
        return "'<binary>'"
    if isinstance(v, bool):
        return "'%s'" % str(v).lower()
    if isinstance(v, (list, dict)):
        return "'%s'" % json.dumps(v)[:200]
    return "'%s'" % v


def validate_shape(sh, v, path, errors, depth=0):
    if depth > 12:
        return
    t = sh.type_name
    md = sh.metadata
    if t == 'structure':
        if not isinstance(v, dict):
            return
        for req in sh.required_members:
            if v.get(req) is None:
                p = '%s.%s' % (path, lcfirst(req)) if path else lcfirst(req)
                errors.append("Value null at '%s' failed to satisfy constraint: Member must not be null" % p)
        for name, val in v.items():
            if name in sh.members and val is not None:
                p = '%s.%s' % (path, lcfirst(name)) if path else lcfirst(name)
                validate_shape(sh.members[name], val, p, errors, depth + 1)
        return
    if t == 'list':
        if not isinstance(v, list):
            return
        if 'min' in md and len(v) < md['min']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must have length greater than or equal to %s" % (_show(v), path, md['min']))
        if 'max' in md and len(v) > md['max']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must have length less than or equal to %s" % (_show(v), path, md['max']))
        for i, item in enumerate(v, 1):
            if item is None:
                errors.append("Value null at '%s.%d.member' failed to satisfy constraint: Member must not be null" % (path, i))
            else:
                validate_shape(sh.member, item, '%s.%d.member' % (path, i), errors, depth + 1)
        return
    if t == 'map':
        if not isinstance(v, dict):
            return
        if 'min' in md and len(v) < md['min']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must have length greater than or equal to %s" % (_show(v), path, md['min']))
        if 'max' in md and len(v) > md['max']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must have length less than or equal to %s" % (_show(v), path, md['max']))
        for k, val in v.items():
            validate_shape(sh.key, k, '%s.%s.key' % (path, k), errors, depth + 1)
            if val is not None:
                validate_shape(sh.value, val, '%s.%s.member' % (path, k), errors, depth + 1)
        return
    if t == 'string' and isinstance(v, str):
        if 'min' in md and len(v) < md['min']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must have length greater than or equal to %s" % (_show(v), path, md['min']))
        if 'max' in md and len(v) > md['max']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must have length less than or equal to %s" % (_show(v), path, md['max']))
        if 'pattern' in md:
            rx = py_pattern(md['pattern'])
            if rx is not None and rx.fullmatch(v) is None:
                errors.append("Value %s at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: %s" % (_show(v), path, md['pattern']))
        if 'enum' in md and v not in md['enum']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must satisfy enum value set: [%s]" % (_show(v), path, ', '.join(md['enum'])))
        return
    if t in ('integer', 'long', 'float', 'double') and isinstance(v, (int, float)) and not isinstance(v, bool):
        if 'min' in md and v < md['min']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must have value greater than or equal to %s" % (_show(v), path, md['min']))
        if 'max' in md and v > md['max']:
            errors.append("Value %s at '%s' failed to satisfy constraint: Member must have value less than or equal to %s" % (_show(v), path, md['max']))


def validation_message(errors):
    n = len(errors)
    return '%d validation error%s detected: %s' % (n, '' if n == 1 else 's', '; '.join(errors))


# --------------------------------------------------------------------------- request context

class Req:
    def __init__(self, rid, entry):
        self.rid = rid
        self.entry = entry
        self.service = None
        self.family = 'query'
        self.action = None
        self.region = ''
        self.params = {}
        self.principal = None

    def authorize(self, action, resources, extra=None):
        ok, reason, res, _ = evaluate(self.principal, action, resources, extra, self.region)
        if not ok:
            raise AwsError('access_denied', denied_message(self.principal, action, res, reason, self.family))


def svc_error(code, message, status=400):
    return AwsError(None, message, code=code, status=status, service_error=True)


# --------------------------------------------------------------------------- STS

def random_secret(n=40):
    alphabet = string.ascii_letters + string.digits + '+/'
    return ''.join(secrets.choice(alphabet) for _ in range(n))


def sts_assume_role(req):
    p = req.params
    pr = req.principal
    role_arn = p['RoleArn']
    name = p['RoleSessionName']
    m = re.fullmatch(r'arn:aws:iam::(\d{12}):role(/(?:[^/]+/)*)([\w+=,.@-]+)', role_arn, re.ASCII)
    if not m:
        raise AwsError('validation', '%s is invalid' % role_arn)
    policy_text = p.get('Policy')
    session_policy = parse_policy(policy_text) if policy_text is not None else None
    tags_in = p.get('Tags') or []
    tags = {}
    lower = set()
    for t in tags_in:
        if t['Key'].lower() in lower:
            raise AwsError('validation', 'Duplicate tag keys found. Please note that Tag keys are case insensitive.')
        lower.add(t['Key'].lower())
        tags[t['Key']] = t['Value']
    source_identity = p.get('SourceIdentity')
    if source_identity is not None and source_identity.lower().startswith('aws:'):
        raise AwsError('validation', "1 validation error detected: Value '%s' at 'sourceIdentity' failed to satisfy constraint: Member must not begin with 'aws:'" % source_identity)

    with S.lock:
        role = S.roles.get(m.group(3))
        if m.group(1) != S.account or role is None or S.role_arn(role) != role_arn:
            role = None
        role = dict(role) if role else None
    deny = AwsError('access_denied', 'User: %s is not authorized to perform: sts:AssumeRole on resource: %s' % (pr.arn, role_arn))
    if role is None:
        raise deny
    if pr.kind == 'broker':
        trusted = any(t in ('broker', '*', pr.arn) for t in role['trust'])
    else:
        names = {pr.role_name, '*'}
        with S.lock:
            src_role = S.roles.get(pr.role_name)
            if src_role:
                names.add(S.role_arn(src_role))
        trusted = any(t in names for t in role['trust'])
    if not trusted or 'sts:AssumeRole' not in role['trust_actions']:
        raise deny
    req.authorize('sts:AssumeRole', [role_arn], {'sts:rolesessionname': name,
                                                 'sts:sourceidentity': source_identity})
    if tags:
        if 'sts:TagSession' not in role['trust_actions']:
            raise AwsError('access_denied', 'User: %s is not authorized to perform: sts:TagSession on resource: %s' % (pr.arn, role_arn))
        req.authorize('sts:TagSession', [role_arn])
    chained = pr.kind == 'session'
    if chained and source_identity is None:
        source_identity = pr.cred['source_identity']
    if p.get('SourceIdentity') is not None:
        if 'sts:SetSourceIdentity' not in role['trust_actions']:
            raise AwsError('access_denied', 'User: %s is not authorized to perform: sts:SetSourceIdentity on resource: %s' % (pr.arn, role_arn))
        req.authorize('sts:SetSourceIdentity', [role_arn])
    duration = p.get('DurationSeconds', 3600)
    if chained and duration > CHAIN_LIMIT:
        raise AwsError('validation', 'The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.')
    if duration > role['max_session_duration']:
        raise AwsError('validation', 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.')
    packed = None
    if session_policy is not None or tags:
        blob = (json.dumps(session_policy, separators=(',', ':')) if session_policy is not None else '')
        blob += ''.join('%s=%s;' % kv for kv in sorted(tags.items()))
        packed = max(1, math.ceil(100 * len(zlib.compress(blob.encode(), 9)) / 1024))
        if packed > 100:
            raise AwsError(None, 'Packed size of consumed session policies and session tags exceeds %d%% of limit.' % packed,
                           code='PackedPolicyTooLarge', status=400)
    n = S.now()
    akid = 'ASIA' + ''.join(secrets.choice(UPPER_ALNUM) for _ in range(16))
    secret = random_secret(40)
    token = base64.b64encode(b'\x21\x0a\x09' + b'origin_ec' + secrets.token_bytes(860)).decode()
    expiration = int(n) + duration
    cred = {
        'access_key_id': akid, 'secret': secret, 'token': token, 'role': role['name'],
        'role_id': role['role_id'], 'role_arn': role_arn, 'session_name': name,
        'arn': 'arn:aws:sts::%s:assumed-role/%s/%s' % (S.account, role['name'], name),
        'user_id': '%s:%s' % (role['role_id'], name), 'source_identity': source_identity,
        'tags': tags, 'issued': n, 'expiration': expiration, 'duration': duration,
        'session_policy': session_policy, 'policy_arns': [a['arn'] for a in (p.get('PolicyArns') or [])],
        'chained_from': pr.arn if chained else None, 'issued_to': pr.label,
    }
    if cred['policy_arns']:
        log('! AssumeRole PolicyArns are recorded but not evaluated (no managed policies): %s' % cred['policy_arns'])
    with S.lock:
        S.creds[akid] = cred
    req.entry['issued_access_key_id'] = akid
    out = ''
    if source_identity:
        out += x('SourceIdentity', source_identity)
    out += '<AssumedRoleUser>%s%s</AssumedRoleUser>' % (x('AssumedRoleId', cred['user_id']), x('Arn', cred['arn']))
    out += '<Credentials>%s%s%s%s</Credentials>' % (
        x('AccessKeyId', akid), x('SecretAccessKey', secret), x('SessionToken', token),
        x('Expiration', iso(expiration)))
    if packed is not None:
        out += x('PackedPolicySize', packed)
    return out


def sts_get_caller_identity(req):
    pr = req.principal
    return x('Arn', pr.arn) + x('UserId', pr.user_id) + x('Account', S.account)


# --------------------------------------------------------------------------- IAM

def _get_role(name):
    with S.lock:
        role = S.roles.get(name)
    if role is None:
        raise svc_error('NoSuchEntity', 'The role with name %s cannot be found.' % name, 404)
    return role


def trust_document(role):
    principals = []
    for t in role['trust']:
        if t == 'broker':
            principals.append(S.broker_arn())
        elif t == '*':
            principals.append('*')
        elif t.startswith('arn:'):
            principals.append(t)
        elif t in S.roles:
            principals.append(S.role_arn(S.roles[t]))
        else:
            principals.append('arn:aws:iam::%s:role/%s' % (S.account, t))
    doc = {'Version': '2012-10-17', 'Statement': []}
    if principals:
        doc['Statement'].append({'Effect': 'Allow',
                                 'Principal': {'AWS': principals[0] if len(principals) == 1 else principals},
                                 'Action': role['trust_actions']})
    return json.dumps(doc)


def iam_get_role(req):
    role = _get_role(req.params['RoleName'])
    arn = S.role_arn(role)
    req.authorize('iam:GetRole', [arn])
    with S.lock:
        doc = trust_document(role)
    return '<Role>%s%s%s%s%s%s%s%s</Role>' % (
        x('Path', role['path']), x('AssumeRolePolicyDocument', quote(doc, safe='')),
        x('MaxSessionDuration', role['max_session_duration']), x('RoleId', role['role_id']),
        '<RoleLastUsed/>', x('RoleName', role['name']), x('Arn', arn),
        x('CreateDate', iso(role['create_date'])))


def iam_put_role_policy(req):
    p = req.params
    role = _get_role(p['RoleName'])
    arn = S.role_arn(role)
    req.authorize('iam:PutRolePolicy', [arn])
    text = p['PolicyDocument']
    doc = parse_policy(text)
    with S.lock:
        role = S.roles.get(role['name'])
        if role is None:
            raise svc_error('NoSuchEntity', 'The role with name %s cannot be found.' % p['RoleName'], 404)
        new = dict(role['policies'])
        new[p['PolicyName']] = {'text': text, 'doc': doc}
        if inline_size(new) > role['inline_policy_limit']:
            raise svc_error('LimitExceeded', 'Maximum policy size of %d bytes exceeded for role %s'
                            % (role['inline_policy_limit'], role['name']), 409)
        role['policies'] = new
    return None


def iam_get_role_policy(req):
    p = req.params
    role = _get_role(p['RoleName'])
    req.authorize('iam:GetRolePolicy', [S.role_arn(role)])
    pol = role['policies'].get(p['PolicyName'])
    if pol is None:
        raise svc_error('NoSuchEntity', 'The role policy with name %s cannot be found.' % p['PolicyName'], 404)
    return x('RoleName', role['name']) + x('PolicyDocument', quote(pol['text'], safe='')) + x('PolicyName', p['PolicyName'])


def iam_delete_role_policy(req):
    p = req.params
    role = _get_role(p['RoleName'])
    req.authorize('iam:DeleteRolePolicy', [S.role_arn(role)])
    with S.lock:
        role = S.roles.get(role['name'])
        if role is None or p['PolicyName'] not in role['policies']:
            raise svc_error('NoSuchEntity', 'The role policy with name %s cannot be found.' % p['PolicyName'], 404)
        new = dict(role['policies'])
        del new[p['PolicyName']]
        role['policies'] = new
    return None


def iam_list_role_policies(req):
    p = req.params
    role = _get_role(p['RoleName'])
    req.authorize('iam:ListRolePolicies', [S.role_arn(role)])
    names = sorted(role['policies'].keys())
    start = 0
    if p.get('Marker') is not None:
        if not p['Marker'].isdigit():
            raise AwsError('validation', 'Invalid Marker.')
        start = int(p['Marker'])
    maxi = p.get('MaxItems', 100)
    page = names[start:start + maxi]
    more = start + maxi < len(names)
    out = '<PolicyNames>%s</PolicyNames>' % ''.join(x('member', n) for n in page)
    out += x('IsTruncated', 'true' if more else 'false')
    if more:
        out += x('Marker', str(start + maxi))
    return out


# --------------------------------------------------------------------------- SSM

def instance_arn(req, iid):
    return 'arn:aws:ec2:%s:%s:instance/%s' % (req.region, S.account, iid)


def document_arn(req, name):
    if name.startswith('arn:'):
        return name
    acct = '' if name.startswith('AWS-') else S.account
    return 'arn:aws:ssm:%s:%s:document/%s' % (req.region, acct, name)


def session_arn(req, sid):
    return 'arn:aws:ssm:%s:%s:session/%s' % (req.region, S.account, sid)


def stream_url(req, sid):
    return 'wss://ssmmessages.%s.amazonaws.com/v1/data-channel/%s?role=publish_subscribe' % (req.region, sid)


def ssm_start_session(req):
    p = req.params
    target = p['Target']
    doc = p.get('DocumentName')
    with S.lock:
        inst = S.instances.get(target)
        inst = dict(inst) if inst else None
        docs = list(S.documents)
    resources = [instance_arn(req, target)]
    if doc is not None:
        resources.append(document_arn(req, doc))
    extra = {}
    if inst:
        for k, v in inst['tags'].items():
            for pre in ('ssm:resourcetag/', 'aws:resourcetag/', 'ec2:resourcetag/'):
                extra[pre + k.lower()] = v
    req.authorize('ssm:StartSession', resources, extra)
    if doc is not None:
        dname = doc.split('document/', 1)[1] if doc.startswith('arn:') and 'document/' in doc else doc
        if dname not in docs:
            raise svc_error('InvalidDocument', 'Document with name %s does not exist.' % dname)
    if inst is None or inst['state'] != 'running' or not inst['ssm_online']:
        raise svc_error('TargetNotConnected', '%s is not connected.' % target)
    sid = '%s-%s' % (req.principal.session_name, secrets.token_hex(9)[:17])
    token = base64.b64encode(secrets.token_bytes(180)).decode()
    sess = {
        'SessionId': sid, 'Target': target, 'Status': 'Connected', 'StartDate': S.now(),
        'EndDate': None, 'DocumentName': doc or 'SSM-SessionManagerRunShell',
        'Owner': req.principal.arn, 'Reason': p.get('Reason'), 'Parameters': p.get('Parameters'),
        'access_key_id': req.principal.access_key_id, 'region': req.region, 'TokenValue': token,
    }
    with S.lock:
        S.sessions[sid] = sess
    return {'SessionId': sid, 'TokenValue': token, 'StreamUrl': stream_url(req, sid)}


def ssm_terminate_session(req):
    sid = req.params['SessionId']
    req.authorize('ssm:TerminateSession', [session_arn(req, sid)])
    with S.lock:
        s = S.sessions.get(sid)
        if s and s['Status'] not in ('Terminated', 'Failed'):
            s['Status'] = 'Terminated'
            s['EndDate'] = S.now()
    return {'SessionId': sid}


def ssm_resume_session(req):
    sid = req.params['SessionId']
    req.authorize('ssm:ResumeSession', [session_arn(req, sid)])
    with S.lock:
        s = S.sessions.get(sid)
        if s is None or s['Status'] in ('Terminated', 'Failed', 'Terminating'):
            raise svc_error('DoesNotExistException', 'Session with id %s does not exist or is not active.' % sid)
        token = base64.b64encode(secrets.token_bytes(180)).decode()
        s['TokenValue'] = token
        s['Status'] = 'Connected'
    return {'SessionId': sid, 'TokenValue': token, 'StreamUrl': stream_url(req, sid)}


ACTIVE_STATUSES = ('Connected', 'Connecting', 'Disconnected', 'Terminating')
HISTORY_STATUSES = ('Terminated', 'Failed')


def ssm_describe_sessions(req):
    p = req.params
    req.authorize('ssm:DescribeSessions', ['*'])
    statuses = ACTIVE_STATUSES if p['State'] == 'Active' else HISTORY_STATUSES
    filters = p.get('Filters') or []
    for f in filters:
        if f['key'] in ('InvokedAfter', 'InvokedBefore') and parse_date(f['value']) is None:
            raise AwsError('validation', "Invalid value '%s' for filter %s: expected a date like 2018-08-29T00:00:00Z" % (f['value'], f['key']))
    with S.lock:
        sessions = [dict(s) for s in S.sessions.values()]
    out = []
    for s in sessions:
        if s['Status'] not in statuses:
            continue
        ok = True
        for f in filters:
            k, v = f['key'], f['value']
            if k == 'Owner':
                ok = s['Owner'] == v
            elif k == 'Target':
                ok = s['Target'] == v
            elif k == 'SessionId':
                ok = s['SessionId'] == v
            elif k == 'Status':
                ok = s['Status'] == v
            elif k == 'InvokedAfter':
                ok = s['StartDate'] >= parse_date(v)
            elif k == 'InvokedBefore':
                ok = s['StartDate'] <= parse_date(v)
            else:
                raise svc_error('InvalidFilterKey', 'Unsupported filter key %s' % k)
            if not ok:
                break
        if ok:
            out.append(s)
    start = 0
    if p.get('NextToken'):
        try:
            start = int(base64.b64decode(p['NextToken'], validate=True).decode().split(':', 1)[1])
        except Exception:
            raise svc_error('InvalidNextToken', 'The specified token is not valid.')
    maxr = p.get('MaxResults', 20)
    page = out[start:start + maxr]
    res = {'Sessions': []}
    for s in page:
        item = {'SessionId': s['SessionId'], 'Target': s['Target'], 'Status': s['Status'],
                'StartDate': s['StartDate'], 'DocumentName': s['DocumentName'], 'Owner': s['Owner']}
        if s['EndDate'] is not None:
            item['EndDate'] = s['EndDate']
        if s['Reason']:
            item['Reason'] = s['Reason']
        res['Sessions'].append(item)
    if start + maxr < len(out):
        res['NextToken'] = base64.b64encode(('o:%d' % (start + maxr)).encode()).decode()
    return res


# --------------------------------------------------------------------------- EC2

INSTANCE_ID_RE = re.compile(r'i-[0-9a-f]{8}(?:[0-9a-f]{9})?')
STATE_CODES = {'pending': 0, 'running': 16, 'shutting-down': 32, 'terminated': 48,
               'stopping': 64, 'stopped': 80}


def ec2_describe_instances(req):
    p = req.params
    ok, reason, res, _ = evaluate(req.principal, 'ec2:DescribeInstances', ['*'], None, req.region)
    if p.get('DryRun'):
        if ok:
            raise AwsError(None, 'Request would have succeeded, but DryRun flag is set.', code='DryRunOperation', status=412)
    if not ok:
        raise AwsError('access_denied', denied_message(req.principal, 'ec2:DescribeInstances', res, reason, 'ec2'))
    ids = p.get('InstanceIds') or []
    for i in ids:
        if not INSTANCE_ID_RE.fullmatch(i):
            raise AwsError(None, 'Invalid id: "%s"' % i, code='InvalidInstanceID.Malformed', status=400)
    with S.lock:
        insts = [dict(i) for i in S.instances.values()]
    known = {i['id'] for i in insts}
    missing = [i for i in ids if i not in known]
    if missing:
        if len(missing) == 1:
            msg = "The instance ID '%s' does not exist" % missing[0]
        else:
            msg = "The instance IDs '%s' do not exist" % ', '.join(missing)
        raise AwsError(None, msg, code='InvalidInstanceID.NotFound', status=400)
    filters = p.get('Filters') or []
    for f in filters:
        name = f.get('Name')
        if not name:
            raise AwsError(None, 'The filter name must be specified', code='InvalidParameterValue', status=400)
        if not (name.startswith('tag:') or name in ('tag-key', 'tag-value', 'instance-id', 'instance-state-name', 'instance-type')):
            raise AwsError(None, "The filter '%s' is invalid" % name, code='InvalidParameterValue', status=400)

    def fmatch(vals, cand):
        return any(wild(v, c, False) for v in vals for c in cand)
    out = []
    for inst in insts:
        if ids and inst['id'] not in ids:
            continue
        ok = True
        for f in filters:
            name, vals = f['Name'], f.get('Values') or []
            if name.startswith('tag:'):
                key = name[4:]
                cand = [inst['tags'][key]] if key in inst['tags'] else []
            elif name == 'tag-key':
                cand = list(inst['tags'].keys())
            elif name == 'tag-value':
                cand = list(inst['tags'].values())
            elif name == 'instance-id':
                cand = [inst['id']]
            elif name == 'instance-state-name':
                cand = [inst['state']]
            else:
                cand = [inst['instance_type']]
            if not fmatch(vals, cand):
                ok = False
                break
        if ok:
            out.append(inst)
    items = []
    az = (req.region or 'us-east-1') + 'a'
    for inst in out:
        rid = 'r-' + hashlib.sha256(inst['id'].encode()).hexdigest()[:17]
        tags = ''.join('<item>%s%s</item>' % (x('key', k), x('value', v)) for k, v in inst['tags'].items())
        body = (x('instanceId', inst['id']) + x('imageId', 'ami-0abcdef1234567890') +
                '<instanceState>%s%s</instanceState>' % (x('code', STATE_CODES.get(inst['state'], 16)), x('name', inst['state'])) +
                x('privateDnsName', 'ip-10-0-0-1.ec2.internal') + x('instanceType', inst['instance_type']) +
                '<placement>%s</placement>' % x('availabilityZone', az) +
                x('platformDetails', inst['platform']) +
                ('<tagSet>%s</tagSet>' % tags if tags else '<tagSet/>'))
        items.append('<item>%s%s<groupSet/><instancesSet><item>%s</item></instancesSet></item>'
                     % (x('reservationId', rid), x('ownerId', S.account), body))
    rs = '<reservationSet>%s</reservationSet>' % ''.join(items) if items else '<reservationSet/>'
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="%s">%s%s</DescribeInstancesResponse>'
            % (EC2_NS, x('requestId', req.rid), rs))


def ec2_describe_regions(req):
    ok, reason, res, _ = evaluate(req.principal, 'ec2:DescribeRegions', ['*'], None, req.region)
    if req.params.get('DryRun') and ok:
        raise AwsError(None, 'Request would have succeeded, but DryRun flag is set.', code='DryRunOperation', status=412)
    if not ok:
        raise AwsError('access_denied', denied_message(req.principal, 'ec2:DescribeRegions', res, reason, 'ec2'))
    regions = ['ap-northeast-1', 'eu-west-1', 'us-east-1', 'us-west-2']
    items = ''.join('<item>%s%s%s</item>' % (x('regionName', r), x('regionEndpoint', 'ec2.%s.amazonaws.com' % r),
                                             x('optInStatus', 'opt-in-not-required')) for r in regions)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<DescribeRegionsResponse xmlns="%s">%s<regionInfo>%s</regionInfo></DescribeRegionsResponse>'
            % (EC2_NS, x('requestId', req.rid), items))


HANDLERS = {
    ('sts', 'AssumeRole'): sts_assume_role,
    ('sts', 'GetCallerIdentity'): sts_get_caller_identity,
    ('iam', 'GetRole'): iam_get_role,
    ('iam', 'PutRolePolicy'): iam_put_role_policy,
    ('iam', 'GetRolePolicy'): iam_get_role_policy,
    ('iam', 'DeleteRolePolicy'): iam_delete_role_policy,
    ('iam', 'ListRolePolicies'): iam_list_role_policies,
    ('ssm', 'StartSession'): ssm_start_session,
    ('ssm', 'TerminateSession'): ssm_terminate_session,
    ('ssm', 'DescribeSessions'): ssm_describe_sessions,
    ('ssm', 'ResumeSession'): ssm_resume_session,
    ('ec2', 'DescribeInstances'): ec2_describe_instances,
    ('ec2', 'DescribeRegions'): ec2_describe_regions,
}


# --------------------------------------------------------------------------- HTTP

class TooLarge(Exception):
    pass


class BadBody(Exception):
    pass


def guess_service(headers, flat):
    tgt = headers.get('X-Amz-Target') or ''
    if tgt.startswith('AmazonSSM.'):
        return 'ssm'
    host = (headers.get('Host') or '').lower()
    for s in SERVICES:
        if host.startswith(s + '.'):
            return s
    action = flat.get('Action') if flat else None
    if action:
        for s in ('sts', 'iam', 'ec2'):
            try:
                if action in service_model(s).operation_names:
                    return s
            except Exception:
                pass
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Headers and body leave in separate writes: without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every call.
    disable_nagle_algorithm = True
    server_version = 'aws-emulator/1.0'
    sys_version = ''
    timeout = 120

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        pass

    def log_error(self, fmt, *args):
        log('http: ' + (fmt % args))

    def date_time_string(self, timestamp=None):
        return formatdate(S.now() if timestamp is None else timestamp, usegmt=True)

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # plumbing ----------------------------------------------------------------
    def _read_body(self):
        te = (self.headers.get('Transfer-Encoding') or '').lower()
        if 'chunked' in te:
            data = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise BadBody('truncated chunked body')
                try:
                    size = int(line.split(b';')[0].strip(), 16)
                except ValueError:
                    raise BadBody('bad chunk size')
                if size == 0:
                    while True:
                        trailer = self.rfile.readline(8192)
                        if trailer in (b'\r\n', b'\n', b''):
                            break
                    return bytes(data)
                if len(data) + size > MAX_BODY:
                    raise TooLarge()
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise BadBody('truncated chunk')
                data += chunk
                self.rfile.readline(8)
        cl = self.headers.get('Content-Length')
        if cl is None:
            return b''
        try:
            n = int(cl.strip())
        except ValueError:
            raise BadBody('invalid Content-Length')
        if n < 0:
            raise BadBody('invalid Content-Length')
        if n > MAX_BODY:
            raise TooLarge()
        data = bytearray()
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                raise BadBody('truncated body')
            data += chunk
        return bytes(data)

    def _send(self, status, body, ctype, headers=()):
        if isinstance(body, str):
            body = body.encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _send_json(self, status, obj):
        self._send(status, json.dumps(obj, indent=1, default=str) + '\n', 'application/json')

    def _dispatch(self):
        try:
            path = self.path.split('?', 1)[0]
            if path == '/_emulator' or path.startswith('/_emulator/'):
                self._control()
            elif path == '/federation':
                self._federation()
            else:
                self._aws()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log('! unhandled error: ' + traceback.format_exc())
            self.close_connection = True
            try:
                self._send(500, '<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>'
                                '<Message>emulator crashed; see its stderr</Message></Error></ErrorResponse>',
                           'text/xml')
            except Exception:
                pass

    # AWS -----------------------------------------------------------------------
    def _aws(self):
        rid = str(uuid.uuid4())
        entry = S.log_start(rid)
        req = Req(rid, entry)
        t0 = time.time()
        status = 500
        code = None
        try:
            status, body, ctype, extra_headers = self._aws_inner(req)
        except AwsError as e:
            status, code, body, ctype, extra_headers = self._error_response(req, e)
        except Exception:
            log('! internal error handling %s %s: %s' % (req.service, req.action, traceback.format_exc()))
            status, code, body, ctype, extra_headers = self._error_response(req, AwsError('internal'))
        with S.lock:
            entry['status'] = status
            entry['error_code'] = code
            entry['duration_ms'] = round((time.time() - t0) * 1000, 1)
        log('#%d %s %s -> %d%s [%s%s] %.0fms' % (
            entry['seq'], req.service or '?', req.action or '?', status, (' ' + code) if code else '',
            entry['principal'] or 'anonymous',
            (': ' + entry['error_message'][:160]) if code and entry.get('error_message') else '',
            entry['duration_ms']))
        hdrs = [('x-amzn-RequestId', rid)] + list(extra_headers)
        self._send(status, body, ctype, hdrs)

    def _error_response(self, req, e):
        fam = req.family
        status, code, msg = e.resolve(fam)
        with S.lock:
            req.entry['error_message'] = msg
        if fam == 'json':
            key = 'Message' if e.service_error else 'message'
            body = json.dumps({'__type': 'com.amazonaws.ssm#' + code, key: msg})
            hdrs = [('x-amzn-ErrorType', '%s:http://internal.amazon.com/coral/com.amazonaws.ssm/' % code)]
            return status, code, body, 'application/x-amz-json-1.1', hdrs
        if fam == 's3':
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>%s%s%s</Error>'
                    % (x('Code', code), x('Message', msg), x('RequestId', req.rid)))
            return status, code, body, 'application/xml', [('x-amz-request-id', req.rid)]
        if fam == 'ec2':
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>%s%s</Error></Errors>%s</Response>'
                    % (x('Code', code), x('Message', msg), x('RequestID', req.rid)))
            return status, code, body, 'text/xml;charset=UTF-8', []
        ns = NAMESPACES.get(req.service, STS_NS)
        body = ('<ErrorResponse xmlns="%s">\n  <Error>\n    %s\n    %s\n    %s\n  </Error>\n  %s\n</ErrorResponse>\n'
                % (ns, x('Type', 'Sender' if status < 500 else 'Receiver'), x('Code', code), x('Message', msg),
                   x('RequestId', req.rid)))
        return status, code, body, 'text/xml', []

    def _aws_inner(self, req):
        entry = req.entry
        # 1. body ------------------------------------------------------------------
        try:
            body = self._read_body()
        except TooLarge:
            self.close_connection = True
            req.service = guess_service(self.headers, {})
            req.family = SERVICES.get(req.service, 'query')
            raise AwsError('too_large')
        except BadBody as e:
            self.close_connection = True
            req.service = guess_service(self.headers, {})
            req.family = SERVICES.get(req.service, 'query')
            raise AwsError('malformed', str(e))

        # 2. authorization header (errors deferred until after faults) -------------
        auth, auth_exc = None, None
        try:
            auth = parse_authorization(self.headers.get('Authorization'))
        except AwsError as e:
            auth_exc = e

        if auth and auth['service'] == 's3':
            return self._s3(req, auth, body)

        # 3. parameters --------------------------------------------------------------
        raw_path = self.path
        path, _, query = raw_path.partition('?')
        flat, parse_exc, json_params = {}, None, None
        is_json = (auth and auth['service'] == 'ssm') or (
            not auth and (self.headers.get('X-Amz-Target') or '').startswith('AmazonSSM.'))
        if is_json:
            try:
                json_params = json.loads(body.decode('utf-8')) if body.strip() else {}
                if not isinstance(json_params, dict):
                    raise ValueError('not an object')
            except (ValueError, UnicodeDecodeError):
                parse_exc = AwsError('malformed', 'Malformed JSON request body' if body.strip()[:1] in (b'{', b'[')
                                     else 'Start of structure or map found where not expected.')
                json_params = None
        else:
            try:
                pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMS,
                                  errors='strict')
                ctype = (self.headers.get('Content-Type') or '').split(';')[0].strip().lower()
                if body and ctype == 'application/x-www-form-urlencoded':
                    pairs += parse_qsl(body.decode('utf-8'), keep_blank_values=True,
                                       max_num_fields=MAX_PARAMS, errors='strict')
                for k, v in pairs:
                    flat.setdefault(k, v)
            except (ValueError, UnicodeDecodeError) as e:
                parse_exc = AwsError('malformed', 'Malformed query string: %s' % e)

        # 4. service / action -------------------------------------------------------------
        if auth:
            req.service = auth['service']
            req.region = auth['region']
        else:
            req.service = guess_service(self.headers, flat)
        req.family = SERVICES.get(req.service, 'query')
        if req.family == 'json':
            tgt = self.headers.get('X-Amz-Target') or ''
            req.action = tgt.split('.', 1)[1] if tgt.startswith('AmazonSSM.') else (tgt or None)
        else:
            req.action = flat.get('Action')
        with S.lock:
            entry['service'] = req.service
            entry['action'] = req.action
            entry['region'] = req.region or None
            entry['access_key_id'] = auth['access_key_id'] if auth else None
            if json_params is not None:
                entry['params'] = redact(json_params)
            else:
                entry['params'] = redact({k: v for k, v in flat.items() if k not in ('Action', 'Version')})

        # 5. faults ----------------------------------------------------------------------------
        lat, fault = S.fault_for(req.service, req.action)
        if lat > 0:
            time.sleep(lat)
        if fault:
            raise AwsError(fault)

        # 6. authentication -------------------------------------------------------------
        if auth_exc:
            raise auth_exc
        if req.service not in SERVICES:
            raise AwsError('invalid_action', "Service '%s' is not emulated here (emulated: sts, iam, ssm, ec2)" % req.service)
        pr = self._authenticate(req, auth, body, raw_path)
        req.principal = pr
        with S.lock:
            entry['principal'] = pr.label

        # 7. operation + parameters --------------------------------------------------------------
        if parse_exc:
            raise parse_exc
        model = service_model(req.service)
        if req.family == 'json':
            if not req.action:
                raise AwsError('missing_action')
            if req.action not in model.operation_names:
                raise AwsError('invalid_action', 'Unknown operation %s' % (self.headers.get('X-Amz-Target') or ''))
            op = model.operation_model(req.action)
            params = check_json_types(op.input_shape, json_params) if op.input_shape is not None else {}
        else:
            if not req.action:
                raise AwsError('missing_action')
            version = flat.get('Version')
            if req.action not in model.operation_names:
                raise AwsError('invalid_action', 'Could not find operation %s for version %s' % (req.action, version or 'NO_VERSION_SPECIFIED'))
            if version is None:
                raise AwsError(None, 'The request must contain the parameter Version', code='MissingParameter', status=400)
            if req.service != 'ec2' and version != model.metadata['apiVersion']:
                raise AwsError('invalid_action', 'Could not find operation %s for version %s' % (req.action, version))
            op = model.operation_model(req.action)
            try:
                params, unknown = decode_query(flat, op.input_shape, req.service == 'ec2')
            except TypeErr as e:
                raise AwsError('validation', "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must be %s"
                               % (e.value, lcfirst(e.path), e.expected))
            if unknown:
                if req.service == 'ec2':
                    raise AwsError(None, 'The parameter %s is not recognized' % unknown[0], code='UnknownParameter', status=400)
                log('note: ignoring unknown parameters %s for %s' % (unknown[:10], req.action))
                with S.lock:
                    entry['unknown_params'] = unknown[:50]
        with S.lock:
            entry['params'] = redact(params)
        errors = []
        if op.input_shape is not None:
            validate_shape(op.input_shape, params, '', errors)
        if errors:
            raise AwsError('validation', validation_message(errors))
        req.params = params

        # 8. dispatch; an armed hold (POST /_emulator/hold) blocks here, so the action runs ----
        #    at release time, on the emulator's clock at release time
        fn = HANDLERS.get((req.service, req.action))
        if fn is None:
            raise AwsError('invalid_action', 'The action %s is not emulated' % req.action)
        call = H.take(req)
        if call is not None:
            log('#%d %s %s held' % (entry['seq'], req.service, req.action))
            H.wait(call)
            with S.lock:
                entry['held_ms'] = round((time.time() - call['since']) * 1000, 1)
        result = fn(req)
        if req.family == 'json':
            return 200, json.dumps(result), 'application/x-amz-json-1.1', []
        if req.family == 'ec2':
            return 200, result, 'text/xml;charset=UTF-8', []
        ns = NAMESPACES[req.service]
        a = req.action
        out = '<%sResponse xmlns="%s">\n' % (a, ns)
        if result is not None:
            out += '  <%sResult>\n    %s\n  </%sResult>\n' % (a, result, a)
        out += '  <ResponseMetadata>\n    %s\n  </ResponseMetadata>\n</%sResponse>\n' % (x('RequestId', req.rid), a)
        return 200, out, 'text/xml', []

    def _s3(self, req, auth, body):
        """S3 path-style PutObject (Object Lock headers) and GetObject, SigV4 verified."""
        req.service, req.family, req.region = 's3', 's3', auth['region']
        path = self.path.partition('?')[0]
        bucket, _, key = path.lstrip('/').partition('/')
        bucket, key = unquote(bucket), unquote(key)
        req.action = {'PUT': 'PutObject', 'GET': 'GetObject'}.get(self.command)
        h = self.headers
        with S.lock:
            req.entry.update(service='s3', action=req.action, region=req.region or None,
                             access_key_id=auth['access_key_id'],
                             params={'Bucket': bucket, 'Key': key,
                                     'ObjectLockMode': h.get('x-amz-object-lock-mode'),
                                     'ObjectLockRetainUntilDate': h.get('x-amz-object-lock-retain-until-date'),
                                     'ContentMD5': h.get('Content-MD5')})
        lat, fault = S.fault_for('s3', req.action)
        if lat > 0:
            time.sleep(lat)
        if fault:
            raise AwsError(fault)
        pr = self._authenticate(req, auth, body, self.path)
        req.principal = pr
        with S.lock:
            req.entry['principal'] = pr.label
        if req.action is None:
            raise svc_error('MethodNotAllowed', 'The specified method is not allowed against this resource.', 405)
        if not re.fullmatch(r'[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]', bucket) or not key:
            raise svc_error('InvalidRequest', 'path-style /BUCKET/KEY expected')
        sha = h.get('x-amz-content-sha256')
        if sha is None:
            raise svc_error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256')
        if sha != hashlib.sha256(body).hexdigest():
            raise svc_error('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.")
        req.authorize('s3:' + req.action, ['arn:aws:s3:::%s/%s' % (bucket, key)])
        if req.action == 'GetObject':
            with S.lock:
                versions = S.s3.get((bucket, key))
            if not versions:
                raise svc_error('NoSuchKey', 'The specified key does not exist.', 404)
            v = versions[-1]
            return 200, v['body'], v['content_type'] or 'binary/octet-stream', [
                ('ETag', '"%s"' % v['etag']), ('x-amz-version-id', v['version_id']),
                ('x-amz-request-id', req.rid)]
        mode = h.get('x-amz-object-lock-mode')
        until = h.get('x-amz-object-lock-retain-until-date')
        md5 = h.get('Content-MD5')
        if (mode is None) != (until is None):
            raise svc_error('InvalidArgument', 'x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied')
        if mode is not None:
            if mode not in ('GOVERNANCE', 'COMPLIANCE'):
                raise svc_error('InvalidArgument', 'Unknown wormMode directive.')
            try:
                ts = parse_date(until)
            except Exception:
                ts = None
            if ts is None:
                raise svc_error('InvalidArgument', 'The retain until date must be in ISO 8601 format')
            if ts <= S.now():
                raise svc_error('InvalidArgument', 'The retain until date must be in the future!')
            if md5 is None:
                raise svc_error('InvalidRequest', 'Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters')
        digest = hashlib.md5(body).digest()
        if md5 is not None and md5.strip() != base64.b64encode(digest).decode():
            raise svc_error('BadDigest', 'The Content-MD5 you specified did not match what we received.')
        v = {'body': bytes(body), 'content_type': h.get('Content-Type'), 'etag': digest.hex(),
             'version_id': uuid.uuid4().hex, 'lock_mode': mode, 'retain_until': until,
             'stored': S.now()}
        with S.lock:
            S.s3.setdefault((bucket, key), []).append(v)
        return 200, b'', 'application/xml', [('ETag', '"%s"' % v['etag']),
                                             ('x-amz-version-id', v['version_id']),
                                             ('x-amz-request-id', req.rid)]

    def _authenticate(self, req, auth, body, raw_path):
        amz_date = self.headers.get('X-Amz-Date')
        if amz_date is None:
            raise AwsError('incomplete_sig', "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=%s" % auth['raw'])
        amz_date = amz_date.strip()
        try:
            ts = calendar.timegm(time.strptime(amz_date, '%Y%m%dT%H%M%SZ'))
        except ValueError:
            raise AwsError('incomplete_sig', "Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601" % amz_date)
        if auth['date'] != amz_date[:8]:
            raise AwsError('sig_mismatch', "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'." % (auth['date'], amz_date[:8], amz_date))
        if auth['term'] != 'aws4_request':
            raise AwsError('sig_mismatch', "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'." % auth['term'])
        if req.service == 'iam' and auth['region'] != 'us-east-1':
            raise AwsError('sig_mismatch', "Credential should be scoped to a valid region. ")
        if 'host' not in auth['signed_headers']:
            raise AwsError('incomplete_sig', "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        with S.lock:
            tol = S.skew_tolerance
            n = S.now()
        if tol is not None and tol >= 0:
            mins = '%g' % (tol / 60.0)
            if ts < n - tol:
                raise AwsError('sig_expired', 'Signature expired: %s is now earlier than %s (%s - %s min.)' % (amz_date, amz(n - tol), amz(n), mins))
            if ts > n + tol:
                raise AwsError('sig_expired', 'Signature not yet current: %s is still later than %s (%s + %s min.)' % (amz_date, amz(n + tol), amz(n), mins))
        pr, secret, token = principal_for_key(auth['access_key_id'])
        if pr is None:
            raise AwsError('unknown_key')
        sent_token = self.headers.get('X-Amz-Security-Token')
        if (token or None) != (sent_token.strip() if sent_token else None):
            raise AwsError('unknown_key')
        for h in auth['signed_headers']:
            if self.headers.get(h) is None:
                raise AwsError('sig_mismatch', SIG_MISMATCH_MSG)
        ok, cr, sts = verify_signature(self.command, raw_path, self.headers, body, auth, secret, amz_date)
        if not ok:
            with S.lock:
                req.entry['debug'] = {'canonical_request': cr, 'string_to_sign': sts}
            log('signature mismatch for %s; expected canonical request:\n%s\n--- string to sign:\n%s' % (auth['access_key_id'], cr, sts))
            raise AwsError('sig_mismatch')
        if pr.cred is not None and S.now() >= pr.cred['expiration']:
            raise AwsError('expired_token')
        return pr

    # console federation endpoint -------------------------------------------------------------
    def _federation(self):
        """signin.aws.amazon.com/federation: GET ?Action=getSigninToken&Session={"sessionId",
        "sessionKey","sessionToken"} answers {"SigninToken"} for valid, unexpired role
        credentials (a SessionDuration is refused: AWS takes none with role credentials);
        GET ?Action=login&Issuer&Destination&SigninToken redirects (302) to Destination
        while the token is unused and under 15 minutes old. Logged like the AWS calls
        (service "signin"), holdable by action; refusals answer a bare 400/403 like AWS."""
        rid = str(uuid.uuid4())
        entry = S.log_start(rid)
        req = Req(rid, entry)
        req.service = 'signin'
        t0 = time.time()
        status, body, hdrs = self._federation_inner(req)
        with S.lock:
            entry['status'] = status
            entry['duration_ms'] = round((time.time() - t0) * 1000, 1)
        log('#%d signin %s -> %d [%s]' % (entry['seq'], req.action or '?', status,
                                           entry['principal'] or 'anonymous'))
        self._send(status, body, 'application/json' if status == 200 else 'text/plain',
                   [('x-amzn-RequestId', rid)] + hdrs)

    def _federation_inner(self, req):
        if self.command != 'GET':
            return 405, 'GET only', []
        q = dict(parse_qsl(self.path.partition('?')[2], keep_blank_values=True))
        req.action = q.get('Action')
        with S.lock:
            req.entry['action'] = req.action
            req.entry['service'] = 'signin'
            req.entry['params'] = sorted(q)
        call = H.take(req)
        if call is not None:
            H.wait(call)
        if req.action == 'getSigninToken':
            if 'SessionDuration' in q:
                return 400, 'SessionDuration is not accepted with role credentials', []
            try:
                sess = json.loads(q.get('Session', ''))
                akid, key, token = sess['sessionId'], sess['sessionKey'], sess['sessionToken']
            except (ValueError, KeyError, TypeError):
                return 400, 'Session must be JSON with sessionId, sessionKey, sessionToken', []
            if set(sess) != {'sessionId', 'sessionKey', 'sessionToken'}:
                return 400, 'unexpected keys in Session', []
            pr, secret, expect = principal_for_key(akid)
            if pr is None or pr.kind != 'session' or secret != key or expect != token:
                return 403, 'invalid credentials', []
            with S.lock:
                req.entry['access_key_id'] = akid
                req.entry['principal'] = pr.arn
                if S.now() >= pr.cred['expiration']:
                    return 403, 'expired credentials', []
                t = secrets.token_urlsafe(48)
                S.signin_tokens[t] = {'access_key_id': akid, 'arn': pr.arn,
                                      'issued': S.now(), 'used': False}
            return 200, json.dumps({'SigninToken': t}), []
        if req.action == 'login':
            dest, issuer, t = q.get('Destination'), q.get('Issuer'), q.get('SigninToken')
            if not dest or not dest.startswith('https://') or not t or issuer is None:
                return 400, 'login needs Destination (https://), Issuer and SigninToken', []
            with S.lock:
                tok = S.signin_tokens.get(t)
                if tok is None or tok['used'] or S.now() - tok['issued'] > 900:
                    return 400, 'invalid or expired SigninToken', []
                tok['used'] = True
                req.entry['access_key_id'] = tok['access_key_id']
                req.entry['principal'] = tok['arn']
                S.consoles.append({'access_key_id': tok['access_key_id'], 'arn': tok['arn'],
                                   'destination': dest, 'issuer': issuer, 'time': S.now()})
            return 302, '', [('Location', dest)]
        return 400, 'Action must be getSigninToken or login', []

    # control API -------------------------------------------------------------------------------
    def _control(self):
        path, _, query = self.path.partition('?')
        parts = [unquote(p) for p in path.split('/') if p][1:]
        qs = dict(parse_qsl(query))
        method = self.command
        try:
            body = self._read_body()
        except TooLarge:
            self.close_connection = True
            return self._send_json(413, {'error': 'body too large'})
        except BadBody as e:
            self.close_connection = True
            return self._send_json(400, {'error': str(e)})
        data = None
        if method in ('POST', 'PUT', 'PATCH'):
            try:
                data = json.loads(body.decode('utf-8')) if body.strip() else {}
            except (ValueError, UnicodeDecodeError) as e:
                return self._send_json(400, {'error': 'invalid JSON: %s' % e})
        try:
            status, obj = self._control_route(method, parts, qs, data)
        except ConfigError as e:
            status, obj = 400, {'error': str(e)}
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            status, obj = 400, {'error': '%s: %s' % (type(e).__name__, e)}
        self._send_json(status, obj)

    def _control_route(self, method, parts, qs, data):
        what = parts[0] if parts else ''
        rest = parts[1:]
        if what in ('', 'health') and method in ('GET', 'HEAD'):
            return 200, {'ok': True, 'botocore_loaded': 'model:ec2' in _boto}
        if what == 'log':
            if method == 'GET':
                since = int(qs.get('since', 0) or 0)
                with S.lock:
                    entries = [dict(e) for e in S.log if e['seq'] > since]
                return 200, entries
            if method == 'DELETE':
                with S.lock:
                    S.log = []
                return 200, {'cleared': True}
        if what == 's3' and method == 'GET':
            with S.lock:
                return 200, [{'bucket': b, 'key': k, 'versions': [
                    {'body': v['body'].decode('utf-8', 'replace'), 'content_type': v['content_type'],
                     'lock_mode': v['lock_mode'], 'retain_until': v['retain_until'],
                     'version_id': v['version_id']} for v in vs]}
                    for (b, k), vs in sorted(S.s3.items())]
        if what == 'faults':
            if method == 'GET':
                return 200, S.faults_public()
            if method == 'POST':
                S.set_faults(data)
                return 200, S.faults_public()
        if what == 'clock':
            if method == 'POST':
                with S.lock:
                    if 'offset' in data:
                        S.clock_offset = float(data['offset'])
                    if 'advance' in data:
                        S.clock_offset += float(data['advance'])
                    if 'skew_tolerance' in data:
                        tol = data['skew_tolerance']
                        S.skew_tolerance = None if tol is None else float(tol)
            if method in ('GET', 'POST'):
                with S.lock:
                    n = S.now()
                    return 200, {'offset': S.clock_offset, 'now': n, 'now_iso': iso(n, True),
                                 'skew_tolerance': S.skew_tolerance}
        if what in ('state', 'reset'):
            if method == 'GET' and what == 'state':
                return 200, S.snapshot()
            if method == 'POST':
                S.load(data)
                S.set_faults({})
                H.release()
                with S.lock:
                    S.log = []
                return 200, S.snapshot()
        if what == 'roles':
            if method == 'POST':
                name = data['name']
                role = S.make_role(name, data)
                with S.lock:
                    S.roles[name] = role
                return 200, S.snapshot()['roles'][name]
            if method == 'DELETE' and rest:
                with S.lock:
                    existed = S.roles.pop(rest[0], None) is not None
                return (200 if existed else 404), {'deleted': existed}
            if method == 'GET':
                return 200, S.snapshot()['roles']
        if what == 'instances':
            if method == 'POST':
                items = data if isinstance(data, list) else [data]
                made = [S.make_instance(i) for i in items]
                with S.lock:
                    for inst in made:
                        S.instances[inst['id']] = inst
                    return 200, list(S.instances.values())
            if method == 'DELETE' and rest:
                with S.lock:
                    existed = S.instances.pop(rest[0], None) is not None
                return (200 if existed else 404), {'deleted': existed}
            if method == 'GET':
                with S.lock:
                    return 200, list(S.instances.values())
        if what == 'sessions':
            if method == 'GET':
                with S.lock:
                    return 200, [session_public(s) for s in S.sessions.values()]
            if method == 'POST':
                sid = data.get('session_id') or (rest[0] if rest else None)
                status = data['status']
                valid = ACTIVE_STATUSES + HISTORY_STATUSES
                if status not in valid:
                    return 400, {'error': 'status must be one of %s' % (valid,)}
                with S.lock:
                    s = S.sessions.get(sid)
                    if s is None:
                        return 404, {'error': 'no such session %s' % sid}
                    s['Status'] = status
                    if status in HISTORY_STATUSES and s['EndDate'] is None:
                        s['EndDate'] = S.now()
                    return 200, session_public(s)
        if what == 'hold':
            if method == 'POST':
                H.arm(data)
            if method in ('GET', 'POST'):
                return 200, H.status()
        if what == 'release' and method == 'POST':
            count = data.get('count') if isinstance(data, dict) else None
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
                raise ConfigError('count must be an integer >= 0 or null')
            n = H.release(count)
            return 200, dict(H.status(), released=n)
        if what == 'check' and method == 'POST':
            return self._control_check(data)
        return 404, {'error': 'unknown control endpoint %s %s' % (method, '/'.join(parts))}

    def _control_check(self, data):
        akid = data['access_key_id']
        action = data['action']
        resources = as_list(data.get('resource', '*'))
        pr, _, _ = principal_for_key(akid)
        if pr is None:
            return 404, {'allowed': False, 'reason': 'unknown access key %s' % akid, 'decision': 'unknown_key'}
        if pr.cred is not None and S.now() >= pr.cred['expiration']:
            return 200, {'allowed': False, 'reason': 'credentials expired at %s' % iso(pr.cred['expiration']),
                         'decision': 'expired', 'principal': pr.label}
        if action.lower() == 'sts:getcalleridentity':
            return 200, {'allowed': True, 'reason': 'sts:GetCallerIdentity is never denied by policy',
                         'decision': 'allow', 'principal': pr.label}
        ok, reason, res, decision = evaluate(pr, action, resources, data.get('context'), data.get('region', ''))
        msg = reason if ok else denied_message(pr, action, res, reason, 'query')
        return 200, {'allowed': ok, 'reason': msg, 'decision': decision, 'principal': pr.label}


S = State()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        log('! connection error from %s: %s' % (client_address, traceback.format_exc().strip().splitlines()[-1]))


def main(argv=None):
    global QUIET
    ap = argparse.ArgumentParser(description='AWS emulator (STS, IAM, SSM, EC2) for elevate tests')
    ap.add_argument('--port', type=int, default=0, help='TCP port on 127.0.0.1 (0 = random)')
    ap.add_argument('--host', default='127.0.0.1', help='bind address (default 127.0.0.1)')
    ap.add_argument('--state', help='initial state JSON file')
    ap.add_argument('--port-file', help='write the listening port here once listening')
    ap.add_argument('--quiet', action='store_true', help='log only problems to stderr')
    args = ap.parse_args(argv)
    QUIET = args.quiet

    if args.state:
        try:
            with open(args.state, encoding='utf-8') as f:
                S.load(json.load(f))
        except (OSError, ValueError, ConfigError) as e:
            log('! cannot load state %s: %s' % (args.state, e))
            return 2

    def on_signal(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        srv = Server((args.host, args.port), Handler)
    except OSError as e:
        log('! cannot listen on %s:%d: %s' % (args.host, args.port, e))
        return 2
    port = srv.server_address[1]
    threading.Thread(target=warm_botocore, name='warm-botocore', daemon=True).start()
    if args.port_file:
        tmp = args.port_file + '.tmp.%d' % os.getpid()
        with open(tmp, 'w') as f:
            f.write('%d\n' % port)
        os.replace(tmp, args.port_file)
    log('listening on http://%s:%d (account %s, broker key %s)' % (args.host, port, S.account, S.broker['access_key_id']))
    try:
        srv.serve_forever(poll_interval=0.25)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        srv.server_close()
        log('stopped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
