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

/** The direction bits of a request, as seen from user space (asm-generic/ioctl.h _IOC_*). */
export const IocDir = {
  /** No argument data. */
  NONE: 0,
  /** The kernel reads the argument (_IOW). */
  WRITE: 1,
  /** The kernel writes the argument (_IOR). */
  READ: 2,
} as const;

function typeCode(type: string | number): number {
  const t = typeof type === 'string' ? type.charCodeAt(0) : type;
  if (!Number.isInteger(t) || t < 0 || t > 0xff) throw new RangeError(`ioctl type ${type} is not one byte`);
  return t;
}

/**
 * _IOC(dir, type, nr, size): the request number, as an unsigned 32-bit number.
 * @throws RangeError when type or nr is not one byte or size does not fit in 14 bits.
 */
export function ioc(dir: number, type: string | number, nr: number, size: number): number {
  if (nr < 0 || nr > 0xff) throw new RangeError(`ioctl number ${nr} is not one byte`);
  if (size < 0 || size >= 1 << SIZEBITS) throw new RangeError(`ioctl size ${size} does not fit in ${SIZEBITS} bits`);
  // `>>> 0` keeps the result an unsigned 32-bit number (direction READ sets bit 31).
  return ((dir << DIRSHIFT) | (typeCode(type) << TYPESHIFT) | (nr << NRSHIFT) | (size << SIZESHIFT)) >>> 0;
}

/** _IO(type, nr): a request without argument data. */
export const IO = (type: string | number, nr: number): number => ioc(IocDir.NONE, type, nr, 0);
/** _IOR(type, nr, size): the kernel writes `size` bytes to the argument. */
export const IOR = (type: string | number, nr: number, size: number): number => ioc(IocDir.READ, type, nr, size);
/** _IOW(type, nr, size): the kernel reads `size` bytes from the argument. */
export const IOW = (type: string | number, nr: number, size: number): number => ioc(IocDir.WRITE, type, nr, size);
/** _IOWR(type, nr, size): the kernel reads and writes the argument. */
export const IOWR = (type: string | number, nr: number, size: number): number =>
  ioc(IocDir.READ | IocDir.WRITE, type, nr, size);
