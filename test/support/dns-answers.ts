/**
 * For `vi.mock('node:dns', …)`: the real `node:dns`, except that one made-up `name` answers
 * `answers` on the next tick — through `lookup` (all of them when asked for `all`, as a
 * connection's lookup does, else the first) and through a `Resolver`'s `resolve4`/`resolve6`
 * (its addresses of that family; none: `ENODATA`), as the address guard asks DNS — so a test
 * decides what a name resolves to on any machine.
 */
import type * as Dns from 'node:dns';

type Callback = (error: NodeJS.ErrnoException | null, addresses: string[]) => void;

export function dnsAnswering(real: typeof Dns, name: string, answers: { address: string; family: number }[]): typeof Dns {
  const lookup = ((host: string, options: unknown, callback?: unknown) => {
    if (host !== name) return (real.lookup as (...args: unknown[]) => void)(host, options, callback);
    const done = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true;
    process.nextTick(() => (all ? done(null, answers) : done(null, answers[0]!.address, answers[0]!.family)));
  }) as typeof real.lookup;
  const ofFamily = (family: number, callback: Callback) => {
    const addresses = answers.filter((answer) => answer.family === family).map((answer) => answer.address);
    process.nextTick(() =>
      addresses.length > 0 ? callback(null, addresses) : callback(Object.assign(new Error(`query ENODATA ${name}`), { code: 'ENODATA' }), []),
    );
  };
  class Resolver {
    private readonly real: InstanceType<typeof real.Resolver>;
    constructor(options?: ConstructorParameters<typeof real.Resolver>[0]) {
      this.real = new real.Resolver(options);
    }
    resolve4(host: string, callback: Callback): void {
      if (host === name) ofFamily(4, callback);
      else this.real.resolve4(host, callback);
    }
    resolve6(host: string, callback: Callback): void {
      if (host === name) ofFamily(6, callback);
      else this.real.resolve6(host, callback);
    }
  }
  return { ...real, default: { ...real, lookup, Resolver }, lookup, Resolver } as unknown as typeof Dns;
}
