/**
 * Copies kept as files under a directory (by default `./data/outputs`, beside the SQLite file).
 * A write goes to a temporary file in the same directory and is renamed into place once flushed,
 * so a reader or a crash never sees half a file.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { ObjectNotFoundError, type ByteRange, type ObjectStorage } from './object-storage.js';

/**
 * Opens a new file for writing; its folder is made only when the open says it is missing. Most
 * writes go to a folder that exists (one per tenant and day), and asking for it first on every
 * write was a system call each time.
 */
async function openCreatingFolder(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(dirname(path), { recursive: true });
    return open(path, 'wx');
  }
}

export class FilesystemStorage implements ObjectStorage {
  readonly kind = 'filesystem';
  readonly description: string;
  private readonly root: string;

  constructor(directory: string) {
    this.root = resolve(directory);
    this.description = `filesystem:${this.root}`;
  }

  /** The file of a key; a key that would leave the directory is refused. */
  private pathOf(key: string): string {
    const path = resolve(this.root, key);
    const inside = relative(this.root, path);
    if (!inside || inside.startsWith('..') || inside.split(sep).includes('..')) throw new Error(`storage key ${key} leaves the storage directory`);
    return path;
  }

  async write(key: string, body: Readable, options: { contentType: string; signal?: AbortSignal }): Promise<void> {
    const path = this.pathOf(key);
    const partial = `${path}.partial-${randomBytes(6).toString('hex')}`;
    try {
      // One handle writes, flushes and closes (half the CPU of a write stream, then a second open
      // for the flush). Each chunk is written before the next is read: the source waits meanwhile.
      const handle = await openCreatingFolder(partial);
      try {
        for await (const chunk of body) {
          options.signal?.throwIfAborted();
          await handle.write(chunk as Buffer);
        }
        // Flushed before the rename, so the name never points at bytes still in the page cache
        // only (the data and the size that reads it back; the file's times need not be).
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(partial, path);
    } catch (error) {
      body.destroy();
      await rm(partial, { force: true });
      throw error;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(key);
    try {
      await stat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFoundError(key);
      throw error;
    }
    return createReadStream(path, range ? { start: range.start, end: range.end } : {});
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }
}
