/**
 * A download that breaks off in the middle (the connection cut by a proxy, a host restarting) is
 * resumed from the byte it reached, by HTTP Range, after a pause: the file saved is whole and
 * byte for byte the host's, and the user is told it happened. Three tries; then exit 9 as before,
 * with nothing left behind.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { runCli } from '../../src/cli/main.js';
import { runCliCaptured } from '../support/cli-run.js';
import { succeededTask } from '../support/fake-task-gateway.js';
import { loopbackServer } from '../support/raw-answer.js';

const ID = 'vid_resume';
const WHOLE = Buffer.from(Array.from({ length: 1024 * 1024 }, (_, i) => (i * 7 + (i >> 10)) % 251));
const CUT_AFTER = 256 * 1024;

describe('kling-gateway download resumes a download that broke off', () => {
  let server: { base: string; close: () => Promise<void> };
  /** How many of the next file answers are cut after `CUT_AFTER` bytes. */
  let cuts = 0;
  /** Bytes sent of an answer that is cut. */
  let cutAfter = CUT_AFTER;
  /** The file the host serves, and the one it serves after a cut (the file changed between tries). */
  let file = WHOLE;
  let fileAfterCut = WHOLE;
  /** Whether the host honours Range (a 206) or sends the whole file again (a 200). */
  let ranges = true;
  /** How far before (negative) or after (positive) the byte asked a 206 of this host starts. */
  let rangeShift = 0;
  /** What the host says identifies the file it serves (and checks an If-Range against): nothing, its ETag, or its Last-Modified. */
  let validators: 'none' | 'etag' | 'last-modified' = 'none';
  const asked: (string | undefined)[] = [];
  const ifRanges: (string | undefined)[] = [];
  const statuses: number[] = [];
  const roots: string[] = [];
  /**
   * Bytes the download under test has taken so far: what its `.part` holds, or what its stdout was
   * handed. A cut waits until the download took some of the answer's bytes: the CLI resumes from
   * what it kept, and a cut at a fixed time after the bytes went out could, on a loaded machine,
   * come before it kept any of them (then it resumed from where it was, not further).
   */
  let taken: () => number = () => 0;

  /** Cuts `res` once the download took more than `before` bytes (or after 10 s, whatever it took). */
  async function cutOnceTaken(res: { socket: { destroy(): void } | null }, before: number): Promise<void> {
    for (let waited = 0; waited < 10_000 && taken() <= before; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
    res.socket?.destroy();
  }

  beforeAll(async () => {
    let base = '';
    server = await loopbackServer((req, res) => {
      if ((req.url ?? '').startsWith('/files/')) {
        asked.push(req.headers.range);
        ifRanges.push(req.headers['if-range'] as string | undefined);
        const validator = validatorOf(file);
        // As RFC 9110 has it: If-Range naming another version gets the whole file.
        const sameFile = req.headers['if-range'] === undefined || req.headers['if-range'] === validator.value;
        const from = ranges && sameFile ? Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0) : 0;
        const start = from > 0 ? from + rangeShift : 0;
        const body = file.subarray(start);
        const headers = { 'content-type': 'video/mp4', 'content-length': body.length, ...validator.headers };
        statuses.push(from > 0 ? 206 : 200);
        if (from > 0) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${file.length - 1}/${file.length}` });
        else res.writeHead(200, headers);
        if (cuts > 0) {
          cuts -= 1;
          file = fileAfterCut;
          const before = taken();
          res.write(body.subarray(0, cutAfter), () => void cutOnceTaken(res, before));
          return;
        }
        res.end(body);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(succeededTask(base, ID)));
    });
    base = server.base;
  });

  afterEach(() => {
    cuts = 0;
    cutAfter = CUT_AFTER;
    file = WHOLE;
    fileAfterCut = WHOLE;
    ranges = true;
    rangeShift = 0;
    validators = 'none';
    asked.length = 0;
    ifRanges.length = 0;
    statuses.length = 0;
    taken = () => 0;
  });

  /** The validator the host serves `served` with, by `validators`: a strong ETag of its bytes, or a date that differs per file. */
  function validatorOf(served: Buffer): { value: string | undefined; headers: Record<string, string> } {
    if (validators === 'etag') {
      const value = `"${createHash('sha256').update(served).digest('hex')}"`;
      return { value, headers: { etag: value } };
    }
    if (validators === 'last-modified') {
      const value = new Date(served === WHOLE ? Date.UTC(2026, 0, 1) : Date.UTC(2026, 0, 2)).toUTCString();
      return { value, headers: { 'last-modified': value } };
    }
    return { value: undefined, headers: {} };
  }

  afterAll(async () => {
    await server?.close();
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  /** The byte each resumed request asked from (0: no Range, the `.part` held nothing yet). */
  function resumedFrom(): number[] {
    return asked.slice(1).map((range) => (range === undefined ? 0 : Number(/^bytes=(\d+)-$/.exec(range)?.[1])));
  }

  async function download(args: string[]) {
    const cwd = mkdtempSync(join(tmpdir(), 'kgw-resume-'));
    roots.push(cwd);
    taken = () => {
      try {
        return statSync(join(cwd, 'fox.mp4.part')).size;
      } catch {
        return 0;
      }
    };
    const pauses: number[] = [];
    const run = await runCliCaptured(['download', ID, ...args.map((arg) => arg.replace('{dir}', cwd))], {
      env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      pause: async (ms) => void pauses.push(ms),
    });
    return { ...run, pauses, cwd };
  }

  it('to a file cut twice: the saved file is the whole file, said as resumed from the byte reached', async () => {
    cuts = 2;
    const run = await download(['-o', '{dir}/fox.mp4']);
    expect(run.code).toBe(0);
    expect(readFileSync(join(run.cwd, 'fox.mp4')).equals(WHOLE)).toBe(true);
    expect(readdirSync(run.cwd)).toEqual(['fox.mp4']);
    // Each resume asks from the byte the file holds (what was received and written; bytes still
    // queued for the disk when the connection broke are asked again), further each time.
    const [first, second] = resumedFrom();
    expect(asked[0]).toBeUndefined();
    // On a busy machine the cut can come before the disk took any byte: then it starts over.
    expect(first).toBeGreaterThanOrEqual(0);
    expect(second).toBeGreaterThan(first!);
    expect(second).toBeLessThanOrEqual(2 * CUT_AFTER);
    expect(run.pauses).toEqual([1000, 2000]);
    const lines = run.stderr.trim().split('\n');
    expect(lines[0]).toBe(`download of output 0 of video ${ID} broke off after ${first} of ${WHOLE.length} bytes: terminated (other side closed); resuming from byte ${first} (try 1 of 3)`);
    expect(lines[1]).toBe(`download of output 0 of video ${ID} broke off after ${second} of ${WHOLE.length} bytes: terminated (other side closed); resuming from byte ${second} (try 2 of 3)`);
    expect(lines[2]).toBe(`saved ${join(run.cwd, 'fox.mp4')} (1.0 MB)`);
  });

  it('to stdout: the bytes written are the whole file once, none twice', async () => {
    cuts = 1;
    const chunks: Buffer[] = [];
    taken = () => chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    let stderr = '';
    const code = await runCli(['download', ID, '-o', '-'], {
      env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      pause: async () => undefined,
      stdout: new Writable({ write: (chunk: Buffer, _encoding, callback) => (chunks.push(chunk), callback()) }),
      stderr: new Writable({ write: (chunk: Buffer, _encoding, callback) => ((stderr += chunk.toString('utf8')), callback()) }),
    });
    expect(code).toBe(0);
    expect(Buffer.concat(chunks).equals(WHOLE)).toBe(true);
    expect(stderr).toContain(`resuming from byte ${resumedFrom()[0]} (try 1 of 3)`);
    expect(stderr).toContain('saved stdout (1.0 MB)');
    // stdout took every byte handed to it: the rest is asked from there.
    expect(asked).toHaveLength(2);
    expect(resumedFrom()[0]).toBeGreaterThan(0);
    expect(resumedFrom()[0]).toBeLessThanOrEqual(CUT_AFTER);
  });

  it('from a host that ignores Range: the bytes it sends again are skipped, and the file is whole', async () => {
    cuts = 1;
    ranges = false;
    const run = await download(['-o', '{dir}/fox.mp4']);
    expect(run.code).toBe(0);
    expect(readFileSync(join(run.cwd, 'fox.mp4')).equals(WHOLE)).toBe(true);
  });

  it('cut on every try: after three resumes, exit 9 saying how far it got, and no file left', async () => {
    cuts = 10;
    cutAfter = 64 * 1024;
    const run = await download(['-o', '{dir}/fox.mp4']);
    expect(run.code).toBe(9);
    expect(run.pauses).toEqual([1000, 2000, 4000]);
    expect(resumedFrom()).toHaveLength(3);
    const kept = resumedFrom().at(-1)!;
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^error: download of output 0 of video ${ID} broke off after (\\d+) of ${WHOLE.length} bytes: terminated \\(other side closed\\)$`));
    const last = Number(/broke off after (\d+)/.exec(run.stderr.trim().split('\n').at(-1)!)?.[1]);
    expect(last).toBeGreaterThan(kept);
    expect(last).toBeLessThanOrEqual(kept + 64 * 1024);
    expect(readdirSync(run.cwd)).toEqual([]);
  });

  it("resumes with If-Range naming the file's ETag, and the host's 206 is spliced on", async () => {
    cuts = 1;
    validators = 'etag';
    const run = await download(['-o', '{dir}/fox.mp4']);
    expect(run.code, run.stderr).toBe(0);
    expect(readFileSync(join(run.cwd, 'fox.mp4')).equals(WHOLE)).toBe(true);
    // On a busy machine the cut can come before the disk took any byte: then it starts over, asking no range.
    const resumedMidway = asked[1] !== undefined;
    expect(ifRanges).toEqual([undefined, resumedMidway ? validatorOf(WHOLE).value : undefined]);
    expect(statuses).toEqual([200, resumedMidway ? 206 : 200]);
  });

  it('resumes with If-Range naming its Last-Modified when the host sends no ETag', async () => {
    cuts = 1;
    validators = 'last-modified';
    const run = await download(['-o', '{dir}/fox.mp4']);
    expect(run.code, run.stderr).toBe(0);
    expect(ifRanges).toEqual([undefined, asked[1] !== undefined ? new Date(Date.UTC(2026, 0, 1)).toUTCString() : undefined]);
    expect(readFileSync(join(run.cwd, 'fox.mp4')).equals(WHOLE)).toBe(true);
  });

  it.each([['etag'], ['last-modified']] as const)(
    'a file that changed between tries, same size (%s): the host sends it whole, and it is saved from byte 0, not spliced onto the old one',
    async (validator) => {
      cuts = 1;
      validators = validator;
      fileAfterCut = Buffer.from(WHOLE.map((byte) => 255 - byte));
      const run = await download(['-o', '{dir}/fox.mp4']);
      expect(run.code, run.stderr).toBe(0);
      expect(statuses).toEqual([200, 200]);
      expect(readFileSync(join(run.cwd, 'fox.mp4')).equals(fileAfterCut)).toBe(true);
      expect(readdirSync(run.cwd)).toEqual(['fox.mp4']);
      // Unless the cut came before the disk took any byte (then nothing was begun to start over).
      if (asked[1] !== undefined) expect(run.stderr).toContain(`output 0 of video ${ID} changed since the download began: starting over from byte 0`);
    },
  );

  it('to stdout, a file that changed between tries: not resumed (what went out is of the old one), exit 9', async () => {
    cuts = 1;
    validators = 'etag';
    fileAfterCut = Buffer.from(WHOLE.map((byte) => 255 - byte));
    let stderr = '';
    const chunks: Buffer[] = [];
    taken = () => chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    const code = await runCli(['download', ID, '-o', '-'], {
      env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      pause: async () => undefined,
      stdout: new Writable({ write: (chunk: Buffer, _encoding, callback) => (chunks.push(chunk), callback()) }),
      stderr: new Writable({ write: (chunk: Buffer, _encoding, callback) => ((stderr += chunk.toString('utf8')), callback()) }),
    });
    expect(code).toBe(9);
    expect(stderr).toContain(`output 0 of video ${ID} changed since the download began: not resumed`);
    // Nothing of the new file went out after the old one's bytes.
    expect(WHOLE.subarray(0, Buffer.concat(chunks).length).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('a file that changed size between tries is not resumed: exit 9, and no file left', async () => {
    cuts = 1;
    fileAfterCut = Buffer.concat([WHOLE, Buffer.from('more')]);
    const run = await download(['-o', '{dir}/fox.mp4']);
    expect(run.code).toBe(9);
    expect(run.stderr).toContain(`output 0 of video ${ID} is now ${WHOLE.length + 4} bytes, not the ${WHOLE.length} begun: not resumed`);
    expect(readdirSync(run.cwd)).toEqual([]);
  });

  it('from a host whose 206 starts before the byte asked (its Content-Range says so): the bytes before it are skipped, and the file is whole', async () => {
    cuts = 1;
    rangeShift = -1000;
    const run = await download(['-o', '{dir}/fox.mp4']);
    expect(run.code).toBe(0);
    expect(readFileSync(join(run.cwd, 'fox.mp4')).equals(WHOLE)).toBe(true);
  });

  it('to stdout from a host whose 206 starts before the byte asked: the bytes written are the whole file once', async () => {
    cuts = 1;
    rangeShift = -1000;
    const chunks: Buffer[] = [];
    taken = () => chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    const code = await runCli(['download', ID, '-o', '-'], {
      env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' },
      pause: async () => undefined,
      stdout: new Writable({ write: (chunk: Buffer, _encoding, callback) => (chunks.push(chunk), callback()) }),
      stderr: new Writable({ write: (_chunk: Buffer, _encoding, callback) => callback() }),
    });
    expect(code).toBe(0);
    expect(Buffer.concat(chunks).equals(WHOLE)).toBe(true);
  });

  it('from a host whose 206 starts after the byte asked: not resumed (bytes would be missing), exit 9, and no file left', async () => {
    cuts = 1;
    rangeShift = 1000;
    const run = await download(['-o', '{dir}/fox.mp4']);
    expect(run.code).toBe(9);
    // Refused at its first resume: nothing was written on from the wrong byte, nor tried again from there.
    expect(resumedFrom()).toHaveLength(1);
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^error: download of output 0 of video ${ID} broke off after \\d+ of ${WHOLE.length} bytes: terminated \\(other side closed\\)$`));
    expect(readdirSync(run.cwd)).toEqual([]);
  });
});
