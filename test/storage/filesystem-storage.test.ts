/**
 * Copies kept as files: a write lands whole under its key or not at all (no half file under the
 * key, no temporary file left behind), whatever happens to the bytes on their way.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { FilesystemStorage } from '../../src/storage/filesystem-storage.js';

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function storage(): { storage: FilesystemStorage; directory: string } {
  const directory = mkdtempSync(join(tmpdir(), 'kg-files-'));
  directories.push(directory);
  return { storage: new FilesystemStorage(directory), directory };
}

const filesUnder = (directory: string): string[] => readdirSync(directory, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => entry.name);

it('writes every chunk under the key, in order, and leaves no temporary file', async () => {
  const { storage: files, directory } = storage();
  const chunks = Array.from({ length: 40 }, (_, index) => Buffer.alloc(4096, index));
  await files.write('acme/vid_1/0.mp4', Readable.from(chunks), { contentType: 'video/mp4' });
  expect(readFileSync(join(directory, 'acme/vid_1/0.mp4')).equals(Buffer.concat(chunks))).toBe(true);
  expect(filesUnder(directory)).toEqual(['0.mp4']);
  const read = await files.read('acme/vid_1/0.mp4', { start: 4096, end: 4096 * 2 - 1 });
  const bytes: Buffer[] = [];
  for await (const chunk of read) bytes.push(chunk as Buffer);
  expect(Buffer.concat(bytes).equals(chunks[1]!)).toBe(true);
});

it('leaves nothing when the bytes fail on their way or the write is stopped', async () => {
  const { storage: files, directory } = storage();
  async function* failing() {
    yield Buffer.alloc(4096, 1);
    throw new Error('the source went away');
  }
  await expect(files.write('acme/vid_2/0.mp4', Readable.from(failing()), { contentType: 'video/mp4' })).rejects.toThrow('the source went away');
  const stop = new AbortController();
  async function* slow() {
    yield Buffer.alloc(4096, 2);
    stop.abort(new Error('stopping'));
    yield Buffer.alloc(4096, 3);
  }
  await expect(files.write('acme/vid_3/0.mp4', Readable.from(slow()), { contentType: 'video/mp4', signal: stop.signal })).rejects.toThrow('stopping');
  expect(filesUnder(directory)).toEqual([]);
});

it('refuses a key that would leave its directory', async () => {
  const { storage: files } = storage();
  await expect(files.write('../outside.mp4', Readable.from([Buffer.from('x')]), { contentType: 'video/mp4' })).rejects.toThrow(/leaves the storage directory/);
});

it("makes a key's folder when it is missing, also when it was removed after an earlier write", async () => {
  const { storage: files, directory } = storage();
  await files.write('acme/2026-12-01/vid_1-0.mp4', Readable.from([Buffer.from('one')]), { contentType: 'video/mp4' });
  await files.write('acme/2026-12-01/vid_2-0.mp4', Readable.from([Buffer.from('two')]), { contentType: 'video/mp4' });
  rmSync(join(directory, 'acme'), { recursive: true });
  await files.write('acme/2026-12-01/vid_3-0.mp4', Readable.from([Buffer.from('three')]), { contentType: 'video/mp4' });
  expect(readFileSync(join(directory, 'acme/2026-12-01/vid_3-0.mp4'), 'utf8')).toBe('three');
  expect(filesUnder(directory)).toEqual(['vid_3-0.mp4']);
});
