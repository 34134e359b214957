// The QEMU command line for the test VM (docs/test-vm.md): PVH boot of the extracted vmlinux with the
// uncompressed initramfs, q35, two virtio-blk and two virtio-net functions (split and packed), the
// NICs joined on one hub; in the viommu profile an intel-iommu and iommu_platform/ats on each device.
// The vdpa profile has none of the four: its devices are the kernel's vdpa_sim (scripts/vm/vdpa.mjs).
import path from 'node:path';

export const PROFILES = ['viommu', 'noiommu', 'vdpa'];

/**
 * The four functions, at fixed addresses so tests can name them. Each sits behind its own PCIe root
 * port: on the root bus QEMU's virtio-pci is a conventional PCI function (no PCIe capability, so no
 * function-level reset and no ATS); behind a port it is PCI Express with FLR, which VFIO_DEVICE_RESET uses.
 */
export const DEVICES = [
  { bdf: '0000:01:00.0', kind: 'blk', layout: 'split', disk: 'blk0.img', extra: 'num-queues=1' },
  { bdf: '0000:02:00.0', kind: 'blk', layout: 'packed', disk: 'blk1.img', extra: 'num-queues=2' },
  { bdf: '0000:03:00.0', kind: 'net', layout: 'split', mac: '52:54:00:12:34:01' },
  { bdf: '0000:04:00.0', kind: 'net', layout: 'packed', mac: '52:54:00:12:34:02' },
];

/** TCG unless UVIRTIO_VM_ACCEL says otherwise: /dev/kvm on these hosts is a nested PVM that hangs guests. */
export function accel() {
  const a = process.env.UVIRTIO_VM_ACCEL ?? 'tcg';
  return a === 'tcg' ? 'tcg,thread=multi' : a;
}

export function qemuArgs({ profile, vmlinux, initrd, workDir, cmdline, extra = [] }) {
  const viommu = profile === 'viommu';
  // vdpa: each vdpa_sim_blk device keeps its 128 MiB disk in guest memory (VDPASIM_BLK_CAPACITY).
  const memory = profile === 'vdpa' ? '1536' : '1024';
  const devOpts = viommu ? ',iommu_platform=on,ats=on' : '';
  const args = [
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-machine', viommu ? 'q35,kernel-irqchip=split' : 'q35',
    '-accel', accel(), '-cpu', 'max', '-smp', process.env.UVIRTIO_VM_SMP ?? '2', '-m', memory,
    '-kernel', vmlinux, '-initrd', initrd, '-append', cmdline,
    // ttyS0: the kernel console, to a file shown when something goes wrong; ttyS1: the command's output.
    '-serial', `file:${path.join(workDir, 'console.log')}`,
    '-chardev', 'stdio,id=out,signal=off', '-serial', 'chardev:out',
  ];
  if (viommu) args.push('-device', 'intel-iommu,intremap=on,caching-mode=on,device-iotlb=on');
  (profile === 'vdpa' ? [] : DEVICES).forEach((d, i) => {
    args.push('-device', `pcie-root-port,id=rp${i},chassis=${i + 1},slot=${i + 1},addr=0${i + 2}.0`);
    const addr = `bus=rp${i},addr=00.0`;
    const packed = d.layout === 'packed' ? ',packed=on' : '';
    if (d.kind === 'blk') {
      args.push('-drive', `file=${path.join(workDir, d.disk)},if=none,id=d${i},format=raw,cache=writeback`);
      args.push('-device', `virtio-blk-pci,disable-legacy=on,drive=d${i},${addr}${packed}${d.extra ? `,${d.extra}` : ''}${devOpts}`);
    } else {
      args.push('-netdev', `hubport,id=n${i},hubid=0`);
      args.push('-device', `virtio-net-pci,disable-legacy=on,netdev=n${i},mac=${d.mac},romfile=,${addr}${packed}${devOpts}`);
    }
  });
  return [...args, ...extra];
}
