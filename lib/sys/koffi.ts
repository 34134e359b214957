// koffi and libc, loaded on first use, never at import: importing any part of the SDK (the VFIO
// and vhost-user classes included) loads no native module and dlopens nothing; only a call that
// needs the operating system does. A sim: user therefore never loads koffi (test/sim/lazy-libc.test.ts).

import { createRequire } from 'node:module';
import type { IKoffiLib } from 'koffi';

/** The koffi module's API (its named exports). */
export type Koffi = typeof import('koffi');

let koffiModule: Koffi | undefined;
let libcLib: IKoffiLib | undefined;

/** koffi, required on the first call (a CommonJS native module, so synchronously through require). */
export function koffi(): Koffi {
  koffiModule ??= createRequire(import.meta.url)('koffi') as Koffi;
  return koffiModule;
}

/** libc.so.6 through koffi, dlopened on the first call; every later call gets the same library. */
export function libcLibrary(): IKoffiLib {
  libcLib ??= koffi().load('libc.so.6');
  return libcLib;
}

/**
 * `make()` on the first call of the returned function, its result after: the koffi function
 * declarations of one file, made when one of them is first needed.
 */
export function lazily<T>(make: () => T): () => T {
  let value: T | undefined;
  let made = false;
  return () => {
    if (!made) {
      value = make();
      made = true;
    }
    return value as T;
  };
}
