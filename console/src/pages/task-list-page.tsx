/**
 * The task list: newest first, filtered by status, provider and model, updating live (see
 * live-task-list.ts for how). The filters live in the page's address (`#/?status=failed`), so a
 * reload, a shared link and Back from a task keep them.
 */
import type { RefObject } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Link, useLocation, useSearch } from 'wouter-preact';
import { formatCostShort, GatewayUnreachableError, type Model, type ProviderId, type Task, type TaskStatus } from '../../../packages/client/src/index.js';
import { PageHeading } from '../components/page-heading.js';
import { ProblemMessage } from '../components/problem-message.js';
import { StatusBadge } from '../components/status-badge.js';
import { costSource, localTime, refusedByAll, timeAgo, timeSince } from '../display.js';
import { useSession } from '../gateway-context.js';
import { REFRESH_MS, useLiveTaskList, type TaskFilters } from '../live-task-list.js';
import { TASK_STATUSES } from '../task-statuses.js';
import { useGatewayData } from '../use-gateway-data.js';

/** The cost cell's title: where the figure comes from. */
const COST_TITLES = { estimate: 'estimated', provider: 'reported by the provider', nothing: 'nothing charged: no provider holds this task' } as const;

const FILTER_FIELDS = ['status', 'provider', 'model'] as const;

/** A refresh asked this long ago and not answered: the list is not live, whatever it last said. */
const STALE_MS = 2 * REFRESH_MS;

/** Renders again every `everyMs`, so what is said about the time now stays true. */
function useTick(everyMs: number): void {
  const [, setTicks] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setTicks((ticks) => ticks + 1), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
}

/** The filters an address's query asks for; a status the API does not know is left out. */
function filtersFrom(search: string): TaskFilters {
  const query = new URLSearchParams(search);
  const filters: TaskFilters = {};
  const status = query.get('status');
  if (status && (TASK_STATUSES as readonly string[]).includes(status)) filters.status = status as TaskStatus;
  // A provider or model the API does not know is asked anyway: its 400 says which there are.
  const provider = query.get('provider');
  if (provider) filters.provider = provider as ProviderId;
  const model = query.get('model');
  if (model) filters.model = model as Model;
  return filters;
}

function addressOf(filters: TaskFilters): string {
  const query = new URLSearchParams();
  for (const field of FILTER_FIELDS) {
    const value = filters[field];
    if (value) query.set(field, value);
  }
  const text = query.toString();
  return text ? `/?${text}` : '/';
}

/** The choices of a filter, with the address's own value kept even when the gateway does not list it. */
function choices(listed: readonly string[], chosen: string | undefined): string[] {
  return chosen && !listed.includes(chosen) ? [...listed, chosen] : [...listed];
}

/**
 * The keyboard's place when the task it is on leaves the list (its status changed under a status
 * filter): the task that takes its row, else the one above, else the page's heading, instead of the
 * top of the document. Which task has it is read as each render starts, while its row is still
 * in the document; the move comes once the row is gone. (Its status change is announced already.)
 */
function useKeyboardKeptInList(tasks: readonly Task[], table: RefObject<HTMLTableElement>, page: RefObject<HTMLElement>): void {
  const focused = useRef<{ id: string; index: number } | null>(null);
  const row = document.activeElement?.closest<HTMLElement>('tr[data-task-id]');
  if (row && table.current?.contains(row)) {
    const id = row.dataset.taskId!;
    focused.current = { id, index: [...table.current.querySelectorAll('tr[data-task-id]')].indexOf(row) };
  } else {
    focused.current = null;
  }
  useEffect(() => {
    const was = focused.current;
    if (!was || tasks.some((task) => task.id === was.id)) return;
    // Moved elsewhere meanwhile (a click outside the list): left there.
    if (document.activeElement && document.activeElement !== document.body) return;
    const links = table.current?.querySelectorAll<HTMLAnchorElement>('a.task-link') ?? [];
    const next = links[Math.min(was.index, links.length - 1)];
    if (next) next.focus();
    else page.current?.querySelector<HTMLElement>('h1')?.focus();
  });
}

