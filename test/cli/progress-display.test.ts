/**
 * What `generate --wait` draws: a live line redrawn in place on a terminal, plain lines
 * elsewhere, and a byte progress bar for the download.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Task } from '../../packages/client/src/index.js';
import { runCli } from '../../src/cli/main.js';
import { DownloadProgress, TaskProgressLine } from '../../src/cli/progress-display.js';
import { fakeTaskGateway, succeededTask } from '../support/fake-task-gateway.js';

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, isTTY, columns: 120, write: (text: string) => writes.push(text) > 0 };
}

function task(status: Task['status'], provider: string | null, credits: number | null, estimated = true): Task {
  return {
    id: 'vid_1',
    status,
    provider,
    cost: { credits, estimated, currency_amount: credits === null ? null : credits / 100, currency: 'USD' },
    error: status === 'failed' ? { code: 'provider_error', message: 'upstream failed', provider_code: null } : null,
  } as Task;
}

describe('progress display', () => {
  it('redraws one line on a terminal with status, provider, elapsed time and cost, and ends it with a mark', () => {
    let now = 0;
    const out = stream(true);
    const line = new TaskProgressLine(out, 0, () => now);
    line.update(task('queued', null, null));
    now = 3_000;
    line.update(task('processing', 'freepik', 56));
    now = 65_000;
    line.update(task('succeeded', 'freepik', 56, false));
    line.finish();
    expect(out.writes[0]).toMatch(/^\r\x1b\[2K⠋ queued · no provider yet · 0:00 · —$/);
    expect(out.writes[1]).toContain('processing · freepik · 0:03 · $0.56 (56 credits, estimated)');
    expect(out.writes.at(-1)).toBe('\r\x1b[2K✔ succeeded · freepik · 1:05 · $0.56 (56 credits)\n');
  });

  it('ends the line of a task that failed or was canceled with ✖, not the ✔ of success', () => {
    for (const status of ['failed', 'canceled'] as const) {
      const out = stream(true);
      const line = new TaskProgressLine(out, 0, () => 5_000);
      line.update(task(status, 'freepik', null));
      line.finish();
      expect(out.writes.at(-1)).toMatch(new RegExp(`^\\r\\x1b\\[2K✖ ${status} · freepik · 0:05`));
    }
  });

  it('a terminal that reports no width (0 columns: script, a serial console, some CI terminals) gets the whole line, not 20 characters of it', () => {
    const out = { ...stream(true), columns: 0 };
    const line = new TaskProgressLine(out, 0, () => 3_000);
    line.update(task('processing', 'freepik', 56));
    line.finish();
    expect(out.writes[0]).toBe('\r\x1b[2K⠋ processing · freepik · 0:03 · $0.56 (56 credits, estimated)');
  });

  it('says how long a finished task took, not how long ago it was made (wait on an old task)', () => {
    const created = Date.parse('2026-12-03T10:00:00Z');
    const out = stream(false);
    // `wait` five and a half minutes after a task that took five seconds.
    const line = new TaskProgressLine(out, created, () => created + 330_000);
    line.update({ ...task('succeeded', 'freepik', 56), created_at: '2026-12-03T10:00:00Z', completed_at: '2026-12-03T10:00:05Z' } as Task);
    line.finish();
    expect(out.writes).toEqual(['succeeded · freepik · 0:05 · $0.56 (56 credits, estimated)\n']);
  });

  it('writes a plain line per change when not on a terminal', () => {
    let now = 0;
    const out = stream(false);
    const line = new TaskProgressLine(out, 0, () => now);
    line.update(task('processing', 'kling3api', 400));
    now = 1_000;
    line.update(task('processing', 'kling3api', 400));
    now = 2_000;
    line.update(task('failed', 'kling3api', 0, false));
    line.finish();
    expect(out.writes).toEqual([
      'processing · kling3api · 0:00 · $4.00 (400 credits, estimated)\n',
      'failed · kling3api · 0:02 · $0.00 (0 credits) · provider_error: upstream failed\n',
    ]);
  });

  it('draws a byte bar on a terminal and one summary line anywhere', () => {
    const tty = stream(true);
    const bar = new DownloadProgress(tty, 'vid_1.mp4', 2048);
    bar.add(1024);
    bar.add(1024);
    bar.finish('vid_1.mp4');
    const drawn = tty.writes.join('');
    expect(drawn).toContain('vid_1.mp4 [');
    expect(drawn).toMatch(/100% \| 2\.0 kB \/ 2\.0 kB/);
    expect(tty.writes.at(-1)).toBe('saved vid_1.mp4 (2.0 kB)\n');

    const plain = stream(false);
    const quiet = new DownloadProgress(plain, 'vid_1.mp4', null);
    quiet.add(300);
    quiet.finish('out/vid_1.mp4');
    expect(plain.writes).toEqual(['saved out/vid_1.mp4 (300 B)\n']);
  });

  it('generate --wait on a terminal with TERM=dumb (Emacs shell, some CI consoles) writes plain lines, no control codes', async () => {
    const server = await fakeTaskGateway((base) => succeededTask(base, 'vid_dumb'));
    const root = mkdtempSync(join(tmpdir(), 'kgw-dumb-'));
    try {
      const generate = async (term: string) => {
        let drawn = '';
        const terminal = Object.assign(
          new Writable({
            write(chunk: Buffer, _encoding, callback) {
              drawn += chunk.toString('utf8');
              callback();
            },
          }),
          { isTTY: true, columns: 120 },
        );
        const stdout = new Writable({ write: (_chunk, _encoding, callback) => callback() });
        const env = { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123', TERM: term };
        const code = await runCli(['generate', 'a fox', '--model', 'kling-v3', '--wait', '-o', `${root}/`, '--force'], { env, stdout, stderr: terminal, pause: async () => undefined });
        return { code, drawn };
      };
      // A terminal that can redraw gets the live line.
      expect((await generate('xterm-256color')).drawn).toContain('\r\x1b[2K');
      const dumb = await generate('dumb');
      expect(dumb.code).toBe(0);
      // (Before, the live line's \r and erase-line codes were written there too.)
      expect(dumb.drawn).not.toMatch(/[\r\x1b]/);
      expect(dumb.drawn).toMatch(/^succeeded · freepik · 0:05 · \$0\.01 \(1 credits?\)$/m);
      expect(dumb.drawn).toContain(`saved ${join(root, 'vid_dumb.mp4')} (`);
    } finally {
      await server.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
