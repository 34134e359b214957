// Extracts the uncompressed ELF vmlinux from an x86 bzImage, so QEMU can boot it through PVH
// without decompressing under TCG (docs/test-vm.md#kernel: about 4 s saved per boot).
//
// The x86 boot protocol (Linux Documentation/arch/x86/boot.rst) puts the real-mode setup in
// (setup_sects + 1) × 512 bytes (setup_sects at 0x1f1; 0 means 4), and since protocol 2.08 the
// header gives the compressed payload's place in the protected-mode part: payload_offset (0x248)
// and payload_length (0x24c). The payload's format is told by its magic bytes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { Buffer } from 'node:buffer';

const MAGICS = [
  { name: 'gzip', bytes: [0x1f, 0x8b, 0x08] },
  { name: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd] },
];

function payloadOf(image) {
  if (image.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new Error('not a bzImage (no HdrS boot header)');
  const version = image.readUInt16LE(0x206);
  if (version < 0x208) throw new Error(`boot protocol ${version.toString(16)} is older than 2.08: no payload fields`);
  const setupSects = image[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
  return image.subarray(start, start + image.readUInt32LE(0x24c));
}

function decompress(payload) {
  const kind = MAGICS.find((m) => m.bytes.every((b, i) => payload[i] === b));
  if (!kind) throw new Error(`unknown kernel compression (magic ${payload.subarray(0, 6).toString('hex')})`);
  if (kind.name === 'gzip') return zlib.gunzipSync(payload);
  // xz and zstd: Node has no decoder; the xz-utils and zstd tools do. --single-stream/-d ignore the
  // 4-byte size trailer the kernel build appends.
  const [cmd, args] = kind.name === 'xz' ? ['xz', ['-dc', '--single-stream']] : ['zstd', ['-dc']];
  const r = spawnSync(cmd, args, { input: payload, maxBuffer: 1 << 30 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (install xz-utils/zstd)`);
  if (!r.stdout?.length) throw new Error(`${cmd} failed: ${r.stderr}`);
  return r.stdout;
}

export function extractVmlinux(bzImage, out) {
  const elf = decompress(payloadOf(fs.readFileSync(bzImage)));
  if (!elf.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) throw new Error('decompressed kernel is not an ELF file');
  fs.writeFileSync(out, elf);
}
