"""Fake python suite: says 0 failed, exits 1."""
import sys
print('3 passed, 0 failed')
sys.exit(1)
