// Host commands: list the virtio PCI functions and vhost-vdpa devices, bind a function to vfio-pci, give it back.

import type { Command } from 'commander';
import { hostUses } from '../../lib/vfio/in-use.js';
import { bindVfio, listVirtioDevices, parseBdf, unbindVfio } from '../../lib/vfio/sysfs.js';
import { DeviceError } from '../../lib/errors.js';
import { listVdpaDevices } from '../../lib/transport/vhost-vdpa/list.js';
import { action } from '../exit.js';

export function registerHostCommands(program: Command): void {
  program.command('list')
    .description('virtio PCI devices (address, type, driver, IOMMU group, whether VFIO can use them and why not), then vhost-vdpa devices (address, type, vdpa name, queues)')
    .option('--json', 'a JSON array on stdout: the PCI functions, then the vhost-vdpa devices (transport: "vhost-vdpa")')
    .action(action((o: { json?: boolean }) => {
      const all = listVirtioDevices();
      const vdpa = listVdpaDevices();
      if (o.json) {
        console.log(JSON.stringify([...all, ...vdpa]));
        return;
      }
      if (all.length === 0 && vdpa.length === 0) console.log('no virtio PCI devices (the reference device is always there: sim:blk, sim:net)');
      for (const d of all) {
        console.log(`vfio:${d.bdf}  virtio-${d.typeName}  driver ${d.driver ?? '(none)'}  group ${d.iommuGroup ?? '-'}  ${d.vfioUsable ? 'usable' : `not usable: ${d.reason ?? ''}`}`);
      }
      for (const d of vdpa) {
        console.log(`${d.address}  virtio-${d.typeName ?? '?'}  vdpa ${d.name ?? '?'}  queues ${d.queues ?? '-'}  ${d.usable ? 'usable' : `not usable: ${d.reason ?? ''}`}`);
      }
    }));

  program.command('bind')
    .description('bind a virtio PCI device to vfio-pci (driver_override + drivers_probe), remembering its driver')
    .argument('<bdf>', 'PCI address, e.g. 0000:00:03.0')
    .option('--force', 'bind even if the host uses the device (a mounted disk, an interface that is up)')
    .option('--json', 'one JSON object on stdout')
    .action(action((bdf: string, o: { json?: boolean; force?: boolean }) => {
      const inUse = hostUses(parseBdf(bdf));
      if (inUse.length > 0 && !o.force) {
        throw new DeviceError('E_DEVICE_IN_USE', `${parseBdf(bdf)} is in use by this host: ${inUse.join('; ')}`,
          'taking it would take that disk or network away from the machine; unmount / bring it down first, or pass --force');
      }
      const r = bindVfio(bdf);
      console.log(o.json ? JSON.stringify(r) : `${r.bdf} bound to vfio-pci${r.previous ? ` (was ${r.previous})` : ''}`);
    }));

  program.command('unbind')
    .description('release a device from vfio-pci and give it back to its previous driver')
    .argument('<bdf>', 'PCI address')
    .option('--json', 'one JSON object on stdout')
    .action(action((bdf: string, o: { json?: boolean }) => {
      const r = unbindVfio(bdf);
      console.log(o.json ? JSON.stringify(r) : `${r.bdf} released${r.driver ? `, now bound to ${r.driver}` : ''}`);
    }));
}
