// Collects the process's unhandled promise rejections while one test runs (a default Node process
// exits with code 1 on the first): the test asserts the list stays empty.

/** The rejections nobody handled from now until the test ends (the listener goes at teardown). */
export function unhandledRejections(t: { teardown(fn: () => unknown): void }): unknown[] {
  const seen: unknown[] = [];
  const listener = (e: unknown): void => { seen.push(e); };
  process.on('unhandledRejection', listener);
  t.teardown(() => { process.off('unhandledRejection', listener); });
  return seen;
}
