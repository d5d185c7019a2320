"""Fake python suite: dies of SIGABRT before its summary."""
import os
print('ok   one', flush=True)
os.abort()
