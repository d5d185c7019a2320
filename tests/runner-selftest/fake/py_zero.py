"""Fake python suite: ran nothing, exit 0."""
print('0 passed, 0 failed')
