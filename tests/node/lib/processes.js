// Processes and directories the tests start and make: whatever is still there when the test
// process exits (a test failed, or it was stopped by SIGINT/SIGTERM) is killed or removed.
import { rmSync } from 'node:fs';

const running = new Set();
const directories = new Set();

process.on('exit', () => {
  for (const proc of running) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
});
// Stopped by a signal, the test process still leaves through `exit`, so the hook above runs.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(signal, () => process.exit(code));
}

/** Has `proc` (a ChildProcess) SIGKILLed when the test process exits, if it still runs then. */
export function killOnExit(proc) {
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  return proc;
}

/** Has `dir` removed when the test process exits (unless `removeNow` removed it before). */
export function removeOnExit(dir) {
  directories.add(dir);
  return dir;
}

/** Removes `dir` now (and forgets it). */
export function removeNow(dir) {
  rmSync(dir, { recursive: true, force: true });
  directories.delete(dir);
}
