/**
 * Idempotency keys are per tenant (SPEC §4) on both engines: when two tenants use the same key,
 * a repeat by either one names its own task and its own request, never the other tenant's. And a
 * key purged between a create meeting it and reading it (PostgreSQL) is taken again, not a 500.
 */
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { storeBackends, storeForTests } from '../support/postgres.js';
import { MINUTE, T0, taskRow } from '../support/task-rows.js';


const BACKENDS = await storeBackends();

describe.each(BACKENDS)('idempotency keys of two tenants on $name', (backend) => {
  describe.skipIf(backend.skip)(backend.name, () => {
    let store: Store;
    let tasks: TaskStore;

    storeForTests(backend, (opened) => {
      store = opened;
      tasks = new TaskStore(store);
    });

    it.skipIf(backend.name !== 'postgres')('a key purged between a create meeting it and reading it is taken by that create, not answered as an error', async () => {
      // The key another create holds passes its time and a replica's purge deletes it just after
      // this create's insert met it: the create's own read then finds no key (READ COMMITTED).
      const purgedKey = { key: 'purged-key', requestHash: 'sha256:late', expiresAt: T0 + 48 * 60 * MINUTE };
      expect((await tasks.createTask(taskRow('t_first', { tenant: 'acme' }), { ...purgedKey, requestHash: 'sha256:first' })).created).toBe(true);
      const inserts = new Set<unknown>();
      let purged = 0;
      const purgeAfterMeeting: KyselyPlugin = {
        transformQuery({ node, queryId }: PluginTransformQueryArgs): RootOperationNode {
          if (node.kind === 'InsertQueryNode' && node.into?.table.identifier.name === 'idempotency_keys') inserts.add(queryId);
          return node;
        },
        async transformResult({ result, queryId }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
          if (inserts.has(queryId) && result.rows.length === 0 && purged === 0) {
            purged++;
            await store.db.deleteFrom('idempotency_keys').where('key', '=', 'purged-key').execute();
          }
          return result;
        },
      };
      const racing = new TaskStore({ ...store, db: store.db.withPlugin(purgeAfterMeeting) });
      const outcome = await racing.createTask(taskRow('t_second', { tenant: 'acme', created_at: T0 + MINUTE }), purgedKey);
      expect(purged).toBe(1);
      expect(outcome).toMatchObject({ created: true });
      const again = await tasks.createTask(taskRow('t_third', { tenant: 'acme', created_at: T0 + 2 * MINUTE }), purgedKey);
      expect(again).toEqual({ created: false, existing: { taskId: 't_second', requestHash: 'sha256:late' } });
    });

    it("a repeat of a key another tenant also used names the repeating tenant's own task", async () => {
      const key = (requestHash: string) => ({ key: 'same-key', requestHash, expiresAt: T0 + 24 * 60 * MINUTE });
      expect((await tasks.createTask(taskRow('t_acme', { tenant: 'acme' }), key('sha256:acme'))).created).toBe(true);
      expect((await tasks.createTask(taskRow('t_other', { tenant: 'other' }), key('sha256:other'))).created).toBe(true);
      for (const [tenant, id, hash] of [
        ['other', 't_other', 'sha256:other'],
        ['acme', 't_acme', 'sha256:acme'],
      ] as const) {
        const again = await tasks.createTask(taskRow(`t_again_${tenant}`, { tenant, created_at: T0 + MINUTE }), key(hash));
        expect(again).toEqual({ created: false, existing: { taskId: id, requestHash: hash } });
      }
    });
  });
});
