/**
 * Copies kept as files, down to node's calls: a source's small chunks are written together, and a
 * write that reports fewer bytes than it was given is finished, never leaving the file short.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ writev: [] as number[], partial: false }));

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  return {
    ...actual,
    writev: (fd: number, buffers: Buffer[], callback: (error: NodeJS.ErrnoException | null, written: number, buffers: Buffer[]) => void) => {
      const total = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
      calls.writev.push(total);
      if (!calls.partial || total <= 1000) return actual.writev(fd, buffers, callback);
      // Takes the first 1000 bytes only.
      return actual.writev(fd, [Buffer.concat(buffers).subarray(0, 1000)], callback);
    },
  };
});

const { FilesystemStorage } = await import('../../src/storage/filesystem-storage.js');

const directories: string[] = [];
afterEach(() => {
  calls.writev.length = 0;
  calls.partial = false;
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function storage(): { files: InstanceType<typeof FilesystemStorage>; directory: string } {
  const directory = mkdtempSync(join(tmpdir(), 'kg-writes-'));
  directories.push(directory);
  return { files: new FilesystemStorage(directory), directory };
}

it('stores every byte when a write reports that it took only part of them', async () => {
  const { files, directory } = storage();
  calls.partial = true;
  const chunks = [Buffer.alloc(9000, 1), Buffer.alloc(9432, 2)];
  await files.write('acme/2026-12-03/vid_1-0.mp4', Readable.from(chunks), { contentType: 'video/mp4' });
  expect(readFileSync(join(directory, 'acme/2026-12-03/vid_1-0.mp4')).equals(Buffer.concat(chunks))).toBe(true);
  expect(calls.writev.length).toBeGreaterThan(1);
});

it("writes a small result's chunks in one call, and a large one in batches of 64 KiB", async () => {
  const { files, directory } = storage();
  // 18 KB as two TLS records.
  await files.write('acme/2026-12-03/vid_2-0.mp4', Readable.from([Buffer.alloc(16384, 3), Buffer.alloc(2048, 4)]), { contentType: 'video/mp4' });
  expect(calls.writev).toEqual([18432]);
  calls.writev.length = 0;
  const chunks = Array.from({ length: 10 }, (_, index) => Buffer.alloc(16384, index));
  await files.write('acme/2026-12-03/vid_3-0.mp4', Readable.from(chunks), { contentType: 'video/mp4' });
  expect(calls.writev).toEqual([65536, 65536, 32768]);
  expect(readFileSync(join(directory, 'acme/2026-12-03/vid_3-0.mp4')).equals(Buffer.concat(chunks))).toBe(true);
});
