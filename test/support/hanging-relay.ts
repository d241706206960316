/**
 * A TCP relay in front of a server (PostgreSQL in tests) that a test can make hang: from
 * `hang()` on, it passes nothing either way and answers nothing, while every connection stays
 * open and new ones are still accepted — a database host gone silent mid-failover, a route that
 * drops packets, a server that accepts and never replies.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface HangingRelay {
  port: number;
  /** Passes nothing any more, either way; connections stay open, new ones are accepted and left silent. */
  hang(): void;
  /** Bytes clients sent since `hang()` (held, never passed on). */
  heldBytes(): number;
  close(): Promise<void>;
}

export async function hangingRelay(targetHost: string, targetPort: number): Promise<HangingRelay> {
  const sockets = new Set<Socket>();
  let hung = false;
  let held = 0;
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (hung) {
      client.on('data', (chunk: Buffer) => (held += chunk.length));
      return;
    }
    const upstream = connect(targetPort, targetHost);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => undefined);
    client.on('data', (chunk: Buffer) => {
      if (hung) held += chunk.length;
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!hung) client.write(chunk);
    });
    // Once hung, an end from either side is not passed on either: the other side hears nothing.
    client.on('close', () => {
      if (!hung) upstream.destroy();
    });
    upstream.on('close', () => {
      if (!hung) client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hang: () => {
      hung = true;
    },
    heldBytes: () => held,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
