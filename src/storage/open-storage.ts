/**
 * Opens the configured storage backend. The S3 SDK is loaded only when S3 is chosen.
 */
import { FilesystemStorage } from './filesystem-storage.js';
import type { ObjectStorage } from './object-storage.js';
import { S3Storage, type S3StorageSettings } from './s3-storage.js';

export type StorageBackendSettings =
  | { backend: 'filesystem'; path: string }
  | ({ backend: 's3' } & S3StorageSettings);

export async function openObjectStorage(settings: StorageBackendSettings): Promise<ObjectStorage> {
  if (settings.backend === 'filesystem') return FilesystemStorage.open(settings.path);
  return S3Storage.open(settings);
}
