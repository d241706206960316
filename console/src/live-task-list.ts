/**
 * The task list, kept live. How (EventSource cannot send an Authorization header, so streams are
 * read with fetch through the client):
 *
 * - the first page is read again every few seconds while the tab is visible, which brings in new
 *   tasks (also those created elsewhere) and any change the streams did not cover;
 * - each visible task that is still running gets its own event stream
 *   (`GET /v1/videos/{id}/events`), so its status, provider and cost change the moment the gateway
 *   knows. At most MAX_STREAMS at once: a browser allows six connections per origin over HTTP/1.1,
 *   and the console's other requests need some; tasks beyond that move with the refresh.
 *
 * The filters (status, provider, model) are asked of the API, so every page holds only matching
 * tasks. They are also applied here, so a task that changes status leaves a filtered view at once.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { GatewayError, isTerminal, type Model, type ProviderId, type Task, type TaskStatus } from '../../packages/client/src/index.js';
import { useSession } from './gateway-context.js';
import { shortId, taskNoun } from './display.js';
import { cameBackThroughHistory } from './hash-location.js';
import { newer } from './task-statuses.js';

export const MAX_STREAMS = 4;
export const REFRESH_MS = 5_000;
const PAGE_SIZE = 25;
/** A stream that failed, or ended before its task did, is not reopened for this long (the refresh covers the task meanwhile). */
const STREAM_RETRY_MS = 15_000;

export interface TaskFilters {
  status?: TaskStatus | undefined;
  provider?: ProviderId | undefined;
  model?: Model | undefined;
}

/** Where the reader is in the list shown now: the page writes it, the list keeps it when left. */
export interface ListPlace {
  scrollY: number;
  /** The task the list was left for (its page shown next), else null: Back puts the keyboard on it. */
  openedId: string | null;
}

/** Pages read again at most when the list is brought back (Back), however far Load more went. */
const MAX_PAGES_BROUGHT_BACK = 40;

/** The task whose page `hash` shows (`#/tasks/vid_1`), else null. */
export function taskOfHash(hash: string): string | null {
  const match = /^#\/tasks\/([^/?]+)/.exec(hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]!);
  } catch {
    return null;
  }
}

/**
 * The list last left, for Back (or Forward) to it: its loaded pages (Load more included) and the
 * reader's place in them, for the same key holder and filters only. A link to the list starts afresh.
 * The pages brought back are read again at once, so none shows a task as it was when the list was left.
 */
let kept: { client: object; key: string; byId: Map<string, Task>; cursor: string | null; place: ListPlace } | null = null;

function keyOf(filters: TaskFilters): string {
  return JSON.stringify([filters.status ?? null, filters.provider ?? null, filters.model ?? null]);
}

export interface LiveTaskList {
  /** The loaded tasks that match the filters, newest first. */
  tasks: Task[];
  /** How many tasks are loaded before the filters apply here (to tell "none match any more" from "none"). */
  loadedCount: number;
  hasMore: boolean;
  /** The first page, the pages brought back (Back), or a Load more is on its way (each until its own answer). */
  loading: boolean;
  /** The first page for these filters has been read (until then an empty list means nothing). */
  loaded: boolean;
  error: unknown;
  /**
   * Why the last Load more brought no page (refused, or the gateway not reached): said at Load more
   * until it is pressed again or the filters change. Not the list's error: the list stays live, and
   * nothing asks for that page again by itself.
   */
  moreError: unknown;
  loadMore(): void;
  /** Ids of the tasks followed by an event stream right now. */
  streaming: ReadonlySet<string>;
  refreshedAt: number | null;
  /** When the refresh on its way now was asked (null: none is). */
  waitingSince: number | null;
  /** Where the reader was when this list was left, when it is the one brought back (Back); else null. */
  restoredPlace: ListPlace | null;
  /** Where the reader is now, kept with the list when it is left. */
  place: ListPlace;
}

function byNewest(a: Task, b: Task): number {
  return Date.parse(b.created_at) - Date.parse(a.created_at) || (a.id < b.id ? 1 : -1);
}

export function matchesFilters(task: Task, filters: TaskFilters): boolean {
  return (
    (!filters.status || task.status === filters.status) &&
    (!filters.provider || task.provider === filters.provider) &&
    (!filters.model || task.model === filters.model)
  );
}

