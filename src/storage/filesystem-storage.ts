/**
 * Copies kept as files under a directory (by default `./data/outputs`, beside the SQLite file).
 * A write goes to a temporary file in the storage's own `.partial` folder and is renamed into
 * place once flushed, so a reader or a crash never sees half a file under a key. A process killed
 * mid-write leaves its temporary file behind: `sweepAbandoned` deletes those nobody writes any more.
 */
import { randomBytes } from 'node:crypto';
import { close, constants, fdatasync, open as openFile, writev } from 'node:fs';
import { access, lstat, mkdir, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { ObjectNotFoundError, type ByteRange, type ObjectStorage } from './object-storage.js';

/**
 * Runs `step` on `path` (opening a new file there, or renaming one to it); the path's folder is
 * made only when the step says it is missing, and the step tried again. Most writes go to
 * folders that exist (the temporary folder, one per tenant and day), and asking for them first
 * on every write was a system call each time.
 */
async function creatingFolderOf<T>(path: string, step: () => Promise<T>): Promise<T> {
  // A folder made is made again when a deletion took it away meanwhile, it being empty.
  for (let tries = 1; ; tries++) {
    try {
      return await step();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || tries > 3) throw error;
      await mkdir(dirname(path), { recursive: true });
    }
  }
}

/**
 * The folder of files being written, beside the keys' folders (one filesystem, so the rename is
 * atomic). Temporary files are kept out of the keys' folders so that finding the abandoned ones
 * is one listing of one folder, not a walk through every tenant and day.
 */
const PARTIAL_FOLDER = '.partial';

/**
 * Names of temporary files: this process's random prefix and a count. Unique among replicas and
 * restarts sharing the folder as a random name per file was, without drawing random bytes for
 * every write.
 */
const PARTIAL_PREFIX = randomBytes(9).toString('hex');
let partialCount = 0;

/**
 * Bytes gathered before they are written: a source's small chunks (16 KB TLS records, a socket's
 * reads) go down in one system call, and a result of up to this size in one. Also what a write
 * holds in memory at most, beside the chunk being read.
 */
const WRITE_BATCH_BYTES = 64 * 1024;

/*
 * The write goes through a plain descriptor and node's callback calls: a `FileHandle` (its object,
 * its promise plumbing, its close tracking) cost more CPU than a small file's writing itself.
 */
function openNew(path: string): Promise<number> {
  return new Promise((resolve, reject) => openFile(path, 'wx', (error, fd) => (error ? reject(error) : resolve(fd))));
}

function closeFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => close(fd, (error) => (error ? reject(error) : resolve())));
}

function flushFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}

/** Writes all of `chunks` at the file's end: `writev` says how many bytes it wrote, and what it did not take is written again. */
async function writeAll(fd: number, chunks: Buffer[]): Promise<void> {
  let rest = chunks;
  while (rest.length > 0) {
    let written = await new Promise<number>((resolve, reject) => writev(fd, rest, (error, bytes) => (error ? reject(error) : resolve(bytes))));
    const left: Buffer[] = [];
    for (const chunk of rest) {
      if (written >= chunk.length) written -= chunk.length;
      else {
        left.push(written > 0 ? chunk.subarray(written) : chunk);
        written = 0;
      }
    }
    rest = left;
  }
}

