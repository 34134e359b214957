// A vhost-user session: one connection to the back-end and what its handshake learnt. The back-end
// keeps a session's state (features, memory table, rings) exactly as long as the connection lives
// (libvhost-user starts every connection from vu_init), so a fresh session is a reset device.
//
// connectBackend: the socket, with the connect failures turned into typed errors.
// handshake ("Communication", "Protocol features"): SET_OWNER, GET_FEATURES, then with
// VHOST_USER_F_PROTOCOL_FEATURES GET/SET_PROTOCOL_FEATURES (we take MQ, REPLY_ACK, CONFIG),
// GET_QUEUE_NUM with MQ, GET_CONFIG with CONFIG.

import { lstatSync } from 'node:fs';
import { Errno, SysError } from '../../sys/errno.js';
import { close as closeFd } from '../../sys/libc.js';
import { connectUnix, listenerPids, processStopped } from '../../sys/socket.js';
import { Channel } from './channel.js';
import * as err from './errors.js';
import { F_PROTOCOL_FEATURES, Payload, ProtocolFeature, Req, WANTED_PROTOCOL_FEATURES } from './protocol.js';

/** Device configuration bytes asked with GET_CONFIG, by device type (virtio 1.2 §5.2.4, §5.1.4). */
const CONFIG_LENGTH: Readonly<Record<number, number>> = { 1: 12, 2: 60 };

export interface BackendInfo {
  /** The back-end's virtio features (GET_FEATURES), VHOST_USER_F_PROTOCOL_FEATURES included. */
  features: bigint;
  offeredProtocolFeatures: bigint;
  /** The protocol features both sides agreed (SET_PROTOCOL_FEATURES). */
  protocolFeatures: bigint;
  numQueues: number;
  /** Device configuration as the back-end gave it at the handshake (empty without CONFIG). */
  config: Uint8Array;
}

export interface Session {
  channel: Channel;
  info: BackendInfo;
}

export function hasProtocol(info: BackendInfo, n: number): boolean {
  return ((info.protocolFeatures >> BigInt(n)) & 1n) === 1n;
}

/**
 * Connects (bounded by timeoutMs) and hands the socket to a Channel whose answers are each bounded
 * by replyTimeoutMs (default timeoutMs); the failures become typed errors with hints.
 */
export async function connectBackend(path: string, address: string, timeoutMs: number, replyTimeoutMs = timeoutMs): Promise<Channel> {
  let fd: number;
  try {
    fd = await connectUnix(path, timeoutMs);
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    let isSocket: boolean | undefined;
    try {
      isSocket = lstatSync(path).isSocket();
    } catch {
      isSocket = undefined;
    }
    if (e.errno === Errno.ENOENT || (e.errno === Errno.ECONNREFUSED && isSocket !== false)) throw err.unreachable(address, path, e.errnoName, e);
    // A listener whose backlog stays full: qemu-storage-daemon listens with a backlog of 1 and
    // stops accepting while it serves a front-end, so a second waiting connection fills it.
    // A stopped listener (SIGSTOP) fills it too: the front-ends that gave up on it stay queued.
    if (e.errno === Errno.EAGAIN) {
      const stopped = listenerPids(path).find(processStopped);
      throw stopped !== undefined ? err.stalled(address, 'a connection', timeoutMs, stopped) : err.busy(address, 'a connection', timeoutMs, true);
    }
    if (isSocket === false || e.errno === Errno.ENOTSOCK || e.errno === Errno.EPROTOTYPE) {
      throw err.notSocket(address, path, isSocket === false ? 'not a socket' : e.errnoName, e);
    }
    throw e;
  }
  try {
    return new Channel(fd, address, replyTimeoutMs);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

const u64 = (b: Uint8Array): bigint => new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);

/** Learns what the back-end offers. Rejects with the channel's typed errors; the caller closes the channel. */
export async function handshake(ch: Channel, deviceType: number): Promise<BackendInfo> {
  ch.post(Req.SET_OWNER); // "Issued when a new connection is established"
  const features = u64(await ch.ask(Req.GET_FEATURES, undefined, [8]));
  let offered = 0n;
  let agreed = 0n;
  if (((features >> BigInt(F_PROTOCOL_FEATURES)) & 1n) === 1n) {
    offered = u64(await ch.ask(Req.GET_PROTOCOL_FEATURES, undefined, [8]));
    agreed = offered & WANTED_PROTOCOL_FEATURES;
    ch.post(Req.SET_PROTOCOL_FEATURES, Payload.u64(agreed));
  }
  const info: BackendInfo = { features, offeredProtocolFeatures: offered, protocolFeatures: agreed, numQueues: deviceType === 1 ? 2 : 1, config: new Uint8Array(0) };
  if (hasProtocol(info, ProtocolFeature.MQ)) {
    const n = Number(u64(await ch.ask(Req.GET_QUEUE_NUM, undefined, [8])));
    if (!Number.isInteger(n) || n < 1 || n > 256) throw err.protocol(ch.address, `GET_QUEUE_NUM answered ${n} (expected 1 to 256)`);
    info.numQueues = deviceType === 1 ? 2 * n : n;
  }
  const length = CONFIG_LENGTH[deviceType] ?? 0;
  if (hasProtocol(info, ProtocolFeature.CONFIG) && length > 0) {
    // "VHOST_USER_GET_CONFIG": the answer has the asked size; "zero length of payload" is an error.
    const answer = await ch.ask(Req.GET_CONFIG, Payload.config(0, length), [12 + length, 0]);
    if (answer.length !== 12 + length) {
      throw err.refused(ch.address, 'VHOST_USER_GET_CONFIG', `${length} bytes asked, ${Math.max(0, answer.length - 12)} given`,
        'the back-end could not read its configuration; check the device type (vhost-user:/path?type=blk|net)');
    }
    info.config = answer.slice(12);
  }
  return info;
}

/**
 * connectBackend + handshake, bounded as a whole by the smaller of replyTimeoutMs and boundMs (a
 * caller's bound on the operation that opens the session: an open, a reset); every answer of the
 * session is bounded by replyTimeoutMs. A back-end that dawdles through each step cannot add them up.
 */
export async function openSession(path: string, address: string, deviceType: number, replyTimeoutMs: number, boundMs = replyTimeoutMs): Promise<Session> {
  const timeoutMs = Math.max(0, Math.min(replyTimeoutMs, boundMs));
  const deadline = Date.now() + timeoutMs;
  const channel = await connectBackend(path, address, timeoutMs, replyTimeoutMs);
  let timer: NodeJS.Timeout | undefined;
  try {
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(channel.expire('the handshake (GET_FEATURES … GET_CONFIG)', timeoutMs)), Math.max(0, deadline - Date.now()));
    });
    return { channel, info: await Promise.race([handshake(channel, deviceType), expired]) };
  } catch (e) {
    channel.close();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
