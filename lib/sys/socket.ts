// AF_UNIX stream sockets through koffi, with file descriptors passed as SCM_RIGHTS ancillary data
// (unix(7), cmsg(3)). What the vhost-user front-end needs: a connect that never blocks the event
// loop, sendmsg with fds and SIOCOUTQ. Node's own stream
// machinery reads the replies (lib/transport/vhost-user/channel.ts says why). Layouts are Linux x86_64 glibc (<bits/socket.h>, <sys/un.h>); test/vhost-user/
// layout.test.ts checks each against the C compiler's sizeof/offsetof.
//
// struct msghdr points at other memory (the iovec, the control buffer), so messages are built in
// native memory from koffi.alloc whose addresses are known, never in JavaScript buffers.

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import { check, Errno, lastErrno, SysError } from './errno.js';
import { koffi, lazily, libcLibrary } from './koffi.js';
import { defineLayout, Struct } from './layout.js';

/** Address family of UNIX domain sockets (<bits/socket.h>). */
export const AF_UNIX = 1;
/** Socket type: a byte stream (<bits/socket_type.h>). */
export const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOCK_NONBLOCK = 0o4000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
/** sendmsg/recv flags (<bits/socket.h>). */
export const MSG = {
  /** Do not block: EAGAIN instead. */
  DONTWAIT: 0x40,
  /** No SIGPIPE when the peer has gone: EPIPE instead. */
  NOSIGNAL: 0x4000,
} as const;
/** poll(2) event bits (<bits/poll.h>). */
export const POLL = {
  /** Data to read. */
  IN: 0x1,
  /** Urgent data to read. */
  PRI: 0x2,
  /** Writing will not block. */
  OUT: 0x4,
  /** An error condition (returned only). */
  ERR: 0x8,
  /** The peer hung up (returned only). */
  HUP: 0x10,
  /** The fd is not open (returned only). */
  NVAL: 0x20,
  /** The peer closed its writing half. */
  RDHUP: 0x2000,
} as const;
/** Most descriptors one message carries (vhost-user: VHOST_MEMORY_BASELINE_NREGIONS = 8). */
export const MAX_FDS = 8;

/** struct msghdr (glibc <bits/socket.h>): pointers are 8 bytes, socklen_t 4, size_t 8. */
export const MsghdrLayout = defineLayout('struct msghdr', 56, {
  msg_name: [0, 'u64'], msg_namelen: [8, 'u32'], msg_iov: [16, 'u64'], msg_iovlen: [24, 'u64'],
  msg_control: [32, 'u64'], msg_controllen: [40, 'u64'], msg_flags: [48, 's32'],
});
/** struct iovec (<bits/types/struct_iovec.h>). */
export const IovecLayout = defineLayout('struct iovec', 16, { iov_base: [0, 'u64'], iov_len: [8, 'u64'] });
/** struct cmsghdr: cmsg_len is size_t; the data follows at CMSG_DATA = 16 (CMSG_ALIGN of the header). */
export const CmsghdrLayout = defineLayout('struct cmsghdr', 16, { cmsg_len: [0, 'u64'], cmsg_level: [8, 's32'], cmsg_type: [12, 's32'] });
/** struct sockaddr_un: sa_family_t sun_family, char sun_path[108]. */
export const SockaddrUnLayout = defineLayout('struct sockaddr_un', 110, { sun_family: [0, 'u16'] });
/** Offset of sun_path in struct sockaddr_un. */
export const SUN_PATH_OFFSET = 2;
/** Length of sun_path, bytes, with its NUL. */
export const SUN_PATH_MAX = 108;
const CMSG_HDR = CmsghdrLayout.size;
/** CMSG_SPACE(n): the header plus n bytes rounded up to 8. */
export function cmsgSpace(n: number): number {
  return CMSG_HDR + Math.ceil(n / 8) * 8;
}

const c = lazily(() => {
  const lib = libcLibrary();
  return {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    connect: lib.func('int connect(int fd, const void *addr, uint32_t len)'),
    sendmsg: lib.func('intptr_t sendmsg(int fd, void *msg, int flags)'),
    shutdown: lib.func('int shutdown(int fd, int how)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long request, int *out)'),
    getsockopt: lib.func('int getsockopt(int fd, int level, int optname, int *optval, uint32_t *optlen)'),
    close: lib.func('int close(int fd)'),
  };
});

