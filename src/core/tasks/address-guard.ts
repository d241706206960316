/**
 * The one address guard for connections the gateway opens on someone else's say-so: outbound
 * webhooks (a caller's `webhook_url`, a tenant's `events_url`) and copies of results (a
 * provider's output URL). A target is refused unless it is a public unicast address; an IPv6
 * address that carries an IPv4 one (mapped, translated, compatible, NAT64, 6to4) is judged by
 * the IPv4 address inside, and tunnelling or local-use forms (Teredo, local-use NAT64) are
 * refused outright.
 *
 * The check is made on the address actually connected to: connections go through agents whose
 * DNS lookup refuses private answers (so the name is resolved once, for the check and the
 * connection alike: no DNS rebinding) and which check the socket's peer address once connected.
 * That lookup asks DNS itself, never getaddrinfo (`dns.lookup`): getaddrinfo runs on libuv's few
 * shared threads (file work, zlib, every other lookup of the gateway) and cannot be abandoned, so a
 * target named under a nameserver that never answers would hold them long after the guard gave up.
 * Those agents never use a proxy, whatever `HTTP_PROXY`/`HTTPS_PROXY` say: through a proxy the
 * gateway would resolve and check the proxy, not the target.
 */
import { Resolver } from 'node:dns';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP, type Socket } from 'node:net';
import ipaddr from 'ipaddr.js';

/** IPv4 ranges no outbound connection may reach (RFC 6890 special-purpose registry and the like). */
const PRIVATE_V4 = [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8', // private
  '100.64.0.0/10', // carrier-grade NAT
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local (cloud metadata)
  '172.16.0.0/12', // private
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // documentation
  '192.88.99.0/24', // 6to4 relay anycast
  '192.168.0.0/16', // private
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // documentation
  '203.0.113.0/24', // documentation
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
].map((cidr) => ipaddr.IPv4.parseCIDR(cidr));

/** IPv6 whose last 32 bits are an IPv4 address: judged by that address. */
const EMBEDDING_V6 = [
  '::ffff:0:0/96', // IPv4-mapped
  '::ffff:0:0:0/96', // IPv4-translated (SIIT)
  '::/96', // IPv4-compatible (deprecated); :: and ::1 are in it too
  '64:ff9b::/96', // NAT64, well-known prefix
].map((cidr) => ipaddr.IPv6.parseCIDR(cidr));

/** 6to4: the IPv4 address is bits 16–47. */
const SIX_TO_FOUR = ipaddr.IPv6.parseCIDR('2002::/16');

/**
 * Refused whatever they embed: ranges inside global unicast (2000::/3) that are not reachable targets
 * or hide an address we cannot judge, and local-use NAT64 (outside 2000::/3, so refused anyway;
 * listed so the reason is written down).
 */
const PRIVATE_V6 = [
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215): reaches whatever the local translator reaches
  '2001::/23', // IETF protocol assignments: Teredo (2001::/32), benchmarking, ORCHID …
  '2001:db8::/32', // documentation
  '3fff::/20', // documentation (RFC 9637)
].map((cidr) => ipaddr.IPv6.parseCIDR(cidr));

/** Public IPv6 is global unicast; everything else (ULA, link-local, multicast, site-local, discard) is refused. */
const GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR('2000::/3');

function isPrivateV4(address: ipaddr.IPv4): boolean {
  return PRIVATE_V4.some((range) => address.match(range));
}

function lastFourBytes(address: ipaddr.IPv6, from = 12): ipaddr.IPv4 {
  const bytes = address.toByteArray();
  return new ipaddr.IPv4(bytes.slice(from, from + 4));
}

function isPrivateV6(address: ipaddr.IPv6): boolean {
  if (EMBEDDING_V6.some((range) => address.match(range))) return isPrivateV4(lastFourBytes(address));
  if (address.match(SIX_TO_FOUR)) return isPrivateV4(lastFourBytes(address, 2));
  if (PRIVATE_V6.some((range) => address.match(range))) return true;
  return !address.match(GLOBAL_UNICAST);
}

/**
 * True for every address an outbound connection may not reach: loopback, private, link-local,
 * CGNAT, multicast, documentation and reserved ranges of both families, and IPv6 forms that
 * embed such an IPv4 address. Text that is not an IP address is not judged here (false).
 */
