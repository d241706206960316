/**
 * Providers (and their accounts, where a provider has several): mode, circuit, load, success
 * rate, latency, prices. Refreshed every few seconds.
 */
import {
  accountsOf,
  formatMs,
  formatNumber,
  formatPercent,
  type ProviderAccountStatus,
  type ProviderStatus,
} from '../../../packages/client/src/index.js';
import { PageHeading } from '../components/page-heading.js';
import { ProblemMessage } from '../components/problem-message.js';
import { CircuitBadge } from '../components/status-badge.js';
import { GROUPED, localTime } from '../display.js';
import { useSession } from '../gateway-context.js';
import { useGatewayData } from '../use-gateway-data.js';

const REFRESH_MS = 5_000;
/** How long a read of the providers may go unanswered before the page says the gateway does not answer. */
const ANSWER_WITHIN_MS = 10_000;

function count(value: unknown): string {
  return typeof value === 'number' ? formatNumber(value, GROUPED) : '—';
}

function AccountRow({ account }: { account: ProviderAccountStatus }) {
  return (
    <tr class="account-row" role="row">
      <th scope="row" role="rowheader" class="primary-cell">
        <span aria-hidden="true">└ </span>
        <span class="visually-hidden">account </span>
        {account.id}
      </th>
      <td role="cell" class="empty-cell" />
      <td role="cell" data-label="Circuit">
        <CircuitBadge circuit={account.circuit} />
        {account.cooling_down_until ? (
          <div class="muted small" title={localTime(account.cooling_down_until)}>
            cool-down until {localTime(account.cooling_down_until)}
          </div>
        ) : null}
      </td>
      <td role="cell" data-label="In flight" class="number">
        {count(account.in_flight)} / {count(account.max_in_flight)}
      </td>
      <td role="cell" class="number empty-cell" />
      <td role="cell" data-label="Success" class="number">
        {formatPercent(account.success_rate)}
        <div class="muted small">{callsText(account.calls)}</div>
      </td>
      <td role="cell" data-label="p50" class="number">{formatMs(account.latency_p50_ms)}</td>
      <td role="cell" data-label="p95" class="number">{formatMs(account.latency_p95_ms)}</td>
      <td role="cell" class="number wide-only empty-cell" />
    </tr>
  );
}

/** `1 call`, `12 calls`. */
function callsText(calls: number): string {
  return `${calls} ${calls === 1 ? 'call' : 'calls'}`;
}

function ProviderRows({ provider }: { provider: ProviderStatus }) {
  return (
    <>
      <tr data-provider={provider.id} role="row">
        <th scope="row" role="rowheader" class="primary-cell">
          {provider.id}
          <div class="muted small">{provider.name}</div>
        </th>
        <td role="cell" data-label="Mode">
          {provider.mode}
          {provider.disabled_reason ? <div class="muted small">{provider.disabled_reason}</div> : null}
        </td>
        <td role="cell" data-label="Circuit">
          <CircuitBadge circuit={provider.circuit} />
          {provider.cooling_down_until ? (
            <div class="muted small" title={localTime(provider.cooling_down_until)}>
              cool-down until {localTime(provider.cooling_down_until)}
            </div>
          ) : null}
        </td>
        <td role="cell" data-label="In flight" class="number">
          {provider.in_flight} / {provider.max_in_flight}
        </td>
        <td role="cell" data-label="Queued" class="number">{provider.queued}</td>
        <td role="cell" data-label="Success" class="number">
          {formatPercent(provider.success_rate)}
          <div class="muted small">{callsText(provider.calls)}</div>
        </td>
        <td role="cell" data-label="p50" class="number">{formatMs(provider.latency_p50_ms)}</td>
        <td role="cell" data-label="p95" class="number">{formatMs(provider.latency_p95_ms)}</td>
        <td role="cell" data-label="Median to finish" class="number">{formatMs(provider.median_completion_ms)}</td>
      </tr>
      {accountsOf(provider).map((account) => (
        <AccountRow key={account.id} account={account} />
      ))}
    </>
  );
}

