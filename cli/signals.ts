// SIGINT and SIGTERM, for every `uvirtio` command and for the session agent.
//
//   first signal   `interruption()` aborts with an InterruptedError (E_INTERRUPTED). Every wait in
//                  cli/ is bounded() (wait.ts), so it rejects at once; the command unwinds through
//                  its `finally` blocks, which close its devices (a close resets the device) and
//                  remove what it created, and exits 130 (SIGINT) or 143 (SIGTERM). Hooks added with
//                  onInterrupt() run too (the agent's shutdown). A hard deadline ends the process
//                  with that status should the teardown not end in time: exiting closes every
//                  descriptor, and then the kernel (VFIO) or the back-end (vhost-user) resets the
//                  device — it is never left half-set.
//   second signal  exit at once, with the same status.
//
// A JavaScript signal handler runs on the event loop: a process blocked in a synchronous system
// call (today: vhost-user's reply poll, up to its reply timeout) sees the signal when that call
// returns.

import { UvirtioError } from '../lib/errors.js';
import { thrownMessage } from '../lib/util/shown.js';

export type StopSignal = 'SIGINT' | 'SIGTERM';

/** The status a shell reports for a process ended by the signal: 128 + its number. */
export const SIGNAL_STATUS: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };

/** After the first signal, the teardown has this long before the process exits regardless. */
export const TEARDOWN_DEADLINE_MS = 1500;

/** What a wait rejects with once a signal came. */
export class InterruptedError extends UvirtioError {
  /**
   * `meanwhile`: an error the command ended with after the signal came, before it was handled.
   * `hint`: what became of the work, where it is not this process's own (a session agent's).
   */
  constructor(readonly signal: StopSignal, meanwhile?: unknown, hint = 'what was running was abandoned and its devices closed (a close resets the device); a snapshot file is complete or absent') {
    const also = meanwhile instanceof UvirtioError ? `; meanwhile ${meanwhile.code}: ${meanwhile.message}` : meanwhile ? `; meanwhile: ${thrownMessage(meanwhile)}` : '';
    super('E_INTERRUPTED', `interrupted by ${signal}${also}`, hint);
  }
  get status(): number {
    return SIGNAL_STATUS[this.signal];
  }
}

const controller = new AbortController();
const hooks = new Set<() => unknown>();
let received: StopSignal | undefined;
let installed = false;

/** Aborts with an InterruptedError at the first SIGINT or SIGTERM. */
export function interruption(): AbortSignal {
  return controller.signal;
}

/** 130 or 143 once a signal came, else undefined. */
export function signalStatus(): number | undefined {
  return received ? SIGNAL_STATUS[received] : undefined;
}

/** Throws the InterruptedError if a signal came: a step about to start does not. */
export function throwIfInterrupted(): void {
  if (controller.signal.aborted) throw controller.signal.reason as InterruptedError;
}

/** Runs `hook` at the first signal (the agent's shutdown). Returns a function that removes it. */
export function onInterrupt(hook: () => unknown): () => void {
  hooks.add(hook);
  return () => hooks.delete(hook);
}

function line(text: string): void {
  try {
    process.stderr.write(`uvirtio: ${text}\n`);
  } catch {
    // stderr is gone (a closed pipe): the status still tells
  }
}

function onSignal(signal: StopSignal): void {
  if (received) {
    line(`E_INTERRUPTED: second ${signal}: exiting at once (hint: the device is reset when this process's descriptors close)`);
    process.exit(SIGNAL_STATUS[received]);
  }
  received = signal;
  const status = SIGNAL_STATUS[signal];
  // Not unref()'d: the deadline must fire even if the teardown leaves nothing else on the loop.
  setTimeout(() => {
    line(`E_INTERRUPTED: interrupted by ${signal}; the teardown did not end within ${TEARDOWN_DEADLINE_MS} ms, exiting anyway (hint: the device is reset when this process's descriptors close)`);
    process.exit(status);
  }, TEARDOWN_DEADLINE_MS);
  controller.abort(new InterruptedError(signal));
  for (const hook of hooks) {
    try {
      void Promise.resolve(hook()).catch(() => undefined);
    } catch {
      // a hook that throws does not keep the others from running
    }
  }
}

/** Installs the handlers once per process; as early as possible (bin/uvirtio.js). */
export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}
