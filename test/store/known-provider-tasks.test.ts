/**
 * Which upstream task ids the gateway knows at a provider (a lost create's lookup reads a
 * provider's task list against them), on both engines: an id recorded at another provider is not
 * known at this one, so a list holding it is not taken for one holding only the gateway's tasks.
 */
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { TaskStore } from '../../src/store/task-store.js';
import { storeBackends, storeForTests } from '../support/postgres.js';
import { T0, taskRow } from '../support/task-rows.js';


const BACKENDS = await storeBackends();

describe.each(BACKENDS)('upstream task ids known per provider on $name', (backend) => {
  describe.skipIf(backend.skip)(backend.name, () => {
    let store: Store;
    let tasks: TaskStore;

    storeForTests(backend, (opened) => {
      store = opened;
      tasks = new TaskStore(store);
    });

    it('knows an id only at the provider whose attempt recorded it', async () => {
      await tasks.createTask(taskRow('t_1'));
      const record = async (provider: string, upstream: string) => {
        const seq = await tasks.addAttempt({ task_id: 't_1', provider, outcome: 'accepted', at: T0, account: 'default' });
        await tasks.updateAttempt('t_1', seq, { provider_task_id: upstream });
      };
      await record('kling3api', 'shared-id');
      await record('freepik', 'fp-1');
      expect([...(await tasks.knownProviderTaskIds('freepik', ['shared-id', 'fp-1', 'unseen']))]).toEqual(['fp-1']);
      expect([...(await tasks.knownProviderTaskIds('kling3api', ['shared-id', 'fp-1']))]).toEqual(['shared-id']);
    });
  });
});
