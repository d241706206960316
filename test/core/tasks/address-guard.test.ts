/**
 * The address guard of outbound connections (webhooks, result copies): which addresses are
 * private in every written form, which targets are refused before any DNS lookup, and that the
 * guarded agents check the address actually connected to — with HTTP_PROXY set too.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { guardedAgents, isPrivateAddress, PrivateTargetError, refuseLiteralTarget, vettedLookup } from '../../../src/core/tasks/address-guard.js';

/** A made-up name whose DNS answers a public address first and a private one after it; every other name resolves as usual. */
const { MIXED_NAME } = vi.hoisted(() => ({ MIXED_NAME: 'mixed.attacker.test' }));

vi.mock('node:dns', async (importOriginal) =>
  (await import('../../support/dns-answers.js')).dnsAnswering(await importOriginal(), MIXED_NAME, [
    { address: '93.184.215.14', family: 4 },
    { address: '10.0.0.5', family: 4 },
  ]),
);

describe('isPrivateAddress', () => {
  it.each([
    ['0.0.0.0', 'this network'],
    ['10.0.0.1', 'private 10/8'],
    ['10.255.255.255', 'private 10/8'],
    ['172.16.0.1', 'private 172.16/12'],
    ['172.31.255.255', 'private 172.16/12'],
    ['192.168.1.10', 'private 192.168/16'],
    ['127.0.0.1', 'loopback'],
    ['127.10.20.30', 'loopback 127/8'],
    ['169.254.169.254', 'link-local (cloud metadata)'],
    ['100.64.0.1', 'CGNAT 100.64/10'],
    ['100.127.255.254', 'CGNAT 100.64/10'],
    ['192.0.0.8', 'IETF protocol assignments'],
    ['198.18.0.1', 'benchmarking'],
    ['224.0.0.251', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['::1', 'v6 loopback'],
    ['::', 'v6 unspecified'],
    ['fc00::1', 'v6 unique local'],
    ['fd12:3456:789a::1', 'v6 unique local'],
    ['fe80::1', 'v6 link-local'],
    ['febf::1', 'v6 link-local'],
    ['ff02::1', 'v6 multicast'],
    ['::ffff:127.0.0.1', 'v4-mapped loopback'],
    ['::ffff:10.1.2.3', 'v4-mapped private'],
    ['::ffff:169.254.169.254', 'v4-mapped link-local'],
    ['::FFFF:192.168.0.1', 'v4-mapped, upper case'],
    ['::ffff:7f00:1', 'v4-mapped loopback in hex form'],
  ])('%s (%s) is private', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each([
    ['8.8.8.8'],
    ['1.1.1.1'],
    ['100.63.255.255'],
    ['100.128.0.1'],
    ['172.15.255.255'],
    ['172.32.0.1'],
    ['192.169.0.1'],
    ['169.255.0.1'],
    ['198.20.0.1'],
    ['223.255.255.255'],
    ['2001:4860:4860::8888'],
    ['2606:4700:4700::1111'],
    ['::ffff:8.8.8.8'],
  ])('%s is public', (address) => {
    expect(isPrivateAddress(address)).toBe(false);
  });

  it('is false for what is not an IP address (names are judged after DNS)', () => {
    expect(isPrivateAddress('localhost')).toBe(false);
    expect(isPrivateAddress('example.com')).toBe(false);
    expect(isPrivateAddress('')).toBe(false);
    expect(isPrivateAddress('10.0.0.256')).toBe(false);
  });
});

describe('refuseLiteralTarget', () => {
  it.each([
    ['http://localhost:3000/hook', 'points at localhost'],
    ['https://LOCALHOST/hook', 'points at localhost'],
    ['http://api.localhost/hook', 'points at localhost'],
    ['http://localhost./hook', 'points at localhost'],
    ['http://LOCALHOST.:3000/hook', 'points at localhost'],
    ['http://api.localhost./hook', 'points at localhost'],
    ['http://localhost%2e/hook', 'points at localhost'],
    ['http://127.0.0.1:8080/hook', 'points at a private, loopback or link-local address (127.0.0.1)'],
    ['http://169.254.169.254/latest/meta-data', 'points at a private, loopback or link-local address (169.254.169.254)'],
    ['https://10.0.0.5/hook', 'points at a private, loopback or link-local address (10.0.0.5)'],
    ['http://[::1]:8080/hook', 'points at a private, loopback or link-local address (::1)'],
    ['http://[fe80::1]/hook', 'points at a private, loopback or link-local address (fe80::1)'],
  ])('refuses %s', (url, reason) => {
    expect(refuseLiteralTarget(url, false)).toBe(reason);
  });

  it('refuses loopback written in the other forms a URL accepts', () => {
    // The URL parser normalizes these to 127.0.0.1 / ::ffff:7f00:1 before the check.
    expect(refuseLiteralTarget('http://2130706433/hook', false)).toContain('127.0.0.1');
    expect(refuseLiteralTarget('http://0x7f.1/hook', false)).toContain('127.0.0.1');
    expect(refuseLiteralTarget('http://[::ffff:127.0.0.1]/hook', false)).toBe('points at a private, loopback or link-local address (::ffff:7f00:1)');
  });

  it.each([
    ['http://017700000001/hook', '127.0.0.1', 'octal'],
    ['http://0177.0.0.01/hook', '127.0.0.1', 'octal parts'],
    ['http://127.1/hook', '127.0.0.1', 'two-part shorthand'],
    ['http://127.0.0.1./hook', '127.0.0.1', 'trailing dot'],
    ['http://0/hook', '0.0.0.0', 'a bare zero'],
    ['http://0.0.0.0:8080/hook', '0.0.0.0', 'this network'],
    ['http://\uFF10x7f.1/hook', '127.0.0.1', 'fullwidth digits'],
    ['http://127\u30020\u30020\u30021/hook', '127.0.0.1', 'ideographic full stops'],
    ['http://0xa9.0xfe.0xa9.0xfe/latest/meta-data', '169.254.169.254', 'hex parts'],
    ['http://100.64.0.1/hook', '100.64.0.1', 'carrier-grade NAT'],
    ['http://[::]/hook', '::', 'IPv6 unspecified'],
    ['http://[0:0:0:0:0:ffff:7f00:1]/hook', '::ffff:7f00:1', 'mapped, written out'],
    ['HTTP://127.0.0.1/hook', '127.0.0.1', 'an upper-case scheme'],
  ])('refuses %s (%s, %s): the URL parser folds it into the address first', (url, address) => {
    expect(refuseLiteralTarget(url, false)).toBe(`points at a private, loopback or link-local address (${address})`);
  });

  it.each([
    ['https://hooks.example.com/kling'],
    ['https://8.8.8.8/hook'],
    ['https://[2606:4700:4700::1111]/hook'],
    ['https://localhost.example.com/hook'],
  ])('lets %s through', (url) => {
    expect(refuseLiteralTarget(url, false)).toBeUndefined();
  });

  it('refuses nothing when config allows private targets', () => {
    expect(refuseLiteralTarget('http://localhost:3000/hook', true)).toBeUndefined();
    expect(refuseLiteralTarget('http://127.0.0.1/hook', true)).toBeUndefined();
    expect(refuseLiteralTarget('http://[::1]/hook', true)).toBeUndefined();
  });
});

describe('isPrivateAddress: IPv6 forms that carry an IPv4 address', () => {
  it.each([
    ['2002:7f00:1::1', '6to4 of 127.0.0.1'],
    ['2002:a00:1::', '6to4 of 10.0.0.1'],
    ['2002:a9fe:a9fe::1', '6to4 of 169.254.169.254'],
    ['64:ff9b::7f00:1', 'NAT64 well-known prefix, 127.0.0.1'],
    ['64:ff9b::10.0.0.1', 'NAT64 well-known prefix, dotted'],
    ['64:ff9b:1::7f00:1', 'local-use NAT64'],
    ['64:ff9b:1:ffff::808:808', 'local-use NAT64 is refused whatever it carries'],
    ['::ffff:0:7f00:1', 'IPv4-translated 127.0.0.1'],
    ['::ffff:0:a9fe:a9fe', 'IPv4-translated 169.254.169.254'],
    ['::7f00:1', 'IPv4-compatible 127.0.0.1'],
    ['::10.0.0.1', 'IPv4-compatible, dotted'],
    ['::ffff:100.64.0.1', 'v4-mapped CGNAT'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
    ['2001:db8::1', 'documentation'],
    ['3fff::1', 'documentation (RFC 9637)'],
    ['2001:2::1', 'benchmarking'],
    ['fec0::1', 'site-local'],
    ['100::1', 'discard-only'],
    ['fbff::1', 'outside global unicast'],
    ['fe80::1%eth0', 'link-local with a zone'],
    ['[::1]', 'bracketed loopback'],
  ])('%s (%s) is private', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each([
    ['2002:808:808::1', '6to4 of 8.8.8.8'],
    ['64:ff9b::808:808', 'NAT64 of 8.8.8.8'],
    ['::ffff:0:808:808', 'IPv4-translated 8.8.8.8'],
    ['2a00:1450:4001:80b::200e', 'global unicast'],
  ])('%s (%s) is public', (address) => {
    expect(isPrivateAddress(address)).toBe(false);
  });

  it.each([
    ['http://[2002:7f00:1::1]/hook'],
    ['http://[64:ff9b:1::7f00:1]/hook'],
    ['http://[::ffff:0:7f00:1]/hook'],
    ['http://[64:ff9b::a9fe:a9fe]/latest/meta-data'],
    ['http://[::127.0.0.1]/hook'],
  ])('refuses the webhook target %s', (url) => {
    expect(refuseLiteralTarget(url, false)).toMatch(/private, loopback or link-local/);
  });
});

describe('vettedLookup', () => {
  it('refuses a name that resolves to loopback, in both answer shapes', async () => {
    const lookup = vettedLookup(2_000);
    const all = await new Promise<unknown>((resolve) => lookup('localhost', { all: true }, (error) => resolve(error)));
    expect(all).toBeInstanceOf(PrivateTargetError);
    const one = await new Promise<unknown>((resolve) => lookup('localhost', {}, (error) => resolve(error)));
    expect(one).toBeInstanceOf(PrivateTargetError);
  });

  it('refuses a name when any of its answers is private, not only the first (a connection may try the next)', async () => {
    const lookup = vettedLookup(2_000);
    for (const options of [{ all: true }, {}]) {
      const error = await new Promise<unknown>((resolve) => lookup(MIXED_NAME, options, (failure) => resolve(failure)));
      expect(error).toBeInstanceOf(PrivateTargetError);
      expect((error as PrivateTargetError).address).toBe('10.0.0.5');
    }
  });
});

describe('guardedAgents', () => {
  let target: Server;
  let proxy: Server;
  let targetPort = 0;
  let proxyHits = 0;
  let targetHits = 0;
  const savedProxy = { http: process.env.HTTP_PROXY, https: process.env.HTTPS_PROXY, no: process.env.NO_PROXY };

  beforeAll(async () => {
    target = createServer((_req, res) => {
      targetHits += 1;
      res.end('reached');
    });
    // A proxy that would happily forward to loopback: the guard must never hand it the request.
    proxy = createServer((_req, res) => {
      proxyHits += 1;
      res.end('proxied');
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    targetPort = (target.address() as AddressInfo).port;
  });

  afterEach(() => {
    for (const [name, value] of [['HTTP_PROXY', savedProxy.http], ['HTTPS_PROXY', savedProxy.https], ['NO_PROXY', savedProxy.no]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  afterAll(async () => {
    await new Promise((resolve) => target.close(resolve));
    await new Promise((resolve) => proxy.close(resolve));
  });

  const post = (url: string, agents: ReturnType<typeof guardedAgents>) =>
    axios.post(url, '{}', { ...agents, proxy: false, timeout: 5_000, validateStatus: () => true, responseType: 'text' });

  it('refuses a name resolving to loopback with HTTP_PROXY pointing at a public-looking proxy, and never uses the proxy', async () => {
    process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    process.env.HTTPS_PROXY = process.env.HTTP_PROXY;
    delete process.env.NO_PROXY;
    const before = { proxyHits, targetHits };
    const agents = guardedAgents({ allowPrivate: false, lookupTimeoutMs: 2_000 });
    const failure = await post(`http://localhost:${targetPort}/hook`, agents).catch((error: { cause?: unknown }) => error.cause ?? error);
    expect(failure).toBeInstanceOf(PrivateTargetError);
    expect({ proxyHits, targetHits }).toEqual(before);
  });

  it('checks the peer of a connection made to a literal address (no lookup happens)', async () => {
    process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const before = { proxyHits, targetHits };
    const agents = guardedAgents({ allowPrivate: false, lookupTimeoutMs: 2_000 });
    const failure = await post(`http://127.0.0.1:${targetPort}/hook`, agents).catch((error: { cause?: unknown }) => error.cause ?? error);
    expect(failure).toBeInstanceOf(PrivateTargetError);
    expect(String((failure as Error).message)).toContain('127.0.0.1');
    expect({ proxyHits, targetHits }).toEqual(before);
  });

  it('lets trusted host:port pairs and allowed private targets through, still without the proxy', async () => {
    process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const trusted = guardedAgents({ allowPrivate: false, lookupTimeoutMs: 2_000, trustedHosts: new Set([`127.0.0.1:${targetPort}`]) });
    expect((await post(`http://127.0.0.1:${targetPort}/hook`, trusted)).data).toBe('reached');
    const allowed = guardedAgents({ allowPrivate: true, lookupTimeoutMs: 2_000 });
    expect((await post(`http://localhost:${targetPort}/hook`, allowed)).data).toBe('reached');
    expect(proxyHits).toBe(0);
  });
});
