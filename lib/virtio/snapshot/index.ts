// Snapshots: the format (format.ts), its validation (validate.ts) and atomic file I/O (file.ts).
// docs/snapshot.md describes the format; docs/snapshot.schema.json is its JSON Schema.

export {
  SNAPSHOT_FORMAT, SNAPSHOT_VERSION, MECHANISMS, MAX_DEVICE_STATE_BYTES, MAX_SNAPSHOT_FILE_BYTES,
  type Mechanism, type SnapshotQueue, type DeviceSnapshot,
} from './format.js';
export { parseSnapshot, validateSnapshot, checkSnapshotTarget, ringAreaSizes, type SnapshotTarget } from './validate.js';
export { writeSnapshotFile, readSnapshotFile, snapshotTempPath, removeStaleSnapshotTemps } from './file.js';
