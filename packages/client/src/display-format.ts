/**
 * How the gateway's numbers read to people, the same in the CLI and the web console: costs with
 * their currency and whether they are estimates, durations, sizes, shares.
 */
import type { Quote, TaskCost } from './gateway-types.js';

/** `$0.56 (56 credits, estimated)`; `—` when nothing is known. */
export function formatCost(cost: TaskCost | null | undefined): string {
  if (!cost || (cost.credits === null && cost.currency_amount === null)) return '—';
  const amount = cost.currency_amount === null ? null : formatMoney(cost.currency_amount, cost.currency);
  const credits = cost.credits === null ? null : formatCredits(cost.credits);
  const parts = [amount ?? credits, amount && credits ? credits : null, cost.estimated ? 'estimated' : null].filter(Boolean);
  return parts.length > 1 ? `${parts[0]} (${parts.slice(1).join(', ')})` : String(parts[0]);
}

/**
 * What other providers may also have billed for the task (`cost.at_risk`: a create left
 * unanswered before another provider took it): `may also have been billed by freepik: 56
 * credits, $0.56 (estimate)`; null when none may have.
 */
export function formatChargesAtRisk(cost: TaskCost | null | undefined): string | null {
  const charges = cost?.at_risk ?? [];
  if (charges.length === 0) return null;
  const each = charges.map((charge) => {
    const figures = [
      charge.credits === null ? null : formatCredits(charge.credits),
      charge.currency_amount === null ? null : formatMoney(charge.currency_amount, charge.currency),
    ].filter(Boolean);
    // One account per provider is the common case: its `default` says nothing.
    const account = charge.account && charge.account !== 'default' ? ` (account ${charge.account})` : '';
    return `${charge.provider}${account}: ${figures.length > 0 ? figures.join(', ') : 'no price known'} (estimate)`;
  });
  return `may also have been billed by ${each.join('; ')}`;
}

/** Short form for tables: `$0.56~` (~ = estimated). */
export function formatCostShort(cost: TaskCost | null | undefined): string {
  if (!cost) return '—';
  const text =
    cost.currency_amount !== null
      ? formatMoney(cost.currency_amount, cost.currency)
      : cost.credits !== null
        ? `${formatNumber(cost.credits)} cr`
        : '—';
  return text !== '—' && cost.estimated ? `${text}~` : text;
}

/**
 * Whether a usage row's credits and money are, wholly or in part, the price list's estimates:
 * tasks of a provider that has not reported its charge (Freepik never does). Tables mark such a
 * figure `~`, as `formatCostShort` marks a task's. A row without the split (an older gateway,
 * figures a client added up itself without it) is not taken to be estimated.
 */
export function usageEstimated(row: { credits_estimated?: number | null; currency_amount_estimated?: number | null }): boolean {
  return (row.credits_estimated ?? 0) > 0 || (row.currency_amount_estimated ?? 0) > 0;
}

/**
 * `$0.56`, `$0.435`, `$0.0054`: dollars with at least the cents and as many more digits as the
 * amount has, down to the millionth the gateway counts money in (a credit may be worth a tenth of
 * a cent, so rounding to the cent would misstate a charge); other currencies as a plain number
 * to the same millionth (`0.011625 EUR`, `3 EUR`).
 */
export function formatMoney(amount: number, currency: string | null, options: Grouping = {}): string {
  const [whole = '0', fraction = ''] = amount.toFixed(6).split('.');
  const digits = fraction.replace(/0+$/, '');
  const units = options.grouped && /^-?\d+$/.test(whole) ? grouped(whole) : whole;
  if (currency === 'USD') return `$${units}.${digits.padEnd(2, '0')}`;
  return `${digits ? `${units}.${digits}` : units} ${currency ?? ''}`.trim();
}

/**
 * `grouped: true` puts a comma between thousands (`$12,345.67`, `1,500 credits`), for people
 * reading large figures (the web console). Left out, figures stay plain (`12345.67`), as the CLI
 * prints them for scripts that read its tables.
 */
export interface Grouping {
  grouped?: boolean;
}

/** `1 credit`, `56 credits`, `0.25 credits`. */
export function formatCredits(credits: number, options: Grouping = {}): string {
  return `${formatNumber(credits, options)} ${credits === 1 ? 'credit' : 'credits'}`;
}

export function formatNumber(value: number, options: Grouping = {}): string {
  const text = Number.isInteger(value) ? String(value) : String(Number(value.toFixed(4)));
  if (!options.grouped || !/^-?\d+(\.\d+)?$/.test(text)) return text;
  const [whole = '0', fraction] = text.split('.');
  return fraction === undefined ? grouped(whole) : `${grouped(whole)}.${fraction}`;
}

/** `12345` → `12,345`; a sign stays in front (`-1,234`). */
function grouped(whole: string): string {
  const sign = whole.startsWith('-') ? '-' : '';
  const digits = sign ? whole.slice(1) : whole;
  let text = '';
  for (let end = digits.length; end > 0; end -= 3) text = `${digits.slice(Math.max(0, end - 3), end)}${text ? `,${text}` : ''}`;
  return `${sign}${text}`;
}

/** `0:07`, `12:03`, `1:02:03`. */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

export function formatPercent(share: number | null | undefined): string {
  return share === null || share === undefined ? '—' : `${Math.round(share * 100)}%`;
}

/**
 * Whether a quote's order is one random draw (`weighted`): each create then draws its own, and
 * each provider in it warns how often it is drawn first. Not for an exact `routing.providers`
 * order, or a single provider with a weight, which are no draw.
 */
export function quoteOrderDrawn(quote: Pick<Quote, 'strategy' | 'providers'>): boolean {
  return quote.strategy === 'weighted' && quote.providers.some((provider) => provider.order !== null && provider.warnings.some((warning) => warning.startsWith('weighted:')));
}
