"""Fake python suite: 5 passed, 1 skipped, exit 0."""
print('ok   one')
print('5 passed, 0 failed, 1 skipped')
