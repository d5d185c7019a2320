"""Fake python suite: one honest failure with a traceback, as tests/integration/run.py
prints it (the traceback indented five spaces), then 2 passed, 1 failed, exit 1."""
import sys
print('ok   one')
print('FAIL two (0.8s)')
print('     Traceback (most recent call last):')
for i in range(12):
    print('       File "x.py", line %d, in f%d' % (i, i))
print('     AssertionError: [0, 1, 2] the reason')
print('ok   three')
print('2 passed, 1 failed')
sys.exit(1)
