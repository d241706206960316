/**
 * A replica stopped (SIGSTOP, a VM paused, a process swapped out) while one of its transactions
 * is open keeps that transaction open on the server: its connection stays up, so the server never
 * rolls it back, and the rows it locked stay locked. A create's transaction holds its provider's
 * row lock, which every replica's creates and dispatch take: until the frozen replica resumed,
 * no replica sent anything to that provider (creates hung, queued tasks stayed queued). The
 * server now ends a transaction left idle for a few seconds, and the others go on.
 */
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { openPostgresStore, postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const pinned = { model: 'kling-v3', prompt: 'sent while another replica is frozen', duration: 5, routing: { providers: ['kling3api'] } };

/** `work`, or a rejection once `ms` of real time passed without it settling. */
function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/**
 * Replica A's pool with a create's transaction open on it, holding `provider`'s lock, when the
 * replica froze: nothing more is sent on it until `thaw` (then its next statement).
 */
async function frozenInTransaction(store: Store, provider: string) {
  let thaw!: () => void;
  const thawed = new Promise<void>((resolve) => (thaw = resolve));
  let locked!: () => void;
  const lockTaken = new Promise<void>((resolve) => (locked = resolve));
  const transaction = store.db.transaction().execute(async (trx) => {
    await sql`SELECT id FROM providers WHERE id = ${provider} FOR UPDATE`.execute(trx);
    locked();
    await thawed;
    await sql`SELECT 1`.execute(trx);
  });
  // Settled (rejected, once the server ended it) whether or not the test reads it.
  transaction.catch(() => undefined);
  await Promise.race([lockTaken, transaction]);
  return { thaw, transaction };
}

describe.skipIf(!available)('a replica frozen in the middle of a create’s transaction', () => {
  const replicas = usePostgresReplicas();

  it('holds the other replicas’ creates to that provider only a few seconds: the server ends its transaction, which writes nothing', async () => {
    const b = await replicas.replica('replica-b');
    // Replica A's pool (its gateway is beside the point: it is frozen), with a shorter limit than
    // the default so the test is quick.
    const a = await openPostgresStore(replicas.schema, { maxConnections: 2, idleInTransactionTimeoutMs: 1_000 });
    let frozen: Awaited<ReturnType<typeof frozenInTransaction>> | undefined;
    try {
      frozen = await frozenInTransaction(a, 'kling3api');

      const created = await within(6_000, b.create(pinned));
      expect(created.status).toBe(202);
      expect(created.body.status).toBe('processing');
      expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(1);

      // Replica A resumes: its transaction is gone, and nothing it would have written is.
      frozen.thaw();
      await expect(frozen.transaction).rejects.toThrow();
      // Its pool goes on with a connection of its own.
      expect((await sql<{ one: number }>`SELECT 1 AS one`.execute(a.db)).rows).toEqual([{ one: 1 }]);
    } finally {
      // Replica A resumes whatever happened (its transaction ends either way), then closes.
      frozen?.thaw();
      await frozen?.transaction.catch(() => undefined);
      await a.close();
    }
  });
});
