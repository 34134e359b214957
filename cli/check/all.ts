// The suite, in the order it runs: status and reset first (the rest stands on a device that
// resets), then feature bits, the virtio-pci transport, the virtqueues (split, then packed), the
// device types, and the stop/state facilities. docs/check.md is generated from this table
// (scripts/check-doc.mjs; test/unit/check-doc.test.ts keeps it current).

import type { Check } from './types.js';
import { STATUS_CHECKS } from './checks/status.js';
import { FEATURE_CHECKS } from './checks/features.js';
import { PCI_CHECKS } from './checks/pci.js';
import { QUEUE_CHECKS } from './checks/queues.js';
import { DEVICE_CHECKS } from './checks/devices.js';
import { STATE_CHECKS } from './checks/state.js';

/** Every check of `uvirtio check`, in running order; ids are unique and stable. */
export const CHECKS: readonly Check[] = [...STATUS_CHECKS, ...FEATURE_CHECKS, ...PCI_CHECKS, ...QUEUE_CHECKS, ...DEVICE_CHECKS, ...STATE_CHECKS];