/**
 * A connected, non-blocking AF_UNIX stream socket, without blocking the event loop: a listener
 * whose backlog is full answers a non-blocking connect with EAGAIN (unix(7)); that is tried again
 * on a timer until `timeoutMs`, then thrown (SysError EAGAIN). Other errors are thrown at once.
 */
export async function connectUnix(path: string, timeoutMs = 5000): Promise<number> {
  const sa = new Uint8Array(SockaddrUnLayout.size);
  new Struct(SockaddrUnLayout, sa).set('sun_family', AF_UNIX);
  const p = Buffer.from(path, 'utf8');
  if (p.length >= SUN_PATH_MAX) {
    throw new SysError('connect', Errno.ENAMETOOLONG, path, `a UNIX socket path has at most ${SUN_PATH_MAX - 1} bytes; use a shorter path`);
  }
  sa.set(p, SUN_PATH_OFFSET);
  const fd = check(c().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number, 'socket', 'AF_UNIX, SOCK_STREAM');
  const deadline = Date.now() + timeoutMs;
  for (let tries = 0; (c().connect(fd, sa, SUN_PATH_OFFSET + p.length + 1) as number) < 0; tries++) {
    const errno = lastErrno();
    if ((errno === Errno.EAGAIN || errno === Errno.EINTR) && Date.now() < deadline) {
      // The listener's backlog is full: look again shortly (1, 2, 4 … 50 ms apart).
      await new Promise((r) => setTimeout(r, Math.min(50, 2 ** Math.min(tries, 6))));
      continue;
    }
    closeQuietly(fd);
    throw new SysError('connect', errno, errno === Errno.EAGAIN ? `${path}: the listener accepted nothing within ${timeoutMs} ms` : path);
  }
  return fd;
}

/** SIOCOUTQ (linux/sockios.h, = TIOCOUTQ): for AF_UNIX, what this end sent that the peer has not read yet. */
const SIOCOUTQ = 0x5411;

/**
 * Bytes this end sent that the peer has not read yet (ioctl SIOCOUTQ; for AF_UNIX the kernel
 * charges queued data to the sender until the receiver reads it, so this counts the peer's unread
 * data, in allocation units: 0 means the peer read everything). -1 if the socket cannot tell.
 */
export function unreadByPeer(fd: number): number {
  const out = new Int32Array(1);
  return (c().ioctl(fd, SIOCOUTQ, out) as number) < 0 ? -1 : out[0]!;
}

/** SO_PEERCRED (<asm-generic/socket.h>): the peer's struct ucred { pid_t pid; uid_t uid; gid_t gid; }. */
const SO_PEERCRED = 17;

/**
 * The pid of the process at the other end (getsockopt SO_PEERCRED; for a connection still in a
 * listener's backlog, the process that called listen(2)), or null if the socket cannot tell.
 */
export function peerPid(fd: number): number | null {
  const cred = new Int32Array(3);
  const len = new Uint32Array([12]);
  if ((c().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) as number) < 0) return null;
  return cred[0]! > 0 ? cred[0]! : null;
}

/** shutdown(fd, SHUT_RDWR): the peer sees end-of-file at once, even while other copies of fd live. */
export function shutdownBoth(fd: number): void {
  c().shutdown(fd, 2);
}

function closeQuietly(fd: number): void {
  c().close(fd);
}

/**
 * Native scratch memory for one socket's messages: msghdr, one iovec, a control buffer with room
 * for MAX_FDS descriptors, and a data buffer of `capacity` bytes. Reused for every message.
 */
export class MessageBuffer {
  private readonly ptr: unknown;
  private readonly base: bigint;
  private readonly mem: Uint8Array;
  private readonly hdr: Struct<keyof typeof MsghdrLayout.fields>;
  private readonly iov: Struct<keyof typeof IovecLayout.fields>;
  private readonly cmsg: Struct<keyof typeof CmsghdrLayout.fields>;
  private static readonly IOV = 56;
  private static readonly CTRL = 72;
  private static readonly CTRL_LEN = cmsgSpace(4 * MAX_FDS);
  private static readonly DATA = MessageBuffer.CTRL + MessageBuffer.CTRL_LEN;
  /** The payload area: write what to send here. */
  readonly data: Uint8Array;

