/**
 * The console's shell: sign-in gate, navigation, and the pages (hash routes, so the gateway
 * serves one static index for every page and a reload keeps the page; a page's state, such as the
 * task list's filters, rides in the hash's query: see hash-location.ts).
 */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Link, Redirect, Route, Router, Switch, useLocation } from 'wouter-preact';
import { SessionContext, type ConsoleSession } from './gateway-context.js';
import { PageHeading } from './components/page-heading.js';
import { CostPage } from './pages/cost-page.js';
import { CreatePage } from './pages/create-page.js';
import { ModelsPage } from './pages/models-page.js';
import { ProvidersPage } from './pages/providers-page.js';
import { SignInPage } from './pages/sign-in-page.js';
import { TaskListPage } from './pages/task-list-page.js';
import { TaskPage } from './pages/task-page.js';
import { useHashPageLocation, useHashSearch } from './hash-location.js';
import { clientFor, forgetKey, storeKey, storedKey } from './session.js';

/** Shown on the sign-in page after the gateway refused the key of a signed-in console. */
const KEY_REFUSED = 'The gateway no longer accepts this key. Sign in again.';

const NAVIGATION = [
  { href: '/', label: 'Tasks' },
  { href: '/new', label: 'New video' },
  { href: '/providers', label: 'Providers' },
  { href: '/models', label: 'Models' },
  { href: '/cost', label: 'Cost' },
];

/** A task id from the address: percent-decoded, or as written where that is not valid encoding. */
function decodedId(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function NavLink({ href, children }: { href: string; children: ComponentChildren }) {
  const [location] = useLocation();
  const current = href === '/' ? location === '/' || location.startsWith('/tasks') : location.startsWith(href);
  return (
    <Link href={href} aria-current={current ? 'page' : undefined}>
      {children}
    </Link>
  );
}

function Shell({ children, onSignOut }: { children: ComponentChildren; onSignOut: () => void }) {
  return (
    <>
      <a class="skip-link" href="#main" onClick={(event) => {
        event.preventDefault();
        document.getElementById('main')?.focus();
      }}>
        Skip to content
      </a>
      <header class="top">
        <div class="brand">Kling Gateway</div>
        <nav aria-label="Console">
          <ul>
            {NAVIGATION.map((item) => (
              <li key={item.href}>
                <NavLink href={item.href}>{item.label}</NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <button type="button" class="link-button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}

export function App() {
  const [key, setKey] = useState<string | null>(() => storedKey());
  const [reason, setReason] = useState<string | null>(null);
  const [announcement, setAnnouncement] = useState('');
  const announceTimer = useRef<ReturnType<typeof setTimeout>>();
  /** What is to be read out next, in the order it was said. */
  const toAnnounce = useRef<string[]>([]);

  const signOut = useCallback((why?: string) => {
    forgetKey();
    setKey(null);
    setReason(why ?? null);
  }, []);

  const announce = useCallback((message: string) => {
    // Cleared first so the same words twice are read twice. Said together with those said just
    // before it (two tasks a refresh brings ended at once), not in their place: each is read out.
    toAnnounce.current.push(message);
    setAnnouncement('');
    clearTimeout(announceTimer.current);
    announceTimer.current = setTimeout(() => {
      setAnnouncement(toAnnounce.current.join('. '));
      toAnnounce.current = [];
    }, 50);
  }, []);

  /** The key signed in now: a refusal of a key signed out since (a request still on its way then) signs nothing out. */
  const signedIn = useRef(key);
  signedIn.current = key;
  const session = useMemo<ConsoleSession | null>(
    () =>
      key
        ? {
            client: clientFor(key, () => {
              if (signedIn.current === key) signOut(KEY_REFUSED);
            }),
            signOut,
            announce,
          }
        : null,
    [key, signOut, announce],
  );

  useEffect(() => () => clearTimeout(announceTimer.current), []);

  return (
    <Router hook={useHashPageLocation} searchHook={useHashSearch}>
      <div aria-live="polite" class="visually-hidden" id="announcer">
        {announcement}
      </div>
      {session ? (
        <SessionContext.Provider value={session}>
          <Shell onSignOut={() => signOut()}>
            <Switch>
              <Route path="/">{() => <TaskListPage />}</Route>
              {/* Every task's address is #/tasks/<id>: their parent is the list, not "Page not found". */}
              <Route path="/tasks">{() => <Redirect to="/" replace />}</Route>
              <Route path="/tasks/">{() => <Redirect to="/" replace />}</Route>
              {/* A page of its own per task (keyed by its id): the task before is never shown, for a frame, under the next one's address. */}
              <Route path="/tasks/:id">{(params) => <TaskPage key={params.id} id={decodedId(params.id)} />}</Route>
              <Route path="/new">{() => <CreatePage />}</Route>
              <Route path="/providers">{() => <ProvidersPage />}</Route>
              <Route path="/models">{() => <ModelsPage />}</Route>
              <Route path="/cost">{() => <CostPage />}</Route>
              <Route>
                {() => (
                  <section>
                    <PageHeading title="Page not found" />
                    <p>
                      <Link href="/">Back to the tasks</Link>
                    </p>
                  </section>
                )}
              </Route>
            </Switch>
          </Shell>
        </SessionContext.Provider>
      ) : (
        <SignInPage
          reason={reason}
          onSignedIn={(value) => {
            storeKey(value);
            setReason(null);
            setKey(value);
          }}
        />
      )}
    </Router>
  );
}
