/**
 * An idempotent repeat returns the task the key made, whatever the gateway would decide for a new
 * create now. A client retrying a create whose answer it lost (a timeout, a rolling deploy) may
 * reach a replica that no longer routes that request anywhere, for instance because the provider
 * that took it was turned off since: the task exists, and may be billed, so the repeat must get
 * it, not a 422 that reads as "nothing was made".
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayDeploys, type TestGateway } from '../support/harness.js';

const pinned = { model: 'kling-v3', prompt: 'a kite over the dunes', duration: 5, routing: { providers: ['freepik'], allow_fallbacks: false } };

const open: TestGateway[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const gw of open.splice(0)) await gw.close().catch(() => undefined);
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('Idempotency-Key repeat after the routing changed', () => {
  it('returns the task the key made when no provider would take that request any more', async () => {
    const deploys = await GatewayDeploys.start();
    cleanups.push(() => deploys.close());
    // The next deploy turns freepik off: a new create of that request has nowhere to go.
    const { created, after } = await deploys.madeThenTurnedOff('freepik', pinned, { 'idempotency-key': 'order-77' });
    open.push(after);
    expect(created.status).toBe(202);
    expect((await after.create(pinned)).status).toBe(422);

    const repeat = await after.create(pinned, { 'idempotency-key': 'order-77' });
    expect(repeat.status).toBe(202);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(repeat.body.id).toBe(created.body.id);

    // A different body under that key is still the documented 409, not the 422.
    const changed = await after.create({ ...pinned, duration: 10 }, { 'idempotency-key': 'order-77' });
    expect(changed.status).toBe(409);
    expect(after.simulator('freepik').tasks).toHaveLength(1);
  });
});