export function isPrivateAddress(text: string): boolean {
  const bare = text.replace(/^\[|\]$/g, '');
  if (!ipaddr.isValid(bare)) return false;
  // Only the canonical forms a URL parser or resolver produces: `10.0.0.256` is not an address.
  if (!ipaddr.IPv6.isValid(bare) && !ipaddr.IPv4.isValidFourPartDecimal(bare)) return false;
  const address = ipaddr.parse(bare);
  return address.kind() === 'ipv4' ? isPrivateV4(address as ipaddr.IPv4) : isPrivateV6(address as ipaddr.IPv6);
}

function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[|\]$/g, '');
}

/**
 * Checks a target URL that can be judged without DNS (literal IPs, `localhost`). Returns the
 * reason it is refused, or undefined.
 */
export function refuseLiteralTarget(url: string, allowPrivate: boolean): string | undefined {
  if (allowPrivate) return undefined;
  // A trailing dot names the same host (`localhost.` is the fully qualified `localhost`).
  const host = hostOf(url).toLowerCase().replace(/\.+$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return 'points at localhost';
  if (isPrivateAddress(host)) return `points at a private, loopback or link-local address (${host})`;
  return undefined;
}

/**
 * A target that resolved to, or connected to, an address it may not reach. A name's private
 * answer is on `address`, not in the message: the message reaches whoever named the target (a
 * delivery's `last_error`), and the gateway's resolver must not tell a caller how it answers for
 * names of the operator's own network. Log `address` for the operator.
 */
export class PrivateTargetError extends Error {
  override readonly name = 'PrivateTargetError';

  constructor(
    message: string,
    readonly address?: string,
  ) {
    super(message);
  }
}

type VettedAddress = { address: string; family: 4 | 6 };
type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | VettedAddress[], family?: number) => void;
type LookupOptions = { all?: boolean; family?: number | string };

/** `localhost` and names under it: loopback whatever a resolver would say (RFC 6761). */
function isLocalhostName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.+$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

/** The hosts file getaddrinfo reads before DNS. */
const HOSTS_FILE = '/etc/hosts';
/** How long a read of the hosts file is used before it is read again. */
const HOSTS_FILE_TTL_MS = 10_000;
let hostsRead: { at: number; entries: Promise<Map<string, VettedAddress[]>> } | undefined;

/** The hosts file's addresses by lower-case name (none when it cannot be read). */
function hostsFileEntries(): Promise<Map<string, VettedAddress[]>> {
  const now = Date.now();
  if (hostsRead && now - hostsRead.at < HOSTS_FILE_TTL_MS) return hostsRead.entries;
  const entries = readFile(HOSTS_FILE, 'utf8').then(
    (text) => {
      const byName = new Map<string, VettedAddress[]>();
      for (const line of text.split('\n')) {
        const [address, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
        const family = isIP(address ?? '');
        if (!address || names.length === 0 || (family !== 4 && family !== 6)) continue;
        for (const name of names) {
          const key = name.toLowerCase();
          byName.set(key, [...(byName.get(key) ?? []), { address, family }]);
        }
      }
      return byName;
    },
    () => new Map<string, VettedAddress[]>(),
  );
  hostsRead = { at: now, entries };
  return entries;
}

/** Answers that only say the name has no address of that family (or none at all). */
const NO_ADDRESS = new Set(['ENODATA', 'ENOTFOUND']);

/**
 * A name's IPv4 and IPv6 addresses, asked of DNS directly (c-ares, on the event loop): both
 * families at once, and a family that has no address is no failure while the other has one.
 */
function resolveBoth(resolver: Resolver, hostname: string, done: (error: NodeJS.ErrnoException | null, addresses: VettedAddress[]) => void): void {
  const answers: { 4?: string[]; 6?: string[] } = {};
  const failures: NodeJS.ErrnoException[] = [];
  const settle = () => {
    // Both families answered (an address list or a failure each).
    if (failures.length + Number(answers[4] !== undefined) + Number(answers[6] !== undefined) < 2) return;
    const addresses = [
      ...(answers[4] ?? []).map((address) => ({ address, family: 4 as const })),
      ...(answers[6] ?? []).map((address) => ({ address, family: 6 as const })),
    ];
    if (addresses.length > 0) return done(null, addresses);
    // Neither family has an address: say so as getaddrinfo would, or pass on what went wrong.
    const failure = failures.find((error) => !NO_ADDRESS.has(String(error.code)));
    done(failure ?? Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }), []);
  };
  const take = (family: 4 | 6) => (error: NodeJS.ErrnoException | null, addresses: string[]) => {
    if (error) failures.push(error);
    else answers[family] = addresses;
    settle();
  };
  resolver.resolve4(hostname, take(4));
  resolver.resolve6(hostname, take(6));
}

