// The vhost-user front-end's link to its back-end: the current session (session.ts), the
// messages sent on it and their answers, and its renewal on a reset. vhost-user.rst
// "Communication": a setting is acknowledged when REPLY_ACK was negotiated; without it flush()
// asks GET_FEATURES, whose answer comes after the back-end has read everything sent before it.
// A back-end drops a session's state with its connection, so a fresh session is a reset device.

import { DeviceError, isUvirtioError, type UvirtioError } from '../../errors.js';
import type { Channel } from './channel.js';
import * as err from './errors.js';
import { Payload, ProtocolFeature, Req } from './protocol.js';
import { drained, settle, type RingConf } from './rings.js';
import { hasProtocol, openSession, type BackendInfo, type Session } from './session.js';
import { Listeners } from '../../util/listeners.js';

/** One front-end's link to its back-end, across the sessions its resets open. */
export class Link {
  private session: Session | null = null;
  /** What the last handshake learnt (kept while no session is open). */
  info: BackendInfo;
  /** Why no session is open: the failed reconnect of the last renew(), thrown by what needs one. */
  private connectError: UvirtioError | null = null;
  /** Whether this session set anything the back-end keeps (features, memory, rings). */
  private dirty = false;
  /** Messages sent since the last flush() whose answers it waits for. */
  private work: Promise<unknown>[] = [];
  /** Settings sent without REPLY_ACK since the last flush(). */
  private unconfirmed = false;
  private readonly lostListeners = new Listeners<[UvirtioError]>('vhost-user session lost');
  private closed = false;

  constructor(readonly address: string, private readonly path: string, private readonly deviceType: number, private readonly replyTimeoutMs: number, first: Session) {
    this.info = first.info;
    this.adopt(first);
  }

  private adopt(s: Session): void {
    this.session = s;
    this.info = s.info;
    this.connectError = null;
    this.dirty = false;
    s.channel.onFailure((e) => {
      if (s !== this.session || this.closed) return;
      this.lostListeners.emit(e);
    });
  }

  /** Called once when the session dies under us (hang-up, broken protocol, no answer in time). Returns an unsubscribe. */
  onLost(listener: (e: UvirtioError) => void): () => void {
    return this.lostListeners.add(listener);
  }

  /** Whether the live session's channel failed (the device then shows DEVICE_NEEDS_RESET). */
  get failed(): boolean {
    return this.session?.channel.failed != null;
  }

  /** The live session's channel, or the typed reason there is none (E_CLOSED, E_VHOST_LOST, …). */
  channel(): Channel {
    if (this.closed) throw new DeviceError('E_CLOSED', `${this.address}: the transport is closed`);
    const s = this.session;
    if (!s) throw this.connectError ?? err.lost(this.address, 'is not connected (its session ended; reset the device to connect again)');
    if (s.channel.failed) throw s.channel.failed;
    return s.channel;
  }

  /** Sends a setting, acknowledged when REPLY_ACK was negotiated, and tracks it for flush(). Never throws. */
  set(request: number, payload?: Uint8Array, fds?: readonly number[]): void {
    this.track(this.setNow(request, payload, fds));
  }

  /** A setting whose failure the caller handles (then tracks). Never throws: failures reject. */
  setNow(request: number, payload?: Uint8Array, fds?: readonly number[]): Promise<void> {
    try {
      const ch = this.channel();
      this.dirty = true;
      if (hasProtocol(this.info, ProtocolFeature.REPLY_ACK)) return ch.ack(request, payload, fds);
      ch.post(request, payload, fds);
      this.unconfirmed = true;
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** Work flush() waits for; a failure nobody flushes is not an unhandled rejection (onLost reports losses). */
  track(p: Promise<unknown>): void {
    p.catch(() => undefined);
    this.work.push(p);
  }

  /**
   * Waits until the back-end has answered every message sent so far, bounded by timeoutMs (and
   * each answer by the reply timeout). Rejects with the first failure (E_VHOST_TIMEOUT, …).
   */
  async flush(timeoutMs: number): Promise<void> {
    try {
      // No session (lost, or the last reconnect failed): nothing sent was taken, and that is why.
      const ch = this.channel();
      if (this.unconfirmed) this.track(ch.ask(Req.GET_FEATURES, undefined, [8]));
    } catch (e) {
      this.track(Promise.reject(e as Error));
    }
    this.unconfirmed = false;
    const work = this.work;
    this.work = [];
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(err.timeout(this.address, `the ${work.length} message(s) sent since the last flush`, timeoutMs)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(work), bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Forgets what was sent (a reset: nobody waits for it any more). */
  private forget(): void {
    this.work = [];
    this.unconfirmed = false;
  }

  /** A reset without waiting: a session that set anything (or failed) ends now; renew() opens a fresh one. */
  dropNow(): void {
    this.forget();
    if (this.session && (this.dirty || this.session.channel.failed)) {
      this.session.channel.close();
      this.session = null;
    }
  }

  /**
   * A reset: ends a session that set anything — its started `rings` drained and stopped first —
   * and opens a fresh one, the whole bounded by timeoutMs (and the handshake by the reply timeout). A failed reconnect does not reject; it is
   * kept and surfaces where the back-end is needed next (the flush after FEATURES_OK).
   */
  async renew(rings: readonly (readonly [number, RingConf])[], packed: boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.forget();
    const old = this.session;
    if (old && (this.dirty || old.channel.failed)) {
      this.session = null;
      await endSession(old, rings, packed, timeoutMs);
    }
    if (!this.session && !this.closed) {
      try {
        // The fresh session's connect and handshake get what the reset's bound left.
        const s = await openSession(this.path, this.address, this.deviceType, this.replyTimeoutMs, Math.max(0, deadline - Date.now()));
        if (this.closed) s.channel.close();
        else this.adopt(s);
      } catch (e) {
        this.connectError = isUvirtioError(e) ? e : new DeviceError('E_VHOST_LOST', `${this.address}: ${String(e)}`,
          'the back-end could not be reached again after the reset; check it is running, then recover()', { cause: e });
      }
    }
  }

  /** Ends the session at once; listeners still subscribed hear `why` (a driver's requests settle now). Idempotent. */
  close(why: UvirtioError): void {
    if (this.closed) return;
    this.closed = true;
    this.lostListeners.emit(why);
    this.session?.channel.close();
    this.session = null;
    this.lostListeners.clear();
  }
}

/**
 * Drains and stops the rings still running (bounded by timeoutMs, best effort), then closes the
 * connection, so that no request of ours is still in the back-end when the next session (or
 * another driver) takes the memory (virtio 1.2 §2.4).
 */
async function endSession(s: Session, rings: readonly (readonly [number, RingConf])[], packed: boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const left = (): number => Math.max(0, deadline - Date.now());
  try {
    for (const [q, conf] of rings) {
      if (s.channel.failed) break;
      const ring = packed ? null : conf.ring ?? null;
      if (ring) await settle(ring, left(), () => s.channel.failed !== null);
      const answer = await withDeadline(s.channel.ask(Req.GET_VRING_BASE, Payload.state(q, 0), [8]), left());
      if (ring && answer) await drained(ring, new DataView(answer.buffer, answer.byteOffset, 8).getUint32(4, true) & 0xffff, left(), () => s.channel.failed !== null);
    }
  } catch {
    // The session ends anyway; what went wrong with it does not concern the reset.
  } finally {
    s.channel.close();
  }
}

/** Resolves with p's value, or with undefined once `ms` passed (p's rejection is passed on). */
async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
