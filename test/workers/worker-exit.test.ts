/**
 * What the primary does when a worker ends while the gateway is not stopping: a worker whose own
 * start failed before the gateway first served stops the gateway (a replacement would fail
 * alike), as does one refused the configuration; a worker that already served, or that was
 * killed from outside (SIGKILL, the OOM killer), is replaced, also while another worker of the
 * first start is still starting.
 */
import { expect, it } from 'vitest';
import { CONFIG_REFUSED_EXIT } from '../../src/config/config.js';
import { afterWorkerExit } from '../../src/workers/primary.js';

it('stops the gateway when a worker fails its start before the gateway first served, or is refused the configuration', () => {
  expect(afterWorkerExit({ code: 1, signal: null, served: false, gatewayServed: false })).toEqual({ kind: 'give-up', exitCode: 1, why: 'ended before it served' });
  expect(afterWorkerExit({ code: CONFIG_REFUSED_EXIT, signal: null, served: false, gatewayServed: true })).toEqual({
    kind: 'give-up',
    exitCode: CONFIG_REFUSED_EXIT,
    why: 'was refused the configuration',
  });
});

it('replaces a worker that already served and was killed while another worker of the first start was still starting', () => {
  expect(afterWorkerExit({ code: null, signal: 'SIGKILL', served: true, gatewayServed: false })).toEqual({ kind: 'replace' });
  expect(afterWorkerExit({ code: 1, signal: null, served: true, gatewayServed: false })).toEqual({ kind: 'replace' });
});

it('replaces a starting worker killed from outside, and any worker once the gateway served', () => {
  expect(afterWorkerExit({ code: null, signal: 'SIGKILL', served: false, gatewayServed: false })).toEqual({ kind: 'replace' });
  expect(afterWorkerExit({ code: 1, signal: null, served: false, gatewayServed: true })).toEqual({ kind: 'replace' });
});
