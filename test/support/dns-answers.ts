/**
 * For `vi.mock('node:dns', …)`: the real `node:dns`, except that `lookup` of one made-up `name`
 * answers `answers` on the next tick — all of them when asked for `all` (as a connection's lookup
 * does), else the first — so a test decides what a name resolves to on any machine.
 */
import type * as Dns from 'node:dns';

export function dnsAnswering(real: typeof Dns, name: string, answers: { address: string; family: number }[]): typeof Dns {
  const lookup = ((host: string, options: unknown, callback?: unknown) => {
    if (host !== name) return (real.lookup as (...args: unknown[]) => void)(host, options, callback);
    const done = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true;
    process.nextTick(() => (all ? done(null, answers) : done(null, answers[0]!.address, answers[0]!.family)));
  }) as typeof real.lookup;
  return { ...real, default: { ...real, lookup }, lookup } as typeof Dns;
}
