// Runs inside the test VM's vdpa profile: NetDriver over vhost-vdpa: addresses on vdpa_sim_net,
// which loops every transmitted frame back into its own receive queue (drivers/vdpa/vdpa_sim/
// vdpa_sim_net.c vdpasim_net_work; frames to its MAC or to broadcast pass its receive filter).
// Frames are sequence-numbered and checksummed (net-frames.ts), sent to broadcast so that net1
// (another MAC) takes them too after a move.
//   loop     one stream sent and received: each sequence number exactly once
//   same     a stream with stop → snapshot file → reinit on the same device midway (frames in flight)
//   resume   a stream with stop → resume midway
//   second   a stream with stop → snapshot → reinit onto net1 (same memory, its own IOTLB) midway
// The host side is test/vm/vdpa-net.test.ts.

import fs from 'node:fs';
import { NetDriver } from '../../../drivers/net/index.js';
import { openTransport, type OpenedTransport } from '../../../lib/open.js';
import { readSnapshotFile, writeSnapshotFile } from '../../../lib/virtio/snapshot/index.js';
import { parse, sendStream, waitFor } from './net-frames.js';
import { report, step } from './report.js';

interface DeviceEntry { name: string; dev: string }
const devices = JSON.parse(fs.readFileSync('/run/vdpa-devices.json', 'utf8')) as DeviceEntry[];
const devOf = (name: string): string => `vhost-vdpa:${devices.find((d) => d.name === name)!.dev}`;
const NET0 = devOf('net0');
const NET1 = devOf('net1');
const BROADCAST = new Uint8Array(6).fill(0xff);
const SNAP = '/tmp/vdpa-net.snapshot.json';

/** Counts how often each (stream, seq) arrived, and damaged frames. */
function counter(net: NetDriver): { seen: Map<string, number>; corrupted: () => number; verdict: (stream: number, sent: number) => Record<string, number> } {
  const seen = new Map<string, number>();
  let corrupted = 0;
  net.onFrame((f) => {
    const p = parse(f.frame, BROADCAST);
    if (!p) return;
    if (!p.ok) corrupted++;
    else seen.set(`${p.stream}:${p.seq}`, (seen.get(`${p.stream}:${p.seq}`) ?? 0) + 1);
  });
  return {
    seen, corrupted: () => corrupted,
    verdict: (stream, sent) => {
      let once = 0;
      let duplicated = 0;
      for (let s = 0; s < sent; s++) {
        const c = seen.get(`${stream}:${s}`) ?? 0;
        if (c === 1) once++;
        else if (c > 1) duplicated++;
      }
      return { sent, once, duplicated, missing: sent - once - duplicated, corrupted };
    },
  };
}

async function streamWith(net: NetDriver, stream: number, count: number, midway: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
  const c = counter(net);
  let info: Record<string, unknown> = {};
  await sendStream(net, BROADCAST, stream, count, {
    window: 16,
    between: async (i) => {
      if (i === count / 2) info = await midway();
    },
  });
  await waitFor(() => c.verdict(stream, count).once === count, 10_000);
  return { ...info, ...c.verdict(stream, count) };
}

async function main(): Promise<void> {
  await step('loop', async () => {
    const net = await NetDriver.open((await openTransport(NET0)).transport);
    try {
      const r = await streamWith(net, 1, 200, async () => ({}));
      return { address: NET0, deviceType: net.device.transport.deviceType, numQueues: net.device.transport.numQueues, mac: Buffer.from(net.mac).toString('hex'), ...r };
    } finally {
      await net.close();
    }
  });

  await step('same', async () => {
    const net = await NetDriver.open((await openTransport(NET0)).transport);
    try {
      return await streamWith(net, 2, 300, async () => {
        const mechanism = await net.stop();
        const snap = net.snapshot();
        writeSnapshotFile(SNAP, snap);
        await net.reinit(readSnapshotFile(SNAP));
        return { mechanism, queues: snap.queues.map((q) => ({ index: q.index, avail: q.availState, used: q.usedState, inFlight: q.inFlight })) };
      });
    } finally {
      await net.close();
    }
  });

  await step('resume', async () => {
    const net = await NetDriver.open((await openTransport(NET0)).transport);
    try {
      return await streamWith(net, 3, 300, async () => {
        const mechanism = await net.stop({ mechanism: 'backend' });
        await net.resume();
        return { mechanism, phase: net.device.phase };
      });
    } finally {
      await net.close();
    }
  });

  await step('second', async () => {
    const source: OpenedTransport = await openTransport(NET0);
    const net = await NetDriver.open(source.transport);
    const target = await openTransport(NET1, { shareWith: source });
    try {
      return await streamWith(net, 4, 300, async () => {
        const mechanism = await net.stop();
        writeSnapshotFile(SNAP, net.snapshot());
        await net.reinit(readSnapshotFile(SNAP), { target: target.transport });
        source.transport.close();
        return { mechanism, now: net.device.address };
      });
    } finally {
      await net.close();
      source.transport.close();
    }
  });

  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});
