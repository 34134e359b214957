// Guest-side reporting: each result is one line "UVT <json>" on stdout, which the host test picks
// out of the VM's output (test/vm/vm-run.ts).

import { isUvirtioError } from '../../../lib/errors.js';

export function report(check: string, data: Record<string, unknown>): void {
  process.stdout.write(`UVT ${JSON.stringify({ check, ...data }, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}\n`);
}

/** Runs `fn` and reports the error it throws (code and message), or that it threw none. */
export function expectError(check: string, fn: () => unknown): void {
  try {
    fn();
    report(check, { threw: false });
  } catch (e) {
    report(check, isUvirtioError(e) ? { threw: true, code: e.code, message: e.message, hint: e.hint ?? null }
      : { threw: true, code: null, message: String(e) });
  }
}

/** expectError for an async operation; `extra` is merged into the report. */
export async function expectErrorAsync(check: string, fn: () => Promise<unknown>, extra: Record<string, unknown> = {}): Promise<void> {
  try {
    await fn();
    report(check, { ...extra, threw: false });
  } catch (e) {
    report(check, isUvirtioError(e) ? { ...extra, threw: true, code: e.code, message: e.message, hint: e.hint ?? null }
      : { ...extra, threw: true, code: null, message: String(e) });
  }
}

/** Runs a check; an unexpected throw is reported as the check's failure instead of ending the program. */
export async function step(check: string, fn: () => Promise<Record<string, unknown>> | Record<string, unknown>): Promise<void> {
  try {
    report(check, { ok: true, ...(await fn()) });
  } catch (e) {
    report(check, { ok: false, error: isUvirtioError(e) ? e.toLine() : String((e as Error)?.stack ?? e) });
  }
}
