/**
 * The deliveries of a task's events to its `webhook_url` (`GET /v1/videos/{id}/webhooks`): each
 * event, whether it arrived, how many tries, the last HTTP status and error, and when. Read again
 * while the task runs or a delivery still waits for a retry.
 */
import { useEffect, useState } from 'preact/hooks';
import { isTerminal, type Task, type WebhookDelivery, type WebhookDeliveryList } from '../../../packages/client/src/index.js';
import { localTime, timeAgo, timeSince } from '../display.js';
import { useSession } from '../gateway-context.js';
import { useGatewayData } from '../use-gateway-data.js';
import { ProblemMessage } from './problem-message.js';

/** How often the deliveries are read again while one may change at any moment. */
const DELIVERIES_REFRESH_MS = 3_000;

/**
 * The longest wait between two reads while deliveries wait for a retry: a retry the gateway makes
 * sooner than it said (after a restart), or a browser clock behind the gateway's, shows within it.
 */
const DELIVERIES_LONGEST_WAIT_MS = 60_000;

/** The task's `webhook_url`, if its request has one. */
export function webhookUrlOf(task: Task): string | null {
  const url = (task.request as { webhook_url?: unknown }).webhook_url;
  return typeof url === 'string' && url ? url : null;
}

/** Nothing more will change: the task ended and no delivery waits for a retry. */
function settled(task: Task, deliveries: WebhookDeliveryList | undefined): boolean {
  return isTerminal(task) && deliveries !== undefined && deliveries.data.every((delivery) => delivery.status !== 'pending');
}

/**
 * When to read the deliveries again: not once nothing can change; every few seconds while the task
 * runs (it sends events) or a delivery is due; else when the first retry is due, within a minute.
 */
function nextReadIn(task: Task, deliveries: WebhookDeliveryList, now = Date.now()): number | undefined {
  if (settled(task, deliveries)) return undefined;
  if (!isTerminal(task)) return DELIVERIES_REFRESH_MS;
  const due = Math.min(...deliveries.data.filter((delivery) => delivery.status === 'pending').map((delivery) => (delivery.next_attempt_at ? Date.parse(delivery.next_attempt_at) : now)));
  return Math.min(Math.max(due - now, DELIVERIES_REFRESH_MS), DELIVERIES_LONGEST_WAIT_MS);
}

function DeliveryWhen({ delivery }: { delivery: WebhookDelivery }) {
  const when = delivery.delivered_at ?? delivery.created_at;
  return (
    <>
      <time dateTime={when} title={localTime(when)}>
        {delivery.delivered_at ? 'delivered ' : 'event '}
        {timeSince(when)}
      </time>
      {delivery.next_attempt_at ? (
        <div class="muted small next-try">
          {/* Its time come and no try since (the gateway's next pass, or this browser's clock ahead of it): due now, never "ago". */}
          next try{' '}
          <time dateTime={delivery.next_attempt_at} title={localTime(delivery.next_attempt_at)}>
            {Date.parse(delivery.next_attempt_at) <= Date.now() ? 'due now' : timeAgo(delivery.next_attempt_at)}
          </time>
        </div>
      ) : null}
    </>
  );
}

export function WebhookDeliveries({ task, url }: { task: Task; url: string }) {
  const { client } = useSession();
  // Read again until nothing can change any more (see nextReadIn); then once per task change.
  const deliveries = useGatewayData<WebhookDeliveryList>(
    (_c, signal) => client.webhookDeliveries(task.id, { signal }),
    [client, task.id, task.updated_at],
    { refreshMs: (list) => nextReadIn(task, list) },
  );
  // "next try in 40 sec." stays true between reads, which may be a minute apart.
  useTick(1_000, deliveries.data?.data.some((delivery) => delivery.status === 'pending') ?? false);
  return (
    <section aria-labelledby="webhooks-heading" class="panel webhook-deliveries">
      <h2 id="webhooks-heading">Webhook deliveries</h2>
      <p class="muted small">
        Events sent to <code class="webhook-url">{url}</code>
      </p>
      <ProblemMessage error={deliveries.error} context="Webhook deliveries" retrying />
      {deliveries.error && !deliveries.data ? null : <DeliveryTable deliveries={deliveries.data} />}
    </section>
  );
}

/** Renders again every `everyMs` while `on`. */
function useTick(everyMs: number, on: boolean): void {
  const [, setTicks] = useState(0);
  useEffect(() => {
    if (!on) return undefined;
    const timer = setInterval(() => setTicks((ticks) => ticks + 1), everyMs);
    return () => clearInterval(timer);
  }, [everyMs, on]);
}

function DeliveryTable({ deliveries }: { deliveries: WebhookDeliveryList | undefined }) {
  if (!deliveries) return <p class="muted">Loading…</p>;
  if (deliveries.data.length === 0) return <p class="muted">No event has been sent yet.</p>;
  return (
    <div class="table-scroll" role="region" aria-label="Webhook deliveries, oldest first" tabIndex={0}>
      <table class="deliveries responsive" role="table">
        <caption class="visually-hidden">Each event sent to the webhook URL, oldest first</caption>
        <thead>
          <tr role="row">
            <th scope="col">Event</th>
            <th scope="col">Status</th>
            <th scope="col" class="number">Tries</th>
            <th scope="col" class="number">Last status</th>
            <th scope="col">Last error</th>
            <th scope="col">When</th>
          </tr>
        </thead>
        <tbody>
          {deliveries.data.map((delivery) => (
            <tr key={delivery.id} role="row" data-delivery-id={delivery.id} data-status={delivery.status}>
              <td role="cell" class="primary-cell">
                <code>{delivery.type}</code>
              </td>
              <td role="cell" data-label="Status">
                <span class={`badge delivery-${delivery.status}`}>{delivery.status}</span>
              </td>
              <td role="cell" data-label="Tries" class="number">
                {delivery.attempts}
              </td>
              <td role="cell" data-label="Last status" class="number">
                {delivery.last_status ?? <span class="muted">{delivery.attempts > 0 ? 'no answer' : '—'}</span>}
              </td>
              <td role="cell" data-label="Last error" class="delivery-error">
                {delivery.last_error ?? <span class="muted">—</span>}
              </td>
              <td role="cell" data-label="When">
                <DeliveryWhen delivery={delivery} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
