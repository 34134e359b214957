// A test that needs something from the system (a C compiler, python3, QEMU) skips with the reason
// when it is missing — except under UVIRTIO_REQUIRE_ALL=1 (CI), where the missing prerequisite is
// a failure, so a CI machine that lost a package cannot pass by skipping.
import t from 'tap';

export function prerequisite(missing: string | null | false | undefined): { skip: string | false } {
  if (!missing) return { skip: false };
  if (process.env.UVIRTIO_REQUIRE_ALL === '1') t.fail(`missing prerequisite with UVIRTIO_REQUIRE_ALL=1: ${missing}`);
  return { skip: missing };
}
