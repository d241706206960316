/**
 * Copies kept as files: a write lands whole under its key or not at all (no half file under the
 * key, no temporary file left behind), whatever happens to the bytes on their way.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it, vi } from 'vitest';
import { FilesystemStorage } from '../../src/storage/filesystem-storage.js';
import { openObjectStorage } from '../../src/storage/open-storage.js';

const WRITER = fileURLToPath(new URL('../fixtures/storage-writer-child.ts', import.meta.url));
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

it('reads a copy whole once it answered it, also when the retention pass deletes it at that moment', async () => {
  const { storage: files, directory } = storage();
  const bytes = Buffer.alloc(64 * 1024, 7);
  await files.write('acme/2026-11-22/vid_1-0.mp4', Readable.from([bytes]), { contentType: 'video/mp4' });
  // The content route has its stream (and has sent 200 with the length) when the file is deleted.
  const read = await files.read('acme/2026-11-22/vid_1-0.mp4');
  rmSync(join(directory, 'acme/2026-11-22/vid_1-0.mp4'));
  const chunks: Buffer[] = [];
  for await (const chunk of read) chunks.push(chunk as Buffer);
  expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  // Asked after the deletion, it is not there.
  await expect(files.read('acme/2026-11-22/vid_1-0.mp4')).rejects.toMatchObject({ name: 'ObjectNotFoundError' });
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
  const { storage: files, directory } = storage();
  await expect(files.write('../outside.mp4', Readable.from([Buffer.from('x')]), { contentType: 'video/mp4' })).rejects.toThrow(/leaves the storage directory/);
  // Reads and deletes too: a file beside the folder is neither read nor deleted through a key.
  const beside = `${directory}-beside.mp4`;
  writeFileSync(beside, 'not a copy');
  directories.push(beside);
  const key = `../${basename(beside)}`;
  await expect(files.read(key)).rejects.toThrow(/leaves the storage directory/);
  await expect(files.delete(key)).rejects.toThrow(/leaves the storage directory/);
  expect(readFileSync(beside, 'utf8')).toBe('not a copy');
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

it('deletes what a process killed mid-write left behind, once untouched long enough, and never a write in progress', async () => {
  const { storage: files, directory } = storage();
  const writer = spawn(process.execPath, ['--import', 'tsx', WRITER, directory, 'acme/2026-12-01/vid_1-0.mp4'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const gone = new Promise((resolve) => writer.once('exit', resolve));
  await new Promise<void>((resolve) => writer.stdout.once('data', () => resolve()));
  writer.kill('SIGKILL');
  await gone;
  // The killed write left its bytes, under no key.
  const left = readdirSync(directory, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
  expect(left).toHaveLength(1);
  expect(readdirSync(directory, { recursive: true })).not.toContain('acme/2026-12-01/vid_1-0.mp4');
  // A write of this process is under way meanwhile.
  const source = new Readable({ read() {} });
  source.push(Buffer.alloc(4096, 2));
  const writing = files.write('acme/2026-12-01/vid_2-0.mp4', source, { contentType: 'video/mp4' });
  await vi.waitFor(() => expect(filesUnder(directory)).toHaveLength(2), { timeout: 10_000 });

  // Recently touched: kept (it could be another replica's write on a shared folder).
  expect(await files.sweepAbandoned(60_000)).toBe(0);
  expect(filesUnder(directory)).toHaveLength(2);
  // An hour after the crash, the dead write's file goes; the live one stays and lands under its key.
  const hourAgo = new Date(Date.now() - 3600_000);
  utimesSync(join(left[0]!.parentPath, left[0]!.name), hourAgo, hourAgo);
  expect(await files.sweepAbandoned(60_000)).toBe(1);
  source.push(null);
  await writing;
  expect(filesUnder(directory)).toEqual(['vid_2-0.mp4']);
});

it('is opened only on a directory it can write, made when missing, naming the setting otherwise', async () => {
  const { directory } = storage();
  const opened = await openObjectStorage({ backend: 'filesystem', path: join(directory, 'data/outputs') });
  expect(opened.kind).toBe('filesystem');
  expect(statSync(join(directory, 'data/outputs')).isDirectory()).toBe(true);
  // A path that cannot be a directory (here, under a file): the start stops instead of every copy failing.
  writeFileSync(join(directory, 'taken'), '');
  await expect(openObjectStorage({ backend: 'filesystem', path: join(directory, 'taken/outputs') })).rejects.toThrow(
    /^storage\.filesystem\.path: .*taken\/outputs cannot be written \(ENOTDIR/,
  );
});

it("tells check-config the start would stop on a link to a folder that is not there (a volume not mounted), as open finds", async () => {
  const { directory } = storage();
  symlinkSync(join(directory, 'unmounted/videos'), join(directory, 'outputs'));
  for (const path of [join(directory, 'outputs'), join(directory, 'outputs/sub')]) {
    await expect(FilesystemStorage.open(path)).rejects.toThrow(/cannot be written/);
    expect(await FilesystemStorage.writeProblem(path)).toMatch(new RegExp(`^${path} cannot be written \\(.*outputs.*\\)$`));
  }
  // Nothing was made, by either.
  expect(readdirSync(directory)).toEqual(['outputs']);
  // A link to a folder that is there is fine, as is a missing folder under it.
  mkdirSync(join(directory, 'unmounted/videos'), { recursive: true });
  expect(await FilesystemStorage.writeProblem(join(directory, 'outputs/sub'))).toBeUndefined();
});

it("removes a day's and a tenant's folders once their last copy is deleted, and keeps the root and every folder still holding one", async () => {
  const { storage: files, directory } = storage();
  const write = (key: string) => files.write(key, Readable.from([Buffer.from(key)]), { contentType: 'video/mp4' });
  await write('acme/2026-12-01/vid_1-0.mp4');
  await write('acme/2026-12-01/vid_2-0.mp4');
  await write('acme/2026-12-02/vid_3-0.mp4');
  await write('globex/2026-12-01/vid_4-0.mp4');
  await files.delete('acme/2026-12-01/vid_1-0.mp4');
  expect(readdirSync(join(directory, 'acme')).sort()).toEqual(['2026-12-01', '2026-12-02']);
  await files.delete('acme/2026-12-01/vid_2-0.mp4');
  expect(readdirSync(join(directory, 'acme'))).toEqual(['2026-12-02']);
  await files.delete('acme/2026-12-02/vid_3-0.mp4');
  expect(readdirSync(directory).filter((name) => name !== '.partial')).toEqual(['globex']);
  // Deleting what is not there (a leftover that never landed) removes nothing else.
  await files.delete('globex/2026-12-01/vid_9-0.mp4');
  expect(filesUnder(directory)).toEqual(['vid_4-0.mp4']);
  await files.delete('globex/2026-12-01/vid_4-0.mp4');
  expect(readdirSync(directory).filter((name) => name !== '.partial')).toEqual([]);
  expect(statSync(directory).isDirectory()).toBe(true);
});

it('lands every write in a folder that deletions of its other copies empty at the same time', async () => {
  const { storage: files, directory } = storage();
  const write = (key: string) => files.write(key, Readable.from([Buffer.from(key)]), { contentType: 'video/mp4' });
  await write('acme/2026-12-01/vid_0-0.mp4');
  for (let index = 1; index <= 40; index++) {
    await Promise.all([files.delete(`acme/2026-12-01/vid_${index - 1}-0.mp4`), write(`acme/2026-12-01/vid_${index}-0.mp4`)]);
  }
  expect(filesUnder(directory)).toEqual(['vid_40-0.mp4']);
  expect(readFileSync(join(directory, 'acme/2026-12-01/vid_40-0.mp4'), 'utf8')).toBe('acme/2026-12-01/vid_40-0.mp4');
});

it.skipIf(!existsSync('/proc/self/fd'))('holds no file open after its writes, stored or failed: copies never run the process out of descriptors', async () => {
  const { storage: files } = storage();
  const open = () => readdirSync('/proc/self/fd').length;
  const before = open();
  async function* failing() {
    yield Buffer.alloc(4096, 1);
    throw new Error('the source went away');
  }
  for (let index = 0; index < 30; index++) {
    await files.write(`acme/2026-12-06/vid_${index}-0.mp4`, Readable.from([Buffer.alloc(2048, index)]), { contentType: 'video/mp4' });
    await expect(files.write(`acme/2026-12-06/vid_${index}-1.mp4`, Readable.from(failing()), { contentType: 'video/mp4' })).rejects.toThrow();
  }
  expect(open()).toBeLessThan(before + 10);
});

it('keeps the storage folder itself when a deletion empties it, also without a folder of temporary files in it (copies moved in from elsewhere)', async () => {
  const { storage: files, directory } = storage();
  mkdirSync(join(directory, 'acme', '2026-12-01'), { recursive: true });
  writeFileSync(join(directory, 'acme', '2026-12-01', 'vid_1-0.mp4'), 'moved in');
  await files.delete('acme/2026-12-01/vid_1-0.mp4');
  expect(readdirSync(directory)).toEqual([]);
});

it('takes a key whose first folder merely begins with two dots as inside its directory', async () => {
  const { storage: files, directory } = storage();
  await files.write('..acme/2026-12-06/vid_1-0.mp4', Readable.from([Buffer.from('dotted')]), { contentType: 'video/mp4' });
  expect(readFileSync(join(directory, '..acme', '2026-12-06', 'vid_1-0.mp4'), 'utf8')).toBe('dotted');
  expect(await new Promise((resolve) => files.read('..acme/2026-12-06/vid_1-0.mp4').then((stream) => stream.once('data', (chunk) => resolve(String(chunk)))))).toBe('dotted');
  await files.delete('..acme/2026-12-06/vid_1-0.mp4');
  expect(filesUnder(directory)).toEqual([]);
  // A `..` anywhere that still leads out is refused, as is the directory itself.
  await expect(files.write('acme/../../out.mp4', Readable.from([Buffer.from('x')]), { contentType: 'video/mp4' })).rejects.toThrow(/leaves the storage directory/);
  await expect(files.write('.', Readable.from([Buffer.from('x')]), { contentType: 'video/mp4' })).rejects.toThrow(/leaves the storage directory/);
});
