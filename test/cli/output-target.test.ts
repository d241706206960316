/**
 * Where `kling-gateway download` (and `generate --wait`, `wait`) writes an output when `-o` names
 * something that is not a plain file or directory: a device (`/dev/null`), a named pipe, the
 * terminal (`/dev/stdout`). The bytes go into it as they would with `curl -o`; it is never
 * replaced by a regular file (a `.part` renamed over it would, for root, swap `/dev/null` for a
 * file). And a disk that fills up is this machine's problem, said as such (exit 2), not "try the
 * gateway again later" (exit 9).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { runCli } from '../../src/cli/main.js';
import { runCliCaptured, type CapturedRun } from '../support/cli-run.js';
import { fakeTaskGateway, succeededTask, VIDEO_BYTES } from '../support/fake-task-gateway.js';

const ID = 'vid_target';
const BIN = fileURLToPath(new URL('../../bin/kling-gateway.js', import.meta.url));

describe('kling-gateway download -o something that is not a regular file', () => {
  let server: { base: string; close: () => Promise<void> };
  const roots: string[] = [];
  let outputCount = 1;

  beforeAll(async () => {
    server = await fakeTaskGateway((base) => succeededTask(base, ID, outputCount));
  });

  afterAll(async () => {
    await server?.close();
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  function download(args: string[]): Promise<CapturedRun> {
    return runCliCaptured(['download', ID, ...args], { env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' }, pause: async () => undefined });
  }

  it('-o /dev/null takes the bytes, needs no --force and stays the device it is', async () => {
    const before = statSync('/dev/null');
    const result = await download(['-o', '/dev/null']);
    expect([result.code, result.stderr]).toEqual([0, expect.stringContaining('saved /dev/null (')]);
    const after = statSync('/dev/null');
    expect(after.isCharacterDevice()).toBe(true);
    expect(after.ino).toBe(before.ino);
    expect(readdirSync('/dev').filter((name) => name.startsWith('null.'))).toEqual([]);
  });

  it('-o a named pipe writes into the pipe (with or without --force), and leaves the pipe a pipe', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kgw-output-target-'));
    roots.push(root);
    const fifo = join(root, 'video.pipe');
    execFileSync('mkfifo', [fifo]);
    for (const flags of [[], ['--force']]) {
      // A reader at the other end, as `kling-gateway download … -o pipe & ffprobe pipe` has.
      const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
      const chunks: Buffer[] = [];
      reader.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
      const read = new Promise<Buffer>((resolve) => reader.on('close', () => resolve(Buffer.concat(chunks))));
      const result = await download(['-o', fifo, ...flags]);
      expect([result.code, result.stderr]).toEqual([0, expect.stringContaining(`saved ${fifo} (`)]);
      expect((await read).equals(VIDEO_BYTES)).toBe(true);
      expect(statSync(fifo).isFIFO()).toBe(true);
      expect(readdirSync(root)).toEqual(['video.pipe']);
    }
  });

  it('-o a named pipe for a task of several outputs is refused before anything is saved: no files are made beside it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kgw-output-target-'));
    roots.push(root);
    const fifo = join(root, 'video.pipe');
    execFileSync('mkfifo', [fifo]);
    outputCount = 2;
    try {
      const result = await download(['-o', fifo]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`video ${ID} has 2 outputs; -o ${fifo} takes one: save them with -o <directory>/`);
      expect(readdirSync(root)).toEqual(['video.pipe']);
      expect(statSync(fifo).isFIFO()).toBe(true);
    } finally {
      outputCount = 1;
    }
  });

  it.each([['/dev/stdout'], ['-']])('-o %s pipes the video out whole: the lines that would go to stdout go to stderr', async (target) => {
    const cwd = mkdtempSync(join(tmpdir(), 'kgw-output-target-'));
    roots.push(cwd);
    const child = spawn(process.execPath, [BIN, 'download', ID, '-o', target], {
      cwd,
      env: { ...process.env, KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const named = target === '-' ? 'stdout' : target;
    expect([code, stderr]).toEqual([0, `saved ${named} (42 B)\n${named}\n`]);
    expect(Buffer.concat(stdout).equals(VIDEO_BYTES)).toBe(true);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('-o - with stdout on a terminal is refused before anything is sent or made, as curl does', async () => {
    const terminal = Object.assign(new Writable({ write: (_chunk, _encoding, callback) => callback() }), { isTTY: true });
    let stderr = '';
    const errors = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        stderr += chunk.toString('utf8');
        callback();
      },
    });
    // Nothing listens at this address: a command that sent anything would exit 9.
    const env = { KLING_GATEWAY_URL: 'http://127.0.0.1:2', KLING_GATEWAY_API_KEY: 'test-key-123' };
    for (const args of [['download', ID, '-o', '-'], ['wait', ID, '-o', '/dev/stdout'], ['generate', 'a fox', '--model', 'kling-v3', '-o', '-']]) {
      stderr = '';
      const code = await runCli(args, { env, stdout: terminal, stderr: errors, pause: async () => undefined });
      expect([code, stderr], args.join(' ')).toEqual([2, expect.stringMatching(/^error: -o (-|\/dev\/stdout) writes the video to stdout, which is a terminal: pipe it/)]);
    }
  });

  it('a disk that is full is this machine\'s problem: exit 2 with how to save it elsewhere, not "try again later" (9)', async () => {
    // /dev/full answers every write with ENOSPC, as a full disk does.
    const result = await download(['-o', '/dev/full']);
    expect([result.code, result.stderr]).toEqual([
      2,
      `error: cannot save output 0 of video ${ID}: ENOSPC: no space left on device, write (save it with: kling-gateway download ${ID} -o <path>)\n`,
    ]);
    expect(statSync('/dev/full').isCharacterDevice()).toBe(true);
  });
});
