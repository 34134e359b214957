// Copies a file onto a virtio-blk device and back, and checks the copy: the batch API
// (writeMany / readMany kick each queue once per batch), flush, and a SHA-256 over both.
//
//   node dist/examples/copy-file.js FILE [ADDRESS]
//     ADDRESS defaults to the reference device, sized to fit the file (sim:blk?capacity=…);
//     vfio:0000:00:03.0 copies onto a real (or QEMU) virtio-blk device — its data is overwritten.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BLK_SECTOR_SIZE, BlkDriver, isUvirtioError, openTransport, type SectorRange } from '../index.js';

/** Sectors per request in a batch, and requests per batch. */
const CHUNK_SECTORS = 128;
const BATCH = 16;

async function main(): Promise<void> {
  const [file, given] = process.argv.slice(2);
  if (!file) throw new Error('usage: copy-file FILE [ADDRESS]');
  const content = readFileSync(file);
  const sectors = Math.max(1, Math.ceil(content.length / BLK_SECTOR_SIZE));
  const address = given ?? `sim:blk?capacity=${sectors}&queues=2`;
  const opened = await openTransport(address);
  const blk = await BlkDriver.open(opened.transport);
  try {
    if (sectors > blk.capacitySectors) throw new Error(`${file} needs ${sectors} sectors; ${address} has ${blk.capacitySectors}`);
    // Whole sectors: the last one is padded with zeros.
    const image = new Uint8Array(sectors * BLK_SECTOR_SIZE);
    image.set(content);
    const chunks: SectorRange[] = [];
    for (let s = 0; s < sectors; s += CHUNK_SECTORS) chunks.push({ sector: s, sectors: Math.min(CHUNK_SECTORS, sectors - s) });
    const started = Date.now();
    for (let i = 0; i < chunks.length; i += BATCH) {
      await blk.writeMany(chunks.slice(i, i + BATCH).map((c) => ({ sector: c.sector, data: image.subarray(c.sector * BLK_SECTOR_SIZE, (c.sector + c.sectors) * BLK_SECTOR_SIZE) })));
    }
    await blk.flush();
    const back = new Uint8Array(image.length);
    for (let i = 0; i < chunks.length; i += BATCH) {
      const parts = await blk.readMany(chunks.slice(i, i + BATCH));
      parts.forEach((p, k) => back.set(p, chunks[i + k]!.sector * BLK_SECTOR_SIZE));
    }
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    const identical = sha(back.subarray(0, content.length)) === sha(content);
    console.log(JSON.stringify({ ok: identical, file, device: address, bytes: content.length, sha256: sha(content), ms: Date.now() - started }));
    if (!identical) process.exitCode = 1;
  } finally {
    await blk.close();
  }
}

main().catch((e: unknown) => {
  console.error(isUvirtioError(e) ? `copy-file: ${e.toLine()}` : `copy-file: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