/** Whether `path` is a symbolic link itself (whatever it points to). */
async function isLink(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink();
  } catch {
    return false;
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

  /**
   * The storage under `directory`, made if missing, once it is known to be writable: a directory
   * this process cannot write (a volume owned by another user, a read-only mount) stops the start
   * instead of failing every copy later while tasks wait for them.
   */
  static async open(directory: string): Promise<FilesystemStorage> {
    const storage = new FilesystemStorage(directory);
    try {
      await mkdir(storage.root, { recursive: true });
      await access(storage.root, constants.W_OK);
    } catch (error) {
      throw new Error(`storage.filesystem.path: ${storage.root} cannot be written (${(error as Error).message})`);
    }
    return storage;
  }

  /**
   * Why `open` would refuse `directory`, told without making anything (`check-config`): the
   * nearest folder that exists on its path must be a folder this process may write.
   */
  static async writeProblem(directory: string): Promise<string | undefined> {
    const root = resolve(directory);
    for (let folder = root; ; folder = dirname(folder)) {
      try {
        if (!(await stat(folder)).isDirectory()) return `${root} cannot be written (${folder} is not a folder)`;
        await access(folder, constants.W_OK);
        return undefined;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // A link to nothing (a volume not mounted) is there all the same: mkdir cannot make it.
        if (code === 'ENOENT' && (await isLink(folder))) return `${root} cannot be written (${folder} is a link to a folder that is not there)`;
        if (code === 'ENOENT' && dirname(folder) !== folder) continue;
        return `${root} cannot be written (${(error as Error).message})`;
      }
    }
  }

  /**
   * The file of a key; a key that would leave the directory is refused. Only a `..` part leaves
   * it: a folder or file whose name merely begins with two dots (a tenant named `..acme`) is
   * inside like any other.
   */
  private pathOf(key: string): string {
    const path = resolve(this.root, key);
    const inside = relative(this.root, path);
    if (!inside || isAbsolute(inside) || inside.split(sep)[0] === '..') throw new Error(`storage key ${key} leaves the storage directory`);
    return path;
  }

  async write(key: string, body: Readable, options: { contentType: string; signal?: AbortSignal }): Promise<void> {
    const path = this.pathOf(key);
    const partial = join(this.root, PARTIAL_FOLDER, `${PARTIAL_PREFIX}-${(partialCount++).toString(36)}.partial`);
    try {
      // One descriptor writes, flushes and closes (half the CPU of a write stream, then a second
      // open for the flush). Once a batch is gathered it is written before the next chunk is read:
      // the source waits meanwhile.
      const fd = await creatingFolderOf(partial, () => openNew(partial));
      try {
        let batch: Buffer[] = [];
        let batched = 0;
        for await (const chunk of body) {
          options.signal?.throwIfAborted();
          batch.push(chunk as Buffer);
          batched += (chunk as Buffer).length;
          if (batched < WRITE_BATCH_BYTES) continue;
          await writeAll(fd, batch);
          batch = [];
          batched = 0;
        }
        if (batch.length > 0) await writeAll(fd, batch);
        // Flushed before the rename, so the name never points at bytes still in the page cache
        // only (the data and the size that reads it back; the file's times need not be).
        await flushFile(fd);
      } finally {
        await closeFile(fd);
      }
      await creatingFolderOf(path, () => rename(partial, path));
    } catch (error) {
      body.destroy();
      await rm(partial, { force: true });
      throw error;
    }
  }

  /**
   * Opened here, before the caller answers anything: a file deleted afterwards (the retention
   * pass, another replica's) is still read whole from its open handle, where a stream opening
   * later would fail after the caller had sent its headers.
   */
  async read(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(key);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFoundError(key);
      throw error;
    }
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    await rm(path, { force: true });
    await this.removeEmptyFolders(dirname(path));
  }

  /**
   * The folders a deletion left empty, from the key's own up to (not including) the root: a
   * tenant's day once retention took its last copy, then the tenant's. `rmdir` refuses a folder
   * that is not empty, and a write that finds its folder gone makes it again.
   */
  private async removeEmptyFolders(folder: string): Promise<void> {
    for (let current = folder; current.startsWith(this.root + sep); current = dirname(current)) {
      try {
        await rmdir(current);
      } catch {
        return;
      }
    }
  }

  /**
   * Deletes temporary files nothing has written to for `idleMs` (wall-clock time, as file times
   * are): left by a process killed mid-write. A write in progress touches its file with every
   * batch it writes (`WRITE_BATCH_BYTES`), and a copy ends (its file removed) within the copy time limit, so a longer `idleMs`
   * never takes a live write's file, also on a folder replicas share. Returns how many went.
   */
  async sweepAbandoned(idleMs: number): Promise<number> {
    const folder = join(this.root, PARTIAL_FOLDER);
    let names: string[];
    try {
      names = await readdir(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
    let deleted = 0;
    for (const name of names) {
      if (!name.endsWith('.partial')) continue;
      const path = join(folder, name);
      try {
        const file = await stat(path);
        if (!file.isFile() || Date.now() - file.mtimeMs <= idleMs) continue;
        await rm(path, { force: true });
        deleted++;
      } catch (error) {
        // Renamed into place or swept by another replica meanwhile.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    return deleted;
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }
}
