/**
 * A create the gateway accepted whose answer never reached the app, over real HTTP: the
 * connection dropped once the gateway had answered, or the answer held past the client's
 * `timeoutMs`. The error names the `Idempotency-Key` the client sent (its own random one), and the
 * create sent again with it gets the task the lost one made: one task, one video paid for.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient, GatewayUnreachableError, NoAnswerError } from '../../packages/client/src/index.js';
import { TENANT_KEY } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';

const body = { model: 'kling-v3', prompt: 'a fox whose answer was lost', duration: 5 } as const;

type Fate = 'pass' | 'drop' | 'hold';

/**
 * A TCP relay to the gateway that does to the first answer after `arm` what it says: `drop` closes
 * the app's connection as the answer's first bytes arrive, `hold` keeps them and the connection
 * open. Either way the gateway has taken and answered the request.
 */
async function answerRelay(target: string) {
  const { port, hostname } = new URL(target);
  const sockets = new Set<Socket>();
  let fate: Fate = 'pass';
  const server: Server = createServer((app) => {
    const gateway = connect(Number(port), hostname);
    for (const socket of [app, gateway]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    app.pipe(gateway);
    gateway.on('data', (chunk: Buffer) => {
      if (fate === 'drop') {
        fate = 'pass';
        app.destroy();
        gateway.destroy();
      } else if (fate !== 'hold') app.write(chunk);
    });
    gateway.on('end', () => app.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arm(next: Fate) {
      fate = next;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('a create whose answer was lost, over HTTP', () => {
  let live: LiveGateway;
  let relay: Awaited<ReturnType<typeof answerRelay>>;

  beforeAll(async () => {
    live = await startLiveGateway();
    relay = await answerRelay(live.url);
  });
  afterAll(async () => {
    await relay.close();
    await live.close();
  });

  it.each([
    ['the connection dropped after the gateway answered', 'drop', GatewayUnreachableError],
    ['no answer within the client\'s timeoutMs', 'hold', NoAnswerError],
  ] as const)('%s: sent again with the key its error names, it gets the same task, and only one exists', async (_case, fate, errorClass) => {
    const direct = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY });
    const before = new Set((await direct.listVideos({ limit: 100 })).data.map((task) => task.id));

    const client = new GatewayClient({ baseUrl: relay.url, apiKey: TENANT_KEY, timeoutMs: 1_000 });
    relay.arm(fate);
    const lost = await client.createVideo(body).catch((error: unknown) => error);
    relay.arm('pass');
    expect(lost).toBeInstanceOf(errorClass);
    const key = (lost as GatewayUnreachableError).idempotencyKey;
    expect(key).toEqual(expect.any(String));

    const made = (await direct.listVideos({ limit: 100 })).data.filter((task) => !before.has(task.id));
    expect(made).toHaveLength(1);
    const again = await client.createVideo(body, { idempotencyKey: key });
    expect(again.id).toBe(made[0]!.id);
    expect((await direct.listVideos({ limit: 100 })).data.filter((task) => !before.has(task.id))).toHaveLength(1);
  });
});
