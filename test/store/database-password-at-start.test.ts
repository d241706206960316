/**
 * A start that cannot open its PostgreSQL database says why, naming the database without its
 * password: a server that refuses the connection, and a URL node-postgres cannot read (a password
 * with an unescaped `/`, whose "Invalid URL" error carries the whole URL as its `input`).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** `npm start`'s entry with `DATABASE_URL`, until it exits; everything it wrote to stdout and stderr. */
function startWith(databaseUrl: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src/main.ts')], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: databaseUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

it('a database that cannot be opened is named without its password', { timeout: 90_000 }, async () => {
  const runs = await Promise.all([
    // Nothing listens on port 1.
    startWith('postgres://gateway:pg-pass-refused-4c1d@127.0.0.1:1/gateway'),
    startWith('postgres://gateway:pg-pass/unescaped-7e2a@127.0.0.1:1/gateway'),
  ]);
  for (const { code, output } of runs) {
    expect(code).toBe(1);
    expect(output).toMatch(/could not (reach|open) the database/);
    expect(output).not.toMatch(/pg-pass|unescaped/);
  }
});