export function useLiveTaskList(filters: TaskFilters): LiveTaskList {
  const { client, announce, signOut } = useSession();
  const key = keyOf(filters);
  // Read once, as the list is shown: Back to the list it was brings back its pages.
  const [restored] = useState(() => (cameBackThroughHistory() && kept && kept.client === client && kept.key === key ? kept : null));
  const restoring = useRef(restored !== null);
  const place = useRef<ListPlace>(restored ? { ...restored.place } : { scrollY: 0, openedId: null });
  const [byId, setById] = useState<Map<string, Task>>(() => new Map(restored?.byId ?? []));
  const [cursor, setCursor] = useState<string | null>(restored?.cursor ?? null);
  const [loading, setLoading] = useState(restored === null);
  /** A Load more on its way: its own, so a refresh that answers meanwhile does not say the page came. */
  const [loadingMore, setLoadingMore] = useState(false);
  const [loaded, setLoaded] = useState(restored !== null);
  const latest = useRef({ key, byId, cursor, loaded });
  latest.current = { key, byId, cursor, loaded };
  const [error, setError] = useState<unknown>(undefined);
  const [moreError, setMoreError] = useState<unknown>(undefined);
  const [refreshedAt, setRefreshedAt] = useState<number | null>(null);
  const [waitingSince, setWaitingSince] = useState<number | null>(null);
  const [streaming, setStreaming] = useState<ReadonlySet<string>>(new Set());
  const streams = useRef(new Map<string, AbortController>());
  const failedAt = useRef(new Map<string, number>());
  /** The newest read of each task so far (what `merge` announces changes against). */
  const known = useRef(new Map<string, Task>());
  /** The Load more on its way, if any: a filter change gives it up, so its page and cursor never land under other filters. */
  const more = useRef<AbortController | null>(null);

  const merge = useCallback(
    (tasks: Task[], announceChanges: boolean) => {
      setById((current) => {
        const next = new Map(current);
        for (const task of tasks) {
          if (!newer(task, next.get(task.id))) continue;
          next.set(task.id, task);
        }
        return next;
      });
      for (const task of tasks) {
        const before = known.current.get(task.id);
        // An older read says nothing new: announced, it took the task back, and its end was said again after it.
        if (!newer(task, before)) continue;
        if (announceChanges && before && before.status !== task.status) announce(`${taskNoun(task)} ${shortId(task.id)} ${task.status}`);
        known.current.set(task.id, task);
      }
    },
    [announce],
  );

  const fail = useCallback(
    (caught: unknown) => {
      if (caught instanceof GatewayError && caught.status === 401) signOut('The gateway no longer accepts this key. Sign in again.');
      else setError(caught);
    },
    [signOut],
  );

  // The first page, again and again; a filter change starts over.
  useEffect(() => {
    const aborter = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let first = true;
    // The pages brought back (Back to this list) stay, with their cursor; the first page is read again over them.
    const broughtBack = restoring.current;
    restoring.current = false;
    more.current?.abort();
    more.current = null;
    setLoadingMore(false);
    setMoreError(undefined);
    if (!broughtBack) {
      setById(new Map());
      setCursor(null);
      setLoading(true);
      setLoaded(false);
    }
    const query = {
      limit: PAGE_SIZE,
      ...(filters.status ? { status: filters.status } : {}),
      ...(filters.provider ? { provider: filters.provider } : {}),
      ...(filters.model ? { model: filters.model } : {}),
    };
    /**
     * The pages brought back, read again from the first down to the oldest task they held (tasks
     * made meanwhile push it further down): the tasks that changed since the list was left, and
     * the cursor that goes on from there.
     */
    const readBroughtBack = async () => {
      const held = [...latest.current.byId.values()].sort(byNewest);
      const oldest = held.at(-1);
      let cursor: string | null = null;
      for (let pages = 0; pages < MAX_PAGES_BROUGHT_BACK; pages += 1) {
        const page = await client.listVideos({ ...query, ...(cursor ? { cursor } : {}) }, { signal: aborter.signal });
        if (aborter.signal.aborted) return;
        merge(page.data, false);
        cursor = page.next_cursor;
        const last = page.data.at(-1);
        if (!cursor || !oldest || !last || last.id === oldest.id || byNewest(last, oldest) > 0) break;
      }
      setCursor(cursor);
    };
    /** A read on its way: a tab shown again meanwhile does not start a second one. */
    let reading = false;
    const refresh = async () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (!document.hidden) {
        reading = true;
        setWaitingSince(Date.now());
        try {
          if (first && broughtBack) {
            setLoading(true);
            await readBroughtBack();
          } else {
            const page = await client.listVideos(query, { signal: aborter.signal });
            if (aborter.signal.aborted) return;
            merge(page.data, !first);
            if (first) setCursor(page.next_cursor);
          }
          if (aborter.signal.aborted) return;
          first = false;
          setLoaded(true);
          setError(undefined);
          setRefreshedAt(Date.now());
        } catch (caught) {
          if (aborter.signal.aborted) return;
          fail(caught);
        } finally {
          reading = false;
          if (!aborter.signal.aborted) {
            setLoading(false);
            setWaitingSince(null);
          }
        }
      }
      if (!aborter.signal.aborted) timer = setTimeout(() => void refresh(), REFRESH_MS);
    };
    // A tab shown again reads the list at once: what it shows is as old as the time it was hidden.
    const onVisible = () => {
      if (!document.hidden && !reading && !aborter.signal.aborted) void refresh();
    };
    document.addEventListener('visibilitychange', onVisible);
    void refresh();
    return () => {
      document.removeEventListener('visibilitychange', onVisible);
      aborter.abort();
      more.current?.abort();
      more.current = null;
      if (timer) clearTimeout(timer);
    };
  }, [client, filters.status, filters.provider, filters.model, merge, fail]);

  const loadMore = useCallback(() => {
    if (!cursor) return;
    more.current?.abort();
    const aborter = new AbortController();
    more.current = aborter;
    setLoadingMore(true);
    setMoreError(undefined);
    client
      .listVideos(
        {
          limit: PAGE_SIZE,
          cursor,
          ...(filters.status ? { status: filters.status } : {}),
          ...(filters.provider ? { provider: filters.provider } : {}),
          ...(filters.model ? { model: filters.model } : {}),
        },
        { signal: aborter.signal },
      )
      .then(
        (page) => {
          if (aborter.signal.aborted) return;
          merge(page.data, false);
          setCursor(page.next_cursor);
        },
        (caught: unknown) => {
          if (aborter.signal.aborted) return;
          if (caught instanceof GatewayError && caught.status === 401) fail(caught);
          else setMoreError(caught);
        },
      )
      .finally(() => {
        if (aborter.signal.aborted) return;
        more.current = null;
        setLoadingMore(false);
      });
  }, [client, cursor, filters.status, filters.provider, filters.model, merge, fail]);

  const tasks = [...byId.values()].filter((task) => matchesFilters(task, filters)).sort(byNewest);

  // One stream per visible running task, up to MAX_STREAMS.
  const wanted = tasks
    .filter((task) => !isTerminal(task))
    .filter((task) => Date.now() - (failedAt.current.get(task.id) ?? 0) > STREAM_RETRY_MS)
    .slice(0, MAX_STREAMS)
    .map((task) => task.id);
  const wantedKey = wanted.join(',');
  useEffect(() => {
    const open = streams.current;
    for (const [id, aborter] of open) {
      if (!wanted.includes(id)) {
        aborter.abort();
        open.delete(id);
      }
    }
    for (const id of wanted) {
      if (open.has(id)) continue;
      const aborter = new AbortController();
      open.set(id, aborter);
      void (async () => {
        try {
          let ended = false;
          for await (const event of client.videoEvents(id, { signal: aborter.signal })) {
            merge([event.task], true);
            ended = isTerminal(event.task);
          }
          // Closed before the task ended (a replica stopping, a proxy cutting it): opened again
          // after the retry window, as a failed one is; the refresh covers the task meanwhile.
          if (!ended && !aborter.signal.aborted) failedAt.current.set(id, Date.now());
        } catch (caught) {
          if (!aborter.signal.aborted) failedAt.current.set(id, Date.now());
          if (caught instanceof GatewayError && caught.status === 401) fail(caught);
        } finally {
          if (open.get(id) === aborter) open.delete(id);
          setStreaming(new Set(open.keys()));
        }
      })();
    }
    setStreaming(new Set(open.keys()));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [wantedKey, client, merge, fail]);

  useEffect(
    () => () => {
      for (const aborter of streams.current.values()) aborter.abort();
      streams.current.clear();
      const { key: leftKey, byId: leftTasks, cursor: leftCursor, loaded: wasLoaded } = latest.current;
      // The task opened is remembered only when the list was left for it (a link in it, or Forward
      // to it); left by another route, Back to the list puts the keyboard at its heading.
      place.current.openedId = taskOfHash(location.hash);
      kept = wasLoaded ? { client, key: leftKey, byId: leftTasks, cursor: leftCursor, place: { ...place.current } } : null;
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [],
  );

  return {
    tasks,
    loadedCount: byId.size,
    hasMore: cursor !== null,
    loading: loading || loadingMore,
    loaded,
    error,
    moreError,
    loadMore,
    streaming,
    refreshedAt,
    waitingSince,
    restoredPlace: restored ? restored.place : null,
    place: place.current,
  };
}
