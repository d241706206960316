/**
 * Freepik status calls for a 60 s job when no webhook comes, from the gateway's own polling
 * schedule (`core/tasks/polling.ts`) with `config.yaml`'s tracking settings and Freepik's
 * declared minimum run time: the polls `Tracker` makes until the first one at or after the
 * job's end, over many draws of the jitter. A live run of 60 s jobs would take minutes per
 * sample and measure the same arithmetic.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../src/config/config.js';
import { firstPollDelay, nextPollDelay } from '../src/core/tasks/polling.js';
import { PROVIDER_IDS, PROVIDERS } from '../src/providers/registry.js';
import { benchCreateRequest } from './bench-requests.js';

export interface PollScheduleResult {
  provider: string;
  jobMs: number;
  minimumRunTimeMs: number;
  draws: number;
  meanPolls: number;
  maxPolls: number;
  /** How long after the job ended the poll that saw it came, on average. */
  meanLatenessMs: number;
}

export function freepikPollsPerJob(jobMs = 60_000, draws = 10_000): PollScheduleResult {
  const config = loadConfigFile(resolve(fileURLToPath(new URL('../config.yaml', import.meta.url))), {}, PROVIDER_IDS);
  const freepik = PROVIDERS.find((provider) => provider.id === 'freepik');
  if (!freepik) throw new Error('no freepik provider');
  const request = benchCreateRequest('freepik') as unknown as Parameters<typeof freepik.minimumRunTimeMs>[0];
  const minimumRunTimeMs = freepik.minimumRunTimeMs(request);
  let polls = 0;
  let maxPolls = 0;
  let lateness = 0;
  for (let draw = 0; draw < draws; draw++) {
    let at = firstPollDelay(minimumRunTimeMs, config.tracking, Math.random, false);
    let count = 1;
    while (at < jobMs) {
      at += nextPollDelay(count, config.tracking, Math.random, false, minimumRunTimeMs);
      count += 1;
    }
    polls += count;
    maxPolls = Math.max(maxPolls, count);
    lateness += at - jobMs;
  }
  return { provider: 'freepik', jobMs, minimumRunTimeMs, draws, meanPolls: polls / draws, maxPolls, meanLatenessMs: lateness / draws };
}
