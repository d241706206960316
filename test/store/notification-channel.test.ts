/**
 * LISTEN/NOTIFY between replicas on the real PostgreSQL: messages reach every listener of the
 * schema's channel (and no other schema's), and a dropped listening connection comes back and
 * says so, so followers can re-read what they may have missed.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/database.js';
import { PostgresNotificationChannel } from '../../src/store/notification-channel.js';
import { dropSchema, newSchemaName, openPostgresStore, POSTGRES_URL, postgresAvailable } from '../support/postgres.js';

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

  it('carries messages between replicas of a schema whose name is as long as PostgreSQL allows', async () => {
    // 63 characters, the longest name PostgreSQL keeps; a channel is a name too, and NOTIFY refuses a longer one.
    const schema = `${newSchemaName()}_${'x'.repeat(63)}`.slice(0, 63);
    const [first, second] = [await openPostgresStore(schema), await openPostgresStore(schema)];
    const [a, b] = [first.openNotificationChannel!(), second.openNotificationChannel!()];
    try {
      await Promise.all([a.start(), b.start()]);
      const arrived = nextMessage(b);
      await a.publish('a long schema');
      expect(await arrived).toBe('a long schema');
    } finally {
      for (const channel of [a, b]) await channel.close();
      for (const store of [first, second]) await store.close();
      await dropSchema(schema);
    }
  });

  it('refuses a message too large for NOTIFY', async () => {
    await expect(channels[0]!.publish('x'.repeat(8_000))).rejects.toThrow(/too large/);
  });
});

/**
 * A TCP relay to the server whose open connections can go silent: bytes stop flowing both ways
 * while both sockets stay open, as when a network path dies without a reset (the connection looks
 * up, nothing answers). Connections made afterwards flow again.
 */
async function silenceableRelay(): Promise<{ url: string; silenceOpenConnections(): void; close(): Promise<void> }> {
  const target = new URL(POSTGRES_URL);
  const open = new Set<{ silent: boolean; sockets: net.Socket[] }>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(Number(target.port || 5432), target.hostname);
    const connection = { silent: false, sockets: [inbound, outbound] };
    open.add(connection);
    for (const [from, to] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      from.on('data', (chunk) => {
        if (!connection.silent) to.write(chunk);
      });
      from.on('error', () => to.destroy());
      from.on('close', () => {
        to.destroy();
        open.delete(connection);
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const relayed = new URL(POSTGRES_URL);
  relayed.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url: relayed.toString(),
    silenceOpenConnections: () => {
      for (const connection of open) connection.silent = true;
    },
    close: async () => {
      for (const connection of open) for (const socket of connection.sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe.skipIf(!available)('PostgreSQL notification channel on a connection gone silent', () => {
  it('gives up a listening connection whose heartbeat gets no answer, and listens again', async () => {
    const relay = await silenceableRelay();
    const schema = newSchemaName();
    const store = await openPostgresStore(schema);
    const channel = new PostgresNotificationChannel({
      url: relay.url,
      schema,
      heartbeatMs: 100,
      send: (name, payload) => store.pool!.query('SELECT pg_notify($1, $2)', [name, payload]).then(() => undefined),
    });
    try {
      await channel.start();
      const reconnected = new Promise<void>((resolve) => channel.onReconnect(resolve));
      // The path dies silently: the connection stays open, no answer comes back.
      relay.silenceOpenConnections();
      await reconnected;
      expect(channel.listening).toBe(true);
      const arrived = nextMessage(channel);
      await channel.publish('heard again');
      expect(await arrived).toBe('heard again');
    } finally {
      await channel.close();
      await relay.close();
      await store.close();
      await dropSchema(schema);
    }
  });
});
