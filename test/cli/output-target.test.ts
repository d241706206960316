/**
 * Where `kling-gateway download` (and `generate --wait`, `wait`) writes an output when `-o` names
 * something that is not a plain file or directory: a device (`/dev/null`), a named pipe, the
 * terminal (`/dev/stdout`). The bytes go into it as they would with `curl -o`; it is never
 * replaced by a regular file (a `.part` renamed over it would, for root, swap `/dev/null` for a
 * file). And a disk that fills up is this machine's problem, said as such (exit 2), not "try the
 * gateway again later" (exit 9).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { runCli } from '../../src/cli/main.js';
import { runCliCaptured, type CapturedRun } from '../support/cli-run.js';
import { fakeTaskGateway, succeededTask, VIDEO_BYTES } from '../support/fake-task-gateway.js';
import { loopbackServer } from '../support/raw-answer.js';
import { REFUSED_URL } from '../support/refused-port.js';

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

  it('-o reads a path as --help says: a directory only when it exists or ends in /, and a file name numbered for several outputs', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kgw-output-target-'));
    roots.push(root);
    expect((await download(['-o', join(root, 'videos')])).code).toBe(0);
    expect(statSync(join(root, 'videos')).isFile()).toBe(true);
    expect((await download(['-o', `${join(root, 'clips')}/`])).code).toBe(0);
    expect(readFileSync(join(root, 'clips', `${ID}.mp4`)).equals(VIDEO_BYTES)).toBe(true);
    outputCount = 2;
    try {
      expect((await download(['-o', join(root, 'fox.mp4')])).code).toBe(0);
    } finally {
      outputCount = 1;
    }
    expect(readdirSync(root).sort()).toEqual(['clips', 'fox-0.mp4', 'fox-1.mp4', 'videos']);
    const help = (await runCliCaptured(['download', '--help'], {})).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('a file (several outputs: <name>-<n>.<ext>), or a directory that exists or is written with a trailing /');
  });

  it('download --json prints the task id and the files saved, as --help says (there is no answer of the API to print)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kgw-output-target-'));
    roots.push(root);
    const saved = await download(['-o', `${root}/`, '--json']);
    expect(saved.code).toBe(0);
    expect(JSON.parse(saved.stdout)).toEqual({ id: ID, saved: [join(root, `${ID}.mp4`)] });
    const help = (await runCliCaptured(['download', '--help'], {})).stdout.replace(/\s+/g, ' ');
    expect(help).toContain("--json print JSON instead of tables: the API's answer (download: the task id and the files saved;");
  });

  it('generate --wait --json and wait --json print the task with the files saved beside it, under the name download --json uses', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kgw-output-target-'));
    roots.push(root);
    const env = { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' };
    const generated = await runCliCaptured(['generate', 'a fox', '--model', 'kling-v3', '--wait', '--json', '-o', `${root}/`], { env, pause: async () => undefined });
    expect(generated.code, generated.stderr).toBe(0);
    // The task as the API has it (its fields unchanged), and where its video went.
    expect(JSON.parse(generated.stdout)).toEqual({ ...succeededTask(server.base, ID), saved: [join(root, `${ID}.mp4`)] });
    const waited = await runCliCaptured(['wait', ID, '--json', '-o', join(root, 'fox.mp4'), '--force'], { env, pause: async () => undefined });
    expect(JSON.parse(waited.stdout)).toMatchObject({ id: ID, status: 'succeeded', saved: [join(root, 'fox.mp4')] });
    // Nothing saved, nothing said: the task alone.
    const unsaved = await runCliCaptured(['wait', ID, '--json', '--no-download'], { env, pause: async () => undefined });
    expect(JSON.parse(unsaved.stdout)).toEqual(succeededTask(server.base, ID));
    const help = (await runCliCaptured(['generate', '--help'], {})).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('generate --wait, wait: the task, with the files saved in saved;');
  });

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

  it('-o a place no file can be made (/proc): the error names the path given, not the .part written first', async () => {
    const result = await download(['-o', '/proc/x.mp4']);
    // (Before: "open '/proc/x.mp4.part'", a name the user never gave.)
    expect([result.code, result.stderr]).toEqual([
      2,
      `error: cannot save output 0 of video ${ID}: ENOENT: no such file or directory, open '/proc/x.mp4' (save it with: kling-gateway download ${ID} -o <path>)\n`,
    ]);
  });
});

/**
 * `-o -` into a pipe whose reader quits early (`| head -c 100`): the video was not written whole,
 * so the command must not end as if it had been (exit 0 made `… -o - | head` look like a saved
 * video to a script). Likewise a stdout or stderr that cannot be written. Through real pipes and
 * files, since that is where a reader goes away or a disk fills.
 */
