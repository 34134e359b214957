// A writer for the "newc" cpio format the kernel unpacks as an initramfs
// (Linux Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header of
// hex fields, the NUL-terminated name, the data, each padded to 4 bytes; "TRAILER!!!" ends it.
// The archive is left uncompressed: decompressing under TCG costs seconds (docs/test-vm.md).
import fs from 'node:fs';
import { Buffer } from 'node:buffer';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

export class CpioWriter {
  constructor(file) {
    this.fd = fs.openSync(file, 'w');
    this.ino = 1;
    this.dirs = new Set();
  }

  header(name, mode, size) {
    const nameBytes = Buffer.from(`${name}\0`);
    const fields = [this.ino++, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, nameBytes.length, 0];
    const hdr = `070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`;
    this.write(Buffer.concat([Buffer.from(hdr), nameBytes]));
    this.pad(110 + nameBytes.length);
  }

  write(buf) {
    fs.writeSync(this.fd, buf);
  }

  pad(len) {
    const n = (4 - (len % 4)) % 4;
    if (n) this.write(Buffer.alloc(n));
  }

  /** Adds a directory and its missing parents. `name` has no leading slash. */
  dir(name) {
    if (!name || name === '.' || this.dirs.has(name)) return;
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
    this.dir(parent);
    this.dirs.add(name);
    this.header(name, S_IFDIR | 0o755, 0);
  }

  parentOf(name) {
    if (name.includes('/')) this.dir(name.slice(0, name.lastIndexOf('/')));
  }

  /** Adds a regular file with the given contents (Buffer) or copied from a host path (string). */
  file(name, source, mode = 0o644) {
    this.parentOf(name);
    const data = typeof source === 'string' ? fs.readFileSync(source) : source;
    this.header(name, S_IFREG | mode, data.length);
    this.write(data);
    this.pad(data.length);
  }

  symlink(name, target) {
    this.parentOf(name);
    const data = Buffer.from(target);
    this.header(name, S_IFLNK | 0o777, data.length);
    this.write(data);
    this.pad(data.length);
  }

  /** Copies a host file or directory tree to `name`, following `filter(hostPath)` when given. */
  tree(name, hostPath, filter = () => true) {
    if (!filter(hostPath)) return;
    const st = fs.lstatSync(hostPath);
    if (st.isDirectory()) {
      this.dir(name);
      for (const e of fs.readdirSync(hostPath).sort()) this.tree(`${name}/${e}`, `${hostPath}/${e}`, filter);
    } else if (st.isSymbolicLink()) {
      this.symlink(name, fs.readlinkSync(hostPath));
    } else if (st.isFile()) {
      this.file(name, hostPath, st.mode & 0o777);
    }
  }

  close() {
    this.header('TRAILER!!!', 0, 0);
    fs.closeSync(this.fd);
  }
}