  constructor(
    /** Bytes of payload one message may carry. */
    readonly capacity: number,
  ) {
    const total = MessageBuffer.DATA + capacity;
    this.ptr = koffi().alloc('uint8_t', total);
    this.base = koffi().address(this.ptr);
    this.mem = new Uint8Array(koffi().view(this.ptr, total));
    this.hdr = new Struct(MsghdrLayout, this.mem.subarray(0, 56));
    this.iov = new Struct(IovecLayout, this.mem.subarray(MessageBuffer.IOV, MessageBuffer.IOV + 16));
    this.cmsg = new Struct(CmsghdrLayout, this.mem.subarray(MessageBuffer.CTRL, MessageBuffer.CTRL + CMSG_HDR));
    this.data = this.mem.subarray(MessageBuffer.DATA);
  }

  private prepare(offset: number, length: number, controlLen: number): void {
    this.mem.fill(0, 0, MessageBuffer.DATA);
    this.iov.set('iov_base', this.base + BigInt(MessageBuffer.DATA + offset)).set('iov_len', length);
    this.hdr.set('msg_iov', this.base + BigInt(MessageBuffer.IOV)).set('msg_iovlen', 1);
    if (controlLen > 0) this.hdr.set('msg_control', this.base + BigInt(MessageBuffer.CTRL)).set('msg_controllen', controlLen);
  }

  /**
   * sendmsg(2) of data[offset, offset+length) with `fds` as SCM_RIGHTS, without blocking; returns
   * the bytes sent (fds go with the first byte), or -1 when the socket buffer is full (EAGAIN).
   * MSG_NOSIGNAL: a dead peer is EPIPE (thrown), not SIGPIPE.
   */
  send(fd: number, offset: number, length: number, fds: readonly number[] = []): number {
    if (fds.length > MAX_FDS) throw new RangeError(`at most ${MAX_FDS} descriptors per message, got ${fds.length}`);
    this.prepare(offset, length, fds.length > 0 ? cmsgSpace(4 * fds.length) : 0);
    if (fds.length > 0) {
      this.cmsg.set('cmsg_len', CMSG_HDR + 4 * fds.length).set('cmsg_level', SOL_SOCKET).set('cmsg_type', SCM_RIGHTS);
      const dv = new DataView(this.mem.buffer, this.mem.byteOffset + MessageBuffer.CTRL + CMSG_HDR, 4 * fds.length);
      fds.forEach((f, i) => dv.setInt32(4 * i, f, true));
    }
    const n = Number(c().sendmsg(fd, this.ptr, MSG.NOSIGNAL | MSG.DONTWAIT));
    if (n < 0) {
      const errno = lastErrno();
      if (errno === Errno.EAGAIN || errno === Errno.EINTR) return -1;
      throw new SysError('sendmsg', errno, `fd ${fd}, ${length} bytes`);
    }
    return n;
  }

  /** Frees the native memory; the buffer is unusable afterwards. */
  free(): void {
    koffi().free(this.ptr);
  }
}

/** __SO_ACCEPTCON in /proc/net/unix's Flags column: the socket is listening. */
const SO_ACCEPTCON = 0x10000;

/**
 * The pids of the processes that hold the listening UNIX socket bound at `path`: its socket inode
 * from /proc/net/unix (proc(5)), then each process's descriptors that link to "socket:[inode]".
 * For a diagnosis when a connect(2) got nowhere (a listener whose backlog stays full has no peer to
 * ask with SO_PEERCRED); it reads every process's descriptor table, so it is not for a hot path.
 * Empty where /proc does not tell (no /proc, another user's processes, an abstract socket).
 */
export function listenerPids(path: string): number[] {
  const wanted = resolve(path);
  const inodes = new Set<string>();
  try {
    for (const line of readFileSync('/proc/net/unix', 'latin1').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 8 || (parseInt(f[3]!, 16) & SO_ACCEPTCON) === 0) continue;
      const bound = f.slice(7).join(' ');
      if (bound === path || resolve(bound) === wanted) inodes.add(f[6]!);
    }
  } catch {
    return [];
  }
  if (inodes.size === 0) return [];
  const pids: number[] = [];
  let procs: string[];
  try {
    procs = readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d));
  } catch {
    return [];
  }
  for (const pid of procs) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[([0-9]+)\]$/.exec(link);
      if (m && inodes.has(m[1]!)) {
        pids.push(Number(pid));
        break;
      }
    }
  }
  return pids;
}

/** Whether process `pid` is stopped (proc(5): the state after the command name is T, or t while traced). */
export function processStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'T' || state === 't';
  } catch {
    return false;
  }
}
