"""The request state machine of docs/lifecycle.md, for tests: parse its `## Transitions`
table and check that a request's audit history is a path through it.

    table = load_table(ROOT)              # [(from, event, to, audit_event), ...]
    problems = check_history(records, table, final_state='ended')

`records` are audit records of ONE request in audit order (dicts with 'event' and 'data',
as harness.Broker.audit(rid) or the audit file give them). A transition record is one whose
data carries "from" and "to". Other records (request.created, request.approval, ...) change
no state and are ignored, unless they are named in the table's audit-event column, which
means a transition was recorded without its from/to.

"""
import os
import re


def load_table(root):
    """[(from, event, to, audit_event)] from the `## Transitions` table of root/docs/lifecycle.md."""
    path = os.path.join(root, 'docs', 'lifecycle.md')
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    rows, in_section, header = [], False, None
    for line in lines:
        if line.startswith('## '):
            if in_section and rows:
                break
            in_section = line.strip().lower() == '## transitions'
            continue
        if not in_section or not line.strip().startswith('|'):
            if in_section and rows and not line.strip():
                break                       # the first table of the section has ended
            continue
        cells = [c.strip().strip('`') for c in line.strip().strip('|').split('|')]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(re.fullmatch(r':?-+:?', c) for c in cells):
            continue
        if len(cells) != len(header):
            raise ValueError('%s: a row of the transitions table has %d cells, the header %d: %r'
                             % (path, len(cells), len(header), line))
        row = dict(zip(header, cells))
        try:
            rows.append((row['from'], row['event'], row['to'], row['audit event']))
        except KeyError as e:
            raise ValueError('%s: the transitions table has no column %s' % (path, e))
    if not rows:
        raise ValueError('%s: no "## Transitions" table found' % path)
    return rows


def _desc(rec):
    return '%s%s' % (rec.get('event'), ' (seq %s)' % rec['seq'] if 'seq' in rec else '')


def check_history(records, table, final_state=None, start='pending'):
    """Problems (strings) with the request's transition records; [] when they form a path
    through `table` from `start` (each transition recorded once) ending in `final_state`
    (when given)."""
    problems = []
    audit_events = {r[3] for r in table}
    by_from_to = {}
    for r in table:
        by_from_to.setdefault((r[0], r[2]), []).append(r)
    datas = [rec.get('data') if isinstance(rec.get('data'), dict) else {} for rec in records]
    state, seen = start, set()
    for rec, d in zip(records, datas):
        ev = rec.get('event')
        if 'from' in d and 'to' in d:
            frm, to = d['from'], d['to']
            rows = [r for r in by_from_to.get((frm, to), []) if r[3] == ev]
            if not rows:
                problems.append('%s: %s -> %s with audit event %s is not in the table'
                                % (_desc(rec), frm, to, ev))
            elif frm != state:
                problems.append('%s: from %s but the request was %s'
                                % (_desc(rec), frm, state))
            if rows:
                key = rows[0][:3]
                if key in seen:
                    problems.append('%s: transition %s --%s--> %s recorded twice'
                                    % ((_desc(rec),) + key))
                seen.add(key)
            state = to
        elif ev in audit_events:
            problems.append('%s: a transition event without from/to in its data'
                            % _desc(rec))
    if final_state is not None and state != final_state:
        problems.append('the recorded transitions end in %s, the request is %s'
                        % (state, final_state))
    return problems


if __name__ == '__main__':
    import json
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for row in load_table(root):
        print('%-10s --%s--> %-10s %s' % row)
    if len(sys.argv) > 1:                    # a JSON Lines audit file: check every request
        recs = {}
        for line in open(sys.argv[1]):
            r = json.loads(line)
            if r.get('request_id'):
                recs.setdefault(r['request_id'], []).append(r)
        for rid, rs in recs.items():
            for p in check_history(rs, load_table(root)):
                print('%s: %s' % (rid, p))
