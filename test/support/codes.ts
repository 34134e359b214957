// What a test asserts about a failure: the stable error code ('no error' when there was none, and
// 'foreign: …' for an error that is not a UvirtioError — which is itself a bug).
import { UvirtioError } from '../../lib/errors.js';

function codeOfError(e: unknown): string {
  return e instanceof UvirtioError ? e.code : `foreign: ${String(e)}`;
}

/** The code a call throws. */
export function codeOf(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (e) {
    return codeOfError(e);
  }
}

/** The code a promise (or a call returning one) rejects with. */
export async function codeOfAsync(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'no error';
  } catch (e) {
    return codeOfError(e);
  }
}

/** How `p` settles within `ms`: 'ok', its UvirtioError code, 'foreign: …', or 'HANG' when it does not settle in time. */
export async function settledCode(p: Promise<unknown>, ms = 10_000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<string>((r) => (timer = setTimeout(() => r('HANG'), ms)));
  try {
    return await Promise.race([p.then(() => 'ok', codeOfError), hang]);
  } finally {
    clearTimeout(timer);
  }
}