/**
 * A price rule as JSON with a space after each colon and comma, as config.yaml's flow style has
 * it: a narrow card wraps it between keys and values, never inside one ("credits_per_second").
 */
function spacedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(spacedJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([key, item]) => `${JSON.stringify(key)}: ${spacedJson(item)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

export function ProvidersPage() {
  const { client } = useSession();
  // A refresh left unanswered is said within ANSWER_WITHIN_MS, not after the client's two minutes of the last figures.
  const providers = useGatewayData((_c, signal) => client.listProviders({ signal }), [client], { refreshMs: REFRESH_MS, answerWithinMs: ANSWER_WITHIN_MS });
  const list = providers.data?.data ?? [];
  return (
    <section>
      <PageHeading title="Providers" />
      {/* Median to finish covers hours, not the calls' 10 minutes: a provider with "0 calls" may still show one. */}
      <p id="figures-note" class="muted small">
        Success rate and latency (p50, p95) cover the last 10 minutes of upstream calls; median to finish, the last 50 videos the
        provider made in the last 6 hours; queued counts tasks waiting for any provider. Refreshed every {REFRESH_MS / 1000} s.
      </p>
      {/* The sandbox's first look: costs appear on every video made, and "simulator" alone does not say that none is real. */}
      {list.some((provider) => provider.mode === 'simulator') ? (
        <p id="simulator-note" class="muted small">
          Mode <strong>simulator</strong>: a simulator in the gateway's sandbox answers for that provider, as no key for it is configured.
          Nothing is sent to the provider and nothing is billed: a video's cost is what it would have cost.
        </p>
      ) : null}
      <ProblemMessage error={providers.error} retrying />
      {list.length > 0 ? (
        <div class="table-scroll" role="region" aria-label="Providers" tabIndex={0}>
          <table class="providers responsive" role="table">
            <caption class="visually-hidden">Each provider's standing</caption>
            <thead>
              <tr role="row">
                <th scope="col">Provider</th>
                <th scope="col">Mode</th>
                <th scope="col">Circuit</th>
                <th scope="col" class="number">In flight</th>
                <th scope="col" class="number">Queued</th>
                <th scope="col" class="number">Success</th>
                <th scope="col" class="number">p50</th>
                <th scope="col" class="number">p95</th>
                <th scope="col" class="number">Median to finish</th>
              </tr>
            </thead>
            <tbody>
              {list.map((provider) => (
                <ProviderRows key={provider.id} provider={provider} />
              ))}
            </tbody>
          </table>
        </div>
      ) : providers.loading ? (
        <p class="muted">Loading…</p>
      ) : null}

      {list.length > 0 ? (
        <section aria-labelledby="pricing-heading">
          <h2 id="pricing-heading">Prices and routing</h2>
          <div class="cards">
            {list.map((provider) => (
              <div class="panel" key={provider.id}>
                <h3>{provider.id}</h3>
                <dl class="details">
                  <dt>Priority / weight</dt>
                  <dd>
                    {provider.priority} / {formatNumber(provider.weight)}
                  </dd>
                  <dt>Credit value</dt>
                  <dd>{provider.pricing ? `${formatNumber(provider.pricing.credit_value)} ${provider.pricing.currency}` : 'no price list'}</dd>
                  <dt>Price rules</dt>
                  <dd>{provider.pricing ? provider.pricing.rules.length : 0}</dd>
                </dl>
                {provider.pricing && provider.pricing.rules.length > 0 ? (
                  <details>
                    <summary>Rules</summary>
                    <pre>{provider.pricing.rules.map((rule) => spacedJson(rule)).join('\n')}</pre>
                  </details>
                ) : null}
              </div>
            ))}
          </div>
        </section>
      ) : null}
    </section>
  );
}