describe('kling-gateway when stdout or stderr cannot take what it writes', { timeout: 60_000 }, () => {
  // Far more than a pipe holds (64 KiB on Linux), so the reader's leaving is seen by a write.
  const BIG = Buffer.alloc(4 * 1024 * 1024, 7);
  let server: { base: string; close: () => Promise<void> };

  beforeAll(async () => {
    server = await fakeTaskGateway((base) => succeededTask(base, ID), BIG);
  });

  afterAll(async () => {
    await server?.close();
  });

  /** Runs `kling-gateway <args>` in bash as `… | <reader>` (or `… > <file>`); gives its own exit status and stderr. */
  function shell(args: string, after: string): Promise<{ code: number; stderr: string; readerOut: string }> {
    const script = `"$NODE" "$BIN" ${args} 2>"$ERR" ${after}; echo "cli=\${PIPESTATUS[0]}"`;
    const root = mkdtempSync(join(tmpdir(), 'kgw-output-closed-'));
    const errFile = join(root, 'stderr');
    return new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', script], {
        cwd: root,
        env: { ...process.env, NODE: process.execPath, BIN, ERR: errFile, KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.on('error', reject);
      child.on('close', () => {
        const code = Number(/cli=(\d+)\s*$/.exec(out)?.[1]);
        const stderr = readFileSync(errFile, 'utf8');
        rmSync(root, { recursive: true, force: true });
        resolve({ code, stderr, readerOut: out.replace(/cli=\d+\s*$/, '') });
      });
    });
  }

  it('download -o - | head -c 100: exits 141 with one line saying stdout closed early, not 0', async () => {
    const result = await shell(`download ${ID} -o -`, '| head -c 100 | wc -c');
    expect(result.readerOut.trim()).toBe('100');
    expect([result.code, result.stderr]).toEqual([
      141,
      `error: stdout closed before video ${ID} was written whole (its reader quit); save it with: kling-gateway download ${ID} -o <file>\n`,
    ]);
  });

  it('wait -o - | head -c 100 exits 141 too, its last line saying how to save the video the task made', async () => {
    const result = await shell(`wait ${ID} -o -`, '| head -c 100 > /dev/null');
    expect(result.code).toBe(141);
    expect(result.stderr.split('\n').slice(-2)).toEqual([
      `error: stdout closed before video ${ID} was written whole (its reader quit); save it with: kling-gateway download ${ID} -o <file>`,
      '',
    ]);
    expect(result.stderr).not.toContain('saved stdout');
  });

  it('download -o - into a reader that takes it all still exits 0 with every byte', async () => {
    const result = await shell(`download ${ID} -o -`, '| wc -c');
    expect([result.code, result.readerOut.trim(), result.stderr]).toEqual([0, String(BIG.length), 'saved stdout (4.0 MB)\nstdout\n']);
  });

  it('-o - on a full disk is said in one line and exits 2, as -o a file on a full disk does: no stack trace', async () => {
    const result = await shell(`download ${ID} -o -`, '> /dev/full');
    expect([result.code, result.stderr]).toEqual([
      2,
      `error: cannot write video ${ID} to stdout: ENOSPC: no space left on device, write (save it with: kling-gateway download ${ID} -o <path>)\n`,
    ]);
  });

  it('a table or JSON to stdout on a full disk is said in one line and exits 2: no stack trace', async () => {
    for (const args of [`get ${ID}`, `--json get ${ID}`]) {
      const result = await shell(args, '> /dev/full');
      expect([result.code, result.stderr], args).toEqual([2, 'error: cannot write to stdout: ENOSPC: no space left on device, write\n']);
    }
  });

  /** Runs `kling-gateway <args>` with stderr a pipe nobody reads (its reader gone before the first line). */
  function withStderrClosed(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; cwd: string }> {
    const cwd = mkdtempSync(join(tmpdir(), 'kgw-stderr-closed-'));
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...process.env, KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr.destroy();
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, cwd })));
  }

  it('a stderr whose reader quit ends nothing: wait still saves the video whole, and an error keeps its exit code', async () => {
    const waited = await withStderrClosed(['wait', ID]);
    try {
      expect([waited.code, waited.stdout]).toEqual([0, expect.stringContaining(`  saved       ${ID}.mp4\n`)]);
      expect(readFileSync(join(waited.cwd, `${ID}.mp4`)).equals(BIG)).toBe(true);
    } finally {
      rmSync(waited.cwd, { recursive: true, force: true });
    }
    // Nothing listens at this address: exit 9, said on a stderr no one reads.
    const unreachable = await withStderrClosed(['get', ID], { KLING_GATEWAY_URL: REFUSED_URL });
    rmSync(unreachable.cwd, { recursive: true, force: true });
    expect(unreachable.code).toBe(9);
  });
});

describe('kling-gateway download cut short by the file host', () => {
  const HALF = Buffer.alloc(256 * 1024, 3);
  const WHOLE = 1024 * 1024;
  let server: { base: string; close: () => Promise<void> };
  /** File requests of the running test: the first is cut short, every later one finds the host gone. */
  let fileRequests = 0;

  beforeAll(async () => {
    let base = '';
    server = await loopbackServer((req, res) => {
      if ((req.url ?? '').startsWith('/files/')) {
        // Asked for the rest (the CLI resumes once, after a second): the host is gone by then.
        // Counted, not told by a Range header: a cut seen before the CLI took any byte resumes
        // from byte 0, which asks with none.
        if (fileRequests++ > 0) {
          req.socket.destroy();
          return;
        }
        // A quarter of what it promised, then the connection drops.
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': WHOLE });
        res.write(HALF, () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(succeededTask(base, ID)));
    });
    base = server.base;
  });

  afterAll(async () => {
    await server?.close();
  });

  it.each([['a file', 'cut.mp4'], ['stdout', '-']])('to %s, and gone when resumed: exit 9, saying how far it got and why, and no file left', async (_what, target) => {
    const cwd = mkdtempSync(join(tmpdir(), 'kgw-cut-'));
    fileRequests = 0;
    try {
      const child = spawn(process.execPath, [BIN, 'download', ID, '-o', target], {
        cwd,
        env: { ...process.env, KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stdout.resume();
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      // How far: what had come through when the cut was seen (at most what was sent).
      const brokeOff = `download of output 0 of video ${ID} broke off after (\\d+) of ${WHOLE} bytes: terminated \\(other side closed\\)`;
      expect([code, stderr]).toEqual([9, expect.stringMatching(new RegExp(`^${brokeOff}; resuming from byte \\1 \\(try 1 of 3\\)\nerror: ${brokeOff}\n$`))]);
      expect(Number(/after (\d+) of/.exec(stderr)?.[1])).toBeLessThanOrEqual(HALF.length);
      expect(readdirSync(cwd)).toEqual([]);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
