#!/usr/bin/python3
"""A generic-webhook receiver for make demo-flows, on 127.0.0.1: checks each delivery the
way docs/webhooks.md tells receivers to (HMAC-SHA256 over TIMESTAMP "." BODY with the shared
key, a timestamp within 5 minutes, the delivery id seen once) and appends one line per
delivery to LOG: "ok|BAD|DUPLICATE delivery_id event request_id".
Usage: demo-webhook-rx.py PORT KEY_FILE LOG"""
import hashlib
import hmac
import http.server
import json
import sys
import time

PORT, KEY_FILE, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
KEY = open(KEY_FILE, 'rb').read().rstrip(b'\n')
seen = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(min(n, 1 << 20))
        ts = self.headers.get('X-Elevate-Timestamp', '')
        want = 'v1=' + hmac.new(KEY, ts.encode() + b'.' + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, self.headers.get('X-Elevate-Signature', '')) and \
            ts.isdigit() and abs(int(ts) - time.time()) < 300
        doc = json.loads(body) if ok else {}
        did = doc.get('delivery_id', '?')
        verdict = 'BAD' if not ok else 'DUPLICATE' if did in seen else 'ok'
        seen.add(did)
        with open(LOG, 'a') as f:
            f.write('%s %s %s %s\n' % (verdict, did, doc.get('event', '?'),
                                       doc.get('request_id') or '-'))
        self.send_response(200 if ok else 401)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *a):
        pass


http.server.ThreadingHTTPServer(('127.0.0.1', PORT), Handler).serve_forever()
