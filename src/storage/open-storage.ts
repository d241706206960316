/**
 * Opens the configured storage backend. The S3 SDK is loaded only when S3 is chosen.
 */
import { FilesystemStorage } from './filesystem-storage.js';
import type { ObjectStorage } from './object-storage.js';
import { S3Storage, type S3StorageSettings } from './s3-storage.js';

export type StorageBackendSettings =
  | { backend: 'filesystem'; path: string }
  | ({ backend: 's3' } & S3StorageSettings);

/**
 * `writes: false` when nothing will be written (`storage.mode: passthrough`, where copies stored
 * before are still read and deleted): the filesystem's folder is then neither made nor required
 * to be writable.
 */
export async function openObjectStorage(settings: StorageBackendSettings, options: { writes: boolean } = { writes: true }): Promise<ObjectStorage> {
  if (settings.backend === 'filesystem') return options.writes ? FilesystemStorage.open(settings.path) : new FilesystemStorage(settings.path);
  return S3Storage.open(settings);
}
