// The Linux ioctl request encoding (include/uapi/asm-generic/ioctl.h, which x86_64 uses):
//   bits 0–7 number, 8–15 type, 16–29 argument size, 30–31 direction (0 none, 1 write, 2 read).
// Computed rather than hard-coded, so a request can be checked against its definition.

const NRBITS = 8;
const TYPEBITS = 8;
const SIZEBITS = 14;
const NRSHIFT = 0;
const TYPESHIFT = NRSHIFT + NRBITS;
const SIZESHIFT = TYPESHIFT + TYPEBITS;
const DIRSHIFT = SIZESHIFT + SIZEBITS;

export const IocDir = { NONE: 0, WRITE: 1, READ: 2 } as const;

function typeCode(type: string | number): number {
  const t = typeof type === 'string' ? type.charCodeAt(0) : type;
  if (!Number.isInteger(t) || t < 0 || t > 0xff) throw new RangeError(`ioctl type ${type} is not one byte`);
  return t;
}

export function ioc(dir: number, type: string | number, nr: number, size: number): number {
  if (nr < 0 || nr > 0xff) throw new RangeError(`ioctl number ${nr} is not one byte`);
  if (size < 0 || size >= 1 << SIZEBITS) throw new RangeError(`ioctl size ${size} does not fit in ${SIZEBITS} bits`);
  // `>>> 0` keeps the result an unsigned 32-bit number (direction READ sets bit 31).
  return ((dir << DIRSHIFT) | (typeCode(type) << TYPESHIFT) | (nr << NRSHIFT) | (size << SIZESHIFT)) >>> 0;
}

export const IO = (type: string | number, nr: number): number => ioc(IocDir.NONE, type, nr, 0);
export const IOR = (type: string | number, nr: number, size: number): number => ioc(IocDir.READ, type, nr, size);
export const IOW = (type: string | number, nr: number, size: number): number => ioc(IocDir.WRITE, type, nr, size);
export const IOWR = (type: string | number, nr: number, size: number): number =>
  ioc(IocDir.READ | IocDir.WRITE, type, nr, size);
