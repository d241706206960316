/**
 * The pure parts of outbound webhook delivery (SPEC §4): which targets are refused without a
 * DNS lookup (private, loopback, link-local ranges and `localhost`, unless config allows them),
 * and the back-off between delivery attempts.
 */
import { describe, expect, it } from 'vitest';
import { deliveryBackoffMs, isPrivateAddress, refuseLiteralTarget } from '../../../src/core/tasks/outbound-webhooks.js';

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
    ['fbff::1'],
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
    expect(refuseLiteralTarget('http://[::ffff:127.0.0.1]/hook', false)).toBeDefined();
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

describe('deliveryBackoffMs', () => {
  it('doubles from 5 s: 5, 10, 20, 40 s …', () => {
    expect([1, 2, 3, 4, 5].map(deliveryBackoffMs)).toEqual([5_000, 10_000, 20_000, 40_000, 80_000]);
  });

  it('is capped at one hour', () => {
    // 5 s × 2^10 = 5 120 s > 3 600 s.
    expect(deliveryBackoffMs(10)).toBe(2_560_000);
    expect(deliveryBackoffMs(11)).toBe(3_600_000);
    expect(deliveryBackoffMs(100)).toBe(3_600_000);
  });

  it('treats attempt 0 like the first', () => {
    expect(deliveryBackoffMs(0)).toBe(5_000);
  });
});
