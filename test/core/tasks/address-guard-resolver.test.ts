/**
 * How the address guard resolves a target's name. Node's `dns.lookup` is getaddrinfo on libuv's
 * thread pool (four threads by default), shared with file reads and writes, zlib and every other
 * lookup the gateway makes (provider API hosts included); a getaddrinfo cannot be abandoned once
 * started. A tenant whose `webhook_url` names a host under a nameserver that never answers would
 * hold those threads for as long as the system resolver waits, however soon the guard gives up,
 * and stall the gateway's other work for every tenant. The guard asks DNS itself (off the thread
 * pool), and never hands a target's name to getaddrinfo.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PrivateTargetError, vettedLookup } from '../../../src/core/tasks/address-guard.js';

const { SILENT_NAME, INWARD_NAME, PUBLIC_NAME, V6_NAME, handedToGetaddrinfo } = vi.hoisted(() => ({
  /** Its nameserver never answers. */
  SILENT_NAME: 'hooks.silent-nameserver.test',
  INWARD_NAME: 'hooks.inward.test',
  PUBLIC_NAME: 'hooks.public.test',
  V6_NAME: 'hooks.v6-only.test',
  handedToGetaddrinfo: [] as string[],
}));

vi.mock('node:dns', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:dns')>();
  const v4: Record<string, string[]> = { [INWARD_NAME]: ['93.184.215.14', '10.0.0.7'], [PUBLIC_NAME]: ['93.184.215.14'] };
  const v6: Record<string, string[]> = { [V6_NAME]: ['2606:4700:4700::1111'] };
  const ours = [SILENT_NAME, INWARD_NAME, PUBLIC_NAME, V6_NAME];
  // getaddrinfo: for these names, as the system resolver behaves with such a nameserver (it answers after the guard gave up).
  const lookup = ((host: string, options: unknown, callback?: unknown) => {
    if (!ours.includes(host)) return (real.lookup as (...args: unknown[]) => void)(host, options, callback);
    handedToGetaddrinfo.push(host);
    const done = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
    const addresses = [...(v4[host] ?? []).map((address) => ({ address, family: 4 })), ...(v6[host] ?? []).map((address) => ({ address, family: 6 }))];
    setTimeout(() => done(null, addresses), 60_000).unref();
  }) as typeof real.lookup;
  // DNS asked directly: the silent nameserver never answers; the others answer at once.
  type Callback = (error: NodeJS.ErrnoException | null, addresses: string[]) => void;
  class Resolver {
    private readonly real: InstanceType<typeof real.Resolver>;
    constructor(options?: ConstructorParameters<typeof real.Resolver>[0]) {
      this.real = new real.Resolver(options);
    }
    private answer(table: Record<string, string[]>, host: string, callback: Callback): void {
      if (host === SILENT_NAME) return;
      const found = table[host];
      setImmediate(() => (found ? callback(null, found) : callback(Object.assign(new Error(`queryA ENODATA ${host}`), { code: 'ENODATA' }), [])));
    }
    resolve4(host: string, callback: Callback): void {
      if (ours.includes(host)) this.answer(v4, host, callback);
      else this.real.resolve4(host, callback);
    }
    resolve6(host: string, callback: Callback): void {
      if (ours.includes(host)) this.answer(v6, host, callback);
      else this.real.resolve6(host, callback);
    }
  }
  return { ...real, default: { ...real, lookup, Resolver }, lookup, Resolver };
});

type Answer = { error: NodeJS.ErrnoException | null; address: unknown; family?: number };
const ask = (name: string, options: { all?: boolean }, timeoutMs = 2_000) =>
  new Promise<Answer>((resolve) => vettedLookup(timeoutMs)(name, options, (error, address, family) => resolve({ error, address, family })));

afterEach(() => {
  handedToGetaddrinfo.length = 0;
});

describe('vettedLookup asks DNS itself, off the thread pool the gateway shares', () => {
  it('gives up on a name whose nameserver never answers within its time, and never hands the name to getaddrinfo', async () => {
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 8 }, () => ask(SILENT_NAME, { all: true }, 300)));
    for (const { error } of answers) expect(error?.message).toBe(`DNS lookup of ${SILENT_NAME} timed out`);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(handedToGetaddrinfo).toEqual([]);
  });

  it('refuses a name any of whose answers is private, in both answer shapes', async () => {
    for (const options of [{ all: true }, {}]) {
      const { error } = await ask(INWARD_NAME, options);
      expect(error).toBeInstanceOf(PrivateTargetError);
      expect((error as PrivateTargetError).address).toBe('10.0.0.7');
    }
    expect(handedToGetaddrinfo).toEqual([]);
  });

  it('answers a public name with its addresses of either family, in both answer shapes', async () => {
    expect(await ask(PUBLIC_NAME, { all: true })).toEqual({ error: null, address: [{ address: '93.184.215.14', family: 4 }], family: undefined });
    expect(await ask(PUBLIC_NAME, {})).toEqual({ error: null, address: '93.184.215.14', family: 4 });
    expect(await ask(V6_NAME, {})).toEqual({ error: null, address: '2606:4700:4700::1111', family: 6 });
    expect(handedToGetaddrinfo).toEqual([]);
  });

  it('refuses localhost and names under it as loopback without asking anyone (RFC 6761)', async () => {
    for (const name of ['localhost', 'api.localhost', 'LOCALHOST']) {
      const { error } = await ask(name, { all: true });
      expect(error).toBeInstanceOf(PrivateTargetError);
    }
  });
});
