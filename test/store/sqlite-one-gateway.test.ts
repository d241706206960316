/**
 * One SQLite file serves one gateway (or the workers of one primary): a start takes over every
 * lease in it, as nobody else can hold one. A second gateway started on the same file while the
 * first runs (a deploy that starts the new process before stopping the old one, on another port)
 * took over the first one's leases — its creates on their way and its polls — and settled them
 * as abandoned. It is now refused, naming the file; the first one goes on, and a start after the
 * first ended (even by kill -9) is not held up.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import SqliteDatabase from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { runCliCaptured } from '../support/cli-run.js';
import { gatewayExit, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';

const running: GatewayProcess[] = [];
afterEach(() => {
  for (const gateway of running.splice(0)) gateway.child.kill('SIGKILL');
});

function exited(gateway: GatewayProcess): Promise<unknown> {
  return gateway.child.exitCode !== null || gateway.child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => gateway.child.once('exit', resolve));
}

it('refuses a second gateway on a SQLite file another gateway is using, and starts once that one is gone', { timeout: 90_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-one-gateway-'));
  const env = { HOST: '127.0.0.1', DATABASE_URL: `sqlite:${join(folder, 'gateway.db')}`, STORAGE_PATH: join(folder, 'outputs'), LOG_LEVEL: 'info' };
  const first = await startGatewayProcess(env);
  running.push(first);

  const second = await gatewayExit({ ...env, PORT: '0' });
  expect(second.code).toBe(1);
  expect(second.stderr).toContain(`kling-gateway: another gateway process is using the SQLite database ${join(folder, 'gateway.db')}: stop it first`);
  // The first one was left alone.
  expect((await fetch(`${first.url}/readyz`)).status).toBe(200);

  // Killed outright: the operating system lets go of its hold, so the next start goes ahead at once.
  first.child.kill('SIGKILL');
  await exited(first);
  const third = await startGatewayProcess(env);
  running.push(third);
  expect((await fetch(`${third.url}/readyz`)).status).toBe(200);
});

it('refuses a second gateway that names the same SQLite file through a symbolic link to the file', { timeout: 90_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-one-gateway-'));
  mkdirSync(join(folder, 'data'));
  const env = { HOST: '127.0.0.1', STORAGE_PATH: join(folder, 'outputs'), LOG_LEVEL: 'info' };
  const first = await startGatewayProcess({ ...env, DATABASE_URL: `sqlite:${join(folder, 'data', 'gateway.db')}` });
  running.push(first);
  // The file named by a link elsewhere (an app folder pointing at the volume that holds it).
  symlinkSync(join(folder, 'data', 'gateway.db'), join(folder, 'gateway.db'));

  const second = await gatewayExit({ ...env, DATABASE_URL: `sqlite:${join(folder, 'gateway.db')}`, PORT: '0' });
  expect(second.code).toBe(1);
  expect(second.stderr).toContain(`kling-gateway: another gateway process is using the SQLite database ${join(folder, 'gateway.db')}: stop it first`);
  expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
});

it('names the lock file when it cannot be made, instead of an error naming no file', { timeout: 90_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-one-gateway-'));
  // Something that is no file where the lock goes (as a folder the gateway may not write would).
  mkdirSync(join(folder, 'gateway.db.owner'));
  const refused = await gatewayExit({ HOST: '127.0.0.1', PORT: '0', DATABASE_URL: `sqlite:${join(folder, 'gateway.db')}`, STORAGE_PATH: join(folder, 'outputs') });
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(`cannot take the lock file ${join(folder, 'gateway.db.owner')} beside the SQLite database`);
});

it('kling-gateway migrate refuses to apply migrations to a SQLite file a running gateway holds, changing nothing, and applies them once it is gone', { timeout: 60_000 }, async () => {
  const folder = mkdtempSync(join(tmpdir(), 'kg-one-gateway-'));
  const file = join(folder, 'gateway.db');
  // What a running gateway holds (as `sqlite-owner.ts` takes it): its `.owner` file, locked.
  const holder = spawn(
    process.execPath,
    [
      '-e',
      "const D = require('better-sqlite3'); const d = new D(process.argv[1]); d.pragma('locking_mode = EXCLUSIVE'); d.exec('begin exclusive; create table if not exists owner (pid integer); commit'); console.log('held'); setInterval(() => {}, 1000);",
      `${file}.owner`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    const refused = await runCliCaptured(['migrate', '--database-url', `sqlite:${file}`], { env: {} });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`a gateway is running on this file; stop it before migrating \\(\\d+ migrations to apply: 0001_initial, .*\\); nothing was changed`));
    // Nothing applied: the file holds no table.
    const tables = new SqliteDatabase(file, { readonly: true }).prepare("select name from sqlite_master where type = 'table'").all();
    expect(tables).toEqual([]);
  } finally {
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
  }
  const applied = await runCliCaptured(['migrate', '--database-url', `sqlite:${file}`], { env: {} });
  expect(applied.code).toBe(0);
  expect(applied.stdout).toContain('schema up to date');
});
