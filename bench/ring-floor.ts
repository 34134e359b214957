// The JavaScript floor of bench/ring-driver.ts's split case: bench/c/ring.c's split driver path
// (add with the chain checks, kick with EVENT_IDX, pop with the used id / len / index-jump checks, a
// completion per request) transliterated into one flat JavaScript function over typed arrays — no
// classes, no Virtqueue interface, no token objects returned — against the same minimal device.
// It is not the SDK: it is what the same work costs in JavaScript on this machine, so that the
// ratio JS/C of the SDK's own path can be read against what JavaScript itself allows
// (`npm run bench:ring -- --only floor`).

const QSIZE = 256;
const MASK = QSIZE - 1;
const HEADER_LEN = 16;
const STATUS_LEN = 1;
const F_NEXT = 1;
const F_WRITE = 2;

interface Seg { addr: bigint; len: number }

/** Runs `rounds` rounds of `batch` requests; returns the requests completed (checked by the caller). */
export type FloorRun = (rounds: number) => number;

/** Builds the flat split-ring driver and device over one ArrayBuffer, C's layout (virtio 1.2 §2.7). */
export function splitFloor(batch: number): FloorRun {
  const availAt = 16 * QSIZE;
  const usedAt = (availAt + 6 + 2 * QSIZE + 3) & ~3;
  const bytes = usedAt + 4 + 8 * QSIZE + 2 + 6;
  const mem = new ArrayBuffer(bytes + (8 - (bytes % 8)));
  const d64 = new BigUint64Array(mem);
  const m32 = new Uint32Array(mem);
  const m16 = new Uint16Array(mem);
  const avail = availAt >> 1; // 16-bit word index of avail.flags
  const used16 = usedAt >> 1;
  const usedRing32 = (usedAt + 4) >> 2;
  const availEvent = used16 + 2 + 4 * QSIZE;
  const nextFree = new Uint16Array(QSIZE);
  for (let i = 0; i < QSIZE; i++) nextFree[i] = i + 1;
  const live = new Uint8Array(QSIZE);
  const descsOf = new Uint16Array(QSIZE);
  const writableOf = new Float64Array(QSIZE);
  const tokens: number[] = new Array<number>(QSIZE).fill(0);
  let freeHead = 0;
  let availIdx = 0;
  let kickedIdx = 0;
  let addedSinceKick = 0;
  let lastUsed = 0;
  let inFlight = 0;
  let numFree = QSIZE;
  let notifies = 0;
  // The device side (as in ring-driver.ts's splitDevice).
  let devLastAvail = 0;
  let devUsedIdx = 0;
  const readable: Seg[][] = [];
  const writable: Seg[][] = [];
  for (let i = 0; i < batch; i++) {
    readable.push([{ addr: BigInt(0x10000 + 64 * i), len: HEADER_LEN }]);
    writable.push([{ addr: BigInt(0x10000 + 64 * i + 32), len: STATUS_LEN }]);
  }
  let completed = 0;
  let lenSum = 0;
  const done = (token: number, len: number): void => {
    completed += token >= 0 ? 1 : 0;
    lenSum += len;
  };

  const checkSegs = (s: readonly Seg[]): number => {
    let total = 0;
    for (let i = 0; i < s.length; i++) {
      const { addr, len } = s[i]!;
      if (!Number.isInteger(len) || len < 1 || len > 0xffff_ffff) throw new Error('bad len');
      if (typeof addr !== 'bigint' || BigInt.asUintN(64, addr) !== addr) throw new Error('bad addr');
      total += len;
    }
    return total;
  };
  const add = (rd: readonly Seg[], wr: readonly Seg[], token: number): void => {
    const n = rd.length + wr.length;
    if (n === 0 || n > QSIZE) throw new Error('bad chain');
    const writableBytes = checkSegs(wr);
    if (checkSegs(rd) + writableBytes > 2 ** 32) throw new Error('chain too long');
    if (n > numFree) throw new Error('full');
    const head = freeHead;
    let d = head;
    for (let i = 0; i < n; i++) {
      const s = i < rd.length ? rd[i]! : wr[i - rd.length]!;
      const next = nextFree[d]!;
      const last = i === n - 1;
      d64[2 * d] = s.addr;
      m32[4 * d + 2] = s.len;
      m16[8 * d + 6] = (i < rd.length ? 0 : F_WRITE) | (last ? 0 : F_NEXT);
      m16[8 * d + 7] = last ? 0 : next;
      d = next;
    }
    freeHead = d;
    live[head] = 1;
    tokens[head] = token;
    descsOf[head] = n;
    writableOf[head] = writableBytes;
    inFlight++;
    numFree -= n;
    m16[avail + 2 + (availIdx & MASK)] = head;
    availIdx = (availIdx + 1) & 0xffff;
    addedSinceKick++;
    Atomics.store(m16, avail + 1, availIdx);
  };
  const kick = (): void => {
    if (addedSinceKick === 0) return;
    const old = kickedIdx;
    const now = availIdx;
    kickedIdx = now;
    addedSinceKick = 0;
    const event = Atomics.load(m16, availEvent);
    if (((now - event - 1) & 0xffff) < ((now - old) & 0xffff)) notifies++;
  };
  const pop = (): boolean => {
    const usedIdx = Atomics.load(m16, used16 + 1);
    const last = lastUsed;
    if (usedIdx === last) return false;
    if (((usedIdx - last) & 0xffff) > inFlight) throw new Error('used index jump');
    const at = usedRing32 + 2 * (last & MASK);
    const id = m32[at]!;
    const len = m32[at + 1]!;
    if (id >= QSIZE || live[id] !== 1) throw new Error('bad used id');
    if (len > writableOf[id]!) throw new Error('bad used len');
    const descs = descsOf[id]!;
    live[id] = 0;
    inFlight--;
    numFree += descs;
    let tail = id;
    for (let i = 1; i < descs; i++) tail = nextFree[tail]!;
    nextFree[tail] = freeHead;
    freeHead = id;
    lastUsed = (last + 1) & 0xffff;
    done(tokens[id]!, len);
    return true;
  };
  const deviceStep = (): void => {
    const availNow = m16[avail + 1]!;
    let n = 0;
    while (devLastAvail !== availNow) {
      const head = m16[avail + 2 + (devLastAvail & MASK)]!;
      const at = usedRing32 + 2 * (devUsedIdx & MASK);
      m32[at] = head;
      m32[at + 1] = STATUS_LEN;
      devLastAvail = (devLastAvail + 1) & 0xffff;
      devUsedIdx = (devUsedIdx + 1) & 0xffff;
      n++;
    }
    if (n > 0) m16[used16 + 1] = devUsedIdx;
    m16[availEvent] = devLastAvail;
  };
  // Polling driver: used_event parked just behind (C's split_disable_interrupts).
  Atomics.store(m16, avail + 2 + QSIZE, 0xffff);
  return (rounds: number): number => {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < batch; i++) add(readable[i]!, writable[i]!, i);
      kick();
      deviceStep();
      while (pop());
    }
    if (lenSum !== completed * STATUS_LEN || inFlight !== 0 || notifies === 0) throw new Error('floor: lost completions');
    return rounds * batch;
  };
}
