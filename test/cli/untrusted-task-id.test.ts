/**
 * `kling-gateway download` names the files it writes after the task, from the gateway's answer.
 * A gateway (or whatever answers at its URL) that answers with a task id that is not a plain
 * file name — path separators, `..`, control characters — must not make the CLI write anywhere
 * but where it was told, nor print that id's escape sequences to the terminal.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured, type CapturedRun } from '../support/cli-run.js';
import { fakeTaskGateway, succeededTask } from '../support/fake-task-gateway.js';

describe('kling-gateway download with a task id that is not a file name', () => {
  let server: { base: string; close: () => Promise<void> };
  /** The id the fake gateway answers with, whatever id was asked for. */
  let answeredId = '';
  /** Scratch roots made by the tests, removed at the end. */
  const roots: string[] = [];

  /** A fresh `<root>/one/two/inside/`: room above the directory -o names for a path to escape to. */
  function scratch(): { root: string; workdir: string } {
    const root = mkdtempSync(join(tmpdir(), 'kgw-untrusted-id-'));
    roots.push(root);
    return { root, workdir: join(root, 'one', 'two', 'inside') };
  }

  /** Every file under `root` (directories left out). */
  function filesUnder(root: string): string[] {
    return (readdirSync(root, { recursive: true, withFileTypes: true }) as { isFile(): boolean; name: string; parentPath?: string; path?: string }[])
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath ?? entry.path ?? '', entry.name));
  }

  beforeAll(async () => {
    server = await fakeTaskGateway((base) => succeededTask(base, answeredId));
  });

  afterAll(async () => {
    await server?.close();
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  function download(args: string[]): Promise<CapturedRun> {
    return runCliCaptured(args, { env: { KLING_GATEWAY_URL: server.base, KLING_GATEWAY_API_KEY: 'test-key-123' }, pause: async () => undefined });
  }

  it.each([
    ['a parent-directory path', '../escaped'],
    ['a deeper parent-directory path', 'a/../../escaped'],
    ['an absolute path', '/tmp-escaped-by-id'],
    ['a backslash path', '..\\escaped'],
  ])('%s (%s) writes nothing outside the directory -o names, and exits as a refused answer', async (_what, id) => {
    answeredId = id;
    const { root, workdir } = scratch();
    const result = await download(['download', 'vid_asked', '-o', `${workdir}/`]);

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('not a file name');
    // Nothing was written: not in the directory, not next to it or above it, not at the absolute path.
    expect(filesUnder(root)).toEqual([]);
    expect(existsSync('/tmp-escaped-by-id.mp4')).toBe(false);
  });

  it('a task id with terminal escape sequences is refused before anything is written or printed raw', async () => {
    answeredId = 'vid_\u001b]0;owned\u0007x';
    const { root, workdir } = scratch();
    const result = await download(['download', 'vid_asked', '-o', `${workdir}/`]);

    expect(result.code).toBe(1);
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/[\u001b\u0007]/);
    expect(filesUnder(root)).toEqual([]);
  });

  it('a plain id is saved under its own name, as before', async () => {
    answeredId = 'vid_plain-Id_123';
    const { root, workdir } = scratch();
    const result = await download(['download', 'vid_plain-Id_123', '-o', `${workdir}/`]);

    expect(result.code, result.stderr).toBe(0);
    expect(filesUnder(root)).toEqual([join(workdir, 'vid_plain-Id_123.mp4')]);
  });
});

describe('kling-gateway <command> with an id that names no task', () => {
  // "" and "." would reach the list (`/v1/videos/`), ".." reaches `/v1/`: `get ""` printed the
  // list as an empty task, `download .` said it "is still undefined", `cancel ""` that the gateway
  // lacks cancel. A command-line error, before anything is sent (nothing listens at this URL: a
  // command that sent anything would exit 9).
  it.each([['get'], ['wait'], ['download'], ['cancel'], ['webhooks']])('%s "", "." and ".." exit 2 naming the id', async (command) => {
    for (const id of ['', '.', '..']) {
      const result = await runCliCaptured([command, id], { env: { KLING_GATEWAY_URL: 'http://127.0.0.1:2', KLING_GATEWAY_API_KEY: 'test-key-123' }, pause: async () => undefined });
      expect([result.code, result.stdout, result.stderr.split('\n')[0]], `${command} ${JSON.stringify(id)}`).toEqual([
        2,
        '',
        `error: command-argument value '${id}' is invalid for argument 'id'. not a task id (a task id looks like vid_…).`,
      ]);
    }
  });
});
