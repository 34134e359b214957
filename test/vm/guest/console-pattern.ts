// The byte streams both sides of the console VM test agree on (test/vm/console.test.ts and
// test/vm/guest/console-echo.ts): n bytes of a pattern that shifts with `seed`.

/** Bytes the guest writes to the host first. */
export const TO_HOST_BYTES = 64 * 1024;
/** Bytes the host sends to be echoed. */
export const ECHO_BYTES = 64 * 1024;
/** How many times the guest stops (quiesce) → snapshot → reinit while the host's bytes stream in. */
export const STOPS = 3;
/** In the guest's `cycles` mode: ms between one stop → resume and the next. */
export const CYCLE_MS = 40;
/** In that mode the host sends TRICKLE_BYTES in 512-byte writes, one every TRICKLE_MS. */
export const TRICKLE_BYTES = 192 * 1024;
export const TRICKLE_MS = 9;
/** The port's name (the virtserialport's `name=`). */
export const PORT_NAME = 'org.uvirtio.echo';

export function pattern(n: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed + (i >> 8)) & 0xff));
}
