"""Runs every test_* function of tests/integration/test_*.py (or those named on the command
line: module or module::function), one shared AWS emulator, and prints one line per test
and the summary "N passed, N failed" (", N skipped" when a test does not apply: run with
ELEVATE_TEST_STORE=pg, the brokers' store is PostgreSQL and SQLite-only tests skip)."""
import importlib.util
import os
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


def main(argv):
    want = argv[1:]
    tmp = tempfile.mkdtemp(prefix='elevate-emu-')
    emu = harness.Emulator(tmp).start()
    passed = failed = skipped = 0
    try:
        for name in sorted(os.listdir(HERE)):
            if not (name.startswith('test_') and name.endswith('.py')):
                continue
            mod_name = name[:-3]
            if want and not any(w == mod_name or w.startswith(mod_name + '::') for w in want):
                continue
            spec = importlib.util.spec_from_file_location(mod_name, os.path.join(HERE, name))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            for fn_name in sorted(n for n in dir(mod) if n.startswith('test_')):
                full = '%s::%s' % (mod_name, fn_name)
                if want and mod_name not in want and full not in want:
                    continue
                ctx = harness.Ctx(harness.ROOT, emu)
                t0 = time.time()
                try:
                    emu.release()
                    emu.faults()
                    emu.clock(0)
                    getattr(mod, fn_name)(ctx)
                    passed += 1
                    print('ok   %s (%.1fs)' % (full, time.time() - t0), flush=True)
                except harness.Skip as e:
                    skipped += 1
                    print('skip %s: %s' % (full, e), flush=True)
                except Exception:
                    failed += 1
                    print('FAIL %s (%.1fs)' % (full, time.time() - t0), flush=True)
                    for line in traceback.format_exc().splitlines():
                        print('     ' + line, flush=True)
                finally:
                    try:
                        emu.release()   # a held call must not stall the broker's shutdown
                    except Exception:  # noqa: BLE001
                        pass
                    ctx.cleanup()
    finally:
        emu.stop()
    if skipped:
        print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
    else:
        print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
