/**
 * LISTEN/NOTIFY between replicas on the real PostgreSQL: messages reach every listener of the
 * schema's channel (and no other schema's), and a dropped listening connection comes back and
 * says so, so followers can re-read what they may have missed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import type { PostgresNotificationChannel } from '../../src/store/notification-channel.js';
import { dropSchema, newSchemaName, openPostgresStore, postgresAvailable } from '../support/postgres.js';

const available = await postgresAvailable();

function nextMessage(channel: PostgresNotificationChannel): Promise<string> {
  return new Promise((resolve) => {
    const stop = channel.subscribe((message) => {
      stop();
      resolve(message);
    });
  });
}

describe.skipIf(!available)('PostgreSQL notification channel', () => {
  const schemas = [newSchemaName(), newSchemaName()];
  const stores: Store[] = [];
  const channels: PostgresNotificationChannel[] = [];

  beforeAll(async () => {
    for (const schema of [schemas[0]!, schemas[0]!, schemas[1]!]) {
      const store = await openPostgresStore(schema);
      stores.push(store);
      const channel = store.openNotificationChannel!();
      await channel.start();
      channels.push(channel);
    }
  });

  afterAll(async () => {
    for (const channel of channels) await channel.close();
    for (const store of stores) await store.close();
    for (const schema of schemas) await dropSchema(schema);
  });

  it('carries a message to the replicas of the same schema only', async () => {
    const [a, b, other] = channels as [PostgresNotificationChannel, PostgresNotificationChannel, PostgresNotificationChannel];
    const elsewhere: string[] = [];
    other.subscribe((message) => elsewhere.push(message));
    const arrived = nextMessage(b);
    const sentAt = Date.now();
    await a.publish('{"kind":"task","id":"vid_1","version":2,"phase":"done"}');
    expect(await arrived).toBe('{"kind":"task","id":"vid_1","version":2,"phase":"done"}');
    expect(Date.now() - sentAt).toBeLessThan(1_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(elsewhere).toEqual([]);
  });

  it('reconnects after the listening connection drops, and says messages may have been missed', async () => {
    const [a, b] = channels as [PostgresNotificationChannel, PostgresNotificationChannel];
    const reconnected = new Promise<void>((resolve) => {
      const stop = b.onReconnect(() => {
        stop();
        resolve();
      });
    });
    b.dropConnection();
    expect(b.listening).toBe(false);
    await reconnected;
    expect(b.listening).toBe(true);
    const arrived = nextMessage(b);
    await a.publish('after the reconnect');
    expect(await arrived).toBe('after the reconnect');
  });

  it('refuses a message too large for NOTIFY', async () => {
    await expect(channels[0]!.publish('x'.repeat(8_000))).rejects.toThrow(/too large/);
  });
});
