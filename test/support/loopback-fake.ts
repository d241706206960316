/** An upstream faked on loopback for a test: `handle` answers every request, on a `loopbackServer`. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { VideoProvider } from '../../src/core/upstream/provider.js';
import type { ProviderEndpoint } from '../../src/sandbox/sandbox.js';
import { startTestGateway, type TestGateway, type TestGatewayOptions } from './harness.js';
import { loopbackServer } from './raw-answer.js';

export abstract class LoopbackFake {
  /** Where the fake listens, once `listen` resolved. */
  baseUrl = '';
  private server: { close: () => Promise<void> } | undefined;

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;

  /** Listens on a free port of 127.0.0.1; resolves to the base URL. */
  async listen(): Promise<string> {
    const server = await loopbackServer((req, res) => void this.handle(req, res));
    this.server = server;
    this.baseUrl = server.base;
    return this.baseUrl;
  }

  /** Closes the fake, dropping connections still open (a request it holds unanswered among them). */
  async close(): Promise<void> {
    await this.server?.close();
  }
}

/**
 * A gateway whose only provider is `provider`, at `fake` (started listening here), with no
 * simulator: what the gateway sends reaches the fake alone.
 */
export async function gatewayAtFake(
  provider: VideoProvider,
  fake: LoopbackFake,
  endpoint: Omit<ProviderEndpoint, 'baseUrl' | 'simulated'>,
  options: Omit<TestGatewayOptions, 'providers' | 'endpoints' | 'simulators'> = {},
): Promise<TestGateway> {
  const baseUrl = await fake.listen();
  return startTestGateway({ ...options, providers: [provider], endpoints: new Map([[provider.id, { ...endpoint, baseUrl, simulated: false }]]), simulators: new Map() });
}
