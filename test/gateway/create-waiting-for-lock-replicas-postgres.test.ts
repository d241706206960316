/**
 * A create's transaction takes its first provider's slot under that provider's row lock, which
 * the other replicas' creates take too: under load a create may wait for it a long while. The
 * submission's lease, and the time its attempt says it was sent, must count from when the lock
 * was had, not from before the wait: otherwise another replica takes the create for one a dead
 * replica left in flight long ago, finds nothing upstream yet (the request is only now on its
 * way), and sends the task to the next provider as well — two paid videos for one task.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { POSTGRES_URL, postgresAvailable } from '../support/postgres.js';
import { usePostgresReplicas } from '../support/postgres-replicas.js';

const available = await postgresAvailable();

const video = { model: 'kling-v3', prompt: 'waits for the lock', duration: 5, routing: { providers: ['freepik', 'kling3api'] } };

/**
 * Waits until a query waits for the lock `holder` holds. Only its waiters count: the server is
 * shared with the test files running beside this one, whose connections may wait for locks of
 * their own at any time.
 */
async function untilWaitingForLock(holder: pg.Client): Promise<void> {
  for (let tries = 0; tries < 400; tries++) {
    const { rows } = await holder.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pg_backend_pid() = ANY(pg_blocking_pids(pid))");
    if (rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no create waited for the lock');
}

describe.skipIf(!available)('a create that waited for the provider lock', () => {
  const replicas = usePostgresReplicas();

  it('is sent once, and not also to the next provider by a replica that took it for abandoned', async () => {
    const a = await replicas.replica('replica-a');
    const b = await replicas.replica('replica-b');
    const freepik = replicas.simulators.get('freepik')!;
    // Freepik answers the create only once replica B has looked.
    const held = heldCall();
    freepik.injectFault({ on: 'submit', hold: held.hold });

    // Another transaction holds Freepik's lock for a minute of gateway time.
    const holder = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${replicas.schema}` });
    await holder.connect();
    let creating: ReturnType<typeof a.create>;
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT id FROM providers WHERE id = 'freepik' FOR UPDATE");
      creating = a.create(video);
      await untilWaitingForLock(holder);
      await replicas.clock.advance(60_000);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    await held.reached;
    // Replica B's workers run while the create is on its way.
    try {
      await b.gateway.runOnce();
    } finally {
      held.release();
    }

    const created = await creating;
    expect(created.body.status).toBe('queued');
    expect(created.body.attempts).toEqual([expect.objectContaining({ provider: 'freepik', outcome: 'accepted' })]);
    expect(freepik.tasks).toHaveLength(1);
    expect(replicas.simulators.get('kling3api')!.tasks).toHaveLength(0);
  });
});
