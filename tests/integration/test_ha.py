"""Several elevated nodes on one PostgreSQL database (issue 12): any node serves any call,
and what one node knows (requests, nonces) every node knows."""
import base64
import os
import time

from harness import iso


def test_two_nodes_share_requests_and_nonces(ctx):
    """A request created through node A is read through node B; a signed call sent to A
    and replayed, byte for byte, to B is refused as a replay."""
    a, b = ctx.nodes(2)
    a.start()
    b.start()
    rid = a.request(reason='two nodes')['id']
    assert b.get(rid)['reason'] == 'two nodes'
    date = iso(time.time())
    nonce = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip('=')
    st, j = a.api('alice', 'GET', '/v1/requests/' + rid, date=date, nonce=nonce)
    assert st == 200, j
    st, j = b.api('alice', 'GET', '/v1/requests/' + rid, date=date, nonce=nonce)
    assert st == 401 and j['error']['code'] == 'replayed_nonce', (st, j)
