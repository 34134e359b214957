// The control-queue commands the reference device understands (virtio 1.2 §5.1.6.5): only
// VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (class 4, command 0, le16 virtqueue_pairs, §5.1.6.5.5). Anything
// else, or a pair count outside 1..max_virtqueue_pairs, is answered VIRTIO_NET_ERR.

import { NetCtrl } from '../../spec/index.js';

export interface CtrlResult {
  ack: number;
  /** The new number of pairs in use, when the command set one. */
  pairs?: number;
}

/** `command`: class, command and data bytes (the device-readable part of the chain). */
export function mqCommand(command: Uint8Array, mqNegotiated: boolean, maxPairs: number): CtrlResult {
  const [cls, cmd] = [command[0], command[1]];
  if (!mqNegotiated || cls !== NetCtrl.CLASS_MQ || cmd !== NetCtrl.MQ_VQ_PAIRS_SET || command.length < 4) return { ack: NetCtrl.ACK_ERR };
  const pairs = command[2]! | (command[3]! << 8);
  if (pairs < NetCtrl.MQ_VQ_PAIRS_MIN || pairs > maxPairs) return { ack: NetCtrl.ACK_ERR };
  return { ack: NetCtrl.ACK_OK, pairs };
}
