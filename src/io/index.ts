// kiln.io: safetensors files and training checkpoints.
export { encodeSafetensors, decodeSafetensors, saveSafetensors, loadSafetensors, writeFileAtomic } from './safetensors.js';
export type { SafetensorsFile } from './safetensors.js';
export { saveCheckpoint, loadCheckpoint } from '../nn/checkpoint.js';
export type { CheckpointMeta, SaveCheckpointOptions, LoadCheckpointOptions, LoadedCheckpoint } from '../nn/checkpoint.js';