/**
 * A DNS lookup that refuses a name when any of its addresses is private. The check and the
 * connection use the same answer, so a name that resolves publicly for a check and inward for
 * the connection (DNS rebinding) cannot slip through. Gives up after `timeoutMs`. DNS is asked
 * directly, off the thread pool (see the top of this file).
 */
export function vettedLookup(timeoutMs: number) {
  // A family whose query goes unanswered fails within half the time, so the other's addresses are used.
  const resolver = new Resolver({ timeout: Math.max(1, Math.floor(timeoutMs / 2)), tries: 1 });
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    let settled = false;
    const finish = (error: Error | null, addresses: VettedAddress[]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) return callback(error, []);
      // net.connect asks for one address, or for all of them (family autoselection).
      if (options?.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    };
    const timer = setTimeout(() => finish(new Error(`DNS lookup of ${hostname} timed out`), []), timeoutMs);
    if (isLocalhostName(hostname)) {
      finish(new PrivateTargetError('resolves to a private, loopback or link-local address', 'loopback (a localhost name)'), []);
      return;
    }
    // As getaddrinfo does: the hosts file first (a local file, read at once), then DNS.
    const judge = (error: NodeJS.ErrnoException | null, addresses: VettedAddress[]) => {
      if (error) return finish(error, []);
      const inward = addresses.find((entry) => isPrivateAddress(entry.address));
      if (inward) return finish(new PrivateTargetError('resolves to a private, loopback or link-local address', inward.address), []);
      finish(null, addresses);
    };
    void hostsFileEntries().then((entries) => {
      const listed = entries.get(hostname.toLowerCase().replace(/\.+$/, ''));
      if (listed) judge(null, listed);
      else resolveBoth(resolver, hostname, judge);
    });
  };
}

/** What the guarded agents let through. */
export interface AddressPolicy {
  /** Let targets on private addresses through (configuration said so). */
  allowPrivate: boolean;
  /** `host:port` pairs exempt from the checks (the sandbox's own simulators). */
  trustedHosts?: ReadonlySet<string>;
  /** Longest a DNS lookup may take. */
  lookupTimeoutMs: number;
  /**
   * Keep connections open for the next request to the same origin. A kept connection was checked
   * when it was made (the lookup and the peer address); it is never pointed anywhere else.
   */
  keepAlive?: boolean;
}

/** Idle connections kept per origin when `keepAlive` is on. */
const KEPT_SOCKETS = 16;

/** The `host:port` key of `trustedHosts` for an origin (`http://127.0.0.1:9100`). */
export function trustedHostOf(origin: string): string {
  const url = new URL(origin);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.hostname.replace(/^\[|\]$/g, '')}:${port}`;
}

/**
 * HTTP and HTTPS agents for outbound connections under `policy`: private answers to the lookup
 * are refused, and once connected the peer's address is checked again (a literal address, or
 * anything that reached a socket another way). Pass them to node's http (`result-download.ts`,
 * `webhook-post.ts`), or to axios with `proxy: false`.
 */
export function guardedAgents(policy: AddressPolicy): { httpAgent: http.Agent; httpsAgent: https.Agent } {
  const lookup = vettedLookup(policy.lookupTimeoutMs);
  const guard = <T extends http.Agent>(agent: T): T => {
    const target = agent as unknown as { createConnection: (options: Record<string, unknown>, ...rest: unknown[]) => Socket };
    const create = target.createConnection.bind(agent);
    target.createConnection = (options, ...rest) => {
      const host = String(options.host ?? options.hostname ?? '').replace(/^\[|\]$/g, '');
      const trusted = policy.allowPrivate || policy.trustedHosts?.has(`${host}:${String(options.port ?? '')}`);
      const socket = create(trusted ? options : { ...options, lookup }, ...rest);
      if (trusted) return socket;
      socket.once('connect', () => {
        const peer = socket.remoteAddress;
        if (peer === undefined || isPrivateAddress(peer)) {
          socket.destroy(new PrivateTargetError(`connected to a private address (${peer ?? 'unknown'})`));
        }
      });
      return socket;
    };
    return agent;
  };
  const options = policy.keepAlive ? { keepAlive: true, maxFreeSockets: KEPT_SOCKETS } : {};
  return { httpAgent: guard(new http.Agent(options)), httpsAgent: guard(new https.Agent(options)) };
}
