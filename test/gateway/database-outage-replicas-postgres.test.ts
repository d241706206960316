/**
 * PostgreSQL goes away under two replicas (a restart, a failover): the replicas stay up, say they
 * are not ready, answer requests with 503 and `Retry-After` (a transient outage, not a fault of
 * the gateway's), and once the database is back they are ready again, go on with the tasks they
 * had, and wake each other's waiting clients again. The database is reached through a relay the
 * test takes down and brings back on the same port, as a restart does.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { POSTGRES_URL, postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';
import { tcpProxy, type TcpProxy } from '../../cluster/tcp-proxy.js';

const available = await postgresAvailable();

const pinned = { model: 'kling-v3', prompt: 'through a database restart', duration: 5, routing: { providers: ['kling3api'] } };

describe.skipIf(!available)('replicas through a PostgreSQL outage', () => {
  let relay: TcpProxy | undefined;
  // Registered first, so it runs after the replicas have closed (hooks run in reverse order).
  afterEach(async () => {
    await relay?.close();
    relay = undefined;
  });
  const replicas = usePostgresReplicas();

  /** Two replicas reaching the database through `relay`. */
  async function twoThroughRelay() {
    const server = new URL(POSTGRES_URL);
    relay = await tcpProxy(server.hostname, Number(server.port || 5432));
    server.port = String(relay.port);
    const store = { url: server.toString() };
    return [await replicas.replica('replica-a', {}, store), await replicas.replica('replica-b', {}, store)] as const;
  }

  it('is not ready and answers 503 with Retry-After while the database is down, then goes on where it was', async () => {
    const [a, b] = await twoThroughRelay();
    const before = await a.create(pinned);
    expect(before.status).toBe(202);

    await relay!.down();
    for (const replica of [a, b]) {
      expect((await replica.request('GET', '/readyz', undefined, {}, null)).status).toBe(503);
      const refused = await replica.create({ ...pinned, prompt: 'while the database is down' }, { 'idempotency-key': 'during-outage' });
      expect(refused.status, JSON.stringify(refused.body)).toBe(503);
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(refused.body.detail).toMatch(/database/);
      expect((await replica.get(before.body.id)).status).toBe(503);
    }
    // The workers' passes fail meanwhile, and the replicas stay up.
    await replicas.clock.advance(5_500);
    await a.gateway.runOnce().catch(() => undefined);

    await relay!.up();
    for (let tries = 0; !(a.gateway.notifications!.listening && b.gateway.notifications!.listening) && tries < 200; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    for (const replica of [a, b]) expect((await replica.request('GET', '/readyz', undefined, {}, null)).status).toBe(200);
    // The repeat the 503 asked for makes the task now.
    expect((await b.create({ ...pinned, prompt: 'while the database is down' }, { 'idempotency-key': 'during-outage' })).status).toBe(202);
    // A client waiting on B is woken by A's change (the clock stays put: no re-read answers it).
    const waiting = b.request('GET', `/v1/videos/${before.body.id}?wait=30`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await a.gateway.runOnce();
    expect((await waiting).body.status).toBe('succeeded');
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(2);
  });
});
