// The layer map (docs/architecture.md#layers), enforced by `npm run lint`. Imports only point down
// (a layer may skip layers below it):
//
//   cli → lib/open.ts, lib/address.ts, lib/schemes.ts (opening a device by address), drivers/
//   drivers/ → lib/virtio → lib/transport → lib/vfio → lib/pci → lib/mem → lib/sys → ground
//   ground: lib/errors.ts, lib/spec/, lib/util/ (every layer may import it; it imports no layer)
//
// lib/sim (the reference device) is the device side: it stands on ground, lib/mem and lib/pci's
// interface and never imports the driver side, so a model cannot agree with a driver's bugs.
// Every rule names what it protects; `npx depcruise --config .dependency-cruiser.cjs lib` explains
// a violation with the path that caused it.

const GROUND = '^lib/(errors\\.ts|spec/|util/)';

/** A layer may import only from the folders named (besides itself and ground). */
function onlyDown(name, from, allowed) {
  return {
    name,
    comment: `${from} may import only from ${allowed.join(', ') || 'ground'} (and ground)`,
    severity: 'error',
    from: { path: from },
    to: {
      path: '^(lib|drivers|cli|examples|bench|index\\.ts)',
      pathNot: [GROUND, from, ...allowed],
    },
  };
}

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle hides which layer owns a fact; break it by moving the shared part down.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'ground-imports-nothing',
      comment: 'Errors, spec constants and small utilities are the bottom: every layer may import them, they import no layer.',
      severity: 'error',
      from: { path: GROUND },
      to: { path: '^(lib|drivers|cli)', pathNot: GROUND },
    },
    onlyDown('sys-above-ground-only', '^lib/sys/', []),
    onlyDown('mem-down-only', '^lib/mem/', ['^lib/sys/']),
    onlyDown('pci-down-only', '^lib/pci/', ['^lib/mem/', '^lib/sys/']),
    onlyDown('vfio-down-only', '^lib/vfio/', ['^lib/pci/', '^lib/mem/', '^lib/sys/']),
    onlyDown('transport-down-only', '^lib/transport/', ['^lib/vfio/', '^lib/pci/', '^lib/mem/', '^lib/sys/']),
    onlyDown('virtio-down-only', '^lib/virtio/', ['^lib/transport/', '^lib/pci/', '^lib/mem/']),
    {
      name: 'sim-is-the-device-side',
      comment: 'The reference device never imports the driver side (lib/virtio, lib/transport, drivers) nor libc (lib/sys, lib/vfio): sim: users never load koffi.',
      severity: 'error',
      from: { path: '^lib/sim/' },
      to: { path: '^(lib|drivers|cli)', pathNot: [GROUND, '^lib/sim/', '^lib/mem/', '^lib/pci/'] },
    },
    onlyDown('open-down-only', '^lib/(open|address|schemes)\\.ts$', ['^lib/(open|address|schemes)\\.ts$', '^lib/virtio/', '^lib/transport/', '^lib/sim/', '^lib/vfio/', '^lib/pci/', '^lib/mem/', '^lib/sys/']),
    onlyDown('drivers-through-lib-virtio', '^drivers/', ['^lib/virtio/', '^lib/mem/']),
    {
      name: 'lib-never-imports-cli',
      comment: 'The SDK does not depend on its command line.',
      severity: 'error',
      from: { path: '^(lib|drivers)/' },
      to: { path: '^cli/' },
    },
    {
      name: 'check-never-asks-the-reference-device',
      comment: 'uvirtio check (cli/check) judges a device only by what a driver sees: it never imports the reference device, whose insides would make it agree with the sim.',
      severity: 'error',
      from: { path: '^cli/(check/|commands/check\\.ts$)' },
      to: { path: '^lib/sim/' },
    },
    {
      name: 'examples-use-the-package-entry',
      comment: 'Examples import what a user of the package can: index.ts (the package entry), not internals.',
      severity: 'error',
      from: { path: '^examples/' },
      to: { path: '^(lib|drivers|cli)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|test)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
