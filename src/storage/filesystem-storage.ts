/**
 * Copies kept as files under a directory (by default `./data/outputs`, beside the SQLite file).
 * A write goes to a temporary file in the same directory and is renamed into place once flushed,
 * so a reader or a crash never sees half a file.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ObjectNotFoundError, type ByteRange, type ObjectStorage } from './object-storage.js';

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
    await mkdir(dirname(path), { recursive: true });
    const partial = `${path}.partial-${randomBytes(6).toString('hex')}`;
    try {
      await pipeline(body, createWriteStream(partial, { flags: 'wx' }), options.signal ? { signal: options.signal } : {});
      // Flushed before the rename, so the name never points at bytes still in the page cache only.
      const handle = await open(partial, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(partial, path);
    } catch (error) {
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
