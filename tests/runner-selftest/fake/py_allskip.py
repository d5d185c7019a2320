"""Fake python suite: skipped everything, exit 0."""
print('0 passed, 0 failed, 2 skipped')
