// Everything that holds kernel resources (mappings, fds, DMA maps, interrupt waits) registers here,
// so that a process leaving by exit, SIGINT or SIGTERM still unmaps and closes in reverse order.
// The signal handlers are installed only while something is registered. They act only as the
// default action would — when the application has no handler of its own for that signal: then
// they close everything and re-raise the signal so the process ends the way it would have. An
// application that handles the signal itself (the uvirtio CLI does) keeps running and closes its
// devices in its own order; what it leaves open is closed at exit.

/** Something the teardown closes at exit or on a default-action signal. */
export interface Closable {
  /** Releases what it holds; must not throw for an already closed object. */
  close(): void;
}

const live = new Set<Closable>();
let installed = false;

function closeAll(): void {
  for (const c of [...live].reverse()) {
    live.delete(c);
    try {
      c.close();
    } catch {
      // Leaving anyway: the kernel releases what remains when the process ends.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  // Another listener means the application handles the signal: closing under it would pull
  // mappings out from under code that is still running.
  if (process.listenerCount(signal) > 1) return;
  closeAll();
  uninstall();
  process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', closeAll);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', closeAll);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

/** Closes `c` at process exit (and on SIGINT/SIGTERM when nobody else handles them) unless unregistered first. */
export function registerTeardown(c: Closable): void {
  live.add(c);
  install();
}

/** Forgets `c` (it closed itself); the handlers go when nothing is left registered. */
export function unregisterTeardown(c: Closable): void {
  live.delete(c);
  if (live.size === 0) uninstall();
}

/**
 * Runs every closing step even when one fails (a half-closed function leaks the rest), then
 * throws the first failure.
 */
export function runAllSteps(steps: readonly (() => void)[]): void {
  let first: unknown;
  for (const step of steps) {
    try {
      step();
    } catch (e) {
      first ??= e;
    }
  }
  if (first) throw first;
}
