// A scriptable vhost-user back-end for the hostile-peer tests: a UNIX socket server in this very
// process (so it also proves that the front-end never blocks the event loop — a synchronous wait
// would starve the fake and the test would time out).
//
// By default it answers like a minimal vhost-user-blk back-end (vhost-user.rst "Front-end message
// types"): GET_FEATURES, GET_PROTOCOL_FEATURES (MQ, REPLY_ACK, CONFIG), GET_QUEUE_NUM 1,
// GET_CONFIG (a capacity), REPLY_ACK 0 for every NEED_REPLY, GET_VRING_BASE {index, 0}. It never
// touches the rings (descriptors passed with SCM_RIGHTS are dropped by the kernel: Node reads with
// read(2)), so the driver's requests stay in flight until the test ends them. `script` overrides
// the answer to any message.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Flag, HEADER_SIZE, ProtocolFeature, Req } from '../../lib/transport/vhost-user/protocol.js';

export interface Received {
  request: number;
  flags: number;
  payload: Buffer;
  /** Messages this connection received before this one. */
  seq: number;
}

/** What the fake does with one message. */
export type Action =
  | { kind: 'default' } // answer as a well-behaved back-end
  | { kind: 'silent' } // read it, never answer
  | { kind: 'hangup' } // close the connection
  | { kind: 'raw'; bytes: Buffer } // send these bytes instead of the answer
  | { kind: 'ack'; status: bigint }; // REPLY_ACK with this status

export interface FakeOptions {
  /** Decides per message (undefined: default). `conn` is the connection's index (0 = first). */
  script?: (m: Received, conn: number) => Action | undefined;
  /** Accept connections but never read from them (a daemon busy with another front-end). */
  neverServe?: boolean;
  /** Virtio features offered (default VERSION_1 | EVENT_IDX | VHOST_USER_F_PROTOCOL_FEATURES). */
  features?: bigint;
  /** Protocol features offered (default MQ | REPLY_ACK | CONFIG). */
  protocolFeatures?: bigint;
}

const VERSION_1 = 1n << 32n;
const EVENT_IDX = 1n << 29n;
const PROTOCOL_FEATURES = 1n << 30n;
/** The capacity GET_CONFIG reports (512-byte sectors). */
export const FAKE_CAPACITY = 2048n;

export function header(request: number, flags: number, size: number): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.writeUInt32LE(request, 0);
  b.writeUInt32LE(flags, 4);
  b.writeUInt32LE(size, 8);
  return b;
}

/** A well-formed reply: version 1, the reply bit, `payload`. */
export function reply(request: number, payload: Buffer): Buffer {
  return Buffer.concat([header(request, Flag.VERSION | Flag.REPLY, payload.length), payload]);
}

export function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

export class FakeBackend {
  readonly received: Received[][] = [];
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(readonly path: string, readonly dir: string, private readonly o: FakeOptions) {
    this.server = net.createServer({ pauseOnConnect: o.neverServe === true }, (c) => this.serve(c));
  }

  /** Listens on a new socket in a temp dir of its own. */
  static async start(o: FakeOptions = {}): Promise<FakeBackend> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uvirtio-fake-'));
    const f = new FakeBackend(path.join(dir, 'fake.sock'), dir, o);
    await new Promise<void>((resolve, reject) => {
      f.server.once('error', reject);
      f.server.listen(f.path, resolve);
    });
    return f;
  }

  get address(): string {
    return `vhost-user:${this.path}`;
  }

  /** Connections accepted so far. */
  get connections(): number {
    return this.received.length;
  }

  /** Hangs up every connection now (a back-end that dies). */
  hangUpAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** Sends bytes nobody asked for on the newest connection. */
  sendUnsolicited(bytes: Buffer): void {
    [...this.sockets].at(-1)?.write(bytes);
  }

  async close(): Promise<void> {
    this.hangUpAll();
    await new Promise<void>((r) => this.server.close(() => r()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private serve(c: net.Socket): void {
    const conn = this.received.length;
    const log: Received[] = [];
    this.received.push(log);
    this.sockets.add(c);
    c.on('close', () => this.sockets.delete(c));
    c.on('error', () => undefined);
    if (this.o.neverServe) return; // paused on connect, never resumed: nothing is read
    let inbox = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      inbox = Buffer.concat([inbox, chunk]);
      while (inbox.length >= HEADER_SIZE) {
        const size = inbox.readUInt32LE(8);
        if (inbox.length < HEADER_SIZE + size) return;
        const m: Received = { request: inbox.readUInt32LE(0), flags: inbox.readUInt32LE(4), payload: inbox.subarray(HEADER_SIZE, HEADER_SIZE + size), seq: log.length };
        inbox = inbox.subarray(HEADER_SIZE + size);
        log.push(m);
        const action = this.o.script?.(m, conn) ?? { kind: 'default' };
        if (action.kind === 'hangup') {
          c.destroy();
          return;
        }
        if (action.kind === 'raw') c.write(action.bytes);
        else if (action.kind === 'ack') c.write(reply(m.request, u64(action.status)));
        else if (action.kind === 'default') {
          const answer = this.answer(m);
          if (answer) c.write(answer);
        }
      }
    });
  }

  /** What a well-behaved back-end answers (undefined: no answer is due). */
  private answer(m: Received): Buffer | undefined {
    switch (m.request) {
      case Req.GET_FEATURES:
        return reply(m.request, u64(this.o.features ?? (VERSION_1 | EVENT_IDX | PROTOCOL_FEATURES)));
      case Req.GET_PROTOCOL_FEATURES:
        return reply(m.request, u64(this.o.protocolFeatures ?? ((1n << BigInt(ProtocolFeature.MQ)) | (1n << BigInt(ProtocolFeature.REPLY_ACK)) | (1n << BigInt(ProtocolFeature.CONFIG)))));
      case Req.GET_QUEUE_NUM:
        return reply(m.request, u64(1n));
      case Req.GET_CONFIG: {
        const size = m.payload.readUInt32LE(4);
        const p = Buffer.alloc(12 + size);
        m.payload.copy(p, 0, 0, 12);
        if (size >= 8) p.writeBigUInt64LE(FAKE_CAPACITY, 12);
        return reply(m.request, p);
      }
      case Req.GET_VRING_BASE:
        return reply(m.request, Buffer.concat([m.payload.subarray(0, 4), Buffer.alloc(4)]));
      default:
        return m.flags & Flag.NEED_REPLY ? reply(m.request, u64(0n)) : undefined;
    }
  }
}
