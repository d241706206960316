/**
 * PostgreSQL refuses writes with `25006` (read_only_sql_transaction): the gateway's connections
 * landed on a server that is a replica now (the old primary, demoted by a failover, or a
 * connection string pointing at a standby), or one set read-only
 * (`default_transaction_read_only`). The gateway answered each create with `500`, as if the
 * request had broken something; a client had no word that sending it again later would work.
 * What a user sees now: `503` with `Retry-After`, nothing sent upstream, and the same
 * Idempotency-Key making the task once the database takes writes again. The server here is a
 * real PostgreSQL whose sessions are made read-only while the test says so.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { capturedLogs } from '../support/captured-logs.js';
import { postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

/** Every connection `pool` hands out is read-only while `readOnly()` says so (PostgreSQL's own setting, so its own 25006). */
function readOnlyWhile(pool: pg.Pool, readOnly: () => boolean): void {
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  const setting = async (client: pg.PoolClient) => {
    await client.query(`SET SESSION default_transaction_read_only = ${readOnly() ? 'on' : 'off'}`);
    return client;
  };
  (pool as unknown as { connect: (callback?: unknown) => unknown }).connect = (callback?: unknown) => {
    if (typeof callback === 'function') {
      const done = callback as (error: Error | undefined, client: pg.PoolClient | undefined, release: (error?: unknown) => void) => void;
      connect().then(
        (client) => setting(client).then((ready) => done(undefined, ready, (error) => ready.release(error as Error | undefined)), (error: Error) => done(error, undefined, () => client.release())),
        (error: Error) => done(error, undefined, () => undefined),
      );
      return undefined;
    }
    return connect().then(setting);
  };
}

const request = { model: 'kling-v3', prompt: 'a database demoted by a failover', duration: 5, routing: { providers: ['kling3api'] } };

describe.skipIf(!available)('PostgreSQL refusing writes as read-only (25006)', () => {
  const replicas = usePostgresReplicas();

  it('answers a create with 503 and Retry-After, sends nothing upstream, and takes it with the same Idempotency-Key once writes are taken again', async () => {
    const logs = capturedLogs();
    const gateway = await replicas.replica('demoted', {}, {}, {}, logs.sink);
    let readOnly = true;
    readOnlyWhile(gateway.gateway.store.store.pool!, () => readOnly);

    const refused = await gateway.create(request, { 'idempotency-key': 'read-only-1' });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.body.type).toMatch(/retry-later$/);
    expect(refused.body.detail).toMatch(/takes no writes/);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(0);
    // The operator reads PostgreSQL's code, as an error: a gateway pointed at a standby stays so until someone acts.
    expect(logs.text()).toMatch(/"level":"error"[^\n]*"msg":"the database takes no writes \(25006/);
    expect(logs.text()).not.toMatch(/"msg":"unhandled error"/);

    readOnly = false;
    const taken = await gateway.create(request, { 'idempotency-key': 'read-only-1' });
    expect(taken.status).toBe(202);
    expect(taken.headers.get('idempotent-replayed')).toBeNull();
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(1);
  });
});
