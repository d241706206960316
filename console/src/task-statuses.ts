/**
 * Every task status, in lifecycle order. The check below fails to compile when the API gains a
 * status this list lacks (the generated types come from openapi/gateway.json).
 */
import type { TaskStatus } from '../../packages/client/src/index.js';

export const TASK_STATUSES = ['queued', 'processing', 'succeeded', 'failed', 'canceled'] as const satisfies readonly TaskStatus[];

type MissingStatus = Exclude<TaskStatus, (typeof TASK_STATUSES)[number]>;
const everyStatusListed: [MissingStatus] extends [never] ? true : MissingStatus = true;
void everyStatusListed;