export function TaskListPage() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const filters = useMemo(() => filtersFrom(search), [search]);
  // A filter change replaces the address rather than adding a step to Back.
  const setFilters = (next: TaskFilters) => navigate(addressOf(next), { replace: true });
  const live = useLiveTaskList(filters);
  const { client } = useSession();
  const providers = useGatewayData((_c, signal) => client.listProviders({ signal }), [client]);
  const models = useGatewayData((_c, signal) => client.listModels({ signal }), [client]);
  const set = (field: keyof TaskFilters) => (event: Event) => {
    const value = (event.target as HTMLSelectElement).value;
    setFilters({ ...filters, [field]: value || undefined });
  };
  // How old the list is stays true between answers (and when none comes).
  useTick(REFRESH_MS);
  const now = Date.now();
  // Not merely a hidden tab, which asks nothing until it is shown again.
  const stale = live.loaded && live.refreshedAt !== null && live.waitingSince !== null && now - live.waitingSince > STALE_MS;
  const filtered = Boolean(filters.status || filters.provider || filters.model);
  // The keyboard's place when the control pressed goes away: Clear filters to the first filter,
  // Load more to the first task it brought in (the button is gone after the last page).
  const firstFilter = useRef<HTMLSelectElement>(null);
  const table = useRef<HTMLTableElement>(null);
  const focusRow = useRef<number | null>(null);
  const section = useRef<HTMLElement>(null);
  const clearFilters = () => {
    setFilters({});
    firstFilter.current?.focus();
  };
  const loadMore = () => {
    if (live.loading) return;
    focusRow.current = live.tasks.length;
    live.loadMore();
  };
  useEffect(() => {
    if (focusRow.current === null || live.loading) return;
    table.current?.querySelectorAll<HTMLAnchorElement>('a.task-link')[focusRow.current]?.focus();
    focusRow.current = null;
  }, [live.loading, live.tasks.length]);
  useKeyboardKeptInList(live.tasks, table, section);
  // Back to this list from one of its tasks: the same pages (kept by the list), scrolled where they
  // were, the keyboard on the task opened; on the heading, as on every page shown, when that task
  // is no longer listed. The heading is told not to take it (see PageHeading).
  const opened = live.restoredPlace?.openedId ?? null;
  useEffect(() => {
    const place = live.restoredPlace;
    if (place) {
      scrollTo(0, place.scrollY);
      if (opened) {
        const link = [...(table.current?.querySelectorAll<HTMLAnchorElement>('tr[data-task-id] a.task-link') ?? [])].find((a) => a.closest<HTMLElement>('tr')?.dataset.taskId === opened);
        (link ?? section.current?.querySelector<HTMLElement>('h1'))?.focus({ preventScroll: true });
      }
    }
    const noteScroll = () => {
      live.place.scrollY = scrollY;
    };
    addEventListener('scroll', noteScroll, { passive: true });
    return () => removeEventListener('scroll', noteScroll);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  return (
    <section aria-labelledby="tasks-heading" ref={section}>
      <div class="page-head">
        <PageHeading title="Tasks" id="tasks-heading" takesFocus={!opened} />
        <Link href="/new" class="button primary">
          New video
        </Link>
      </div>
      <form class="filters" aria-label="Filter tasks" onSubmit={(event) => event.preventDefault()}>
        <div class="field">
          <label for="filter-status">Status</label>
          <select id="filter-status" ref={firstFilter} value={filters.status ?? ''} onChange={set('status')}>
            <option value="">Any</option>
            {TASK_STATUSES.map((status) => (
              <option key={status} value={status}>
                {status}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-provider">Provider</label>
          <select id="filter-provider" value={filters.provider ?? ''} onChange={set('provider')}>
            <option value="">Any</option>
            {choices((providers.data?.data ?? []).map((provider) => provider.id), filters.provider).map((provider) => (
              <option key={provider} value={provider}>
                {provider}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-model">Model</label>
          <select id="filter-model" value={filters.model ?? ''} onChange={set('model')}>
            <option value="">Any</option>
            {choices((models.data?.data ?? []).map((entry) => entry.model), filters.model).map((model) => (
              <option key={model} value={model}>
                {model}
              </option>
            ))}
          </select>
        </div>
        {filtered ? (
          <button type="button" class="link-button" onClick={clearFilters}>
            Clear filters
          </button>
        ) : null}
      </form>

      <p class="live-status muted small" aria-live="off">
        {!live.error && stale ? (
          // Asked, and no answer yet, long past the next refresh: a gateway that hangs sends no error.
          <>
            <span class="live-dot" data-paused="true" aria-hidden="true" /> Not live: the gateway has not answered for a while; list as of{' '}
            {timeAgo(new Date(live.refreshedAt!).toISOString(), now)}
          </>
        ) : live.error ? (
          // Not while the list cannot be read: the tasks shown are as they were then.
          <>
            <span class="live-dot" data-paused="true" aria-hidden="true" />{' '}
            {live.error instanceof GatewayUnreachableError ? 'Not live while the gateway cannot be reached' : 'Not live: the gateway did not list these tasks'}
            {live.loaded && live.refreshedAt ? `; list as of ${timeAgo(new Date(live.refreshedAt).toISOString())}` : ''}
          </>
        ) : (
          <>
            <span class="live-dot" aria-hidden="true" /> Live: {live.streaming.size > 0 ? `following ${live.streaming.size === 1 ? '1 running task as it changes' : `${live.streaming.size} running tasks as they change`}; ` : ''}
            list refreshed {live.refreshedAt ? timeAgo(new Date(live.refreshedAt).toISOString(), now) : '…'}
          </>
        )}
      </p>

      <ProblemMessage error={live.error} retrying />

      {live.tasks.length === 0 && !live.loaded ? (
        // Not read yet (or the gateway cannot be reached): nothing to say about the list itself.
        live.error ? null : <p class="muted">Loading…</p>
      ) : live.tasks.length === 0 ? (
        <div class="empty">
          {filtered && live.loadedCount > 0 ? (
            <p>No loaded task matches these filters.{live.hasMore ? ' Load more to look further back.' : ''}</p>
          ) : filtered ? (
            <p>No task matches these filters.</p>
          ) : (
            <p>
              No videos yet. <Link href="/new">Create the first one</Link>.
            </p>
          )}
        </div>
      ) : (
        <div class="table-scroll task-table-scroll" role="region" aria-label="Tasks, newest first" tabIndex={0}>
          <table class="tasks responsive" role="table" ref={table}>
            <caption class="visually-hidden">Tasks, newest first{filtered ? ', filtered' : ''}</caption>
            <thead>
              <tr role="row">
                <th scope="col">Task</th>
                <th scope="col">Status</th>
                <th scope="col" class="wide-only">Model</th>
                <th scope="col">Operation</th>
                <th scope="col">Provider</th>
                <th scope="col" class="number">Cost</th>
                <th scope="col" class="wide-only">Created</th>
              </tr>
            </thead>
            <tbody>
              {live.tasks.map((task) => {
                const prompt = typeof task.request.prompt === 'string' ? task.request.prompt : '';
                return (
                  <tr key={task.id} role="row" data-task-id={task.id} data-status={task.status}>
                    <td role="cell" class="primary-cell">
                      <Link href={`/tasks/${encodeURIComponent(task.id)}`} class="task-link">
                        <code>{task.id}</code>
                      </Link>
                      {/* Its own direction: a prompt written right to left reads so, its end at the left. */}
                      {prompt ? (
                        <div class="prompt-excerpt muted small" dir="auto">
                          {prompt}
                        </div>
                      ) : null}
                    </td>
                    <td role="cell" data-label="Status">
                      <StatusBadge status={task.status as TaskStatus} />
                      {live.streaming.has(task.id) ? <span class="visually-hidden"> (live)</span> : null}
                      {task.error && (task.status === 'failed' || task.status === 'canceled') ? (
                        // Three lines at most (the task's page has the whole reason); all of it in the title.
                        <div class="task-reason muted small" title={task.error.message}>
                          {task.error.message}
                        </div>
                      ) : null}
                    </td>
                    <td role="cell" class="wide-only" data-label="Model">
                      {task.model} <span class="muted">{task.quality}</span>
                    </td>
                    {/* What the task makes (an image or a video), as the CLI's list says it. */}
                    <td role="cell" class="operation-cell" data-label="Operation">
                      {task.operation}
                    </td>
                    <td role="cell" data-label="Provider">
                      {/* As the task's page has it: a provider that refused the task does not hold it. */}
                      {!task.provider ? (
                        <span class="muted">—</span>
                      ) : refusedByAll(task) ? (
                        <>
                          <span class="muted">—</span>
                          <div class="provider-note muted small">
                            {task.status === 'queued' ? 'none has accepted it yet' : 'none accepted it'}; {task.provider} was tried last
                          </div>
                        </>
                      ) : (
                        task.provider
                      )}
                    </td>
                    <td role="cell" data-label="Cost" class="number" title={COST_TITLES[costSource(task)]}>
                      {formatCostShort(task.cost)}
                    </td>
                    <td role="cell" class="wide-only" data-label="Created">
                      <time dateTime={task.created_at} title={localTime(task.created_at)}>
                        {timeSince(task.created_at)}
                      </time>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <div class="list-footer">
        {live.hasMore ? (
          // Not disabled while loading: a disabled button loses the keyboard's focus.
          <button type="button" onClick={loadMore} aria-disabled={live.loading ? 'true' : undefined}>
            {live.loading ? 'Loading…' : 'Load more'}
          </button>
        ) : null}
        {live.tasks.some((task) => task.cost.estimated) ? <span class="muted small">~ estimated cost</span> : null}
      </div>
      {/* Said where it was asked; nothing asks for that page again until Load more is pressed. */}
      <ProblemMessage error={live.moreError} context="Load more" />
    </section>
  );
}
