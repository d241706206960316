/**
 * The cluster tool used to pick free ports for its replicas, then start each on its port: another
 * process could take the port in between, answer `/readyz` in the replica's place (another
 * gateway would), and the run went on against the wrong process while the replica exited. A
 * replica with no configured port now listens on one the system picks and says which.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Replica } from '../../cluster/cluster.js';

let taker: Server | undefined;
let replica: Replica | undefined;

afterAll(async () => {
  await replica?.stop();
  await new Promise((resolve) => (taker ? taker.close(resolve) : resolve(undefined)));
});

describe('a cluster replica on a picked port', () => {
  it('serves on a port of its own even when the one it last had was taken meanwhile', { timeout: 120_000 }, async () => {
    taker = createServer((_request, response) => response.end('{"status":"ok"}'));
    await new Promise<void>((resolve) => taker!.listen(0, '127.0.0.1', resolve));
    const takenPort = (taker.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), 'kg-replica-port-'));
    const env = { DATABASE_URL: `sqlite:${join(dir, 'gw.db')}`, STORAGE_PATH: join(dir, 'outputs'), LOG_LEVEL: 'info' };
    replica = new Replica(0, takenPort, env, join(dir, 'replica.log'), true);

    await replica.start();

    expect(replica.running).toBe(true);
    expect(replica.port).not.toBe(takenPort);
    const ready = await fetch(`${replica.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready' });
    expect(readFileSync(join(dir, 'replica.log'), 'utf8')).not.toMatch(/EADDRINUSE/);
  });
});
