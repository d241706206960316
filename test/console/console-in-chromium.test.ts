/**
 * The web console in a real headless Chromium (Debian's package, driven by playwright-core)
 * against a gateway with its simulators: sign in, create a video from the quoted form, watch it
 * succeed live, play it, see the cost chart, and check each page against the API's own answers.
 * Screenshots go to test-artifacts/console/ (git-ignored).
 *
 * In CI (CI=true) a missing browser fails these tests; elsewhere they are skipped.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { heldCall } from '../support/held-call.js';
import { loopbackServer } from '../support/raw-answer.js';
import { formatCost, formatCostShort, formatMoney, GatewayClient, GatewayError, isTerminal, usageEstimated, type Task } from '../../packages/client/src/index.js';
import { systemClock } from '../../src/core/clock.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { PROVIDERS } from '../../src/providers/registry.js';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { OTHER_TENANT_KEY, TENANT_KEY, testConfig } from '../support/harness.js';
import { startLiveGateway, type LiveGateway } from '../support/live-gateway.js';
import { restartablePort } from '../support/restart-port.js';

// The page's globals, for the callbacks page.evaluate runs in the browser (this file compiles for Node).
declare const window: { location: { hash: string }; innerWidth: number; addEventListener(type: string, listener: () => void, options?: { once?: boolean }): void } & Record<string, unknown>;
declare const document: {
  dispatchEvent(event: unknown): boolean;
  activeElement: { textContent: string | null; id: string; tagName: string } | null;
  documentElement: { scrollWidth: number };
  querySelectorAll(selector: string): Iterable<{ tagName: string; className: string; getBoundingClientRect(): Box & { width: number } }>;
  querySelector(selector: string): { textContent: string | null } | null;
};
declare const sessionStorage: { length: number };
declare const localStorage: { length: number };
declare function getComputedStyle(element: unknown, pseudo?: string): { fontSize: string; display: string; direction: string; content: string; lineHeight: string };
declare function requestAnimationFrame(callback: (time: number) => void): number;
interface Box {
  left: number;
  right: number;
}
/** A text of an SVG chart, as the page has it. */
interface ChartText {
  textContent: string | null;
  ownerSVGElement: { getBoundingClientRect(): Box };
  getBoundingClientRect(): Box;
  getScreenCTM(): { a: number } | null;
}
/** A row of an SVG chart (its `g`): its label, bar and value. */
interface ChartRow {
  querySelector(selector: string): { getBoundingClientRect(): { top: number; bottom: number } } | null;
}
interface HTMLVideoElement {
  muted: boolean;
  readyState: number;
  currentTime: number;
  error: { code: number } | null;
  play(): Promise<void>;
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_BROWSER = existsSync(CHROMIUM);
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/console/', import.meta.url));
const AXE_SOURCE = readFileSync(fileURLToPath(new URL('../../node_modules/axe-core/axe.min.js', import.meta.url)), 'utf8');

/** Without these Chromium reaches for the network (updates, sync, QUIC probes) and stalls here. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Tasks run about three seconds: long enough to watch one change while a page is open. */
const WATCHABLE_TASKS = { sandbox: { queued_ms: 200, processing_ms: 3_000 } };

describe.skipIf(!HAVE_BROWSER && !process.env.CI)('web console in Chromium', { timeout: 60_000 }, () => {
  let live: LiveGateway;
  let api: GatewayClient;
  let context: BrowserContext;
  let profile: string;
  let page: Page;
  let browserErrors: string[] = [];

  beforeAll(async () => {
    // Tested as built from the current sources: test/global-setup.ts builds console/dist before any file runs.
    live = await startLiveGateway(WATCHABLE_TASKS);
    api = new GatewayClient({ baseUrl: live.url, apiKey: TENANT_KEY });
    mkdirSync(ARTIFACTS, { recursive: true });
    profile = mkdtempSync(join(tmpdir(), 'kling-console-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
  }, 90_000);

  afterAll(async () => {
    await context?.close();
    await live?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  async function openConsole(path = '', browser: BrowserContext = context, gateway: { url: string } = live): Promise<Page> {
    page = await browser.newPage();
    // This page's own list: a page a failed test left open cannot count against the tests after it.
    const errors: string[] = [];
    browserErrors = errors;
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${gateway.url}/console/${path}`);
    return page;
  }

  async function signIn(target: Page): Promise<void> {
    await target.getByLabel('Gateway key').fill(TENANT_KEY);
    await target.getByRole('button', { name: 'Sign in' }).click();
    await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
  }

  /** More than one page (25) of tasks, whatever earlier tests made (prompts `<prompt> <n>`); a console signed in on the task list. */
  async function signedInOnMoreThanAPage(prompt: string): Promise<Page> {
    for (let made = 0; made < 26; made += 1) await api.createVideo({ model: 'kling-v3', prompt: `${prompt} ${made}` });
    const target = await openConsole();
    await signIn(target);
    return target;
  }

  /**
   * The first create from `target` reaches the gateway, which makes the task, and its answer never
   * gets back; later ones pass. The Idempotency-Key of each create sent, in order.
   */
  async function loseFirstCreateAnswer(target: Page): Promise<string[]> {
    const keys: string[] = [];
    await target.route(
      (url) => url.pathname.endsWith('/v1/videos'),
      async (route) => {
        if (route.request().method() !== 'POST') return route.continue();
        keys.push((await route.request().headerValue('idempotency-key')) ?? '');
        if (keys.length > 1) return route.continue();
        await route.fetch();
        return route.abort('connectionreset');
      },
    );
    return keys;
  }

  /**
   * After Create was pressed again: the task page opens, the create went out twice with one
   * Idempotency-Key, and the gateway holds one video of `prompt`, the one shown.
   */
  async function expectOneVideoFromResentCreate(target: Page, keys: readonly string[], prompt: string): Promise<void> {
    await target.waitForURL(/#\/tasks\/vid_/);
    const id = decodeURIComponent(/#\/tasks\/([^/?]+)/.exec(target.url())![1]!);
    expect(keys).toHaveLength(2);
    expect(keys[1]).toBe(keys[0]);
    const made: string[] = [];
    for await (const task of api.listAllVideos({ limit: 100 })) if (task.request.prompt === prompt) made.push(task.id);
    expect(made).toEqual([id]);
  }

  /** A browser whose reader set its font size to `px` (16 px is the default), in a 1280 px window. */
  async function browserWithFontSize(px: number): Promise<{ reader: BrowserContext; close(): Promise<void> }> {
    const largeProfile = mkdtempSync(join(tmpdir(), 'kling-console-large-font-'));
    mkdirSync(join(largeProfile, 'Default'));
    writeFileSync(join(largeProfile, 'Default', 'Preferences'), JSON.stringify({ webkit: { webprefs: { default_font_size: px } } }));
    const reader = await chromium.launchPersistentContext(largeProfile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
    return {
      reader,
      close: async () => {
        await reader.close();
        rmSync(largeProfile, { recursive: true, force: true });
      },
    };
  }

  /** Serious or critical accessibility problems axe-core finds on the page as it is now. */
  async function accessibilityProblems(target: Page): Promise<string[]> {
    // Evaluated through the DevTools protocol, which the page's Content-Security-Policy allows.
    await target.evaluate(AXE_SOURCE);
    const violations = await target.evaluate(async () => {
      const result = await (window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }).axe.run();
      return result.violations.map((violation) => ({ id: violation.id, impact: violation.impact, targets: violation.nodes.map((node) => node.target.join(' ')) }));
    });
    return violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical').map((violation) => `${violation.id}: ${violation.targets.join(', ')}`);
  }

  /** The providers cooling down after a 429 now, as GET /v1/providers has them. */
  async function coolingDown(): Promise<string[]> {
    const now = Date.now();
    return (await api.listProviders()).data.filter((provider) => provider.cooling_down_until !== null && Date.parse(provider.cooling_down_until) > now).map((provider) => provider.id);
  }

  afterEach(async () => {
    // Closed first, so a page whose test failed stops running (its reads, its streams) whatever follows.
    await page?.close();
    expect(browserErrors, 'the browser console stayed free of errors').toEqual([]);
  });

  it('signs in, creates a video from the quoted form, follows it live to success and plays it inline', async () => {
    const target = await openConsole();
    await target.getByLabel('Gateway key').fill('not-the-key');
    await target.getByRole('button', { name: 'Sign in' }).focus();
    await target.keyboard.press('Enter');
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('does not accept this key');
    // The keyboard stays on Sign in, not back at the top of the page.
    expect(await target.evaluate(() => document.activeElement?.textContent)).toBe('Sign in');
    browserErrors.length = 0; // the browser logs the refused request (401) itself
    await signIn(target);
    // Signed in: the keyboard and a screen reader start at the page now shown, not at the top of a blank document.
    await expect.poll(() => target.evaluate(() => `${document.activeElement?.tagName} ${document.activeElement?.textContent}`)).toBe('H1 Tasks');
    expect(await target.evaluate(() => sessionStorage.length + localStorage.length)).toBe(1);

    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    const prompt = 'a red fox running through fresh snow';
    await target.getByLabel('Prompt', { exact: true }).fill(prompt);
    await target.getByLabel('Duration (seconds)').fill('10');
    const quoted = await api.quote({ model: 'kling-v3', prompt, duration: 10 });
    // The same providers can serve it; their order moves with who has a free slot or cools down
    // after a 429 at the moment of each quote (tasks of earlier tests still run on this gateway).
    const providersOf = (order: string | null) => (order ?? '').split(',').filter(Boolean).sort().join(',');
    await expect.poll(async () => providersOf(await target.locator('.quote-summary').getAttribute('data-order'))).toBe(providersOf(quoted.order.join(',')));
    for (const provider of quoted.providers) {
      const row = target.locator(`.quote-table tr[data-provider="${provider.provider}"]`);
      await expect.poll(() => row.locator('td').nth(2).textContent()).toBe(String(provider.estimated_credits ?? '—'));
    }
    await target.screenshot({ path: join(ARTIFACTS, 'create-with-quote.png'), fullPage: true });

    await target.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
    await target.getByRole('button', { name: 'Create video' }).click();
    await target.waitForURL(/#\/tasks\/vid_/);
    const id = decodeURIComponent(/#\/tasks\/([^/?]+)/.exec(target.url())![1]!);
    await target.locator('.status-line .status-succeeded').waitFor({ timeout: 20_000 });
    // Followed live: the page was never reloaded.
    expect(await target.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);

    const task: Task = await api.getVideo(id);
    expect(task).toMatchObject({ status: 'succeeded', provider: 'freepik', request: { prompt, duration: 10 } });
    expect(await target.locator('dd.cost').textContent()).toContain(formatCost(task.cost));
    await expect.poll(() => target.locator('.timeline').textContent()).toContain('Attempt 1: freepik accepted the task');

    const video = target.locator('video.output-video');
    expect(await video.getAttribute('src')).toBe(task.outputs[0]!.url);
    await video.evaluate((element: HTMLVideoElement) => {
      element.muted = true;
      return element.play();
    });
    await expect
      .poll(() => video.evaluate((element: HTMLVideoElement) => ({ ready: element.readyState >= 2, playing: element.currentTime > 0.2, error: element.error?.code ?? null })), {
        timeout: 10_000,
      })
      .toEqual({ ready: true, playing: true, error: null });
    await target.screenshot({ path: join(ARTIFACTS, 'task-playing.png'), fullPage: true });
    expect(await accessibilityProblems(target)).toEqual([]);
  });

  it('shows the video made at once after Create, from the create\'s answer: its id and status, never "Loading…", while a read of the task goes unanswered', async () => {
    const target = await openConsole();
    await signIn(target);
    // From here on the gateway takes each read of one task (GET /v1/videos/{id}) and answers it only
    // when the test ends; the create and the task's event stream pass.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const read = (url: URL) => /\/v1\/videos\/[^/]+$/.test(url.pathname);
    await target.route(read, async (route) => {
      if (route.request().method() !== 'GET') return route.continue();
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      await target.getByRole('link', { name: 'New video' }).first().click();
      const prompt = 'a fox shown the moment it is made';
      await target.getByLabel('Prompt', { exact: true }).fill(prompt);
      const create = target.getByRole('button', { name: 'Create video' });
      await expect.poll(() => create.isEnabled()).toBe(true);
      // Every change of the page from the click on: did any of them say "Loading…"?
      await target.evaluate(() => {
        const page = globalThis as unknown as {
          sawLoading: boolean;
          document: { body: unknown; querySelector(selector: string): { textContent: string | null } | null };
          MutationObserver: new (callback: () => void) => { observe(node: unknown, options: Record<string, boolean>): void };
        };
        page.sawLoading = false;
        new page.MutationObserver(() => {
          if (page.document.querySelector('main')?.textContent?.includes('Loading…')) page.sawLoading = true;
        }).observe(page.document.body, { subtree: true, childList: true, characterData: true });
      });
      await create.click();
      await target.waitForURL(/#\/tasks\/vid_/);
      const id = decodeURIComponent(/#\/tasks\/([^/?]+)/.exec(target.url())![1]!);
      await target.getByRole('heading', { level: 1, name: `Video ${id}` }).waitFor({ timeout: 10_000 });
      expect(await target.locator('.status-line .badge').textContent()).toMatch(/queued|processing/);
      expect(await target.locator('blockquote.prompt').textContent()).toBe(prompt);
      expect(await target.evaluate(() => (window as unknown as { sawLoading: boolean }).sawLoading), 'the task page said "Loading…"').toBe(false);
      // And followed live from there, as when the page is opened from a link.
      await target.locator('.status-line .status-succeeded').waitFor({ timeout: 20_000 });
      expect(await target.evaluate(() => (window as unknown as { sawLoading: boolean }).sawLoading), 'the task page said "Loading…"').toBe(false);
    } finally {
      release();
      await target.unroute(read);
    }
  });

  it("never shows one task's page under another task's address: going from one task to the next shows the next, or Loading…, from the first frame", async () => {
    const first = await api.createVideo({ model: 'kling-v3', prompt: 'the first of two' });
    const second = await api.createVideo({ model: 'kling-v3', prompt: 'the second of two' });
    const target = await openConsole();
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(first.id)}`);
    await target.getByRole('heading', { level: 1, name: `Video ${first.id}` }).waitFor();
    // Every frame painted once the console has heard of the new address (its own hashchange
    // listener, added first, has run): which address, which heading. A frame between the address
    // changing and the hashchange event arriving shows the page before it under any hash router.
    await target.evaluate((to) => {
      const frames: [string, string][] = [];
      (window as unknown as { frames_seen: [string, string][] }).frames_seen = frames;
      const sample = () => {
        frames.push([window.location.hash, document.querySelector('h1')?.textContent ?? '']);
        if (frames.length < 60) requestAnimationFrame(sample);
      };
      window.addEventListener('hashchange', () => requestAnimationFrame(sample), { once: true });
      window.location.hash = to;
    }, `#/tasks/${encodeURIComponent(second.id)}`);
    await target.getByRole('heading', { level: 1, name: `Video ${second.id}` }).waitFor();
    await target.waitForFunction(() => (window as unknown as { frames_seen: unknown[] }).frames_seen.length >= 60);
    const frames = await target.evaluate(() => (window as unknown as { frames_seen: [string, string][] }).frames_seen);
    expect(frames.filter(([hash, heading]) => hash.includes(second.id) && heading.includes(first.id))).toEqual([]);
  });

  it('keeps following a running task after the gateway could not be reached for a while', async () => {
    const target = await openConsole();
    await signIn(target);
    const task = await api.createVideo({ model: 'kling-v3', prompt: 'through a dropped connection' });
    // The gateway cannot be reached for this task: every read of it, its event stream and long polls.
    const cutOff = (url: URL) => url.pathname.endsWith(`/v1/videos/${task.id}/events`) || url.pathname.endsWith(`/v1/videos/${task.id}`);
    await target.route(cutOff, (route) => route.abort('connectionrefused'));
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('Cannot reach the gateway');
    // Said once, then where and why: the gateway's URL and the browser's reason.
    const said = (await target.getByRole('alert').textContent())!;
    expect(said.match(/cannot reach/gi)).toHaveLength(1);
    expect(said).toMatch(/^Cannot reach the gateway\. http:\/\/127\.0\.0\.1:\d+\S*: \S/);

    // Back again: the page picks the task up by itself, shows how it ended and drops the error.
    await target.unroute(cutOff);
    await target.locator('.status-line .status-succeeded').waitFor({ timeout: 20_000 });
    expect(await target.getByRole('alert').count()).toBe(0);
    expect(await target.locator('video.output-video').getAttribute('src')).toBe((await api.getVideo(task.id)).outputs[0]!.url);
    browserErrors.length = 0; // the browser logs the refused connections itself
  });

  it('does not credit a provider with the cost of a task no provider took', async () => {
    const target = await openConsole();
    await signIn(target);
    // The only provider it may use is busy (429), so it waits in the queue, and is canceled there.
    live.simulator('freepik').injectFault({ status: 429, times: 100 });
    let refused: Task;
    let ended: Task;
    try {
      refused = await api.createVideo({ model: 'kling-v3', prompt: 'canceled in the queue', routing: { providers: ['freepik'], allow_fallbacks: false } });
      ended = await api.cancelVideo(refused.id);
    } finally {
      live.simulator('freepik').clearFaults();
    }
    expect(ended).toMatchObject({ status: 'canceled', provider: null, cost: { estimated: false } });
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(refused.id)}`);
    const cost = target.locator('dd.cost');
    await cost.waitFor();
    expect(await cost.textContent()).toContain('no provider holds this task: nothing is charged');
    expect(await cost.textContent()).not.toContain('as reported by the provider');

    // On the Cost page its row is named for what it is, in the table and in the chart, not a bare dash.
    await target.getByRole('link', { name: 'Cost' }).first().click();
    const byProvider = target.locator('section[aria-label="Spend by provider"]');
    const names = byProvider.locator('tbody th');
    await expect.poll(() => names.allTextContents()).toContain('no provider');
    expect(await names.allTextContents()).not.toContain('—');
    expect(await byProvider.locator('svg text').allTextContents()).toContain('no provider');
    // Its 429s leave no provider cooling down for the next test: the cool-down (Retry-After: 1) ends first.
    await expect.poll(() => coolingDown(), { timeout: 10_000, interval: 200 }).toEqual([]);
  });

  it('drops a chosen operation and quality the newly chosen model does not offer', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a lighthouse at dusk');
    const quotes: Record<string, unknown>[] = [];
    target.on('request', (request) => {
      if (request.url().endsWith('/v1/videos/quote')) quotes.push(request.postDataJSON() as Record<string, unknown>);
    });
    // kling-v2-1-master has no std; kling-v1-6 extends videos, kling-v3 does not.
    await target.getByLabel('Quality').selectOption('std');
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v2-1-master');
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v1-6');
    await target.getByLabel('Operation').selectOption('video-extend');
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v3');

    // What the selects show is what is asked: the defaults, and a quote with a provider.
    const shown = (label: string) => target.getByLabel(label, { exact: true }).evaluate((element: { selectedOptions: ArrayLike<{ textContent: string | null }> }) => element.selectedOptions[0]?.textContent ?? null);
    expect(await shown('Operation')).toBe('Inferred from the inputs');
    expect(await shown('Quality')).toBe('Default (pro)');
    const quoted = await api.quote({ model: 'kling-v3', prompt: 'a lighthouse at dusk' });
    expect(quoted.order.length).toBeGreaterThan(0);
    // The same providers can serve it; their order moves with who has a free slot or cools down
    // after a 429 at the moment of each quote (tasks of earlier tests still run on this gateway).
    const providersOf = (order: string | null) => (order ?? '').split(',').filter(Boolean).sort().join(',');
    await expect.poll(async () => providersOf(await target.locator('.quote-summary').getAttribute('data-order'))).toBe(providersOf(quoted.order.join(',')));
    expect(quotes.at(-1)).toEqual({ model: 'kling-v3', prompt: 'a lighthouse at dusk' });
    expect(await target.getByRole('button', { name: 'Create video' }).isEnabled()).toBe(true);
  });

  it('says a weighted quote\'s order is one random draw, not the order a create tries, and shows each provider\'s warnings one a line, whole', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    // The gateway's own weighted quote, a provider of it also in doubt with its one trial call under way.
    const trial = 'in doubt after a failed call: one call at a time goes to it, and one is under way (for at most until 2026-12-06T23:30:00.000Z); tried after the providers that can take it now';
    let inDoubt = '';
    await target.route('**/v1/videos/quote', async (route) => {
      const answer = await route.fetch();
      const quote = (await answer.json()) as { order: string[]; providers: { provider: string; warnings: string[] }[] };
      inDoubt = quote.order.at(-1) ?? '';
      quote.providers.find((provider) => provider.provider === inDoubt)?.warnings.unshift(trial);
      await route.fulfill({ response: answer, json: quote });
    });
    try {
      await target.getByLabel('Prompt', { exact: true }).fill('a fox drawn at random');
      await target.getByLabel('Strategy').selectOption('weighted');
      const summary = target.locator('.quote-summary');
      await expect.poll(() => summary.textContent()).toContain('one random draw');
      expect(await summary.textContent()).not.toContain('tried in this order');
      expect(await target.locator('#create-hint').textContent()).toBe(
        'Sends the request quoted above; the create draws its own order, so the provider tried first may not be the one quoted first.',
      );
      const order = ((await summary.getAttribute('data-order')) ?? '').split(',');
      expect(order.length).toBeGreaterThan(1);
      // Each warning whole, one an item: the trial call's and the draw's, each with a ";" of its own.
      const items = await target.locator(`.quote-table tr[data-provider="${inDoubt}"] .quote-reasons li`).allTextContents();
      expect(items).toHaveLength(2);
      expect(items[0]).toBe(trial);
      expect(items[1]).toMatch(/^weighted: drawn first in about \d+(\.\d)? % of creates \(weight \d+ of \d+\); this order is one random draw, and each create draws its own$/);
      // A provider with the draw's warning only shows it as it is.
      expect(await target.locator(`.quote-table tr[data-provider="${order[0]}"] .quote-reasons`).textContent()).toMatch(/^weighted: drawn first in about/);
      await target.setViewportSize({ width: 375, height: 800 });
      expect(await target.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    } finally {
      await target.unroute('**/v1/videos/quote');
      await target.setViewportSize({ width: 1280, height: 900 });
    }
  });
  it('creates the video when Enter is pressed in a field before its quote has answered, once the quote shows a provider, and nothing when it shows none', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    // A request no provider serves (kling-v3 takes at most 15 s): Enter waits for the quote, which says why, and nothing is sent.
    const creates: string[] = [];
    target.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname.endsWith('/v1/videos')) creates.push(request.url());
    });
    await target.getByLabel('Prompt', { exact: true }).fill('sent by Enter too long');
    await target.getByLabel('Duration (seconds)').fill('99');
    await target.getByLabel('Duration (seconds)').press('Enter');
    await target.locator('.field-error').first().waitFor();
    await expect.poll(() => target.getByRole('button', { name: 'Create video' }).isDisabled()).toBe(true);
    expect(creates).toEqual([]);
    expect(target.url()).toContain('#/new');
    browserErrors.length = 0; // the browser logs the refused quote (400) itself

    // Typed and sent at once, as a keyboard user does: the quote is still on its way when Enter is pressed.
    const prompt = 'sent by Enter before the quote answered';
    await target.getByLabel('Duration (seconds)').fill('');
    await target.getByLabel('Prompt', { exact: true }).fill(prompt);
    await target.getByLabel('Negative prompt (optional)').fill('blur');
    await target.getByLabel('Negative prompt (optional)').press('Enter');
    await target.waitForURL(/#\/tasks\/vid_/);
    const id = decodeURIComponent(/#\/tasks\/([^/?]+)/.exec(target.url())![1]!);
    expect(await api.getVideo(id)).toMatchObject({ request: { prompt, negative_prompt: 'blur' } });
    expect(creates).toHaveLength(1);
    expect(browserErrors).toEqual([]);
  });
  it('opens New video with a hint, not with every provider refusing the empty form: no quote shown until there is a prompt or an input, Create saying what is missing', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    // The form's lists are in: the page is as a new user first sees it.
    await target.locator('.inline-choices input[type="checkbox"]').first().waitFor();
    const quote = target.locator('section.quote');
    const create = target.getByRole('button', { name: 'Create video' });
    const createHint = target.locator('#create-hint');
    // The empty form's quote has answered (Duration says what the operation it inferred takes), and is not shown.
    await expect.poll(() => target.locator('#duration-hint').textContent()).toBe('3–15 s; empty: 5');
    expect(await quote.textContent()).toContain('Describe the video to see which providers can make it and what it costs');
    expect(await quote.textContent()).not.toContain('No provider can serve');
    expect(await quote.textContent()).not.toContain('required');
    expect(await quote.getAttribute('aria-busy')).toBe('false');
    expect(await create.isDisabled()).toBe(true);
    expect(await createHint.textContent()).toBe('Available once the request has a prompt or an input: it has neither yet.');
    // Nothing announced, no alert; the keyboard stays on the heading, as on any page opened.
    expect(await target.locator('#announcer').textContent()).toBe('');
    expect(await target.getByRole('alert').count()).toBe(0);
    expect(await target.evaluate(() => `${document.activeElement?.tagName} ${document.activeElement?.textContent}`)).toBe('H1 New video');
    // Enter in an empty field does not leave Create waiting for a quote that is never asked.
    await target.getByLabel('Start image URL', { exact: true }).press('Enter');
    await target.waitForTimeout(500);
    expect(await create.textContent()).toBe('Create video');
    expect(await accessibilityProblems(target)).toEqual([]);
    // A try-on model needs its two images, and says so.
    await target.getByLabel('Model', { exact: true }).selectOption('kolors-virtual-try-on-v1');
    await expect.poll(() => quote.textContent()).toContain('Give the person (Start image URL) and the garment (Reference image URLs) to see which providers can make it and what it costs');
    expect(await createHint.textContent()).toBe('Available once the request has the person and the garment: it has neither yet.');
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v3');

    // Typed: quoted as before, providers and their reasons included.
    await target.getByLabel('Prompt', { exact: true }).fill('a first video');
    await expect.poll(() => quote.locator('.quote-summary').getAttribute('data-order')).toBeTruthy();
    expect(await create.isEnabled()).toBe(true);
    // Emptied again: back to the hint.
    await target.getByLabel('Prompt', { exact: true }).fill('');
    await expect.poll(() => quote.textContent()).toContain('Describe the video to see which providers can make it and what it costs');
    expect(await create.isDisabled()).toBe(true);
    await target.setViewportSize({ width: 375, height: 800 });
    expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), 'the page fits a phone').toBeLessThanOrEqual(0);
    await target.screenshot({ path: join(ARTIFACTS, 'new-video-empty-375.png'), fullPage: true });
    await target.setViewportSize({ width: 1280, height: 900 });
  });

  it('says at the empty New video form that the gateway cannot be reached, and shows the hint by itself once it can', async () => {
    const target = await openConsole();
    await signIn(target);
    const away = (url: URL) => url.pathname.endsWith('/v1/videos/quote');
    await target.route(away, (route) => route.abort('connectionrefused'));
    await target.getByRole('link', { name: 'New video' }).first().click();
    const quote = target.locator('section.quote');
    await expect.poll(() => quote.textContent()).toContain('Cannot reach the gateway');
    expect(await quote.textContent()).not.toContain('Describe the video');
    await target.unroute(away);
    await expect.poll(() => quote.textContent(), { timeout: 15_000 }).toContain('Describe the video to see which providers can make it and what it costs');
    expect(await quote.textContent()).not.toContain('Cannot reach the gateway');
    expect(await target.getByRole('button', { name: 'Create video' }).isDisabled()).toBe(true);
    browserErrors.length = 0; // the browser logs the refused connections itself
  });

  it('creates one video, not two, when Create is clicked again after the answer was lost', async () => {
    const target = await openConsole();
    await signIn(target);
    const keys = await loseFirstCreateAnswer(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    const prompt = `an answer lost on the way ${Date.now()}`;
    await target.getByLabel('Prompt', { exact: true }).fill(prompt);
    const create = target.getByRole('button', { name: 'Create video' });
    await expect.poll(() => create.isEnabled()).toBe(true);
    await create.click();
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('Cannot reach the gateway');
    // A create is not sent again by itself (Create is): its error promises nothing of the kind.
    expect(await target.getByRole('alert').textContent()).not.toContain('Asking again');

    await create.click();
    await expectOneVideoFromResentCreate(target, keys, prompt);
    browserErrors.length = 0; // the browser logs the dropped connection itself
  });

  it('drops a refused create\'s error once the request is changed, which is not the one refused: the quote of the new one is what stands', async () => {
    const target = await openConsole();
    await signIn(target);
    // The first create is refused (a replica draining); nothing else is.
    let refused = 0;
    await target.route(
      (url) => url.pathname.endsWith('/v1/videos'),
      (route) => {
        if (route.request().method() !== 'POST' || refused > 0) return route.continue();
        refused += 1;
        return route.fulfill({ status: 503, contentType: 'application/problem+json', json: { type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'draining' } });
      },
    );
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a create refused once');
    const create = target.getByRole('button', { name: 'Create video' });
    await expect.poll(() => create.isEnabled()).toBe(true);
    await create.click();
    const refusal = target.locator('.actions').locator('xpath=preceding-sibling::*[1][@role="alert"]');
    await expect.poll(() => refusal.textContent()).toContain('Service Unavailable (503)');
    // Another request: its quote answers, and the refusal of the one before is no longer said.
    await target.getByLabel('Prompt', { exact: true }).fill('a create refused once, then changed');
    await expect.poll(() => create.isEnabled()).toBe(true);
    await expect.poll(() => target.getByRole('alert').count()).toBe(0);
    browserErrors.length = 0; // the browser logs the refused create (503) itself
  });

  it('says how long the gateway asks to wait before a refused create is sent again (Retry-After), which its detail names but cannot say', async () => {
    const target = await openConsole();
    await signIn(target);
    // The gateway's answer when its database disk is full: a 503 whose wait is in its Retry-After.
    const detail =
      "The gateway's database is full (its disk has no room to write); send the request again after Retry-After seconds (a create with the same Idempotency-Key, which never makes a second task).";
    await target.route(
      (url) => url.pathname.endsWith('/v1/videos'),
      (route) =>
        route.request().method() === 'POST'
          ? route.fulfill({
              status: 503,
              headers: { 'content-type': 'application/problem+json', 'retry-after': '30' },
              body: JSON.stringify({ type: 'https://kling-gateway.dev/problems/retry-later', title: 'Retry later', status: 503, detail }),
            })
          : route.continue(),
    );
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a create the gateway asks to send again later');
    const create = target.getByRole('button', { name: 'Create video' });
    await expect.poll(() => create.isEnabled()).toBe(true);
    await create.click();
    const refusal = target.locator('.actions').locator('xpath=preceding-sibling::*[1][@role="alert"]');
    await expect.poll(() => refusal.textContent()).toContain('Retry later (503)');
    expect(await refusal.textContent()).toContain('Try again in 30 s');
    browserErrors.length = 0; // the browser logs the refused create (503) itself
  });

  it('keeps what was typed in New video when the page is left and come back to, or reloaded, and a lost create sent again after it makes one video', async () => {
    const target = await openConsole();
    await signIn(target);
    const keys = await loseFirstCreateAnswer(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    const prompt = `typed before a look at the models ${Date.now()}`;
    await target.getByLabel('Prompt', { exact: true }).fill(prompt);
    await target.getByLabel('Duration (seconds)').fill('10');
    await target.getByLabel('kling3api').check();
    // A look at another page, then Back: the form is as it was left.
    await target.getByRole('link', { name: 'Models' }).click();
    await target.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
    await target.goBack();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    expect(await target.getByLabel('Prompt', { exact: true }).inputValue()).toBe(prompt);
    expect(await target.getByLabel('Duration (seconds)').inputValue()).toBe('10');
    expect(await target.getByLabel('kling3api').isChecked()).toBe(true);

    // The create's answer is lost; the page is reloaded and Create pressed again: the same key, one video.
    const create = target.getByRole('button', { name: 'Create video' });
    await expect.poll(() => create.isEnabled()).toBe(true);
    await create.click();
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('Cannot reach the gateway');
    await target.reload();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    expect(await target.getByLabel('Prompt', { exact: true }).inputValue()).toBe(prompt);
    await expect.poll(() => create.isEnabled()).toBe(true);
    await create.click();
    await expectOneVideoFromResentCreate(target, keys, prompt);

    // Once the video is made, New video starts empty again.
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    expect(await target.getByLabel('Prompt', { exact: true }).inputValue()).toBe('');
    browserErrors.length = 0; // the browser logs the dropped connection itself
  });

  it('creates from a plain-http address other than localhost (not a secure context), a prompt of emoji counted in characters', async () => {
    // An operator's http://gateway.internal:8080/console: the browser withholds secure-context APIs
    // there (crypto.randomUUID among them), which the form must not need.
    const port = new URL(live.url).port;
    const insecureProfile = mkdtempSync(join(tmpdir(), 'kling-console-insecure-'));
    const insecure = await chromium.launchPersistentContext(insecureProfile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP gateway.internal 127.0.0.1'],
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
    try {
      const target = await openConsole('', insecure, { url: `http://gateway.internal:${port}` });
      expect(await target.evaluate(() => (window as unknown as { isSecureContext: boolean }).isSecureContext)).toBe(false);
      await signIn(target);
      await target.getByRole('link', { name: 'New video' }).first().click();
      // 2,500 characters, 5,000 UTF-16 units: what the API takes, so the form takes it whole.
      const prompt = '🦊'.repeat(2_500);
      await target.getByLabel('Prompt', { exact: true }).fill(prompt);
      expect(await target.getByLabel('Prompt', { exact: true }).inputValue()).toBe(prompt);
      // The count under the box is in the same characters: at the limit, not 5,000 past it.
      expect(await target.locator('#prompt-hint').textContent()).toBe('2500 / 2500 characters (kling3api takes 2000)');
      const create = target.getByRole('button', { name: 'Create video' });
      await expect.poll(() => create.isEnabled()).toBe(true);
      await create.click();
      await target.waitForURL(/#\/tasks\/vid_/);
      const id = decodeURIComponent(/#\/tasks\/([^/?]+)/.exec(target.url())![1]!);
      expect((await api.getVideo(id)).request.prompt).toBe(prompt);
      await target.close();
    } finally {
      await insecure.close();
      rmSync(insecureProfile, { recursive: true, force: true });
    }
  });

  it('makes an image from the form as it opens, its heading and button saying so: no duration is sent unless one is typed', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    const prompt = 'a lighthouse on a cliff';
    await target.getByLabel('Prompt', { exact: true }).fill(prompt);
    // The form says what it makes: a try-on model (the gateway infers virtual-try-on) makes an image.
    expect(await target.getByRole('button', { name: 'Create video' }).count()).toBe(1);
    await target.getByLabel('Model', { exact: true }).selectOption('kolors-virtual-try-on-v1');
    await expect.poll(() => target.getByRole('button', { name: 'Create image' }).count()).toBe(1);
    expect(await target.getByRole('heading', { level: 1 }).textContent()).toBe('New image');
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v1');
    await expect.poll(() => target.getByRole('button', { name: 'Create video' }).count()).toBe(1);
    await target.getByLabel('Operation').focus();
    await target.getByLabel('Operation').selectOption('image-generation');
    await expect.poll(() => target.getByRole('heading', { level: 1 }).textContent()).toBe('New image');
    // The tab's title follows in the effect after the heading's render.
    await expect.poll(() => target.title()).toBe('New image · Kling Gateway');
    // The heading follows the form without taking the keyboard from the control that changed it.
    expect(await target.evaluate(() => document.activeElement?.id)).toBe('field-operation');
    const quoted = await api.quote({ model: 'kling-v1', operation: 'image-generation', prompt });
    expect(quoted.order).toEqual(['kling-legacy']);
    await expect.poll(() => target.locator('.quote-summary').getAttribute('data-order')).toBe('kling-legacy');

    expect(await target.getByRole('button', { name: 'Create video' }).count()).toBe(0);
    await target.getByRole('button', { name: 'Create image' }).click();
    await target.waitForURL(/#\/tasks\/vid_/);
    const id = decodeURIComponent(/#\/tasks\/([^/?]+)/.exec(target.url())![1]!);
    await target.locator('.status-line .status-succeeded').waitFor({ timeout: 20_000 });
    expect((await api.getVideo(id)).request).not.toHaveProperty('duration');
    const image = target.locator('img.output-image');
    await expect.poll(() => image.evaluate((element: { complete: boolean; naturalWidth: number }) => element.complete && element.naturalWidth > 0)).toBe(true);
    // Named for what it made, on the page and in the browser tab.
    expect(await target.getByRole('heading', { level: 1 }).textContent()).toBe(`Image ${id}`);
    expect(await target.title()).toBe(`Image ${id} · Kling Gateway`);
  });

  it('keeps the task list live and filters it as the API does', async () => {
    const target = await openConsole();
    await signIn(target);
    const streams: string[] = [];
    target.on('request', (request) => {
      const match = /\/v1\/videos\/([^/]+)\/events$/.exec(request.url());
      if (match) streams.push(decodeURIComponent(match[1]!));
    });

    // A running task in the list is followed by its own event stream until it ends.
    const running = await api.createVideo({ model: 'kling-v3', prompt: 'followed live' });
    await target.reload();
    const runningRow = target.locator(`tr[data-task-id="${running.id}"]`);
    await runningRow.waitFor();
    expect(['queued', 'processing']).toContain(await runningRow.getAttribute('data-status'));
    // One task is followed "as it changes", not "as they change".
    await expect.poll(() => target.locator('.live-status').textContent(), { timeout: 10_000 }).toContain('following 1 running task as it changes;');
    await target.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
    await expect.poll(() => runningRow.getAttribute('data-status'), { timeout: 20_000 }).toBe('succeeded');
    expect(streams).toContain(running.id);

    // A task created elsewhere (here: through the API) shows up with the next refresh.
    const created = await api.createVideo({ model: 'kling-v3', prompt: 'made outside the console' });
    const row = target.locator(`tr[data-task-id="${created.id}"]`);
    await row.waitFor({ timeout: 15_000 });
    await expect.poll(() => row.getAttribute('data-status'), { timeout: 20_000 }).toBe('succeeded');
    expect(await target.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);

    live.simulator('freepik').setOutcome('fail');
    const doomed = await api.createVideo({ model: 'kling-v3', prompt: 'this one fails' });
    await api.waitForVideo(doomed.id, { timeoutMs: 15_000 });
    await target.getByLabel('Status').selectOption('failed');
    const failedIds = (await api.listVideos({ status: 'failed' })).data.map((task) => task.id);
    await expect.poll(() => target.locator('tbody tr').evaluateAll((rows) => rows.map((element) => element.getAttribute('data-task-id')))).toEqual(failedIds);
    expect(failedIds).toContain(doomed.id);
    await target.screenshot({ path: join(ARTIFACTS, 'task-list-failed.png'), fullPage: true });

    // The model filter is asked of the API too: nothing of that model was made, so nothing is loaded.
    const lists: string[] = [];
    target.on('request', (request) => {
      if (new URL(request.url()).pathname === '/v1/videos' && request.method() === 'GET') lists.push(request.url());
    });
    await target.getByLabel('Status').selectOption('');
    await target.getByLabel('Model').selectOption('kling-v3-omni');
    await expect.poll(() => target.locator('.empty').textContent()).toContain('No task matches these filters');
    expect(lists.some((url) => new URL(url).searchParams.get('model') === 'kling-v3-omni')).toBe(true);
    expect(await accessibilityProblems(target)).toEqual([]);
  });

  it('says at Duration what the chosen operation takes, as GET /v1/models has it: none for lip-sync, edit and images, 5 or 10 s on the older models', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    const duration = target.getByLabel('Duration (seconds)');
    const hint = target.locator('#duration-hint');
    // kling-v3 text-to-video: every provider takes 3 to 15 seconds.
    await expect.poll(() => hint.textContent()).toBe('3–15 s; empty: 5');
    expect(await duration.getAttribute('placeholder')).toBe('5');
    // The older models take 5 or 10 seconds: not what a 3–15 field suggests.
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v2-6');
    await expect.poll(() => hint.textContent()).toBe('5 or 10 s; empty: 5');
    // Lip-sync takes none: a typed duration would make every provider refuse the request.
    await target.getByLabel('Operation').selectOption('lip-sync');
    await expect.poll(() => hint.textContent()).toBe('lip-sync takes no duration: leave it empty');
    expect((await duration.getAttribute('placeholder')) ?? '').toBe('');
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v3-omni');
    await target.getByLabel('Operation').selectOption('video-edit');
    await expect.poll(() => hint.textContent()).toBe('video-edit takes no duration: leave it empty');
    // With no operation chosen, the one the gateway infers from the inputs (a try-on model: virtual-try-on).
    await target.getByLabel('Model', { exact: true }).selectOption('kolors-virtual-try-on-v1');
    await expect.poll(() => hint.textContent()).toBe('virtual-try-on takes no duration: leave it empty');
    // A source video with no operation chosen is a video edit.
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v3-omni');
    await target.getByLabel('Source video URL (edit, lip-sync)').fill('https://example.com/source.mp4');
    await expect.poll(() => hint.textContent()).toBe('video-edit takes no duration: leave it empty');
    await target.getByLabel('Source video URL (edit, lip-sync)').fill('');
    await expect.poll(() => hint.textContent()).toBe('3–15 s; empty: 5');
    expect(await accessibilityProblems(target)).toEqual([]);
  });

  it('keeps saying at Duration what the inferred operation takes when a quote is refused for another field, until the inputs that decide it change', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    const hint = target.locator('#duration-hint');
    const summary = target.locator('.quote-summary');
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v3-omni');
    // A source video, no operation chosen: the gateway infers a video edit, which takes no duration.
    await target.getByLabel('Source video URL (edit, lip-sync)').fill('https://example.com/source.mp4');
    await expect.poll(() => hint.textContent()).toBe('video-edit takes no duration: leave it empty');
    await summary.waitFor();
    // A CFG scale out of range: the quote is refused (400) for that field alone.
    await target.getByLabel('CFG scale').fill('5');
    await target.locator('#cfg_scale-error').waitFor();
    expect(await summary.count()).toBe(0);
    expect(await hint.textContent()).toBe('video-edit takes no duration: leave it empty');
    // Reference images too: the inference may be another, so what the last quote inferred is not said.
    await target.getByLabel('Reference image URLs').fill('https://example.com/reference.png');
    await target.locator('#cfg_scale-error').waitFor();
    await expect.poll(() => hint.textContent()).toBe('Empty: 5 for a video');
    // And back to the inputs of the last quote that answered: said again.
    await target.getByLabel('Reference image URLs').fill('');
    await expect.poll(() => hint.textContent()).toBe('video-edit takes no duration: leave it empty');
    browserErrors.length = 0; // the browser logs the refused quotes (400) itself
  });

  it('says which input is the person and which the garment for a try-on, and makes the image from them', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    const start = target.getByLabel('Start image URL', { exact: true });
    const references = target.getByLabel('Reference image URLs', { exact: true });
    const describedBy = async (field: typeof start) => {
      const ids = ((await field.getAttribute('aria-describedby')) ?? '').split(' ').filter(Boolean);
      return (await Promise.all(ids.map((id) => target.locator(`#${id}`).textContent()))).join(' ');
    };
    expect(await describedBy(references)).toBe('One per line (Omni).');
    // A try-on model: the gateway takes the person as start_image_url and the garment as reference_images[0].
    await target.getByLabel('Model', { exact: true }).selectOption('kolors-virtual-try-on-v1');
    await expect.poll(() => describedBy(start)).toBe('Try-on: the person to dress.');
    expect(await describedBy(references)).toBe('Try-on: the garment (one URL).');
    await start.fill('https://example.com/person.png');
    await references.fill('https://example.com/garment.png');
    await expect.poll(() => target.locator('.quote-summary').getAttribute('data-order')).toBe('kling-legacy');
    expect(await accessibilityProblems(target)).toEqual([]);
    await target.getByRole('button', { name: 'Create image' }).click();
    await target.waitForURL(/#\/tasks\/vid_/);
    const id = decodeURIComponent(/#\/tasks\/([^/?]+)/.exec(target.url())![1]!);
    const task = await api.getVideo(id);
    expect(task.request).toMatchObject({ start_image_url: 'https://example.com/person.png', reference_images: ['https://example.com/garment.png'] });
    expect(task.operation).toBe('virtual-try-on');
  });

  it('shows providers and the cost chart as the API reports them, by keyboard and at phone width', async () => {
    // A task of its own that freepik served and charged: the chart has a figure to show, whatever ran before.
    const charged = await api.createVideo({ model: 'kling-v3', prompt: 'charged by freepik', routing: { providers: ['freepik'], allow_fallbacks: false } });
    expect(await api.waitForVideo(charged.id, { timeoutMs: 30_000 })).toMatchObject({ status: 'succeeded', provider: 'freepik' });
    const target = await openConsole();
    await signIn(target);
    await target.reload();
    await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();

    // Keyboard: after a load the first Tab reaches the skip link, which moves focus to the page.
    await target.keyboard.press('Tab');
    expect(await target.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await target.keyboard.press('Enter');
    expect(await target.evaluate(() => document.activeElement?.id)).toBe('main');
    await target.getByRole('link', { name: 'Providers' }).focus();
    await target.keyboard.press('Enter');
    await target.getByRole('heading', { level: 1, name: 'Providers' }).waitFor();
    // Focus moves once the heading has rendered (an effect after it): asked until it has.
    await expect.poll(() => target.evaluate(() => document.activeElement?.tagName)).toBe('H1');

    const providers = await api.listProviders();
    for (const provider of providers.data) {
      const row = target.locator(`tr[data-provider="${provider.id}"]`);
      await row.waitFor();
      const text = (await row.textContent()) ?? '';
      expect(text).toContain(provider.mode);
      expect(text).toContain(provider.circuit.replace('_', '-'));
      expect(text).toContain(`${provider.in_flight} / ${provider.max_in_flight}`);
    }
    expect(await accessibilityProblems(target)).toEqual([]);

    await target.getByRole('link', { name: 'Cost' }).click();
    const chart = target.locator('svg[data-chart="chart-provider"]');
    await chart.waitFor();
    // This gateway has GET /v1/usage: the chart shows the report's figures, not the browser's sums.
    const usage = await api.usage({ group_by: ['provider'], from: new Date(Date.now() - 7 * 86_400_000).toISOString() });
    const freepikSpend = usage.data.find((row) => row.provider === 'freepik')?.currency_amount ?? 0;
    expect(freepikSpend).toBeGreaterThan(0);
    // Freepik reports no charge: its spend is the price list's estimate, marked ~ as the task list marks it.
    expect(await chart.locator('text.bar-value').allTextContents()).toContain(`${formatMoney(freepikSpend, 'USD', { grouped: true })}~`);
    expect(await chart.locator('rect.bar').count()).toBeGreaterThan(0);
    expect(await target.locator('[data-source="tasks"]').count()).toBe(0);
    await target.screenshot({ path: join(ARTIFACTS, 'cost-chart.png'), fullPage: true });
    expect(await accessibilityProblems(target)).toEqual([]);

    // Phone width: nothing wider than the screen, every page still usable.
    await target.setViewportSize({ width: 390, height: 844 });
    for (const [hash, name, ready] of [
      ['#/', 'tasks', 'table.tasks'],
      [`#/tasks/${charged.id}`, 'task', '#details-heading'],
      ['#/new', 'create', 'section.quote'],
      ['#/providers', 'providers', 'tr[data-provider]'],
      ['#/cost', 'cost', '#chart-provider-title'],
    ] as const) {
      await target.evaluate((to) => (window.location.hash = to), hash);
      // The page as read, not its Loading… (the last page's heading may still be there for a moment).
      await target.locator(ready).first().waitFor();
      const overflow = await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${name} page fits 390 px`).toBeLessThanOrEqual(0);
      await target.screenshot({ path: join(ARTIFACTS, `phone-${name}.png`), fullPage: true });
    }
  });
  it('says on the Providers page what a simulator is: nothing reaches the provider and nothing is billed, and says nothing of it where none is simulated', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'Providers' }).first().click();
    await target.locator('tr[data-provider="freepik"]').waitFor();
    // The sandbox: every provider is simulated.
    expect((await api.listProviders()).data.every((provider) => provider.mode === 'simulator')).toBe(true);
    // Each figure's window, the median to finish's too: it covers hours, and shows beside "0 calls".
    expect(await target.locator('#figures-note').textContent()).toBe(
      'Success rate and latency (p50, p95) cover the last 10 minutes of upstream calls; median to finish, the last 50 videos the provider made in the last 6 hours; queued counts tasks waiting for any provider. Refreshed every 5 s.',
    );
    const note = target.locator('#simulator-note');
    expect(await note.textContent()).toBe(
      'Mode simulator: a simulator in the gateway\'s sandbox answers for that provider, as no key for it is configured. Nothing is sent to the provider and nothing is billed: a video\'s cost is what it would have cost.',
    );
    for (const width of [1280, 375]) {
      await target.setViewportSize({ width, height: 900 });
      expect(await note.isVisible()).toBe(true);
      expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), `the page fits ${width} px`).toBeLessThanOrEqual(0);
      await target.screenshot({ path: join(ARTIFACTS, `providers-sandbox-${width}.png`), fullPage: true });
    }
    await target.setViewportSize({ width: 1280, height: 900 });
    expect(await accessibilityProblems(target)).toEqual([]);
    await target.close();

    // Where every provider is live (the same answer, its modes changed), nothing is said of simulators.
    const other = await openConsole();
    await signIn(other);
    await other.route(
      (url) => url.pathname.endsWith('/v1/providers'),
      async (route) => {
        const answer = await route.fetch();
        const body = (await answer.json()) as { data: { mode: string }[] };
        for (const provider of body.data) provider.mode = 'live';
        await route.fulfill({ response: answer, json: body });
      },
    );
    await other.getByRole('link', { name: 'Providers' }).first().click();
    await other.locator('tr[data-provider="freepik"]').waitFor();
    await expect.poll(() => other.locator('tr[data-provider="freepik"]').textContent()).toContain('live');
    expect(await other.locator('#simulator-note').count()).toBe(0);
    expect(await other.locator('main').textContent()).not.toContain('simulator');
  });

  it('keeps the top navigation on one line at 390 px (a phone) whichever page is open, and leaves no link alone on a line of its own at 320 px', async () => {
    const target = await openConsole();
    await target.setViewportSize({ width: 390, height: 844 });
    await signIn(target);
    /** The navigation's links by line (their tops), each line's names in order. */
    const lines = () =>
      target.locator('header nav a').evaluateAll((links: { textContent: string | null; getBoundingClientRect(): Box & { top: number } }[]) => {
        const byTop = new Map<number, string[]>();
        for (const link of links) {
          const { top, right } = link.getBoundingClientRect();
          if (right > window.innerWidth + 0.5) return [[`${link.textContent} past the edge`]];
          const line = [...byTop.keys()].find((other) => Math.abs(other - top) < 4) ?? top;
          byTop.set(line, [...(byTop.get(line) ?? []), link.textContent ?? '']);
        }
        return [...byTop.values()];
      });
    for (const hash of ['#/', '#/new', '#/providers', '#/models', '#/cost']) {
      await target.evaluate((to) => (window.location.hash = to), hash);
      await target.locator('h1').first().waitFor();
      expect(await lines(), `${hash} at 390 px`).toEqual([['Tasks', 'New video', 'Providers', 'Models', 'Cost']]);
    }
    await target.screenshot({ path: join(ARTIFACTS, 'phone-navigation.png') });
    await target.setViewportSize({ width: 320, height: 640 });
    for (const hash of ['#/', '#/new', '#/cost']) {
      await target.evaluate((to) => (window.location.hash = to), hash);
      await target.locator('h1').first().waitFor();
      const shown = await lines();
      expect(shown.flat(), `${hash} at 320 px`).toEqual(['Tasks', 'New video', 'Providers', 'Models', 'Cost']);
      for (const line of shown) expect(line.length, `${hash} at 320 px: ${JSON.stringify(shown)}`).toBeGreaterThan(1);
    }
    await target.screenshot({ path: join(ARTIFACTS, 'narrow-navigation.png') });
  });

  it('fits every page in 320 px, a 1280 px window zoomed to 400 %: nothing reaches past the screen\'s edge', async () => {
    const task = await api.createVideo({ model: 'kling-v3', prompt: 'seen through a zoomed window' });
    const target = await openConsole();
    await target.setViewportSize({ width: 320, height: 640 });
    await signIn(target);
    for (const [hash, ready] of [
      ['#/', 'table.tasks'],
      [`#/tasks/${task.id}`, '#details-heading'],
      ['#/new', 'section.quote'],
      ['#/providers', 'tr[data-provider]'],
      ['#/models', 'tr[data-operation]'],
      ['#/cost', '#chart-provider-title'],
    ] as const) {
      await target.evaluate((to) => (window.location.hash = to), hash);
      await target.locator(ready).first().waitFor();
      // What reaches past the right edge of the screen, by tag and class.
      const past = await target.evaluate(() =>
        [...document.querySelectorAll('body *')].flatMap((element) => {
          const box = element.getBoundingClientRect();
          return box.width > 0 && box.right > window.innerWidth + 0.5 ? [`${element.tagName.toLowerCase()}.${element.className}`] : [];
        }),
      );
      expect(past, `${hash} fits 320 px`).toEqual([]);
    }
  });

  it('shows a prompt, metadata and provider messages holding HTML or long unbroken URLs as text, inside a 375 px screen', async () => {
    const target = await openConsole();
    await signIn(target);
    const html = '<img src=x onerror="window.pwned=1"><b>bold</b>';
    const longUrl = `https://assets.example.com/${'a1b2c3d4'.repeat(30)}.png`;
    // The first two providers refuse with HTML and a long URL in their message; the third takes it.
    live.simulator('freepik').injectFault({ status: 400, body: { message: `${html} ${longUrl}` } });
    live.simulator('kling3api').injectFault({ status: 400, body: { code: 400, msg: html, message: html } });
    const task = await api.createVideo({ model: 'kling-v3', prompt: `${html} in the style of ${longUrl}`, metadata: { note: html } });
    await api.waitForVideo(task.id, { timeoutMs: 15_000 });

    await target.setViewportSize({ width: 375, height: 812 });
    for (const hash of ['#/', `#/tasks/${encodeURIComponent(task.id)}`]) {
      await target.evaluate((to) => (window.location.hash = to), hash);
      await target.locator(hash === '#/' ? `tr[data-task-id="${task.id}"]` : '.status-line .status-succeeded').waitFor();
      const overflow = await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${hash} fits 375 px`).toBeLessThanOrEqual(0);
    }
    await target.screenshot({ path: join(ARTIFACTS, 'phone-task-with-long-text.png'), fullPage: true });
    // Every piece of HTML is shown as its text: nothing ran, no element was made from it.
    expect(await target.locator('blockquote.prompt').textContent()).toContain(html);
    expect(await target.locator('dl.details').textContent()).toContain(html);
    expect(await target.locator('.timeline').textContent()).toContain(html);
    expect(await target.locator('main b, main img').count()).toBe(0);
    expect(await target.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
  });
  it('keeps a long failure reason in the task list to three lines at 1280 px, the whole of it in its title and for screen readers', async () => {
    const long = `the prompt was refused: ${'this sentence explains at length what the provider disliked about it, '.repeat(6)}end`;
    live.simulator('freepik').injectFault({ on: 'submit', status: 400, body: { message: long }, times: 1 });
    const task = await api.waitForVideo(
      (await api.createVideo({ model: 'kling-v3', prompt: 'a long refusal', routing: { providers: ['freepik'], allow_fallbacks: false } })).id,
      { timeoutMs: 15_000 },
    );
    live.simulator('freepik').clearFaults();
    expect(task.status).toBe('failed');
    expect(task.error?.message).toContain(long);
    const target = await openConsole();
    await target.setViewportSize({ width: 1280, height: 900 });
    await signIn(target);
    const reason = target.locator(`tr[data-task-id="${task.id}"] .task-reason`);
    await reason.waitFor();
    const { height, lineHeight } = await reason.evaluate((element) => ({
      height: element.getBoundingClientRect().height,
      lineHeight: parseFloat(getComputedStyle(element).lineHeight),
    }));
    expect(height).toBeLessThanOrEqual(3 * lineHeight + 1);
    await target.screenshot({ path: join(ARTIFACTS, 'task-list-long-failure-reason.png') });
    // Cut for the eye only: the title and a screen reader have all of it.
    expect(await reason.getAttribute('title')).toBe(task.error!.message);
    expect(await reason.textContent()).toBe(task.error!.message);
  });
  it('keeps the console\'s own words in their order around metadata and a provider\'s message holding a right-to-left override', async () => {
    // U+202E reverses all that follows it on its line until U+202C closes it: here nothing closes it.
    const override = '\u202E';
    live.simulator('freepik').injectFault({ status: 400, body: { message: `${override}refused here` } });
    const task = await api.waitForVideo(
      (await api.createVideo({ model: 'kling-v3', prompt: 'an override', metadata: { [`${override}note`]: `${override}value` }, routing: { providers: ['freepik'], allow_fallbacks: false } })).id,
      { timeoutMs: 15_000 },
    );
    expect(task.status).toBe('failed');
    const target = await openConsole();
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
    await target.locator('.status-line .status-failed').waitFor();
    /** Where the first `text` (a word: on one line) in the element's text is on the screen. */
    const span = (selector: string, text: string) =>
      target.locator(selector).first().evaluate((element: unknown, wanted: string) => {
        const doc = (element as { ownerDocument: { createTreeWalker(root: unknown, show: number): { nextNode(): unknown }; createRange(): { setStart(node: unknown, at: number): void; setEnd(node: unknown, at: number): void; getBoundingClientRect(): Box } } }).ownerDocument;
        const walker = doc.createTreeWalker(element, 4);
        for (let node = walker.nextNode() as { data: string } | null; node; node = walker.nextNode() as { data: string } | null) {
          const at = node.data.indexOf(wanted);
          if (at === -1) continue;
          const range = doc.createRange();
          range.setStart(node, at);
          range.setEnd(node, at + wanted.length);
          const box = range.getBoundingClientRect() as Box & { top: number; bottom: number };
          return { left: box.left, right: box.right, top: box.top, bottom: box.bottom };
        }
        throw new Error(`no ${wanted}`);
      }, text);
    /** Whether `first` is read before `then`: left of it on its line, or on a line above. */
    const readBefore = (first: { right: number; bottom: number }, then: { left: number; top: number }) => first.bottom <= then.top || first.right <= then.left;
    // Metadata reads key = value, left to right, not the value's words before the key's.
    const metadata = 'dl.details dd > div:has(code)';
    expect(readBefore(await span(metadata, 'note'), await span(metadata, '='))).toBe(true);
    // The failure reads Failed: code — message (upstream code …), the message where it is said.
    const result = target.locator('.task-grid .problem');
    expect(await result.textContent()).toContain(`${override}refused here`);
    const failed = await span('.task-grid .problem', 'Failed');
    const message = await span('.task-grid .problem', 'refused');
    expect(readBefore(failed, message)).toBe(true);
    expect(task.error?.provider_code).toBe('bad_request');
    expect(readBefore(message, await span('.task-grid .problem', '(upstream'))).toBe(true);
    // The timeline's end likewise: Failed — code: message.
    const end = '.timeline-item.end-failed';
    expect(readBefore(await span(end, 'Failed'), await span(end, 'refused'))).toBe(true);
    await target.screenshot({ path: join(ARTIFACTS, 'task-with-override.png'), fullPage: true });
  });

  it('shows and takes a prompt written right to left as such: its closing "!" at its left end, in the list, on its page and in New video', async () => {
    const prompt = 'قطة تقفز فوق السياج!';
    const task = await api.createVideo({ model: 'kling-v3', prompt });
    const target = await openConsole();
    await signIn(target);
    /** Whether the "!" is drawn left of the prompt's first word, as a right-to-left line ends. */
    const endsAtTheLeft = (selector: string) =>
      target.locator(selector).first().evaluate((element: unknown) => {
        const doc = (element as { ownerDocument: { createTreeWalker(root: unknown, show: number): { nextNode(): unknown }; createRange(): { setStart(node: unknown, at: number): void; setEnd(node: unknown, at: number): void; getBoundingClientRect(): Box } } }).ownerDocument;
        const node = doc.createTreeWalker(element, 4).nextNode() as { data: string };
        const box = (from: number, to: number) => {
          const range = doc.createRange();
          range.setStart(node, from);
          range.setEnd(node, to);
          return range.getBoundingClientRect();
        };
        const mark = node.data.indexOf('!');
        return box(mark, mark + 1).right <= box(0, 3).left;
      });
    const row = `tr[data-task-id="${task.id}"] .prompt-excerpt`;
    await target.locator(row).waitFor();
    expect(await endsAtTheLeft(row)).toBe(true);
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
    await target.locator('blockquote.prompt').waitFor();
    expect(await target.locator('blockquote.prompt').textContent()).toBe(prompt);
    expect(await endsAtTheLeft('blockquote.prompt span')).toBe(true);
    // Typed in New video, the prompt runs right to left as it is written.
    await target.getByRole('link', { name: 'New video' }).first().click();
    const box = target.getByLabel('Prompt', { exact: true });
    await box.fill(prompt);
    expect(await box.evaluate((element: unknown) => getComputedStyle(element).direction)).toBe('rtl');
    await box.fill('');
    await api.cancelVideo(task.id).catch(() => undefined);
  });

  it('shows a long prompt\'s first lines above the result, on a phone too, and the whole of it when asked', async () => {
    const prompt = `${'a slow pan over a harbour at dawn, gulls and fishing boats, '.repeat(40)}the end`.slice(0, 2500);
    const task = await api.createVideo({ model: 'kling-v3', prompt });
    const target = await openConsole();
    await signIn(target);
    await target.setViewportSize({ width: 375, height: 812 });
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
    const result = target.getByRole('heading', { level: 2, name: 'Result' });
    await result.waitFor();
    // The result (and the status above it) on the first screen, not after some 2,000 px of prompt.
    expect((await result.boundingBox())!.y).toBeLessThan(812);
    // The whole prompt is the page's still: for a screen reader as it is, and on the screen when asked.
    expect(await target.locator('blockquote.prompt').textContent()).toBe(prompt);
    await target.getByRole('button', { name: 'Show the whole prompt' }).focus();
    await target.keyboard.press('Enter');
    const less = target.getByRole('button', { name: 'Show less' });
    await expect.poll(() => less.getAttribute('aria-expanded')).toBe('true');
    // The keyboard stays on the button, to fold the prompt again.
    expect(await target.evaluate(() => document.activeElement?.textContent)).toBe('Show less');
    const clipped = await target.locator('blockquote.prompt').evaluate((element: { scrollHeight: number; clientHeight: number }) => element.scrollHeight - element.clientHeight);
    expect(clipped).toBeLessThanOrEqual(0);
    expect((await result.boundingBox())!.y).toBeGreaterThan(812);
    // A prompt of a few lines is shown whole, with no such button.
    const short = await api.createVideo({ model: 'kling-v3', prompt: 'a short prompt' });
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(short.id)}`);
    await target.locator('blockquote.prompt', { hasText: 'a short prompt' }).waitFor();
    expect(await target.getByRole('button', { name: 'Show the whole prompt' }).count()).toBe(0);
  });

  it('shows a prompt written on several lines on its lines, not run together, and its first five of them only until asked', async () => {
    const prompt = Array.from({ length: 8 }, (_, index) => `Shot ${index + 1}: the camera moves on`).join('\n');
    const task = await api.createVideo({ model: 'kling-v3', prompt });
    const target = await openConsole();
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
    await target.locator('blockquote.prompt').waitFor();
    // As typed in the form's box: each shot on a line of its own.
    const lines = await target.locator('blockquote.prompt span').evaluate((element: { innerText: string }) => element.innerText.split('\n'));
    expect(lines[0]).toBe('Shot 1: the camera moves on');
    expect(lines[1]).toBe('Shot 2: the camera moves on');
    // Eight lines are more than five: the rest is asked for.
    await target.getByRole('button', { name: 'Show the whole prompt' }).waitFor();
    await api.cancelVideo(task.id).catch(() => undefined);
  });

  it('shows the whole request as accepted at 320 px, long URLs wrapped, nothing a keyboard cannot reach scrolled out of sight', async () => {
    const longUrl = `https://example.com/frames/${'a-very-long-path-segment-'.repeat(6)}start.png`;
    const task = await api.createVideo({ model: 'kling-v3', prompt: 'a request with a long URL', start_image_url: longUrl });
    const target = await openConsole();
    await signIn(target);
    await target.setViewportSize({ width: 320, height: 800 });
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
    await target.getByRole('heading', { level: 1, name: `Video ${task.id}` }).waitFor();
    await target.getByText('The request as accepted').click();
    const request = target.locator('details pre');
    await request.waitFor();
    expect(await request.textContent()).toContain(longUrl);
    // All of it on the screen: no part left in a box only a mouse or a touch can scroll sideways.
    expect(await request.evaluate((element: { scrollWidth: number; clientWidth: number }) => element.scrollWidth - element.clientWidth)).toBeLessThanOrEqual(0);
    expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    expect(await accessibilityProblems(target)).toEqual([]);
    await api.cancelVideo(task.id).catch(() => undefined);
    // The providers' price rules, one JSON object a line, likewise.
    await target.evaluate((to) => (window.location.hash = to), '#/providers');
    await target.locator('summary', { hasText: /^Rules$/ }).first().click();
    const rules = target.locator('details[open] pre').first();
    await rules.waitFor();
    expect(await rules.evaluate((element: { scrollWidth: number; clientWidth: number }) => element.scrollWidth - element.clientWidth)).toBeLessThanOrEqual(0);
    expect(await accessibilityProblems(target)).toEqual([]);
  });

  it("shows the providers' price rules one a line, each word whole: no key cut across two lines (but at a hyphen) in a 1280 px window or at 320 px", async () => {
    const target = await openConsole();
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), '#/providers');
    const summaries = target.locator('summary', { hasText: /^Rules$/ });
    await summaries.first().waitFor();
    const providers = (await api.listProviders()).data.filter((provider) => (provider.pricing?.rules.length ?? 0) > 0);
    expect(await summaries.count()).toBe(providers.length);
    for (const summary of await summaries.all()) await summary.click();
    const rules = target.locator('details[open] pre');
    await expect.poll(() => rules.count()).toBe(providers.length);
    // Each rule on a line of its own, and in it every word (a key, a value) on one line: a line
    // may end after a space or a hyphen ("kling-v3-" "omni"), as the task list's names wrap.
    const shown = () =>
      rules.evaluateAll((elements) =>
        elements.map((element) => {
          const text = element.firstChild as { textContent: string } & object;
          const split: string[] = [];
          for (const match of (text.textContent ?? '').matchAll(/[^\s-]+-?/g)) {
            const range = (element.ownerDocument as { createRange(): { setStart(node: object, offset: number): void; setEnd(node: object, offset: number): void; getClientRects(): { length: number } } }).createRange();
            range.setStart(text, match.index);
            range.setEnd(text, match.index + match[0].length);
            if (range.getClientRects().length > 1) split.push(match[0]);
          }
          return { lines: (text.textContent ?? '').split('\n').map((line) => JSON.parse(line) as unknown), split };
        }),
      );
    const expected = providers.map((provider) => ({ lines: provider.pricing!.rules, split: [] }));
    expect(await shown()).toEqual(expected);
    await target.setViewportSize({ width: 320, height: 800 });
    expect(await shown()).toEqual(expected);
  });

  it('shows the deliveries of a task\'s events to its webhook_url, live, as the API has them', async () => {
    const hits: string[] = [];
    const receiver = await loopbackServer((req, res) => {
      hits.push(String(req.headers['webhook-id']));
      req.resume();
      // The first try fails, so there is a retry to watch.
      res.writeHead(hits.length === 1 ? 503 : 204).end();
    });
    try {
      const target = await openConsole();
      await signIn(target);
      const url = `${receiver.base}/hooks`;
      const plain = await api.createVideo({ model: 'kling-v3', prompt: 'no webhook here' });
      const task = await api.createVideo({ model: 'kling-v3', prompt: 'told by webhook', webhook_url: url });
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
      const section = target.getByRole('region', { name: 'Webhook deliveries' }).first();
      await target.getByRole('heading', { level: 2, name: 'Webhook deliveries' }).waitFor();
      expect(await target.locator('.webhook-deliveries').textContent()).toContain(url);

      // The refused first try shows while it waits for its retry, then the page sees it delivered.
      await expect.poll(() => hits.length, { timeout: 10_000 }).toBeGreaterThan(0);
      const first = target.locator(`.webhook-deliveries tr[data-delivery-id="${hits[0]}"]`);
      const shown = async () => [await first.getAttribute('data-status'), ...(await first.locator('td').allTextContents()).slice(0, 4)];
      await expect.poll(shown, { timeout: 10_000 }).toEqual(['pending', 'video.processing', 'pending', '1', '503']);
      await target.screenshot({ path: join(ARTIFACTS, 'task-webhook-retrying.png'), fullPage: true });
      await target.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
      await expect.poll(() => first.getAttribute('data-status'), { timeout: 20_000 }).toBe('delivered');
      expect(await target.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);

      // Row for row what GET /v1/videos/{id}/webhooks says, once every event is delivered.
      await expect.poll(async () => (await api.webhookDeliveries(task.id)).data.map((d) => d.status), { timeout: 20_000 }).toEqual(['delivered', 'delivered']);
      const answer = await api.webhookDeliveries(task.id);
      const rows = () =>
        section.locator('tbody tr').evaluateAll((elements) =>
          elements.map((row) => {
            const cells = [...row.querySelectorAll('td')].map((cell) => cell.textContent ?? '');
            return { id: row.getAttribute('data-delivery-id'), type: cells[0], status: cells[1], attempts: cells[2], last_status: cells[3] };
          }),
        );
      await expect
        .poll(rows, { timeout: 10_000 })
        .toEqual(answer.data.map((d) => ({ id: d.id, type: d.type, status: d.status, attempts: String(d.attempts), last_status: String(d.last_status) })));
      expect(answer.data.map((d) => [d.type, d.attempts])).toEqual([['video.processing', 2], ['video.succeeded', 1]]);
      expect(await accessibilityProblems(target)).toEqual([]);
      // The section and the table's scrolling region have names of their own: a screen reader tells them apart.
      expect(await target.getByRole('region', { name: 'Webhook deliveries', exact: true }).count()).toBe(1);
      expect(await target.getByRole('region', { name: 'Webhook deliveries, oldest first' }).count()).toBe(1);

      await target.setViewportSize({ width: 375, height: 812 });
      expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
      await target.screenshot({ path: join(ARTIFACTS, 'phone-task-webhooks.png'), fullPage: true });

      // A task without a webhook_url has no such section.
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(plain.id)}`);
      // Its own page, not the one before (the address changes before the page does).
      await target.getByRole('heading', { level: 1, name: `Video ${plain.id}` }).waitFor();
      await target.getByRole('heading', { level: 2, name: 'Attempts' }).waitFor();
      expect(await target.getByRole('heading', { name: 'Webhook deliveries' }).count()).toBe(0);
    } finally {
      await receiver.close();
    }
  });
  it('reads the webhook deliveries of an ended task no more than once a minute while every retry waits an hour, not every 3 s', async () => {
    // Every try is refused and asked to wait an hour: the deliveries cannot change before then.
    const receiver = await loopbackServer((req, res) => {
      req.resume();
      res.writeHead(503, { 'retry-after': '3600' }).end();
    });
    try {
      const task = await api.createVideo({ model: 'kling-v3', prompt: 'a receiver asking to wait an hour', webhook_url: `${receiver.base}/hooks` });
      const waitingAnHour = async () => {
        const ended = isTerminal(await api.getVideo(task.id));
        const deliveries = (await api.webhookDeliveries(task.id)).data;
        // video.succeeded waits behind video.processing's retry (a task's events go in order) and says so.
        return ended && deliveries.length === 2 && deliveries[0]?.attempts === 1 && deliveries.every((d) => d.status === 'pending' && Date.parse(d.next_attempt_at ?? '') > Date.now() + 30 * 60_000);
      };
      await expect.poll(waitingAnHour, { timeout: 20_000 }).toBe(true);

      const target = await openConsole();
      await signIn(target);
      let reads = 0;
      let open = 0;
      target.on('request', (request) => {
        if (!new URL(request.url()).pathname.endsWith('/webhooks')) return;
        reads += 1;
        open += 1;
      });
      const done = (request: { url(): string }) => {
        if (new URL(request.url()).pathname.endsWith('/webhooks')) open -= 1;
      };
      target.on('requestfinished', done);
      target.on('requestfailed', done);
      await target.clock.install();
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
      const rows = target.locator('.webhook-deliveries tbody tr[data-status="pending"]');
      await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(2);
      await expect.poll(() => open).toBe(0);
      // The time the page stands still from here, but for the steps below.
      await target.clock.pauseAt(Date.now() + 1_000);
      await expect.poll(() => open).toBe(0);
      const before = reads;
      for (let step = 0; step < 5; step += 1) {
        await target.clock.fastForward(10_000);
        await expect.poll(() => open).toBe(0);
      }
      expect(reads - before, 'reads of the deliveries in the 50 s after they were shown').toBe(0);
      // Still read again within the minute: a retry the gateway makes sooner (a restart) shows.
      await target.clock.fastForward(15_000);
      await expect.poll(() => reads - before, { timeout: 10_000 }).toBe(1);
      expect(await rows.count()).toBe(2);
    } finally {
      // The clock is the browser context's: the pages of the tests after this one run, at the right time.
      await page?.clock.resume().catch(() => undefined);
      await page?.clock.setSystemTime(Date.now()).catch(() => undefined);
      await receiver.close();
    }
  });

  it('says a webhook retry whose time has come is due now, not that the next try was "1 hr. ago" with no try since', async () => {
    // Every try is refused and asked to wait an hour.
    const receiver = await loopbackServer((req, res) => {
      req.resume();
      res.writeHead(503, { 'retry-after': '3600' }).end();
    });
    const target = await openConsole();
    try {
      const task = await api.createVideo({ model: 'kling-v3', prompt: 'a retry whose time comes', webhook_url: `${receiver.base}/hooks` });
      const waitingAnHour = async () => {
        const deliveries = (await api.webhookDeliveries(task.id)).data;
        // video.succeeded waits behind video.processing's retry (a task's events go in order).
        return isTerminal(await api.getVideo(task.id)) && deliveries.length === 2 && deliveries[0]?.attempts === 1 && deliveries.every((d) => d.status === 'pending' && d.next_attempt_at !== null);
      };
      await expect.poll(waitingAnHour, { timeout: 20_000 }).toBe(true);
      await signIn(target);
      await target.clock.install();
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
      const when = target.locator('.webhook-deliveries tbody tr[data-status="pending"] td[data-label="When"]');
      await expect.poll(() => when.count(), { timeout: 10_000 }).toBe(2);
      expect(await when.first().textContent()).toMatch(/next try in (59|60) min/);
      // Past the time the gateway gave (its retry not yet made, or the browser's clock ahead of it).
      await target.clock.fastForward(2 * 3_600_000);
      await expect.poll(() => when.locator('.next-try').allTextContents()).toEqual(['next try due now', 'next try due now']);
    } finally {
      await target.clock.setSystemTime(Date.now()).catch(() => undefined);
      await receiver.close();
    }
  });

  it("says on a task's page how long a video it asked for, in how many shots, and in which aspect ratio, not only in the request's JSON", async () => {
    const ten = await api.createVideo({ model: 'kling-v3', prompt: 'a tall ten-second video', duration: 10, aspect_ratio: '9:16' });
    const shots = await api.createVideo({ model: 'kling-v3', prompt: 'two shots', multi_shot: [{ prompt: 'one', duration: 3 }, { prompt: 'two', duration: 4 }] });
    const image = await api.createVideo({ model: 'kling-v2-1-master', operation: 'image-generation', prompt: 'an image has no length' });
    const target = await openConsole();
    await signIn(target);
    const detail = (term: string) => target.locator('dl.details dt', { hasText: new RegExp(`^${term}$`) }).locator('xpath=following-sibling::dd[1]');
    const open = async (id: string, noun: string) => {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(id)}`);
      await target.getByRole('heading', { level: 1, name: `${noun} ${id}` }).waitFor();
      await target.getByRole('heading', { level: 2, name: 'Details' }).waitFor();
    };
    await open(ten.id, 'Video');
    expect(await detail('Duration').textContent()).toBe('10 s');
    expect(await detail('Aspect ratio').textContent()).toBe('9:16');
    await open(shots.id, 'Video');
    expect(await detail('Duration').textContent()).toBe('7 s in 2 shots');
    expect(await detail('Aspect ratio').textContent()).toBe('16:9');
    await open(image.id, 'Image');
    expect(await detail('Duration').count()).toBe(0);
    for (const task of [ten, shots, image]) await api.cancelVideo(task.id).catch(() => undefined);
  });

  it("shows a legacy Kling video's own id under it, the video_id that video-extend and lip-sync take, which the console showed nowhere", async () => {
    const made = await api.createVideo({ model: 'kling-v1-6', prompt: 'a video to extend later', routing: { providers: ['kling-legacy'] } });
    const target = await openConsole();
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(made.id)}`);
    await target.locator('.status-line .status-succeeded').waitFor({ timeout: 20_000 });
    const output = (await api.getVideo(made.id)).outputs[0]!;
    expect(output.upstream_id).toBeTruthy();
    const caption = target.locator('figure figcaption').first();
    await expect.poll(() => caption.locator('.upstream-id code').first().textContent()).toBe(output.upstream_id);
    expect(await caption.locator('.upstream-id').textContent()).toContain('video_id');
  });

  it('says in the task list why a failed or canceled task ended, next to its cost', async () => {
    const target = await openConsole();
    await signIn(target);
    live.simulator('freepik').setOutcome('fail');
    const failed = await api.waitForVideo((await api.createVideo({ model: 'kling-v3', prompt: 'ends failed', routing: { providers: ['freepik'], allow_fallbacks: false } })).id, { timeoutMs: 15_000 });
    live.simulator('freepik').injectFault({ status: 429, times: 100 });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'canceled while queued', routing: { providers: ['freepik'], allow_fallbacks: false } });
    const canceled = await api.cancelVideo(queued.id);
    live.simulator('freepik').clearFaults();
    expect([failed.status, canceled.status]).toEqual(['failed', 'canceled']);

    await target.reload();
    for (const task of [failed, canceled]) {
      const row = target.locator(`tr[data-task-id="${task.id}"]`);
      await row.waitFor();
      expect(await row.locator('td[data-label="Status"]').textContent()).toContain(task.error!.message);
      expect(await row.locator('td[data-label="Cost"]').textContent()).toBe(formatCostShort(task.cost));
    }
    // Where each cost comes from: the canceled task was never held by a provider, so nothing is charged.
    expect(await target.locator(`tr[data-task-id="${canceled.id}"] td[data-label="Cost"]`).getAttribute('title')).toBe(
      'nothing charged: no provider holds this task',
    );
    expect(await target.locator(`tr[data-task-id="${failed.id}"] td[data-label="Cost"]`).getAttribute('title')).toBe(
      failed.cost.estimated ? 'estimated' : 'reported by the provider',
    );
    await target.setViewportSize({ width: 375, height: 812 });
    expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    await target.screenshot({ path: join(ARTIFACTS, 'phone-task-list-ended.png'), fullPage: true });
  });
  it('keeps the task list\'s filters in its address: Back from a task, a reload and a shared link show the same view', async () => {
    live.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'canceled, then filtered for', routing: { providers: ['freepik'], allow_fallbacks: false } });
    const canceled = await api.cancelVideo(queued.id);
    live.simulator('freepik').clearFaults();
    const target = await openConsole();
    await signIn(target);
    const shownStatuses = () => target.locator('tbody tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-status')));
    const filteredView = async () => {
      await target.locator(`tr[data-task-id="${canceled.id}"]`).waitFor();
      expect(await target.getByLabel('Status').inputValue()).toBe('canceled');
      // The canceled task is in the whole list too: the filtered page may still be on its way.
      await expect.poll(async () => new Set(await shownStatuses())).toEqual(new Set(['canceled']));
    };

    await target.getByLabel('Status').selectOption('canceled');
    await expect.poll(() => target.evaluate(() => window.location.hash)).toBe('#/?status=canceled');
    await filteredView();

    await target.locator(`tr[data-task-id="${canceled.id}"] a.task-link`).click();
    await target.getByRole('heading', { level: 1, name: `Video ${canceled.id}` }).waitFor();
    await target.goBack();
    await filteredView();

    await target.reload();
    await filteredView();

    // A link with filters opens on them, a provider the gateway does not know included: the API's
    // refusal says which providers there are, rather than an empty list saying no task matches.
    await target.goto(`${live.url}/console/#/?status=canceled&provider=nobody`);
    await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    expect([await target.getByLabel('Status').inputValue(), await target.getByLabel('Provider').inputValue()]).toEqual(['canceled', 'nobody']);
    await expect.poll(() => target.locator('.problem').textContent()).toContain('unknown provider "nobody" (known: freepik, kling3api, kling-legacy)');
    expect(await target.locator('.empty').count()).toBe(0);
    expect(browserErrors.every((text) => text.includes('status of 400'))).toBe(true);
    browserErrors.length = 0; // the browser logs the refused list (400) itself

    // The navigation's Tasks is the whole list again.
    await target.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Tasks' }).click();
    await expect.poll(() => target.evaluate(() => window.location.hash)).toBe('#/');
    expect(await target.getByLabel('Status').inputValue()).toBe('');
    expect(await accessibilityProblems(target)).toEqual([]);
  });

  it('keeps the keyboard in the task list when Clear filters or Load more is pressed: on the filters, on the first task loaded', async () => {
    const target = await signedInOnMoreThanAPage('one of a page and more');
    const focused = () =>
      target.evaluate(() => {
        const element = document.activeElement;
        return !element || element.tagName === 'BODY' ? 'nothing' : `${element.tagName} ${element.id || element.textContent?.trim()}`;
      });

    await target.evaluate((to) => (window.location.hash = to), '#/?status=queued');
    await target.getByRole('button', { name: 'Clear filters' }).focus();
    await target.keyboard.press('Enter');
    await target.waitForURL(/#\/$/);
    await expect.poll(focused).toBe('SELECT filter-status');

    const rows = target.locator('tr[data-task-id]');
    await expect.poll(() => rows.count()).toBe(25);
    await target.getByRole('button', { name: 'Load more' }).focus();
    await target.keyboard.press('Enter');
    await expect.poll(() => rows.count()).toBeGreaterThan(25);
    // The first task the press brought in, where reading goes on.
    await expect.poll(focused).toBe(`A ${await rows.nth(25).getAttribute('data-task-id')}`);
  });
  it('keeps Load more saying Loading… and puts the keyboard on the first task it brought in when a refresh of the list answers while its page is on its way', async () => {
    const target = await signedInOnMoreThanAPage('a page held behind a refresh');
    const rows = target.locator('tr[data-task-id]');
    await expect.poll(() => rows.count()).toBe(25);
    // The next page takes its time (a slow network): held until released.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const nextPage = (url: URL) => url.pathname.endsWith('/v1/videos') && url.searchParams.has('cursor');
    let held = 0;
    await target.route(nextPage, async (route) => {
      held += 1;
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      const button = target.locator('.list-footer button');
      await button.focus();
      await target.keyboard.press('Enter');
      await expect.poll(() => held).toBe(1);
      await expect.poll(() => button.textContent()).toBe('Loading…');
      // The list's own refresh of its first page is asked and answered meanwhile.
      await target.waitForResponse((response) => response.url().includes('/v1/videos?') && !response.url().includes('cursor=') && response.ok());
      await target.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50))));
      // That page is still on its way: the button says so, and a press now asks nothing twice.
      expect(await button.textContent()).toBe('Loading…');
      expect(await button.getAttribute('aria-disabled')).toBe('true');
      release();
      await expect.poll(() => rows.count()).toBeGreaterThan(25);
      // The first task the press brought in, where reading goes on.
      const first = await rows.nth(25).getAttribute('data-task-id');
      await expect
        .poll(() =>
          target.evaluate(() => {
            const element = (globalThis as any).document.activeElement;
            return element?.closest('tr')?.getAttribute('data-task-id') ?? element?.tagName;
          }),
        )
        .toBe(first);
      expect(held).toBe(1);
    } finally {
      release();
      await target.unroute(nextPage);
    }
  });
  it('says a Load more the gateway refused at Load more, and keeps saying it until pressed again, instead of calling the live list not live and promising a page that never comes', async () => {
    const target = await signedInOnMoreThanAPage('a page and more to load');
    const rows = target.locator('tr[data-task-id]');
    await expect.poll(() => rows.count()).toBe(25);
    // The next page is refused once (a replica draining); the list's own refreshes pass.
    let refused = 0;
    await target.route(
      (url) => url.pathname.endsWith('/v1/videos') && url.searchParams.has('cursor'),
      (route) => {
        if (refused > 0) return route.continue();
        refused += 1;
        return route.fulfill({ status: 503, contentType: 'application/problem+json', json: { type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'draining' } });
      },
    );
    await target.getByRole('button', { name: 'Load more' }).click();
    // Under Load more, where it was asked.
    const refusal = target.locator('.list-footer ~ [role="alert"]');
    await expect.poll(() => refusal.textContent()).toContain('Service Unavailable (503)');
    expect(await refusal.textContent()).not.toContain('Asking again');
    // The list itself is as live as before: its refresh answered.
    expect(await target.locator('.live-status').textContent()).toMatch(/^\s*Live:/);
    // The next refresh of the first page passes, and the refusal is still said where it happened.
    await target.waitForResponse((response) => response.url().includes('/v1/videos?') && !response.url().includes('cursor=') && response.ok());
    await target.locator('.live-status', { hasText: 'list refreshed' }).waitFor();
    expect(await refusal.textContent()).toContain('Service Unavailable (503)');
    expect(await rows.count()).toBe(25);
    // Pressed again: the page comes, the refusal goes.
    await target.getByRole('button', { name: 'Load more' }).click();
    await expect.poll(() => rows.count()).toBeGreaterThan(25);
    expect(await target.getByRole('alert').count()).toBe(0);
    browserErrors.length = 0; // the browser logs the refused request (503) itself
  });

  it('brings Back from a task opened after Load more to the same pages, scrolled where they were, the keyboard on that task', async () => {
    // More than a page (25) of one model's tasks, which no other test makes.
    for (let made = 0; made < 30; made += 1) await api.createVideo({ model: 'kling-v2-5-turbo', prompt: `one of many turbo tasks ${made}` });
    const target = await openConsole('#/?model=kling-v2-5-turbo');
    await signIn(target);
    const rows = target.locator('tr[data-task-id]');
    await expect.poll(() => rows.count()).toBe(25);
    await target.getByRole('button', { name: 'Load more' }).click();
    await expect.poll(() => rows.count()).toBe(30);
    // Every task ended first: a running one's end changes the page's height above the place read
    // (the browser then moves the page with its content), and the place left is the moved one.
    await expect.poll(() => target.locator('tr[data-status="queued"], tr[data-status="processing"]').count(), { timeout: 30_000 }).toBe(0);
    const opened = rows.nth(28);
    const id = (await opened.getAttribute('data-task-id'))!;
    await opened.locator('a.task-link').scrollIntoViewIfNeeded();
    const scrolled = await target.evaluate(() => window.scrollY as number);
    expect(scrolled).toBeGreaterThan(0);
    await opened.locator('a.task-link').click();
    await target.getByRole('heading', { level: 1, name: new RegExp(id) }).waitFor();

    await target.goBack();
    await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    // Both pages, not the first one alone, at the place the reader left, the keyboard on the task opened.
    expect(await rows.count()).toBe(30);
    expect(await target.evaluate(() => window.scrollY as number)).toBe(scrolled);
    await expect.poll(() => target.evaluate(() => document.activeElement?.textContent)).toBe(id);
    // The list goes on from its second page's end: no page is read twice or left out.
    expect(await target.getByRole('button', { name: 'Load more' }).count()).toBe(0);

    // A link to the list (the navigation's Tasks) starts from its first page, at the top.
    await target.getByRole('link', { name: new RegExp(id) }).click();
    await target.getByRole('heading', { level: 1, name: new RegExp(id) }).waitFor();
    await target.getByRole('link', { name: 'Tasks', exact: true }).first().click();
    await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    await expect.poll(() => rows.count()).toBe(25);
    expect(await target.evaluate(() => window.scrollY as number)).toBe(0);
  });
  it('brings Back the pages loaded before as they are now, and the keyboard to the task opened only when the list was left for it', async () => {
    // One task held in the queue (its provider does not answer its create yet), then a page (25) of
    // newer ones: the held task is on the second page. A gateway of its own, whose provider is given
    // all the time a slow machine needs before that create counts as unanswered (then it is looked
    // up and sent again, which starts the task before the test has looked at it queued). Its tasks
    // are the short ones (under a second): no page watches one run.
    const own = await startLiveGateway({ providers: { 'kling-legacy': { timeout_ms: 120_000 } } });
    const ownApi = new GatewayClient({ baseUrl: own.url, apiKey: TENANT_KEY });
    const held = heldCall();
    own.simulator('kling-legacy').injectFault({ on: 'submit', hold: held.hold, times: 1 });
    // The create answers once its provider does; the task is written (queued) before that call leaves.
    const creating = ownApi.createVideo({ model: 'kling-v2-master', prompt: 'waits on the second page' });
    try {
      await held.reached;
      const listed = (await ownApi.listVideos({ model: 'kling-v2-master' })).data;
      expect(listed.map((task) => task.status)).toEqual(['queued']);
      const waiting = listed[0]!;
      for (let made = 0; made < 25; made += 1) await ownApi.createVideo({ model: 'kling-v2-master', prompt: `one of a page ${made}` });
      const target = await openConsole('#/?model=kling-v2-master', context, own);
      // No event streams: the list's own reads are all that can bring a change in.
      const events = (url: URL) => url.pathname.endsWith('/events');
      await target.route(events, (route) => route.abort('connectionrefused'));
      await signIn(target);
      const rows = target.locator('tr[data-task-id]');
      await expect.poll(() => rows.count()).toBe(25);
      await target.getByRole('button', { name: 'Load more' }).click();
      const waitingRow = target.locator(`tr[data-task-id="${waiting.id}"]`);
      await waitingRow.waitFor();
      expect(await waitingRow.getAttribute('data-status')).toBe('queued');

      // Opened from the list, Back: the keyboard on the task opened.
      const opened = rows.first();
      const openedId = (await opened.getAttribute('data-task-id'))!;
      await opened.locator('a.task-link').click();
      await target.getByRole('heading', { level: 1, name: new RegExp(openedId) }).waitFor();
      await target.goBack();
      await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
      await expect.poll(() => target.evaluate(() => document.activeElement?.textContent)).toBe(openedId);

      // Left through the navigation; the held task ends meanwhile.
      await target.getByRole('link', { name: 'Providers' }).first().click();
      await target.getByRole('heading', { level: 1, name: 'Providers' }).waitFor();
      held.release();
      expect((await creating).id).toBe(waiting.id);
      expect((await ownApi.waitForVideo(waiting.id, { timeoutMs: 30_000 })).status).toBe('succeeded');

      // Back: the same pages, the second one as it is now; the keyboard at the heading, as on any
      // page shown, not on the task opened the time before.
      await target.goBack();
      await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
      await expect.poll(() => waitingRow.getAttribute('data-status'), { timeout: 4_000 }).toBe('succeeded');
      expect(await rows.count()).toBe(26);
      await expect.poll(() => target.evaluate(() => `${document.activeElement?.tagName} ${document.activeElement?.textContent}`)).toBe('H1 Tasks');
      browserErrors.length = 0; // the browser logs the refused streams itself
    } finally {
      held.release();
      await creating.catch(() => undefined);
      await page?.close();
      await own.close();
    }
  });

  it('keeps the keyboard on the task opened when the list Back brought renders again before the browser paints', async () => {
    // The list brought back puts the keyboard on the task opened, and its heading takes it on every
    // other page shown. A second render of the list before its effects ran (an announcement, an
    // address change) ran the list's effects first and then the heading's, which took the keyboard.
    // The page's clock is held so that nothing runs those effects until the list has rendered again.
    for (let made = 0; made < 2; made += 1) await api.createVideo({ model: 'kling-v2-5-turbo', prompt: `opened, then Back ${made}` });
    const target = await openConsole('#/?model=kling-v2-5-turbo');
    try {
      await signIn(target);
      const rows = target.locator('tr[data-task-id]');
      await expect.poll(() => rows.count()).toBeGreaterThan(1);
      const opened = rows.nth(1);
      const id = (await opened.getAttribute('data-task-id'))!;
      await opened.locator('a.task-link').click();
      await target.getByRole('heading', { level: 1, name: new RegExp(id) }).waitFor();

      await target.clock.pauseAt((await target.evaluate(() => Date.now())) + 1_000);
      await target.goBack();
      await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
      // The address changes in a way the list ignores (a query field it does not read): it renders again.
      await target.evaluate("history.replaceState(null, '', location.href + '&from=elsewhere'); dispatchEvent(new HashChangeEvent('hashchange'))");
      await target.clock.resume();
      await expect.poll(() => target.evaluate(() => document.activeElement?.textContent)).toBe(id);
    } finally {
      await target.clock.setSystemTime(Date.now()).catch(() => undefined);
      await target.clock.resume().catch(() => undefined);
    }
  });

  it('says a task made by a gateway whose clock is ahead of the browser\'s was created now, not "in 1 min."', async () => {
    const target = await openConsole();
    // This browser's clock runs 90 s behind the gateway's (a laptop not synchronized lately).
    await target.clock.install({ time: Date.now() - 90_000 });
    try {
      await target.reload();
      await signIn(target);
      const task = await api.createVideo({ model: 'kling-v3', prompt: 'made on a clock ahead' });
      const created = target.locator(`tr[data-task-id="${task.id}"] td[data-label="Created"] time`);
      await created.waitFor();
      expect(await created.textContent()).not.toMatch(/^in /);
      expect(await created.textContent()).toBe('now');
      await api.cancelVideo(task.id).catch(() => undefined);
    } finally {
      // The clock is the browser context's: the pages of the tests after this one keep the right time.
      await target.clock.setSystemTime(Date.now());
    }
  });

  it('gives the task list\'s page and its table landmarks of their own names, so a screen reader tells them apart', async () => {
    const created = await api.createVideo({ model: 'kling-v3', prompt: 'a row in the table' });
    const target = await openConsole();
    await signIn(target);
    await target.locator(`tr[data-task-id="${created.id}"]`).waitFor();
    const names = await target.locator('section[aria-labelledby], [role="region"]').evaluateAll((elements: { getAttribute(name: string): string | null }[]) =>
      elements.map((element) => element.getAttribute('aria-label') ?? `#${element.getAttribute('aria-labelledby')}`),
    );
    expect(names).toEqual(['#tasks-heading', 'Tasks, newest first']);
    expect(await target.getByRole('region', { name: 'Tasks', exact: true }).count()).toBe(1);
    expect(await target.getByRole('region', { name: 'Tasks, newest first' }).count()).toBe(1);
  });
  it('drops a Load more still on its way when a filter changes: no page and no cursor of the last filter under the new one', async () => {
    // More than a page (25) of kling-v2-6 tasks, then newer kling-v3 ones, so the two filters' pages differ.
    for (let made = 0; made < 27; made += 1) await api.createVideo({ model: 'kling-v2-6', prompt: `an older model's task ${made}` });
    for (let made = 0; made < 3; made += 1) await api.createVideo({ model: 'kling-v3', prompt: `a newer model's task ${made}` });
    const target = await openConsole('#/?model=kling-v2-6');
    await signIn(target);
    const rows = target.locator('tr[data-task-id]');
    const shownIds = () => rows.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-task-id')));
    await expect.poll(() => rows.count()).toBe(25);
    // The next page of kling-v2-6 takes its time (a slow network): held until released.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const olderPage = (url: URL) => url.pathname.endsWith('/v1/videos') && url.searchParams.has('cursor') && url.searchParams.get('model') === 'kling-v2-6';
    let held = 0;
    await target.route(olderPage, async (route) => {
      held += 1;
      await released;
      // The page may have given the request up by then.
      await route.continue().catch(() => undefined);
    });
    try {
      await target.getByRole('button', { name: 'Load more' }).click();
      await expect.poll(() => held).toBe(1);
      const settled = new Promise<void>((resolve) => {
        const done = (request: { url(): string }) => {
          if (olderPage(new URL(request.url()))) resolve();
        };
        target.on('requestfinished', done);
        target.on('requestfailed', done);
      });
      // Another filter while that page is on its way: the whole list.
      await target.getByLabel('Model').selectOption('');
      await expect.poll(() => target.evaluate(() => window.location.hash)).toBe('#/');
      const whole = await api.listVideos({ limit: 25 });
      await expect.poll(shownIds).toEqual(whole.data.map((task) => task.id));
      release();
      await settled;
      // Whatever the page did with that answer, it has done it by the next refresh of the list.
      const firstPage = (url: URL) => url.pathname.endsWith('/v1/videos') && !url.searchParams.has('cursor');
      await target.waitForResponse((response) => firstPage(new URL(response.url())));
      await target.evaluate(() => new Promise((resolve) => requestAnimationFrame(resolve)));
      // Its page is not appended and its end is not taken for the whole list's: the first page, and more to load.
      expect(await shownIds()).toEqual(whole.data.map((task) => task.id));
      expect(await target.getByRole('button', { name: 'Load more' }).count()).toBe(1);
      expect(await target.getByRole('button', { name: 'Load more' }).textContent()).toBe('Load more');
      // And Load more goes on from the whole list's cursor, not the older model's.
      const next = target.waitForRequest((request) => new URL(request.url()).searchParams.has('cursor'));
      await target.getByRole('button', { name: 'Load more' }).click();
      const asked = new URL((await next).url()).searchParams;
      expect([asked.get('cursor'), asked.get('model')]).toEqual([whole.next_cursor, null]);
      const secondPage = await api.listVideos({ limit: 25, cursor: whole.next_cursor! });
      await expect.poll(shownIds).toEqual([...whole.data, ...secondPage.data].map((task) => task.id));
    } finally {
      release();
      await target.unroute(olderPage);
    }
  });
  it('does not call the task list empty while the gateway cannot be reached, says it asks again, and fills it once it can', async () => {
    const target = await openConsole();
    await signIn(target);
    const task = await api.createVideo({ model: 'kling-v3', prompt: 'there all along' });
    const cutOff = (url: URL) => url.pathname.endsWith('/v1/videos');
    await target.route(cutOff, (route) => route.abort('connectionrefused'));
    await target.reload();
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('Cannot reach the gateway');
    // It says the page comes back by itself, so nobody reloads or signs in again for it.
    expect(await target.getByRole('alert').textContent()).toContain('Asking again every few seconds: this fills in by itself once the gateway answers.');
    expect(await target.locator('.empty').count()).toBe(0);
    expect(await target.locator('main').textContent()).not.toContain('No videos yet');

    // Back again: the next refresh brings the tasks in and drops the error.
    await target.unroute(cutOff);
    await target.locator(`tr[data-task-id="${task.id}"]`).waitFor({ timeout: 15_000 });
    expect(await target.getByRole('alert').count()).toBe(0);
    browserErrors.length = 0; // the browser logs the refused connections itself
  });
  it('opens a running task\'s event stream again when the gateway ended it before the task did (a replica stopping)', async () => {
    // Tasks that take a minute upstream, so the task is still running when its stream ends.
    const slow = await startLiveGateway({ sandbox: { queued_ms: 100, processing_ms: 60_000 } });
    try {
      const slowApi = new GatewayClient({ baseUrl: slow.url, apiKey: TENANT_KEY });
      const running = await slowApi.createVideo({ model: 'kling-v3', prompt: 'followed through a replica stopping' });
      const target = await openConsole('', context, slow);
      // The page's clock, moved on below instead of waiting for it.
      await target.clock.install();
      await target.reload();
      // The first stream of the task ends at once, cleanly and without its final event, as a
      // stopping gateway ends its streams; the ones after it reach the gateway.
      const streams = (url: URL) => url.pathname === `/v1/videos/${running.id}/events`;
      let opened = 0;
      await target.route(streams, async (route) => {
        opened += 1;
        if (opened === 1) await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: '' });
        else await route.continue();
      });
      await signIn(target);
      const status = target.locator('.live-status');
      await expect.poll(() => opened).toBe(1);
      await expect.poll(() => status.textContent()).not.toContain('following 1 running task');
      // The list is read again every 5 s meanwhile; the stream is opened again within a retry window.
      for (let step = 0; step < 4 && opened < 2; step += 1) await target.clock.fastForward(5_000);
      await expect.poll(() => opened).toBe(2);
      await expect.poll(() => status.textContent()).toContain('following 1 running task');
    } finally {
      await page?.close();
      await slow.close();
    }
  });

  /**
   * A task followed in the list whose end its stream tells while a refresh read before that end
   * is still on its way; `sameMillisecond`: that read shows the task as written in the millisecond
   * of its end (two versions of one millisecond: a task ending from its provider's queue is written
   * processing first). Checks the list keeps the end, and says it once and nothing after it.
   */
  async function followWhileARefreshIsSlow(sameMillisecond: boolean): Promise<void> {
    // A task that runs long enough for a refresh to read it running while its stream is open.
    const slow = await startLiveGateway({ sandbox: { queued_ms: 100, processing_ms: 8_000 } });
    try {
      const slowApi = new GatewayClient({ baseUrl: slow.url, apiKey: TENANT_KEY });
      const running = await slowApi.createVideo({ model: 'kling-v3', prompt: 'followed while a refresh is slow' });
      const target = await openConsole('', context, slow);
      // The page's clock: its refreshes (every 5 s) and announcements come when moved on below.
      await target.clock.install();
      await target.reload();
      // One refresh is read from the gateway at once (the task still running) and answered only later.
      let holding = false;
      let heldStatus: string | undefined;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let listsAnswered = 0;
      target.on('requestfinished', (request) => {
        if (new URL(request.url()).pathname === '/v1/videos' && request.method() === 'GET') listsAnswered += 1;
      });
      await target.route(
        (url) => url.pathname === '/v1/videos',
        async (route) => {
          if (route.request().method() !== 'GET' || !holding) return route.continue();
          holding = false;
          const response = await route.fetch();
          const body = (await response.json()) as { data: Task[] };
          heldStatus = body.data.find((task) => task.id === running.id)?.status;
          await released;
          if (!sameMillisecond) return route.fulfill({ response });
          const ended = await slowApi.getVideo(running.id);
          const data = body.data.map((task) => (task.id === running.id ? { ...task, updated_at: ended.updated_at } : task));
          await route.fulfill({ response, json: { ...body, data } });
        },
      );
      await signIn(target);
      const row = target.locator(`tr[data-task-id="${running.id}"]`);
      await row.waitFor();
      await expect.poll(() => target.locator('.live-status').textContent()).toContain('following 1 running task');
      // Every announcement the page makes, as the live region reads it, and every status the task's row shows.
      await target.evaluate((id) => {
        const page = globalThis as any;
        const region = page.document.querySelector('#announcer');
        const heard: string[] = [];
        const shown: string[] = [];
        page.heard = heard;
        page.shown = shown;
        new page.MutationObserver(() => {
          if (region.textContent) heard.push(region.textContent);
        }).observe(region, { childList: true, subtree: true, characterData: true });
        new page.MutationObserver(() => {
          const status = page.document.querySelector(`tr[data-task-id="${id}"]`)?.getAttribute('data-status');
          if (status && status !== shown.at(-1)) shown.push(status);
        }).observe(page.document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-status'] });
      }, running.id);
      holding = true;
      await target.clock.fastForward(5_000);
      await expect.poll(() => heldStatus).toBeDefined();
      expect(['queued', 'processing']).toContain(heldStatus);
      // The stream tells the end while that refresh is still on its way.
      await expect.poll(() => row.getAttribute('data-status'), { timeout: 20_000 }).toBe('succeeded');
      await target.clock.runFor(100);
      const answered = listsAnswered;
      release();
      await expect.poll(() => listsAnswered).toBe(answered + 1);
      await target.clock.runFor(100);
      // The next refresh reads it succeeded: nothing new to say.
      await target.clock.fastForward(5_000);
      await expect.poll(() => listsAnswered).toBe(answered + 2);
      await target.clock.runFor(100);
      expect(await row.getAttribute('data-status')).toBe('succeeded');
      const heard = (await target.evaluate(() => (globalThis as any).heard)) as string[];
      // Once shown ended, it stays so.
      const shown = (await target.evaluate(() => (globalThis as any).shown)) as string[];
      expect(shown.slice(shown.indexOf('succeeded'))).toEqual(['succeeded']);
      // Its end said once, and nothing after it: not the status it left, not the end again.
      const end = heard.findIndex((words) => / succeeded$/.test(words));
      expect(end).toBeGreaterThanOrEqual(0);
      expect(heard.slice(end)).toEqual([heard[end]]);
    } finally {
      await page?.close();
      await slow.close();
    }
  }

  it('reads out the end of each of two tasks a refresh of the list brings at once, not the last one only', async () => {
    const both = [
      await api.createVideo({ model: 'kling-v3', prompt: 'one of two ending together' }),
      await api.createVideo({ model: 'kling-v3', prompt: 'the other of two ending together' }),
    ];
    for (const task of both) await api.waitForVideo(task.id, { timeoutMs: 20_000 });
    const target = await openConsole();
    // The page's clock: its refreshes (every 5 s) and announcements come when moved on below.
    await target.clock.install();
    try {
      await target.reload();
      // No stream follows them (each fails, as behind a proxy that cuts them): the refresh alone brings their ends.
      await target.route((url) => url.pathname.endsWith('/events'), (route) => route.abort('connectionreset'));
      // The first read of the list shows both still running; every later one as they are (ended).
      let lists = 0;
      await target.route(
        (url) => url.pathname.endsWith('/v1/videos') && !url.searchParams.has('cursor'),
        async (route) => {
          if (route.request().method() !== 'GET' || (lists += 1) > 1) return route.continue();
          const response = await route.fetch();
          const body = (await response.json()) as { data: Task[] };
          const data = body.data.map((task) =>
            both.some((made) => made.id === task.id) ? { ...task, status: 'processing', completed_at: null, outputs: [], updated_at: both.find((made) => made.id === task.id)!.created_at } : task,
          );
          await route.fulfill({ response, json: { ...body, data } });
        },
      );
      await signIn(target);
      for (const task of both) await expect.poll(() => target.locator(`tr[data-task-id="${task.id}"]`).getAttribute('data-status')).toBe('processing');
      await target.evaluate(() => {
        const page = globalThis as any;
        const region = page.document.querySelector('#announcer');
        const heard: string[] = [];
        page.heard = heard;
        new page.MutationObserver(() => {
          if (region.textContent) heard.push(region.textContent);
        }).observe(region, { childList: true, subtree: true, characterData: true });
      });
      await target.clock.fastForward(5_000);
      for (const task of both) await expect.poll(() => target.locator(`tr[data-task-id="${task.id}"]`).getAttribute('data-status')).toBe('succeeded');
      await target.clock.runFor(1_000);
      const heard = ((await target.evaluate(() => (globalThis as any).heard)) as string[]).join(' | ');
      for (const task of both) expect(heard).toContain(`Video ${task.id.length > 14 ? `${task.id.slice(0, 12)}…` : task.id} succeeded`);
    } finally {
      await target.clock.setSystemTime(Date.now()).catch(() => undefined);
      await target.clock.resume().catch(() => undefined);
      browserErrors.length = 0; // the browser logs the streams cut (connection reset) itself
    }
  });
  it('announces a followed task\'s end once, and never a status it left, when a refresh read before the end is answered after its stream told it', async () => {
    await followWhileARefreshIsSlow(false);
  });

  it('keeps a followed task ended when a refresh answered after its end shows it running in the millisecond it ended', async () => {
    await followWhileARefreshIsSlow(true);
  });

  it('does not call the task list live while the gateway cannot be reached, and does again once it answers', async () => {
    const task = await api.createVideo({ model: 'kling-v3', prompt: 'listed once the gateway is back' });
    const target = await openConsole();
    await signIn(target);
    const status = target.locator('.live-status');
    await expect.poll(() => status.textContent()).toMatch(/^\s*Live: /);
    const cutOff = (url: URL) => url.pathname.endsWith('/v1/videos') || url.pathname.endsWith('/events');
    await target.route(cutOff, (route) => route.abort('connectionrefused'));
    await target.reload();
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('Cannot reach the gateway');
    expect(await status.textContent()).toContain('Not live while the gateway cannot be reached');
    // Nothing pulses as if it were.
    expect(await status.locator('.live-dot').getAttribute('data-paused')).toBe('true');

    await target.unroute(cutOff);
    await target.locator(`tr[data-task-id="${task.id}"]`).waitFor({ timeout: 15_000 });
    await expect.poll(() => status.textContent()).toMatch(/^\s*Live: /);
    expect(await status.locator('.live-dot').getAttribute('data-paused')).toBe(null);

    // A list the gateway refuses (a model it does not know, from a link) is not live either; it
    // was reached, and no list is shown, so none is dated.
    await target.evaluate((to) => (window.location.hash = to), '#/?model=no-such-model');
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('model');
    expect(await status.textContent()).toContain('Not live: the gateway did not list these tasks');
    expect(await status.textContent()).not.toMatch(/cannot be reached|as of/);
    browserErrors.length = 0; // the browser logs the refused connections and the 400 itself
  });
  it('keeps the player\'s place on the page while the video\'s first bytes are on their way: nothing below it moves when they arrive', async () => {
    const done = await api.waitForVideo((await api.createVideo({ model: 'kling-v3', prompt: 'a player that does not jump' })).id, { timeoutMs: 20_000 });
    const target = await openConsole();
    await signIn(target);
    // The file is slow to come (a slow network): held until released.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    // The gateway's stored copy, or (where it keeps none, as here) the provider's own file.
    const file = (url: URL) => url.pathname.endsWith('/content') || url.pathname.endsWith('.mp4');
    await target.route(file, async (route) => {
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(done.id)}`);
      const video = target.locator('video.output-video');
      const caption = target.locator('.output figcaption');
      await caption.waitFor();
      const before = (await caption.boundingBox())!.y;
      // Room for a 16:9 video (the ratio asked for, by default) from the start.
      const box = (await video.boundingBox())!;
      expect(Math.abs(box.height - (box.width * 9) / 16)).toBeLessThan(1);
      release();
      await expect.poll(() => video.evaluate((element: HTMLVideoElement) => element.readyState >= 1)).toBe(true);
      expect(Math.abs((await caption.boundingBox())!.y - before), 'the caption under the player did not move').toBeLessThan(1);
    } finally {
      release();
      await target.unroute(file);
    }
  });

  it('stops calling the task list live when the gateway holds its refreshes without answering (hung, not down)', async () => {
    const target = await openConsole();
    // The page's clock, moved on below instead of waiting for it.
    await target.clock.install();
    await target.reload();
    await signIn(target);
    const status = target.locator('.live-status');
    // The first read answered (not "list refreshed …", asked and not yet answered).
    await expect.poll(() => status.textContent()).toMatch(/^\s*Live: list refreshed now/);
    // A tab left in the background asks nothing meanwhile: shown again a minute later, it is not
    // called "not answered" for the refresh it did not ask.
    const hidden = (value: boolean) =>
      target.evaluate((isHidden) => {
        Object.defineProperty(document, 'hidden', { value: isHidden, configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      }, value);
    await hidden(true);
    await target.clock.fastForward(60_000);
    await expect.poll(() => status.textContent()).toMatch(/list refreshed 1 min\. ago/);
    await hidden(false);
    expect(await status.textContent()).not.toContain('Not live');
    // Shown again, it reads the list at once; the next refresh is timed from that read's answer.
    await expect.poll(() => status.textContent()).toMatch(/^\s*Live: list refreshed now/);
    // From now on the gateway takes each list request and never answers it (a stopped process, a
    // dropped route): no error comes for a long time.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const list = (url: URL) => url.pathname.endsWith('/v1/videos');
    let asked = 0;
    await target.route(list, async (route) => {
      asked += 1;
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      // The next refresh is asked, and then nothing comes for 15 s.
      await target.clock.fastForward(5_000);
      await expect.poll(() => asked).toBe(1);
      expect(await status.textContent()).toMatch(/^\s*Live: /);
      await target.clock.fastForward(15_000);
      // The list is as of the read made when the tab was shown again, 20 s before.
      await expect.poll(() => status.textContent()).toMatch(/Not live: the gateway has not answered for a while; list as of 20 sec\. ago/);
      expect(await status.locator('.live-dot').getAttribute('data-paused')).toBe('true');
      release();
      await expect.poll(() => status.textContent()).toMatch(/^\s*Live: list refreshed/);
    } finally {
      release();
      await target.unroute(list);
    }
  });

  it('reads the task list again as soon as its tab is shown again, instead of showing the list of a minute ago as live for up to 5 s', async () => {
    const target = await openConsole();
    // The page's clock, moved on below instead of waiting for it.
    await target.clock.install();
    await target.reload();
    await signIn(target);
    const status = target.locator('.live-status');
    // The first read answered (not "list refreshed …", asked and not yet answered).
    await expect.poll(() => status.textContent()).toMatch(/^\s*Live: list refreshed now/);
    const hidden = (value: boolean) =>
      target.evaluate((isHidden) => {
        Object.defineProperty(document, 'hidden', { value: isHidden, configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      }, value);
    try {
      // From here the page's time stands still but where it is moved on: no refresh comes by itself.
      await target.clock.pauseAt((await target.evaluate(() => Date.now())) + 1_000);
      await hidden(true);
      // Made elsewhere while the tab is in the background (the CLI, another tab).
      const task = await api.createVideo({ model: 'kling-v3', prompt: 'made while the tab was hidden' });
      await target.clock.fastForward(60_000);
      // Shown again, and no time passes: the list is read at once.
      await hidden(false);
      await expect.poll(() => target.getByRole('link', { name: task.id }).count(), { timeout: 5_000 }).toBe(1);
      await expect.poll(() => status.textContent()).toMatch(/^\s*Live: .*list refreshed now/);
    } finally {
      // The clock is the browser context's, which the tests after this one share: running again, on time.
      await target.clock.setSystemTime(Date.now()).catch(() => undefined);
      await target.clock.resume().catch(() => undefined);
    }
  });

  it('plays the gateway\'s stored copy, and says so, and shows an output no one still has as gone instead of a dead player', async () => {
    // A gateway that keeps copies of its outputs.
    const keeping = await startLiveGateway({
      sandbox: { queued_ms: 100, processing_ms: 800 },
      // One try: a 404 that lasts through every try (here the only one) marks the provider's copy gone.
      storage: { mode: 'copy', max_attempts: 1, filesystem: { path: mkdtempSync(join(tmpdir(), 'kling-console-copies-')) } },
    });
    try {
      const keepingApi = new GatewayClient({ baseUrl: keeping.url, apiKey: TENANT_KEY });
      const kept = await keepingApi.waitForVideo((await keepingApi.createVideo({ model: 'kling-v3', prompt: 'kept by the gateway' })).id, { timeoutMs: 15_000 });
      // The provider deletes this one's file before the gateway could copy it.
      const lostTask = await keepingApi.createVideo({ model: 'kling-v3', prompt: 'lost upstream' });
      keeping.simulator('freepik').expireResult(lostTask.provider_task_id!);
      await keepingApi.waitForVideo(lostTask.id, { timeoutMs: 15_000 });
      await expect.poll(async () => (await keepingApi.getVideo(lostTask.id)).outputs[0]?.storage, { timeout: 15_000 }).toBe('not_stored');
      const lost = await keepingApi.getVideo(lostTask.id);
      expect(kept.outputs[0]).toMatchObject({ storage: 'stored' });
      expect(lost.outputs[0]).toMatchObject({ upstream_url_gone: true });

      page = await context.newPage();
      browserErrors = [];
      page.on('console', (message) => {
        if (message.type() === 'error') browserErrors.push(message.text());
      });
      await page.goto(`${keeping.url}/console/`);
      await signIn(page);

      await page.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(kept.id)}`);
      const video = page.locator('video.output-video');
      await video.waitFor();
      // The stored copy's signed link (its expiry, and so its signature, moves with the minute it was read in).
      const unsigned = (url: string) => {
        const link = new URL(url);
        expect(link.searchParams.get('signature')).toBeTruthy();
        link.searchParams.delete('expires');
        link.searchParams.delete('signature');
        return link.href;
      };
      expect(unsigned((await video.getAttribute('src'))!)).toBe(unsigned(kept.outputs[0]!.url));
      expect(await page.locator('figure.output figcaption').textContent()).toContain("From the gateway's stored copy.");
      await video.evaluate((element: HTMLVideoElement) => {
        element.muted = true;
        return element.play();
      });
      await expect.poll(() => video.evaluate((element: HTMLVideoElement) => element.currentTime > 0.2 && element.error === null), { timeout: 10_000 }).toBe(true);
      // Saved as a file, the same bytes the gateway keeps, named by the gateway.
      const [saved] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'download', exact: true }).click()]);
      expect(saved.suggestedFilename()).toBe(`${kept.id}-0.mp4`);
      const stored = Buffer.from(await (await fetch(kept.outputs[0]!.url)).arrayBuffer());
      expect(readFileSync((await saved.path())!).equals(stored)).toBe(true);

      await page.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(lost.id)}`);
      const gone = page.locator('.output-gone');
      await gone.waitFor();
      expect(await gone.textContent()).toContain('Video output 1 can no longer be fetched');
      expect(await gone.textContent()).toContain(lost.outputs[0]!.storage_error!);
      expect(await page.locator('video').count()).toBe(0);
      await page.screenshot({ path: join(ARTIFACTS, 'task-output-gone.png'), fullPage: true });

      // Not stored, and past the lifetime the provider documents for its copy (the content link
      // answers 410 then): gone too, though no fetch has found it missing yet. It used to get a player.
      const lapsed = {
        ...kept,
        outputs: [{ ...kept.outputs[0]!, url: kept.outputs[0]!.upstream_url, storage: 'not_stored', storage_error: 'the copy failed', upstream_url_gone: false, upstream_url_expires_at: new Date(Date.now() - 60_000).toISOString() }],
      };
      const keptRead = (url: URL) => url.pathname.endsWith(`/v1/videos/${kept.id}`);
      await page.route(keptRead, (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(lapsed) }));
      await page.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(kept.id)}`);
      // Awaited on what only this task's page says: until it renders, the lost task's notice (with
      // the same first sentence) is still on the screen.
      await expect.poll(async () => (await page.locator('.output-gone').textContent()) ?? '').toContain('the provider kept its copy until');
      expect(await page.locator('.output-gone').textContent()).toContain('Video output 1 can no longer be fetched');
      expect(await page.locator('video').count()).toBe(0);
      await page.unroute(keptRead);
    } finally {
      // The page first: its refreshes would meet the stopping gateway's 503s.
      await page?.close();
      await keeping.close();
    }
  });
  it('does not offer a disabled provider as a choice in New video\'s routing, and says it is disabled', async () => {
    const partial = await startLiveGateway({ providers: { freepik: { enabled: false } } });
    try {
      const target = await openConsole('', context, partial);
      await signIn(target);
      await target.getByRole('link', { name: 'New video' }).first().click();
      const freepik = target.getByRole('checkbox', { name: 'freepik (disabled)' });
      await freepik.waitFor();
      expect(await freepik.isDisabled()).toBe(true);
      expect(await target.getByRole('checkbox', { name: 'kling3api', exact: true }).isDisabled()).toBe(false);
      expect(await accessibilityProblems(target)).toEqual([]);
    } finally {
      // The page first: its refreshes would meet the stopping gateway's 503s.
      await page?.close();
      await partial.close();
    }
  });

  it('shows what a provider left unanswered may also have billed: on the task\'s cost, and as a Cost column and total only once there is any, at phone width too', async () => {
    // Freepik may be left unanswered and the task taken by kling3api (routing.failover_on_timeout).
    // Its time limit is real time, and the first create must be answered within it: 2 s (the tests'
    // usual), not 300 ms, which a loaded machine (a browser beside the gateway) could outlast.
    const failing = await startLiveGateway({ routing: { failover_on_timeout: true }, providers: { freepik: { timeout_ms: 2_000 } } });
    try {
      const failingApi = new GatewayClient({ baseUrl: failing.url, apiKey: TENANT_KEY });
      const plain = await failingApi.waitForVideo((await failingApi.createVideo({ model: 'kling-v3', prompt: 'answered at once', duration: 5 })).id, { timeoutMs: 15_000 });
      const target = await openConsole('', context, failing);
      await signIn(target);
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(plain.id)}`);
      await target.locator('dd.cost').waitFor();
      expect(await target.locator('dd.cost').textContent()).toContain(formatCost(plain.cost));
      expect(await target.locator('.cost-at-risk').count()).toBe(0);
      await target.evaluate((to) => (window.location.hash = to), '#/cost');
      await target.locator('table.usage').first().waitFor();
      expect(await target.locator('table.usage th', { hasText: 'At risk' }).count()).toBe(0);
      expect(await target.locator('[data-at-risk-total]').count()).toBe(0);

      failing.simulator('freepik').injectFault({ transport: 'hang' });
      const created = await failingApi.createVideo({ model: 'kling-v3', prompt: 'left unanswered, then taken', duration: 5 });
      const task = await failingApi.waitForVideo(created.id, { timeoutMs: 15_000 });
      expect(task.provider).toBe('kling3api');
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
      const atRisk = target.locator('dd.cost .cost-at-risk');
      await atRisk.waitFor();
      expect(await atRisk.textContent()).toContain('may also have been billed by freepik: 56 credits, $0.56 (estimate)');
      expect(await target.locator('dd.cost').textContent()).toContain(formatCost(task.cost));
      expect(await accessibilityProblems(target)).toEqual([]);
      await target.screenshot({ path: join(ARTIFACTS, 'task-at-risk.png'), fullPage: true });

      await target.evaluate((to) => (window.location.hash = to), '#/cost');
      const byProvider = target.locator('table.usage').first();
      await byProvider.locator('th', { hasText: 'At risk' }).waitFor();
      // Under the provider that may have billed it, beside what it certainly charged.
      const freepik = byProvider.locator('tbody tr', { has: target.locator('th', { hasText: 'freepik' }) });
      expect(await freepik.locator('td[data-label="At risk"]').textContent()).toBe('$0.56');
      expect(await freepik.locator('td[data-label="Cost"]').textContent()).toBe('$0.56~');
      expect(await target.locator('table.usage th', { hasText: 'At risk' }).count()).toBe(3);
      expect(await target.locator('[data-at-risk-total]').textContent()).toContain('$0.56');
      expect(await accessibilityProblems(target)).toEqual([]);
      await target.screenshot({ path: join(ARTIFACTS, 'cost-at-risk.png'), fullPage: true });

      // Phone width: each row a card, the at-risk figure one of its labelled fields.
      await target.setViewportSize({ width: 390, height: 844 });
      const card = freepik.locator('td[data-label="At risk"]');
      expect(await card.isVisible()).toBe(true);
      expect(await card.evaluate((cell) => getComputedStyle(cell).display)).toBe('block');
      expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
      await target.screenshot({ path: join(ARTIFACTS, 'phone-cost-at-risk.png'), fullPage: true });
    } finally {
      // The page first: its refreshes would meet the stopping gateway's 503s.
      await page?.close();
      await failing.close();
    }
  });

  it('shows each of the API\'s field errors next to the field it is fixed in, Other fields included', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a fox');
    await target.getByLabel('Duration (seconds)').fill('99');
    const extra = { metadata: { order: 42 }, multi_shot: [{ prompt: 'one shot', duration: 99 }] };
    await target.getByLabel('Other fields (JSON object, optional)').fill(JSON.stringify(extra));
    const refused = await api.quote({ model: 'kling-v3', prompt: 'a fox', duration: 99, ...(extra as object) } as never).catch((error: unknown) => error);
    const errors = (refused as GatewayError).problem.errors!;
    expect(errors.map((error) => error.path)).toEqual(expect.arrayContaining(['duration', 'metadata.order', 'multi_shot.0.duration']));

    // Each message sits under its control, which names it as its description and is marked invalid.
    const described = async (label: string) => {
      const field = target.getByLabel(label, { exact: true });
      const ids = ((await field.getAttribute('aria-describedby')) ?? '').split(' ').filter(Boolean);
      const texts = await Promise.all(ids.map((id) => target.locator(`[id="${id}"]`).textContent()));
      return { invalid: await field.getAttribute('aria-invalid'), text: texts.join(' ') };
    };
    await expect.poll(() => described('Duration (seconds)').then((field) => field.invalid)).toBe('true');
    const duration = await described('Duration (seconds)');
    for (const error of errors.filter((item) => item.path === 'duration')) expect(duration.text).toContain(error.message);
    const other = await described('Other fields (JSON object, optional)');
    expect(other.invalid).toBe('true');
    for (const error of errors.filter((item) => item.path !== 'duration')) expect(other.text).toContain(`${error.path}: ${error.message}`);
    expect(await target.getByRole('button', { name: 'Create video' }).isEnabled()).toBe(false);
    await target.screenshot({ path: join(ARTIFACTS, 'create-field-errors.png'), fullPage: true });
    browserErrors.length = 0; // the browser logs the refused quotes (400) itself
  });

  it('shows the error of a field written in Other fields under that box, not at the empty control of the same name', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a fox');
    await target.getByLabel('Other fields (JSON object, optional)').fill('{"cfg_scale": 7}');
    const refused = (await api.quote({ model: 'kling-v3', prompt: 'a fox', cfg_scale: 7 }).catch((error: unknown) => error)) as GatewayError;
    const message = refused.problem.errors!.find((error) => error.path === 'cfg_scale')!.message;

    const other = target.getByLabel('Other fields (JSON object, optional)');
    await expect.poll(() => other.getAttribute('aria-invalid')).toBe('true');
    expect(await target.locator('#extra-error').textContent()).toBe(`cfg_scale: ${message}`);
    // The CFG scale control is empty: nothing there is to be fixed.
    const control = target.getByLabel('CFG scale', { exact: true });
    expect([await control.inputValue(), await control.getAttribute('aria-invalid'), await target.locator('#cfg_scale-error').count()]).toEqual(['', null, 0]);
    browserErrors.length = 0; // the browser logs the refused quote (400) itself
  });

  it('stops asking for a quote when Other fields stop being JSON, and says the quote waits for them, instead of "Asking the gateway…" for ever', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a fox');
    await target.locator('.quote-summary').waitFor();
    // The quote of the next request is still on its way when its Other fields are edited.
    const slow = (url: URL) => url.pathname.endsWith('/v1/videos/quote');
    await target.route(slow, (route) => (route.request().postData()?.includes('metadata') ? undefined : route.continue()));
    const quote = target.locator('section.quote');
    const other = target.getByLabel('Other fields (JSON object, optional)');
    await other.fill('{"metadata": {"order": "42"}}');
    await expect.poll(() => quote.getAttribute('aria-busy')).toBe('true');
    await other.fill('{"metadata": {"order": "42"}');
    // Well under the console's own 15 s quote time limit, which would also end 'Asking the gateway…'.
    await expect.poll(() => quote.getAttribute('aria-busy'), { timeout: 10_000 }).toBe('false');
    expect(await quote.textContent()).toContain('No quote until Other fields can be sent: see the message there.');
    expect(await quote.textContent()).not.toContain('Asking the gateway');
    // Fixed: quoted again.
    await target.unroute(slow);
    await other.fill('{"metadata": {"order": "43"}}');
    await quote.locator('.quote-summary').waitFor();
  });

  it('shows why each provider cannot serve a request inside a 375 px screen, one card per provider', async () => {
    const target = await openConsole();
    await target.setViewportSize({ width: 375, height: 812 });
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a fox');
    await target.getByLabel('Model', { exact: true }).selectOption('kling-v3-omni');
    await target.getByLabel('Operation').selectOption('video-edit');
    const quoted = await api.quote({ model: 'kling-v3-omni', operation: 'video-edit', prompt: 'a fox' });
    expect(quoted.order).toEqual([]);
    for (const provider of quoted.providers) {
      const reasons = target.locator(`.quote-table tr[data-provider="${provider.provider}"] td`).last();
      await expect.poll(() => reasons.textContent()).toBe(provider.reasons.join('; '));
      const box = (await reasons.boundingBox())!;
      expect(box.x + box.width, `${provider.provider}'s reasons fit the screen`).toBeLessThanOrEqual(375);
    }
    const scroll = target.getByRole('region', { name: 'Quote by provider' });
    expect(await scroll.evaluate((element) => element.scrollWidth - element.clientWidth)).toBeLessThanOrEqual(0);
    expect(await accessibilityProblems(target)).toEqual([]);
    await target.screenshot({ path: join(ARTIFACTS, 'phone-create-refused.png'), fullPage: true });
  });
  it('shows each provider\'s reason of a capability 422 once: by field where it is about one, the rest by provider', async () => {
    const target = await openConsole();
    await signIn(target);
    // The form only sends what its quote found a provider for: the create is changed on its way
    // into one no provider can serve (the gateway's own 422, as a provider dropped since the quote would give).
    const refusedRequest = { model: 'kling-v1', prompt: 'a fox in the snow', duration: 7, aspect_ratio: 'auto' };
    await target.route(
      (url) => url.pathname.endsWith('/v1/videos'),
      (route) => (route.request().method() === 'POST' ? route.continue({ postData: JSON.stringify(refusedRequest) }) : route.continue()),
    );
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a fox in the snow');
    const create = target.getByRole('button', { name: 'Create video' });
    await expect.poll(() => create.isEnabled()).toBe(true);
    await create.focus();
    await target.keyboard.press('Enter');

    const refused = (await api.createVideo(refusedRequest as never).catch((error: unknown) => error)) as GatewayError;
    expect(refused.status).toBe(422);
    const { providers = [], errors = [] } = refused.problem;
    expect(errors.map((field) => field.path)).toEqual(['duration', 'aspect_ratio']);
    const alert = target.getByRole('alert');
    await expect.poll(() => alert.textContent()).toContain('No provider can serve this request');
    const text = (await alert.textContent()) ?? '';
    const count = (needle: string) => text.split(needle).length - 1;
    for (const { provider, reasons } of providers) {
      for (const reason of reasons) expect(count(`${provider}: ${reason}`), `${provider}: ${reason}`).toBe(1);
    }
    // The reasons about a field are listed under it.
    for (const field of errors) {
      const item = alert.locator('li').filter({ has: target.locator('code', { hasText: new RegExp(`^${field.path}$`) }) });
      for (const entry of field.providers ?? []) for (const reason of entry.reasons) expect(await item.textContent()).toContain(`${entry.provider}: ${reason}`);
    }
    // The keyboard is where it was: on Create video, not back at the top of the page.
    expect(await target.evaluate(() => document.activeElement?.textContent)).toBe('Create video');
    expect(await accessibilityProblems(target)).toEqual([]);
    await target.screenshot({ path: join(ARTIFACTS, 'create-capability-422.png'), fullPage: true });
    browserErrors.length = 0; // the browser logs the refused create (422) itself
  });

  it('follows a running task through a real restart of the gateway, on its file database, without a reload', async () => {
    const database = join(mkdtempSync(join(tmpdir(), 'kling-console-restart-')), 'gateway.db');
    const config = testConfig({
      database: { url: `sqlite:${database}` },
      sandbox: { queued_ms: 100, processing_ms: 6_000 },
      tracking: { poll_min_interval_ms: 200, poll_max_interval_ms: 1_000, poll_backoff: 1.5, poll_jitter: 0, webhook_safety_poll_ms: 1_000, lease_ms: 30_000, tick_ms: 50 },
    });
    const sandbox = await startSandbox(config, PROVIDERS, systemClock);
    const start = async (port: number) => {
      const gateway = await Gateway.create({ config, providers: PROVIDERS, endpoints: sandbox.endpoints, clock: systemClock, logger: createLogger('silent'), trustedResultOrigins: sandbox.resultOrigins });
      const url = await gateway.listen(port, '127.0.0.1');
      gateway.setPublicUrl(url);
      gateway.startWorkers();
      return { gateway, url };
    };
    let running = await start(await restartablePort());
    try {
      const task = await new GatewayClient({ baseUrl: running.url, apiKey: TENANT_KEY }).createVideo({ model: 'kling-v3', prompt: 'through a restart' });
      page = await context.newPage();
      browserErrors = [];
      // Only the page's own errors count here: the browser logs the refused connections itself.
      page.on('pageerror', (error) => browserErrors.push(error.message));
      await page.goto(`${running.url}/console/`);
      await signIn(page);
      await page.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
      await expect.poll(() => page.locator('.status-line').textContent()).toContain('following live');
      await page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));

      // The gateway stops (its event stream ends) and is away for a while: the page says so.
      const port = Number(new URL(running.url).port);
      await running.gateway.close();
      await expect.poll(() => page.getByRole('alert').textContent(), { timeout: 10_000 }).toContain('Cannot reach the gateway');
      expect(await page.locator('.status-line').textContent()).toContain('reconnecting');

      // Back on the same address: the page finds the task again and follows it to its end.
      running = await start(port);
      await page.locator('.status-line .status-succeeded').waitFor({ timeout: 25_000 });
      expect(await page.getByRole('alert').count()).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
    } finally {
      await running.gateway.close();
      await sandbox.close();
    }
  });
  it('signs out: the key is forgotten, and a reload stays signed out', async () => {
    const target = await openConsole();
    await signIn(target);
    expect(await target.evaluate(() => sessionStorage.length + localStorage.length)).toBe(1);
    await target.getByRole('button', { name: 'Sign out' }).click();
    await target.getByLabel('Gateway key').waitFor();
    expect(await target.evaluate(() => sessionStorage.length + localStorage.length)).toBe(0);
    expect(await context.cookies()).toEqual([]);
    await target.reload();
    await target.getByLabel('Gateway key').waitFor();
    expect(await target.getByRole('link', { name: 'Tasks' }).count()).toBe(0);
  });
  it('keeps a console signed in with a new key when a request of the key before is refused (401) after it: the refusal was not of this key', async () => {
    const target = await openConsole();
    await signIn(target);
    // Freepik is busy (429) and the only provider it may use, so the video waits in the gateway's queue.
    live.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'canceled by a key since signed out', routing: { providers: ['freepik'], allow_fallbacks: false } });
    // The cancel sent with the first key takes its time, and is answered 401 (that key revoked meanwhile).
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const cancel = (url: URL) => url.pathname.endsWith(`/v1/videos/${queued.id}/cancel`);
    let held = 0;
    await target.route(cancel, async (route) => {
      held += 1;
      await released;
      await route
        .fulfill({ status: 401, contentType: 'application/problem+json', json: { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'invalid API key' } })
        .catch(() => undefined);
    });
    try {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(queued.id)}`);
      await target.getByRole('button', { name: 'Cancel video' }).click();
      await target.getByRole('button', { name: 'Yes, cancel' }).click();
      await expect.poll(() => held).toBe(1);
      // Signed out, and in again with another key, while that cancel is on its way.
      await target.getByRole('button', { name: 'Sign out' }).click();
      await target.evaluate(() => (window.location.hash = '#/'));
      await target.getByLabel('Gateway key').fill(OTHER_TENANT_KEY);
      await target.getByRole('button', { name: 'Sign in' }).click();
      await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
      const answered = target.waitForEvent('requestfinished', (request) => cancel(new URL(request.url())));
      release();
      await answered;
      await target.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50))));
      // Still signed in with the new key.
      expect(await target.getByLabel('Gateway key').count()).toBe(0);
      expect(await target.getByRole('heading', { level: 1, name: 'Tasks' }).count()).toBe(1);
      browserErrors.length = 0; // the browser logs the refused request (401) itself
    } finally {
      release();
      await target.unroute(cancel);
      live.simulator('freepik').clearFaults();
      await api.cancelVideo(queued.id).catch(() => undefined);
    }
  });
  it('signs out with its message when the gateway stops accepting the key on the New video page', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByRole('heading', { level: 1, name: 'New video' }).waitFor();
    // The key is revoked while the form is open: the next quote is refused.
    const refused = { type: 'https://kling-gateway.dev/problems/unauthorized', title: 'Unauthorized', status: 401, detail: 'invalid API key' };
    await target.route((url) => url.pathname.endsWith('/v1/videos/quote'), (route) =>
      route.fulfill({ status: 401, contentType: 'application/problem+json', body: JSON.stringify(refused) }),
    );
    await target.getByLabel('Prompt', { exact: true }).fill('after the key was revoked');
    await target.getByLabel('Gateway key').waitFor();
    expect(await target.getByRole('status').textContent()).toContain('no longer accepts this key');
    expect(await target.evaluate(() => sessionStorage.length + localStorage.length)).toBe(0);
    browserErrors.length = 0; // the browser logs the refused request (401) itself
  });
  it('keeps the cost period in its address, reports whole days between two dates and downloads that report as CSV', async () => {
    const counted = await api.createVideo({ model: 'kling-v3', prompt: 'counted in the cost report' });
    // Ended before the page and the API are each asked for the report below: a task ending
    // between the two reads (its three seconds) would make them differ with both right.
    await api.waitForVideo(counted.id, { timeoutMs: 20_000 });
    const target = await openConsole();
    await signIn(target);
    const period = target.getByLabel('Period');
    await target.evaluate((to) => (window.location.hash = to), '#/cost?days=30');
    await expect.poll(() => period.inputValue()).toBe('30');
    await period.selectOption('90');
    await target.waitForURL(/#\/cost\?days=90$/);
    await target.reload();
    await expect.poll(() => period.inputValue()).toBe('90');

    // Whole UTC days, the last one included: the API's `to` is the day after it.
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    await period.selectOption('dates');
    await target.getByLabel('From (UTC)').fill(day(-1));
    await target.getByLabel('To (UTC, included)').fill(day(0));
    await target.waitForURL(new RegExp(`#/cost\\?from=${day(-1)}&to=${day(0)}$`));
    await target.reload();
    expect(await target.getByLabel('From (UTC)').inputValue()).toBe(day(-1));
    expect(await target.getByLabel('To (UTC, included)').inputValue()).toBe(day(0));
    const asked = { from: day(-1), to: day(1) };
    const report = await api.usage({ group_by: ['provider'], ...asked });
    expect(report.data.length).toBeGreaterThan(0);
    const rows = target.locator('section[aria-label="Spend by provider"] tbody tr');
    await expect.poll(() => rows.count()).toBe(report.data.length);
    // Each cell's own figure: Tasks may also hold a note of the tasks still running or canceled.
    const shown = await rows.evaluateAll((elements) => elements.map((row) => [...row.children].map((cell) => cell.firstChild?.textContent ?? cell.textContent)));
    // Each provider's tasks and cost, as the page lays them out (tasks no provider took: "no provider").
    const figures = (provider: unknown, tasks: unknown, cost: string) => `${String(provider ?? 'no provider')}: ${String(tasks)} tasks, ${cost}`;
    expect(shown.map((cells) => figures(cells[0], cells[1], cells.at(-1)!)).sort()).toEqual(
      report.data.map((row) => figures(row.provider, row.tasks, `${formatMoney(row.currency_amount ?? 0, row.currency ?? null, { grouped: true })}${usageEstimated(row) ? '~' : ''}`)).sort(),
    );

    const [file] = await Promise.all([target.waitForEvent('download'), target.getByRole('button', { name: 'Download CSV' }).click()]);
    expect(file.suggestedFilename()).toBe(`usage-${day(-1)}-to-${day(0)}.csv`);
    expect(readFileSync((await file.path())!, 'utf8')).toBe(await api.usageCsv({ group_by: ['day', 'provider', 'model'], ...asked }));
    expect(await accessibilityProblems(target)).toEqual([]);

    // Never a period the wrong way round (the API would refuse it): a From typed after To takes To
    // along, and an address with the dates swapped is read the right way round.
    await target.getByLabel('From (UTC)').fill(day(2));
    await target.waitForURL(new RegExp(`#/cost\\?from=${day(2)}&to=${day(2)}$`));
    await target.evaluate((to) => (window.location.hash = to), `#/cost?from=${day(0)}&to=${day(-1)}`);
    await expect.poll(() => target.getByLabel('From (UTC)').inputValue()).toBe(day(-1));
    expect(await target.getByLabel('To (UTC, included)').inputValue()).toBe(day(0));
    await expect.poll(() => rows.count()).toBe(report.data.length);
    expect(await target.getByRole('alert').count()).toBe(0);

    // At phone width each row is a card: its cost is on the screen, not scrolled out of it.
    await target.setViewportSize({ width: 375, height: 800 });
    const cost = rows.first().locator('td').last();
    const box = (await cost.boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(375);
    // The charts' words are as large on a phone as anywhere (a drawing scaled down to the screen
    // shrank them to 6 px), each value is inside its chart, and the page is no wider than the screen.
    const chartTexts = target.locator('svg.bars text');
    await expect.poll(() => chartTexts.count()).toBeGreaterThan(0);
    const rendered = await chartTexts.evaluateAll((elements: ChartText[]) =>
      elements.map((element) => {
        const chart = element.ownerSVGElement.getBoundingClientRect();
        const text = element.getBoundingClientRect();
        return {
          text: element.textContent,
          px: element.getScreenCTM()!.a * parseFloat(getComputedStyle(element).fontSize),
          inside: text.left >= chart.left && text.right <= chart.right,
        };
      }),
    );
    for (const shown of rendered) {
      expect(shown.px, `"${shown.text}" as rendered, in px`).toBeGreaterThanOrEqual(10);
      expect(shown.inside, `"${shown.text}" is inside its chart`).toBe(true);
    }
    expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), 'the Cost page fits 375 px').toBeLessThanOrEqual(0);
    await target.screenshot({ path: join(ARTIFACTS, 'phone-cost-charts.png'), fullPage: true });
    expect(await accessibilityProblems(target)).toEqual([]);
  });
  it('does not show the last period\'s cost figures under a newly chosen period while its report is on the way', async () => {
    await api.createVideo({ model: 'kling-v3', prompt: 'counted in one period' });
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'Cost' }).first().click();
    const charts = target.locator('svg.bars');
    await expect.poll(() => charts.count()).toBeGreaterThan(0);
    // The next reports take their time (a slow network): held until released.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const usage = (url: URL) => url.pathname.endsWith('/v1/usage');
    await target.route(usage, async (route) => {
      await released;
      // The page may be gone by then (a failed check closes it).
      await route.continue().catch(() => undefined);
    });
    try {
      await target.getByLabel('Period').selectOption('1');
      await target.getByText('Loading…').waitFor({ timeout: 5_000 });
      expect(await charts.count(), 'no chart of the 7 days under "Last 24 hours"').toBe(0);
      expect(await target.locator('table.usage').count()).toBe(0);
      release();
      await expect.poll(() => charts.count()).toBeGreaterThan(0);
      expect(await target.getByText('Loading…').count()).toBe(0);
    } finally {
      release();
      await target.unroute(usage);
    }
  });
  it('reads a Cost address with a day no calendar has as the default period, instead of "Something went wrong"', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), '#/cost?from=2026-13-45&to=2026-12-01');
    await target.locator('#chart-provider-title').waitFor();
    expect(await target.getByLabel('Period').inputValue()).toBe('7');
    expect(await target.getByRole('alert').count()).toBe(0);
  });

  it('does not name a provider that refused a task as the one holding it: the task list and the task page say none accepted it, and which was tried last', async () => {
    // Freepik takes a create at once first (earlier tests' tasks may still fill its slots, or its
    // circuit be open after their faults): the task is sent, and refused, within the wait below.
    await expect
      .poll(
        async () => {
          const freepik = (await api.listProviders()).data.find((provider) => provider.id === 'freepik')!;
          return freepik.circuit === 'closed' && freepik.in_flight < freepik.max_in_flight && !(await coolingDown()).includes('freepik');
        },
        { timeout: 30_000 },
      )
      .toBe(true);
    // On its create: a status poll of another test's task must not take the fault.
    live.simulator('freepik').injectFault({ on: 'submit', status: 500, times: 1 });
    const refused = await api.createVideo({ model: 'kling-v3', prompt: 'refused by its only provider', routing: { providers: ['freepik'], allow_fallbacks: false } });
    // Kept until the create is sent.
    const ended = await api.waitForVideo(refused.id, { timeoutMs: 20_000 });
    live.simulator('freepik').clearFaults();
    // The API names the provider tried last; none accepted it.
    expect(ended).toMatchObject({ status: 'failed', provider: 'freepik', provider_task_id: null });
    expect(ended.attempts.map((attempt) => attempt.outcome)).toEqual(['failed']);
    const target = await openConsole();
    await signIn(target);
    // The task list's Provider names no holder either, and says which was tried last.
    const listed = target.locator(`tr[data-task-id="${refused.id}"] td[data-label="Provider"]`);
    await listed.waitFor();
    expect(await listed.textContent()).toBe('—none accepted it; freepik was tried last');
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(refused.id)}`);
    await target.getByRole('heading', { level: 1, name: new RegExp(refused.id) }).waitFor();
    const provider = target.locator('dt:text-is("Provider") + dd');
    await expect.poll(() => provider.textContent()).toBe('— (no provider accepted it; freepik was tried last)');
  });

  it('shows a tenant with no tasks an empty list with a way to its first video, and a Cost page that says so without empty tables', async () => {
    const target = await openConsole();
    await target.getByLabel('Gateway key').fill(OTHER_TENANT_KEY);
    await target.getByRole('button', { name: 'Sign in' }).click();
    await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    await target.getByText('No videos yet.').waitFor();
    // The list's section is named by its heading (a landmark a screen reader can jump to).
    expect(await target.getByRole('region', { name: 'Tasks' }).count()).toBe(1);
    expect(await target.getByRole('link', { name: 'Create the first one' }).getAttribute('href')).toBe('#/new');
    await target.getByRole('link', { name: 'Cost' }).first().click();
    // One sentence for the empty period, not the same one under each of three empty charts.
    await target.getByText('No tasks in this period, so nothing was spent.').waitFor();
    expect(await target.locator('figure.chart').count()).toBe(0);
    // A table of no rows is only its column headings: a screen reader would read those out for nothing.
    expect(await target.locator('table.usage').count()).toBe(0);
    expect(await target.getByRole('button', { name: 'Download CSV' }).count()).toBe(1);
    expect(await accessibilityProblems(target)).toEqual([]);
  });

  it('names the time zone of the times it shows, and says the Cost page\'s days are UTC, for a reader whose date is not UTC\'s', async () => {
    const task = await api.waitForVideo((await api.createVideo({ model: 'kling-v3', prompt: 'a time to read' })).id, { timeoutMs: 20_000 });
    // A zone whose date now is not UTC's: 14 hours ahead late in the UTC day, 12 behind early in it.
    const ahead = new Date().getUTCHours() >= 11;
    const zone = ahead ? { id: 'Etc/GMT-14', name: 'GMT+14', hours: 14 } : { id: 'Etc/GMT+12', name: 'GMT-12', hours: -12 };
    const target = await openConsole();
    const devtools = await context.newCDPSession(target);
    await devtools.send('Emulation.setTimezoneOverride', { timezoneId: zone.id });
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(task.id)}`);
    const created = target.locator('dl.details dt:text-is("Created") + dd');
    await created.waitFor();
    // The reader's own date and time, and which zone that is: not a bare time that reads as UTC's.
    const local = new Date(Date.parse(task.created_at) + zone.hours * 3_600_000);
    expect(await created.textContent()).toContain(`${local.getUTCDate()}, ${local.getUTCFullYear()}`);
    expect(await created.textContent()).toContain(zone.name);
    expect(await target.locator('.timeline time').first().textContent()).toContain(zone.name);
    // The Cost page counts by UTC day, which is not this reader's day: it says so where the days are.
    await target.getByRole('link', { name: 'Cost' }).first().click();
    const byDay = target.locator('section[aria-label^="Spend by day"]');
    await byDay.locator('tbody th').first().waitFor();
    expect(await byDay.locator('tbody th').allTextContents()).toContain(task.created_at.slice(0, 10));
    expect(await byDay.locator('thead th').first().textContent()).toBe('Day (UTC)');
    expect(await byDay.locator('figcaption').textContent()).toBe('Spend by day (UTC)');
    expect(await accessibilityProblems(target)).toEqual([]);
  });

  it('heads the first column of each cost table as the others are headed: Provider, Model, Day (UTC)', async () => {
    const created = await api.createVideo({ model: 'kling-v3', prompt: 'a cost to tabulate' });
    await api.waitForVideo(created.id, { timeoutMs: 20_000 });
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'Cost' }).first().click();
    const tables = target.locator('table.usage');
    await expect.poll(() => tables.count()).toBe(3);
    const headers = await tables.evaluateAll((elements: { querySelector(selector: string): { textContent: string | null } | null }[]) =>
      elements.map((element) => element.querySelector('thead th')?.textContent),
    );
    expect(headers).toEqual(['Provider', 'Model', 'Day (UTC)']);
    expect(await target.getByRole('table', { name: 'Usage by provider' }).count()).toBe(1);
  });

  it('shows credits only by provider: a model\'s or a day\'s row would add one provider\'s credits to another\'s, units that differ', async () => {
    // One task on each provider, run side by side.
    await Promise.all(
      ['freepik', 'kling3api'].map(async (provider) => {
        const created = await api.createVideo({ model: 'kling-v3', prompt: `credits of ${provider}`, routing: { providers: [provider] } });
        await api.waitForVideo(created.id, { timeoutMs: 20_000 });
      }),
    );
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'Cost' }).first().click();
    const headings = (name: string) =>
      target.getByRole('table', { name }).locator('thead th').allTextContents();
    await expect.poll(() => headings('Usage by provider')).toContain('Credits');
    expect(await headings('Usage by model')).not.toContain('Credits');
    expect(await headings('Usage by day')).not.toContain('Credits');
    expect(await headings('Usage by model')).toContain('Cost');
  });

  it('marks the Cost page\'s figures that are wholly or partly estimates ~, as the task list marks a task\'s, and says what ~ means', async () => {
    // Freepik never reports a charge (its figures are the price list's); kling3api does.
    // One task on each provider, run side by side.
    await Promise.all(
      ['freepik', 'kling3api'].map(async (provider) => {
        const created = await api.createVideo({ model: 'kling-v3', prompt: `estimated or not: ${provider}`, routing: { providers: [provider] } });
        await api.waitForVideo(created.id, { timeoutMs: 20_000 });
      }),
    );
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'Cost' }).first().click();
    const cell = (table: string, name: string, label: string) =>
      target.getByRole('table', { name: table }).locator('tbody tr', { has: target.getByRole('rowheader', { name, exact: true }) }).locator(`td[data-label="${label}"]`);
    await expect.poll(() => cell('Usage by provider', 'freepik', 'Cost').textContent()).toMatch(/^\$[\d.,]+~$/);
    expect(await cell('Usage by provider', 'freepik', 'Credits').textContent()).toMatch(/~$/);
    expect(await cell('Usage by provider', 'freepik', 'Cost').getAttribute('title')).toBe('estimated');
    expect(await cell('Usage by provider', 'kling3api', 'Cost').textContent()).toMatch(/^\$[\d.,]+$/);
    expect(await cell('Usage by provider', 'kling3api', 'Credits').textContent()).not.toContain('~');
    // kling-v3's row adds up both: part of it is an estimate.
    expect(await cell('Usage by model', 'kling-v3', 'Cost').textContent()).toMatch(/~$/);
    expect(await cell('Usage by model', 'kling-v3', 'Cost').getAttribute('title')).toMatch(/^partly estimated: \$[\d.,]+ of it reported by the providers$/);
    // The chart says it as the table does.
    const values = await target.locator('svg[data-chart="chart-provider"] text.bar-value').allTextContents();
    expect(values.some((value) => value.endsWith('~'))).toBe(true);
    expect(await target.getByText('~ estimated, wholly or in part', { exact: false }).first().isVisible()).toBe(true);
  });

  it('draws euros and dollars in charts of their own, and names the currency of each row, when the providers price in two currencies', async () => {
    // Freepik priced in euros, kling3api in dollars: kling-v3 made by each is a row per currency.
    // A gateway of its own, whose tasks no page watches while they run: its short tasks (under a second).
    const mixed = await startLiveGateway({ providers: { freepik: { pricing: { currency: 'EUR' } } } });
    try {
      const mixedApi = new GatewayClient({ baseUrl: mixed.url, apiKey: TENANT_KEY });
      await Promise.all(
        ['freepik', 'kling3api'].map(async (provider) => {
          const created = await mixedApi.createVideo({ model: 'kling-v3', prompt: `priced by ${provider}`, routing: { providers: [provider] } });
          await mixedApi.waitForVideo(created.id, { timeoutMs: 20_000 });
        }),
      );
      const byModel = (await mixedApi.usage({ group_by: ['model'] })).data;
      expect(byModel.map((row) => `${row.model} ${row.currency}`).sort()).toEqual(['kling-v3 EUR', 'kling-v3 USD']);

      const target = await openConsole('', context, mixed);
      await signIn(target);
      await target.getByRole('link', { name: 'Cost' }).first().click();
      const models = target.getByRole('table', { name: 'Usage by model' });
      await models.locator('tbody tr').first().waitFor();
      // Each row says which money it counts: two rows both named "kling-v3" cannot be told apart.
      expect((await models.getByRole('rowheader').allTextContents()).sort()).toEqual(['kling-v3 (EUR)', 'kling-v3 (USD)']);
      // No chart measures euros and dollars with one ruler: each chart's amounts are in one currency.
      for (const field of ['provider', 'model', 'day']) {
        const charts = target.locator(`svg[data-chart^="chart-${field}"]`);
        expect(await charts.count()).toBe(2);
        for (const chart of await charts.all()) {
          const values = await chart.locator('text.bar-value').allTextContents();
          const currencies = new Set(values.map((value) => (value.includes('EUR') ? 'EUR' : value.startsWith('$') ? 'USD' : value)));
          expect(currencies.size, values.join(', ')).toBe(1);
        }
      }
      expect(await target.getByRole('figure', { name: 'Spend by model, EUR' }).count()).toBe(1);
      expect(await target.getByRole('figure', { name: 'Spend by model, USD' }).count()).toBe(1);
      expect(await accessibilityProblems(target)).toEqual([]);
      await target.screenshot({ path: join(ARTIFACTS, 'cost-two-currencies.png'), fullPage: true });
    } finally {
      await page?.close();
      await mixed.close();
    }
  });

  it('says in each cost table how many tasks are still running or were canceled, which Succeeded and Failed leave out', async () => {
    // The only provider serving kling-v2-6 is busy (429): the task waits in the queue, then is canceled there.
    live.simulator('kling-legacy').injectFault({ status: 429, times: 100 });
    const waiting = await api.createVideo({ model: 'kling-v2-6', prompt: 'waiting in the queue', routing: { allow_fallbacks: false } });
    const target = await openConsole();
    try {
      await signIn(target);
      await target.getByRole('link', { name: 'Cost' }).first().click();
      /** The note under the kling-v2-6 row of the model table, and what the API's report says of that row. */
      const seen = async () => {
        // Under the row's Tasks, which it accounts for: the row's name stays only its name.
        const cell = target.locator('table.usage').nth(1).locator('tbody tr', { has: target.locator('th', { hasText: /^kling-v2-6$/ }) }).locator('td[data-label="Tasks"] .row-note');
        const note = (await cell.count()) > 0 ? await cell.textContent() : null;
        const row = (await api.usage({ group_by: ['model'], from: new Date(Date.now() - 7 * 86_400_000).toISOString() })).data.find((item) => item.model === 'kling-v2-6');
        const expected = [row?.in_progress ? `${row.in_progress} running` : null, row?.canceled ? `${row.canceled} canceled` : null].filter(Boolean).join(' · ');
        return { note, expected };
      };
      await expect.poll(async () => { const { note, expected } = await seen(); return note !== null && note === expected && note.includes('running'); }).toBe(true);
      await api.cancelVideo(waiting.id);
      await target.reload();
      await target.locator('table.usage').first().waitFor();
      await expect.poll(async () => { const { note, expected } = await seen(); return note !== null && note === expected && note.includes('canceled'); }).toBe(true);
      expect(await accessibilityProblems(target)).toEqual([]);
    } finally {
      live.simulator('kling-legacy').clearFaults();
      await api.cancelVideo(waiting.id).catch(() => undefined);
    }
  });

  it("draws the cost charts in the reader's font size: larger words, rows grown to match, no word over a bar", async () => {
    const created = await api.createVideo({ model: 'kling-v3', prompt: 'a cost to chart' });
    await api.waitForVideo(created.id, { timeoutMs: 20_000 });
    // A reader who set the browser's font size to 20 px (16 px is the default).
    const { reader, close } = await browserWithFontSize(20);
    try {
      const target = await openConsole('', reader);
      await signIn(target);
      await target.getByRole('link', { name: 'Cost' }).first().click();
      const chartTexts = target.locator('svg.bars text');
      await expect.poll(() => chartTexts.count()).toBeGreaterThan(0);
      // The page's text and the charts' follow the reader's size: 0.75 of it in the charts, as 12 px is of 16.
      expect(await target.evaluate(() => getComputedStyle(document.documentElement).fontSize)).toBe('20px');
      const sizes = await chartTexts.evaluateAll((elements: ChartText[]) => elements.map((element) => element.getScreenCTM()!.a * parseFloat(getComputedStyle(element).fontSize)));
      for (const px of sizes) expect(px).toBe(15);
      const rows = await target.locator('svg.bars g').evaluateAll((elements: ChartRow[]) =>
        elements.map((row) => {
          const [label, bar, value] = ['.bar-label', '.bar', '.bar-value'].map((selector) => row.querySelector(selector)!.getBoundingClientRect());
          return { labelBottom: label!.bottom, barTop: bar!.top, barBottom: bar!.bottom, valueMiddle: (value!.top + value!.bottom) / 2 };
        }),
      );
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) {
        expect(row.labelBottom, 'a label stays above its bar').toBeLessThanOrEqual(row.barTop + 0.5);
        expect(row.valueMiddle, 'a value sits beside its bar').toBeGreaterThan(row.barTop);
        expect(row.valueMiddle, 'a value sits beside its bar').toBeLessThan(row.barBottom);
      }
      await target.screenshot({ path: join(ARTIFACTS, 'large-font-cost-charts.png'), fullPage: true });
      expect(await accessibilityProblems(target)).toEqual([]);
    } finally {
      await close();
    }
  });

  it('shows each task\'s operation in the task list, as the CLI\'s list does: a column of the table, a labelled field of a phone\'s card', async () => {
    const image = await api.createVideo({ model: 'kling-v1', operation: 'image-generation', prompt: 'an image, not a video' });
    const video = await api.createVideo({ model: 'kling-v3', prompt: 'a video, not an image' });
    const target = await openConsole();
    await signIn(target);
    const operationOf = (id: string) => target.locator(`tr[data-task-id="${id}"] td[data-label="Operation"]`);
    await operationOf(image.id).waitFor();
    expect(await target.locator('table.tasks thead th').allTextContents()).toContain('Operation');
    expect(await operationOf(image.id).textContent()).toBe('image-generation');
    expect(await operationOf(video.id).textContent()).toBe('text-to-video');
    await target.screenshot({ path: join(ARTIFACTS, 'tasks-operation.png'), fullPage: true });

    await target.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => operationOf(image.id).isVisible()).toBe(true);
    // Its card names the field, as it names the others.
    expect(await operationOf(image.id).evaluate((cell) => getComputedStyle(cell, '::before').content)).toBe('"Operation"');
    const box = (await operationOf(image.id).boundingBox())!;
    expect(box.x + box.width, 'the operation stays on the screen').toBeLessThanOrEqual(390);
    expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    await target.screenshot({ path: join(ARTIFACTS, 'phone-tasks-operation.png'), fullPage: true });
  });

  it('shows every column of the task list and the providers\' table at 768 px (a tablet held upright), where the tables are still tables', async () => {
    await api.createVideo({ model: 'kling-v3', prompt: `a prompt long enough to fill the task column many times over: ${'a red fox running through fresh snow, '.repeat(6)}` });
    const target = await openConsole();
    await target.setViewportSize({ width: 768, height: 1024 });
    await signIn(target);
    // How far each table on the page reaches past its box (scrolled sideways to be read), in px.
    const hidden = () => target.locator('.table-scroll').evaluateAll((elements: { scrollWidth: number; clientWidth: number; ariaLabel: string | null }[]) =>
      elements.map((element) => `${element.ariaLabel}: ${element.scrollWidth - element.clientWidth}`),
    );
    await target.locator('table.tasks tbody tr').first().waitFor();
    expect(await target.locator('table.tasks').evaluate((table) => getComputedStyle(table).display), 'a table, not cards').toBe('table');
    expect(await hidden()).toEqual(['Tasks, newest first: 0']);
    await target.getByRole('link', { name: 'Providers' }).first().click();
    await target.locator('tr[data-provider="freepik"]').waitFor();
    expect(await hidden()).toEqual(['Providers: 0']);
    await target.screenshot({ path: join(ARTIFACTS, 'tablet-providers.png'), fullPage: true });
  });

  it('keeps each task of the list on one line in a 1280 px window, the widest model names with their quality included, and shows them as cards at 375 px', async () => {
    const tasks = [
      await api.createVideo({ model: 'kling-v2-5-turbo', prompt: 'a turbo fox', quality: 'pro' }),
      await api.createVideo({ model: 'kling-v3-omni', prompt: 'a fox like this one', reference_images: ['https://example.com/fox.png'] }),
      await api.createVideo({ model: 'kolors-virtual-try-on-v1-5', start_image_url: 'https://example.com/person.png', reference_images: ['https://example.com/garment.png'] }),
    ];
    const target = await openConsole();
    await signIn(target);
    // The lines each cell after the task's own takes: its text's height in lines of the cell.
    const linesOf = (id: string) =>
      target.locator(`tr[data-task-id="${id}"] td:not(.primary-cell):not([data-label="Status"])`).evaluateAll(
        (cells: { dataset: { label?: string }; ownerDocument: { createRange(): { selectNodeContents(node: unknown): void; getBoundingClientRect(): { height: number } } } }[]) =>
          cells.map((cell) => {
            const range = cell.ownerDocument.createRange();
            range.selectNodeContents(cell);
            return `${cell.dataset.label}: ${Math.round(range.getBoundingClientRect().height / Number.parseFloat((getComputedStyle(cell) as unknown as { lineHeight: string }).lineHeight))}`;
          }),
      );
    for (const task of tasks) await target.locator(`tr[data-task-id="${task.id}"]`).waitFor();
    for (const task of tasks) expect(await linesOf(task.id), `${task.model} ${task.operation}`).toEqual(['Model: 1', 'Operation: 1', 'Provider: 1', 'Cost: 1', 'Created: 1']);
    const hidden = await target.locator('.table-scroll').evaluate((element: { scrollWidth: number; clientWidth: number }) => element.scrollWidth - element.clientWidth);
    expect(hidden, 'px of the table scrolled out of sight').toBe(0);
    await target.screenshot({ path: join(ARTIFACTS, 'tasks-one-line.png'), fullPage: true });

    await target.setViewportSize({ width: 375, height: 812 });
    const provider = target.locator(`tr[data-task-id="${tasks[2]!.id}"] td[data-label="Provider"]`);
    await expect.poll(() => provider.evaluate((cell) => getComputedStyle(cell, '::before').content)).toBe('"Provider"');
    const box = (await provider.boundingBox())!;
    expect(box.x + box.width, 'the provider stays on the screen').toBeLessThanOrEqual(375);
    expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    await target.screenshot({ path: join(ARTIFACTS, 'phone-tasks-one-line.png'), fullPage: true });
  });

  it('counts a provider\'s calls in words that fit the number: 1 call, 2 calls', async () => {
    const target = await openConsole();
    // The providers as the gateway has them, freepik with one call in the window and kling3api with two.
    await target.route(
      (url) => url.pathname.endsWith('/v1/providers'),
      async (route) => {
        const answer = await route.fetch();
        const body = (await answer.json()) as { data: { id: string; calls: number }[] };
        for (const provider of body.data) provider.calls = provider.id === 'freepik' ? 1 : 2;
        await route.fulfill({ response: answer, json: body });
      },
    );
    await signIn(target);
    await target.getByRole('link', { name: 'Providers' }).first().click();
    const success = (id: string) => target.locator(`tr[data-provider="${id}"] td[data-label="Success"] div`);
    await success('freepik').waitFor();
    expect(await success('freepik').textContent()).toBe('1 call');
    expect(await success('kling3api').textContent()).toBe('2 calls');
  });

  it('keeps every column of the providers\' table on a 768 px screen with the widest figures it shows: three-digit latencies, a cool-down, thousands of calls', async () => {
    const target = await openConsole();
    await target.setViewportSize({ width: 768, height: 1024 });
    // The gateway's own answer, with each provider's figures at their widest.
    await target.route(
      (url) => url.pathname.endsWith('/v1/providers'),
      async (route) => {
        const answer = await route.fetch();
        const body = (await answer.json()) as { data: Record<string, unknown>[] };
        for (const provider of body.data) {
          Object.assign(provider, {
            circuit: 'half_open',
            cooling_down_until: new Date(Date.now() + 60_000).toISOString(),
            in_flight: 200,
            max_in_flight: 200,
            queued: 1234,
            success_rate: 1,
            calls: 10_000,
            latency_p50_ms: 999,
            latency_p95_ms: 999,
            median_completion_ms: 9_900,
          });
        }
        await route.fulfill({ response: answer, json: body });
      },
    );
    await signIn(target);
    await target.getByRole('link', { name: 'Providers' }).first().click();
    await target.locator('tr[data-provider="freepik"]').waitFor();
    expect(await target.locator('table.providers').evaluate((table) => getComputedStyle(table).display), 'a table, not cards').toBe('table');
    const hidden = await target.locator('.table-scroll').evaluate((element: { scrollWidth: number; clientWidth: number }) => element.scrollWidth - element.clientWidth);
    expect(hidden, 'px of the table scrolled out of sight').toBe(0);
  });
  it('lays each table out as cards for a reader whose font is twice the default, as at phone width: every column on the screen, none scrolled sideways', async () => {
    await api.createVideo({ model: 'kling-v3', prompt: 'read at twice the font size' });
    // 32 px, 200 % of the default, in a 1280 px window: 40 of its em, as narrow as a phone is in 16 px ones.
    const { reader, close } = await browserWithFontSize(32);
    try {
      const target = await openConsole('', reader);
      await signIn(target);
      // How far each table on the page reaches past its box (scrolled sideways to be read), in px.
      const hidden = () => target.locator('.table-scroll').evaluateAll((elements: { scrollWidth: number; clientWidth: number; ariaLabel: string | null }[]) =>
        elements.map((element) => `${element.ariaLabel}: ${element.scrollWidth - element.clientWidth}`),
      );
      await target.locator('table.tasks tbody tr').first().waitFor();
      expect(await hidden()).toEqual(['Tasks, newest first: 0']);
      await target.getByRole('link', { name: 'Providers' }).first().click();
      await target.locator('tr[data-provider="freepik"]').waitFor();
      expect(await hidden()).toEqual(['Providers: 0']);
      await target.getByRole('link', { name: 'New video' }).first().click();
      await target.getByLabel('Prompt', { exact: true }).fill('a quote read at twice the font size');
      await target.locator('.quote-summary').waitFor();
      expect(await hidden()).toEqual(['Quote by provider: 0']);
      expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), 'the page fits its window').toBeLessThanOrEqual(0);
      await target.screenshot({ path: join(ARTIFACTS, 'double-font-quote.png'), fullPage: true });
    } finally {
      await close();
    }
  });

  it('shows the cost report and the quote by itself once the gateway can be reached again', async () => {
    const target = await openConsole();
    await signIn(target);
    const away = (url: URL) => url.pathname.endsWith('/v1/usage') || url.pathname.endsWith('/v1/videos/quote');
    await target.route(away, (route) => route.abort('connectionrefused'));
    await target.getByRole('link', { name: 'Cost' }).first().click();
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('Cannot reach the gateway');
    await target.unroute(away);
    // Nobody touches the page: it asks again, drops the error and shows the report.
    await target.locator('#chart-provider-title').waitFor({ timeout: 15_000 });
    expect(await target.getByRole('alert').count()).toBe(0);

    await target.route(away, (route) => route.abort('connectionrefused'));
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('asked while the gateway was away');
    await expect.poll(() => target.locator('.quote').textContent()).toContain('Cannot reach the gateway');
    await target.unroute(away);
    await expect.poll(() => target.locator('.quote-summary').getAttribute('data-order'), { timeout: 15_000 }).toBeTruthy();
    expect(await target.getByRole('button', { name: 'Create video' }).isEnabled()).toBe(true);
    browserErrors.length = 0; // the browser logs the refused connections itself
  });
  it('keeps keyboard focus on the cancel controls, closes the question on Escape, and focuses the result once canceled', async () => {
    const target = await openConsole();
    await signIn(target);
    // Freepik is busy (429) and the only provider it may use, so it waits in the gateway's queue;
    // its Retry-After outlasts these few seconds, so no resend is under way when the cancel comes (that
    // would answer 409, "being sent").
    live.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'canceled by keyboard', routing: { providers: ['freepik'], allow_fallbacks: false } });
    try {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(queued.id)}`);
      // Focus moves once the next control has rendered: asked until it has.
      const focused = () => target.evaluate(() => document.activeElement?.textContent?.trim() ?? null);
      await target.getByRole('button', { name: 'Cancel video' }).focus();
      await target.keyboard.press('Enter');
      await expect.poll(focused).toBe('Keep it');
      // Escape answers the question as Keep it does.
      await target.keyboard.press('Escape');
      await expect.poll(focused).toBe('Cancel video');
      expect(await target.getByRole('button', { name: 'Yes, cancel' }).count()).toBe(0);
      await target.keyboard.press('Enter');
      await expect.poll(focused).toBe('Keep it');
      await target.keyboard.press('Enter');
      await expect.poll(focused).toBe('Cancel video');
      await target.keyboard.press('Enter');
      await expect.poll(focused).toBe('Keep it');
      await target.keyboard.press('Shift+Tab');
      await expect.poll(focused).toBe('Yes, cancel');
      await target.keyboard.press('Enter');
      await target.locator('.status-line .status-canceled').waitFor();
      await expect.poll(focused).toBe('Result');
    } finally {
      live.simulator('freepik').clearFaults();
      await api.cancelVideo(queued.id).catch(() => undefined);
    }
  });
  it('keeps a canceled video canceled when its event stream, read before the cancel, answers after it: never running again with Cancel offered', async () => {
    // Freepik is busy (429) and the only provider it may use, so it waits in the gateway's queue.
    live.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'canceled while its stream is slow', routing: { providers: ['freepik'], allow_fallbacks: false } });
    // Its page is the first shown (no list, whose own stream of this task would be the one held below).
    const target = await openConsole(`#/tasks/${encodeURIComponent(queued.id)}`);
    // The page's event stream reads the task at once (queued) and its answer comes only after the
    // cancel's (a slow network); it then ends, as a proxy may end it.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const events = (url: URL) => url.pathname.endsWith(`/v1/videos/${queued.id}/events`);
    let streams = 0;
    await target.route(events, async (route) => {
      if ((streams += 1) > 1) return route.continue();
      const before = await api.getVideo(queued.id);
      await released;
      await route.fulfill({ status: 200, contentType: 'text/event-stream', body: `event: task.updated\ndata: ${JSON.stringify(before)}\n\n` });
    });
    try {
      await target.getByLabel('Gateway key').fill(TENANT_KEY);
      await target.getByRole('button', { name: 'Sign in' }).click();
      await target.getByRole('button', { name: 'Cancel video' }).waitFor();
      await expect.poll(() => streams).toBe(1);
      // Every status the page shows, in order.
      await target.evaluate(() => {
        const page = globalThis as any;
        const shown: string[] = [];
        page.shown = shown;
        const note = () => {
          const status = page.document.querySelector('.status-line .badge')?.textContent?.replace(/^\W+/, '').trim();
          if (status && status !== shown.at(-1)) shown.push(status);
        };
        note();
        new page.MutationObserver(note).observe(page.document.body, { childList: true, subtree: true, characterData: true });
      });
      await target.getByRole('button', { name: 'Cancel video' }).click();
      await target.getByRole('button', { name: 'Yes, cancel' }).click();
      await target.locator('.status-line .status-canceled').waitFor();
      // The stream's read of before the cancel arrives, the stream ends, and the page reads the task again.
      const readAgain = target.waitForResponse((response) => new URL(response.url()).pathname.endsWith(`/v1/videos/${queued.id}`) && response.request().method() === 'GET');
      release();
      await readAgain;
      await target.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50))));
      expect(await target.evaluate(() => (globalThis as any).shown)).toEqual(['queued', 'canceled']);
      expect(await target.getByRole('button', { name: 'Cancel video' }).count()).toBe(0);
    } finally {
      release();
      await target.unroute(events);
      live.simulator('freepik').clearFaults();
      await api.cancelVideo(queued.id).catch(() => undefined);
    }
  });
  it('moves the keyboard from Cancel video to the result when the task ends by itself, instead of dropping it to the top of the page', async () => {
    const target = await openConsole();
    await signIn(target);
    // Queued behind a busy provider, so Cancel video shows while the keyboard is on it.
    live.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'ended while the keyboard was on Cancel', routing: { providers: ['freepik'], allow_fallbacks: false } });
    try {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(queued.id)}`);
      const focused = () => target.evaluate(() => `${document.activeElement?.tagName} ${document.activeElement?.textContent?.trim()}`);
      await target.getByRole('button', { name: 'Cancel video' }).focus();
      await target.keyboard.press('Enter');
      await expect.poll(focused).toBe('BUTTON Keep it');
      // It ends elsewhere (another tab, the CLI) while the question is open here.
      await api.cancelVideo(queued.id);
      await target.locator('.status-line .status-canceled').waitFor();
      await expect.poll(focused).toBe('H2 Result');
    } finally {
      live.simulator('freepik').clearFaults();
    }
  });
  it('offers Cancel video on a running task only where it can work: not on one a provider that cannot cancel holds, which says so instead', async () => {
    // Tasks that take a minute upstream, so one stays processing while it is looked at.
    const slow = await startLiveGateway({ sandbox: { queued_ms: 100, processing_ms: 60_000 } });
    try {
      const slowApi = new GatewayClient({ baseUrl: slow.url, apiKey: TENANT_KEY });
      const target = await openConsole('', context, slow);
      await signIn(target);
      const running = await slowApi.createVideo({ model: 'kling-v3', prompt: 'held by a provider that cannot cancel', routing: { providers: ['freepik'], allow_fallbacks: false } });
      expect(running).toMatchObject({ status: 'queued', provider: 'freepik', provider_task_id: expect.any(String) });
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(running.id)}`);
      await target.locator('.status-line .status-processing').waitFor();
      const note = target.locator('.cancel');
      await expect.poll(() => note.textContent()).toContain('freepik cannot cancel a video it accepted');
      expect(await target.getByRole('button', { name: 'Cancel video' }).count()).toBe(0);
      expect(await accessibilityProblems(target)).toEqual([]);

      // One still queued (its only provider busy, 429) is offered Cancel, as before.
      slow.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
      const queued = await slowApi.createVideo({ model: 'kling-v3', prompt: 'still in the queue', routing: { providers: ['freepik'], allow_fallbacks: false } });
      expect(queued.status).toBe('queued');
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(queued.id)}`);
      await target.getByRole('button', { name: 'Cancel video' }).waitFor();
      slow.simulator('freepik').clearFaults();
      await slowApi.cancelVideo(queued.id);
      await target.locator('.status-line .status-canceled').waitFor();
    } finally {
      await page?.close();
      await slow.close();
    }
  });
  it('closes the cancel question when the gateway refuses the cancel, says why, and keeps the keyboard on Cancel video', async () => {
    const target = await openConsole();
    await signIn(target);
    live.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'cancel refused', routing: { providers: ['freepik'], allow_fallbacks: false } });
    // The gateway's answer for a task a provider holds (none of the three can cancel there).
    const detail = `video ${queued.id} is held by freepik, which cannot cancel a task it accepted.`;
    await target.route('**/v1/videos/*/cancel', (route) =>
      route.fulfill({ status: 409, contentType: 'application/problem+json', body: JSON.stringify({ type: 'about:blank', title: 'Conflict', status: 409, detail }) }),
    );
    try {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(queued.id)}`);
      const focused = () => target.evaluate(() => document.activeElement?.textContent?.trim() ?? null);
      await target.getByRole('button', { name: 'Cancel video' }).click();
      await target.getByRole('button', { name: 'Yes, cancel' }).click();
      await expect.poll(() => target.locator('.cancel').textContent()).toContain(detail);
      expect(await target.getByRole('button', { name: 'Yes, cancel' }).count()).toBe(0);
      await expect.poll(focused).toBe('Cancel video');
      browserErrors.length = 0; // the browser logs the refused request itself
    } finally {
      await target.unroute('**/v1/videos/*/cancel');
      live.simulator('freepik').clearFaults();
      await api.cancelVideo(queued.id).catch(() => undefined);
    }
  });
  /**
   * Cancels of the task open in `target` answered 409 cancel-pending (Retry-After: 1 s) `pending`
   * times, as the gateway answers while the task's create is on its way unanswered; then passed on.
   * The time each cancel was sent, in ms.
   */
  async function cancelPendingThen(target: Page, id: string, pending: number): Promise<number[]> {
    const sent: number[] = [];
    const detail = `video ${id} is being sent to freepik right now and whether it accepts is not known yet. The cancel is kept: if the provider turns the create down, the task ends canceled and is sent nowhere else. Read the task, or retry the cancel, after Retry-After seconds.`;
    await target.route('**/v1/videos/*/cancel', (route) => {
      sent.push(Date.now());
      if (sent.length > pending) return route.continue();
      return route.fulfill({
        status: 409,
        contentType: 'application/problem+json',
        headers: { 'retry-after': '1' },
        body: JSON.stringify({ type: 'https://kling-gateway.dev/problems/cancel-pending', title: 'Cancel not decided yet', status: 409, detail }),
      });
    });
    return sent;
  }
  it('says a cancel kept undecided (409 cancel-pending) is kept and ends the video canceled if the provider turns it down, asks again after its Retry-After, and shows it canceled', async () => {
    const target = await openConsole();
    await signIn(target);
    live.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'cancel kept undecided', routing: { providers: ['freepik'], allow_fallbacks: false } });
    const sent = await cancelPendingThen(target, queued.id, 1);
    try {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(queued.id)}`);
      await target.getByRole('button', { name: 'Cancel video' }).click();
      await target.getByRole('button', { name: 'Yes, cancel' }).click();
      const note = target.getByRole('status').filter({ hasText: 'The cancel is kept' });
      await note.waitFor();
      const text = (await note.textContent()) ?? '';
      expect(text).toContain('If the provider turns it down, the video ends canceled and is sent nowhere else');
      expect(text).toContain('Asking again in 1 s.');
      // Nothing a console user cannot act on: no header name, no "Conflict" to fix.
      expect(text).not.toContain('Retry-After');
      expect(await target.locator('.cancel [role="alert"]').count()).toBe(0);
      // Asked again by itself after the Retry-After, which the gateway now decides: canceled.
      await target.locator('.status-line .status-canceled').waitFor();
      expect(sent).toHaveLength(2);
      expect(sent[1]! - sent[0]!).toBeGreaterThanOrEqual(900);
      expect(await target.getByRole('status').filter({ hasText: 'The cancel is kept' }).count()).toBe(0);
      browserErrors.length = 0; // the browser logs the refused request itself
    } finally {
      await target.unroute('**/v1/videos/*/cancel');
      live.simulator('freepik').clearFaults();
      await api.cancelVideo(queued.id).catch(() => undefined);
    }
  });
  it('stops asking again after a few rounds of a cancel still undecided, says the page shows the end and Cancel asks again, and a final 409 says the video runs to the end and is billed', async () => {
    const target = await openConsole();
    await signIn(target);
    live.simulator('freepik').injectFault({ status: 429, times: 100, headers: { 'retry-after': '30' } });
    const queued = await api.createVideo({ model: 'kling-v3', prompt: 'cancel undecided for long', routing: { providers: ['freepik'], allow_fallbacks: false } });
    const sent = await cancelPendingThen(target, queued.id, 1_000);
    try {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(queued.id)}`);
      await target.getByRole('button', { name: 'Cancel video' }).click();
      await target.getByRole('button', { name: 'Yes, cancel' }).click();
      const note = target.getByRole('status').filter({ hasText: 'The cancel is kept' });
      await expect.poll(() => note.textContent(), { timeout: 10_000 }).toContain('Press Cancel video to ask again.');
      expect(sent).toHaveLength(4);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(sent).toHaveLength(4);
      expect(await target.getByRole('button', { name: 'Cancel video' }).count()).toBe(1);

      // Asked again by hand, the provider has meanwhile accepted it: the final 409 says so.
      await target.unroute('**/v1/videos/*/cancel');
      const detail = `video ${queued.id} was accepted by freepik, which documents no way to cancel a task; it runs to the end and is billed as usual.`;
      await target.route('**/v1/videos/*/cancel', (route) =>
        route.fulfill({ status: 409, contentType: 'application/problem+json', body: JSON.stringify({ type: 'https://kling-gateway.dev/problems/conflict', title: 'Conflict', status: 409, detail }) }),
      );
      await target.getByRole('button', { name: 'Cancel video' }).click();
      await target.getByRole('button', { name: 'Yes, cancel' }).click();
      await expect.poll(() => target.locator('.cancel').textContent()).toContain('it runs to the end and is billed as usual');
      expect(await note.count()).toBe(0);
      browserErrors.length = 0;
    } finally {
      await target.unroute('**/v1/videos/*/cancel');
      live.simulator('freepik').clearFaults();
      await api.cancelVideo(queued.id).catch(() => undefined);
    }
  });
  it('opens a task link whose id is not valid percent-encoding as a task the gateway does not have, without an error in the page', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), '#/tasks/%E0%A4%A');
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('Not found (404)');
    expect(await target.getByRole('heading', { level: 1 }).textContent()).toBe('Task %E0%A4%A');
    // The console goes on working.
    await target.getByRole('link', { name: 'Tasks', exact: true }).first().click();
    await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    expect(browserErrors.filter((error) => !error.includes('404'))).toEqual([]);
    browserErrors.length = 0; // the browser logs the 404 itself
  });
  it('opens a task link whose id is "." or ".." (no id a task can have) as a task that is not found, not as "Something went wrong"', async () => {
    const target = await openConsole();
    await signIn(target);
    for (const id of ['..', '.']) {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${id === '.' ? '%2E' : '%2E%2E'}`);
      await target.getByRole('heading', { level: 1, name: `Task ${id}` }).waitFor();
      await expect.poll(() => target.getByRole('alert').textContent()).toBe(`Not found. No task has the id “${id}”.`);
      expect(await target.getByRole('link', { name: 'Back to the tasks' }).count()).toBe(1);
    }
  });

  it('opens the task list at #/tasks (the parent of every task\'s address), instead of "Page not found", and Back does not return to it', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'Providers' }).click();
    await target.getByRole('heading', { level: 1, name: 'Providers' }).waitFor();
    for (const address of ['#/tasks', '#/tasks/']) {
      await target.evaluate((to) => (window.location.hash = to), address);
      await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
      await expect.poll(() => target.evaluate(() => window.location.hash)).toBe('#/');
      await expect.poll(() => target.title()).toBe('Tasks · Kling Gateway');
      // The address was replaced: Back leaves the list for the page before, not for #/tasks again.
      await target.goBack();
      await target.getByRole('heading', { level: 1, name: 'Providers' }).waitFor();
    }
    expect(browserErrors).toEqual([]);
  });
  it('names the tab after a console address that leads nowhere and moves the keyboard to its heading, instead of keeping the last page\'s name', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'Providers' }).click();
    await target.getByRole('heading', { level: 1, name: 'Providers' }).waitFor();
    await target.evaluate((to) => (window.location.hash = to), '#/no-such-page');
    await target.getByRole('heading', { level: 1, name: 'Page not found' }).waitFor();
    await expect.poll(() => target.title()).toBe('Page not found · Kling Gateway');
    await expect.poll(() => target.evaluate(() => `${document.activeElement?.tagName} ${document.activeElement?.textContent}`)).toBe('H1 Page not found');
  });
  it('asks for a key at the key field when Sign in is pressed with none, or only spaces, instead of doing nothing or leaving the last refusal there', async () => {
    const target = await openConsole();
    const asked: string[] = [];
    target.on('request', (request) => asked.push(request.url()));
    const field = target.getByLabel('Gateway key');
    await field.fill('not-the-key');
    await field.press('Enter');
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('does not accept this key');
    for (const typed of ['', '   ']) {
      await field.fill(typed);
      await field.press('Enter');
      await expect.poll(() => target.getByRole('alert').textContent()).toBe('Enter a gateway key.');
      expect(await field.getAttribute('aria-invalid')).toBe('true');
      // The keyboard stays in the field, where the key is typed.
      expect(await target.evaluate(() => document.activeElement?.id)).toBe('gateway-key');
    }
    expect(asked.filter((url) => url.includes('/v1/'))).toHaveLength(1);
    browserErrors.length = 0; // the browser logs the refused request (401) itself
  });
  it('says at the key field that a key with characters no HTTP header can carry cannot be right', async () => {
    const target = await openConsole();
    const asked: string[] = [];
    target.on('request', (request) => asked.push(request.url()));
    await target.getByLabel('Gateway key').fill('ключ-dev');
    await target.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => target.getByRole('alert').textContent()).toContain('cannot be a gateway key');
    const field = target.getByLabel('Gateway key');
    expect(await field.getAttribute('aria-invalid')).toBe('true');
    expect(await field.getAttribute('aria-describedby')).toContain('key-error');
    expect(asked.filter((url) => url.includes('/v1/'))).toEqual([]);
  });
  it('refuses a "__proto__" key in Other fields at that box, naming it, and sends nothing, instead of dropping it without a word', async () => {
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    await target.getByLabel('Prompt', { exact: true }).fill('a fox');
    await target.locator('.quote-summary').waitFor();
    const sent: string[] = [];
    target.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname.startsWith('/v1/videos')) sent.push(request.postData() ?? '');
    });
    const other = target.getByLabel('Other fields (JSON object, optional)');
    // JSON.parse keeps the key; merged into the request it would set the body's prototype and vanish.
    await other.fill('{"metadata": {"order": "42"}, "__proto__": {"duration": 10}}');
    await expect.poll(() => other.getAttribute('aria-invalid')).toBe('true');
    expect(await target.locator('#extra-error').textContent()).toContain('"__proto__"');
    expect(await other.getAttribute('aria-describedby')).toContain('extra-error');
    expect(await target.locator('section.quote').textContent()).toContain('No quote until Other fields');
    expect(await target.getByRole('button', { name: 'Create video' }).isEnabled()).toBe(false);
    // Deeper down it is named by its path.
    await other.fill('{"multi_shot": [{"prompt": "one shot", "__proto__": {}}]}');
    await expect.poll(() => target.locator('#extra-error').textContent()).toContain('multi_shot.0.__proto__');

    // Fixed: quoted again; neither refused request was ever sent.
    await other.fill('{"metadata": {"order": "43"}}');
    await target.locator('.quote-summary').waitFor();
    await expect.poll(() => sent.some((body) => body.includes('"43"'))).toBe(true);
    expect(sent.filter((body) => body.includes('"42"') || body.includes('__proto__') || body.includes('one shot'))).toEqual([]);
  });
  it("reads out a followed task's end once on its page, not twice (its status line and the page's announcement both)", async () => {
    const created = await api.createVideo({ model: 'kling-v3', prompt: `its end said once ${Date.now()}`, duration: 5 });
    const target = await openConsole();
    await signIn(target);
    await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(created.id)}`);
    await target.locator('.status-line').waitFor();
    expect(['queued', 'processing']).toContain(await target.locator('.status-line .badge').textContent().then((text) => text?.replace(/^\W+/, '')));
    // What each live region of the page says from now on: the words a screen reader is given.
    await target.evaluate(() => {
      const page = globalThis as any;
      const said: string[] = [];
      page.said = said;
      const live = (node: any) => node?.closest?.('[aria-live]:not([aria-live="off"]), [role="status"], [role="alert"], [role="log"]');
      new page.MutationObserver((records: any[]) => {
        const regions = new Set<any>();
        for (const record of records) {
          const region = live(record.target.nodeType === 1 ? record.target : record.target.parentElement);
          if (region) regions.add(region);
        }
        for (const region of regions) if (region.textContent.trim()) said.push(region.textContent.trim());
      }).observe(page.document.body, { childList: true, subtree: true, characterData: true });
    });
    await target.locator('.status-line .status-succeeded').waitFor({ timeout: 20_000 });
    await expect.poll(() => target.locator('#announcer').textContent()).toBe('Video succeeded');
    const said = (await target.evaluate(() => (globalThis as any).said)) as string[];
    expect(said.filter((words) => words.includes('succeeded'))).toEqual(['Video succeeded']);
  });

  it('says on the Providers page, within 10 s, that the gateway takes its refreshes and answers none, instead of showing the last figures as current for two minutes', async () => {
    const target = await openConsole();
    await target.clock.install();
    await target.reload();
    await signIn(target);
    await target.getByRole('link', { name: 'Providers' }).first().click();
    await target.locator('table.providers tbody tr').first().waitFor();
    // From now on the gateway takes every read of the providers and answers none until released.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const reads = (url: URL) => url.pathname.endsWith('/v1/providers');
    let held = 0;
    await target.route(reads, async (route) => {
      held += 1;
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      await target.clock.fastForward(5_000);
      await expect.poll(() => held).toBe(1);
      expect(await target.getByRole('alert').count()).toBe(0);
      await target.clock.fastForward(10_000);
      const alert = target.getByRole('alert');
      await expect.poll(() => alert.textContent()).toContain('did not answer within 10 s');
      expect(await alert.textContent()).toContain('Asking again every few seconds');
      // The gateway answers again: the page fills in by itself and the error goes.
      release();
      await target.unroute(reads);
      await target.clock.fastForward(3_000);
      await expect.poll(() => alert.count()).toBe(0);
      expect(await target.locator('table.providers tbody tr').count()).toBeGreaterThan(0);
    } finally {
      release();
      await target.unroute(reads);
      // The clock is the browser context's: the pages of the tests after this one run at the right time.
      await target.clock.setSystemTime(Date.now()).catch(() => undefined);
    }
  });

  it('gives up a sign-in the gateway takes and never answers after 15 s and says so, instead of "Checking…" for two minutes', async () => {
    const target = await openConsole();
    // The page's clock, moved on below instead of waiting for it.
    await target.clock.install();
    await target.reload();
    // The gateway takes the key's check and answers nothing until released.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const checks = (url: URL) => url.pathname.endsWith('/v1/providers');
    let held = 0;
    await target.route(checks, async (route) => {
      held += 1;
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      await target.getByLabel('Gateway key').fill(TENANT_KEY);
      const button = target.locator('form button[type="submit"]');
      await button.click();
      await expect.poll(() => held).toBe(1);
      expect(await button.textContent()).toBe('Checking…');
      await target.clock.fastForward(15_000);
      await expect.poll(() => target.getByRole('alert').textContent()).toContain('did not answer within 15 s');
      expect(await button.textContent()).toBe('Sign in');
      // Pressed again once the gateway answers: signed in.
      release();
      await target.unroute(checks);
      await button.click();
      await target.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    } finally {
      release();
      await target.unroute(checks);
      // The clock is the browser context's: the pages of the tests after this one run at the right time.
      await target.clock.setSystemTime(Date.now()).catch(() => undefined);
    }
  });

  it('gives up a quote the gateway takes and never answers after 15 s, says so at the quote, and asks again when told to', async () => {
    const target = await openConsole();
    // The page's clock, moved on below instead of waiting for it.
    await target.clock.install();
    await target.reload();
    await signIn(target);
    await target.getByRole('link', { name: 'New video' }).first().click();
    const prompt = 'asked of a gateway that hangs';
    // The gateway takes every quote of this prompt and answers none until released.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const quotes = (url: URL) => url.pathname.endsWith('/v1/videos/quote');
    let held = 0;
    await target.route(quotes, async (route) => {
      if (!route.request().postData()?.includes(prompt)) return route.continue();
      held += 1;
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      await target.getByLabel('Prompt', { exact: true }).fill(prompt);
      const quote = target.locator('section.quote');
      await expect.poll(() => held).toBe(1);
      expect(await quote.textContent()).toContain('Asking the gateway…');
      await target.clock.fastForward(15_000);
      await expect.poll(() => quote.textContent()).toContain('The gateway did not answer within 15 s');
      expect(await quote.textContent()).not.toContain('Asking the gateway');
      expect(await quote.getAttribute('aria-busy')).toBe('false');
      expect(await target.getByRole('button', { name: 'Create video' }).isEnabled()).toBe(false);

      // Asked again on request; the keyboard waits at the quote for its answer.
      await quote.getByRole('button', { name: 'Ask again' }).click();
      await expect.poll(() => held).toBe(2);
      await expect.poll(() => target.evaluate(() => `${document.activeElement?.tagName} ${document.activeElement?.textContent}`)).toBe('H2 Quote');
      release();
      await expect.poll(() => quote.locator('.quote-summary').getAttribute('data-order')).toBeTruthy();
      expect(await target.getByRole('button', { name: 'Create video' }).isEnabled()).toBe(true);
    } finally {
      release();
      await target.unroute(quotes);
    }
  });
  it('moves the keyboard to the next task when the focused one leaves a filtered list, and to the heading when none is left, instead of to the top of the page', async () => {
    // The only provider they may use is busy (429), so both wait in the queue until canceled.
    live.simulator('freepik').injectFault({ status: 429, times: 1000 });
    const onlyFreepik = { routing: { providers: ['freepik'], allow_fallbacks: false } };
    try {
      const older = await api.createVideo({ model: 'kling-v3', prompt: 'queued, older', ...onlyFreepik });
      const newer = await api.createVideo({ model: 'kling-v3', prompt: 'queued, newer', ...onlyFreepik });
      const target = await openConsole('#/?status=queued');
      await signIn(target);
      const focused = () =>
        target.evaluate(() => {
          const element = document.activeElement;
          return !element || element.tagName === 'BODY' ? 'nothing' : `${element.tagName} ${element.id || element.textContent?.trim()}`;
        });
      const rows = target.locator('tr[data-task-id]');
      await expect.poll(() => rows.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-task-id')))).toEqual([newer.id, older.id]);

      await target.locator(`tr[data-task-id="${newer.id}"] a.task-link`).focus();
      await api.cancelVideo(newer.id);
      // Its row goes; the keyboard goes on from the task that took its place.
      await expect.poll(() => rows.count()).toBe(1);
      await expect.poll(focused).toBe(`A ${older.id}`);
      await api.cancelVideo(older.id);
      await expect.poll(() => rows.count()).toBe(0);
      await expect.poll(focused).toBe('H1 tasks-heading');
      expect(await target.locator('.empty').textContent()).toContain('matches these filters');
    } finally {
      live.simulator('freepik').clearFaults();
    }
  });
  it('gives up the player\'s room when its video cannot be loaded, and offers the file\'s links in its place', async () => {
    const done = await api.waitForVideo((await api.createVideo({ model: 'kling-v3', prompt: 'a file that does not load' })).id, { timeoutMs: 20_000 });
    const target = await openConsole();
    await signIn(target);
    // The gateway's stored copy, or (where it keeps none, as here) the provider's own file: not found.
    const file = (url: URL) => url.pathname.endsWith('/content') || url.pathname.endsWith('.mp4');
    await target.route(file, (route) => route.fulfill({ status: 404, contentType: 'text/plain', body: 'not found' }));
    try {
      await target.evaluate((to) => (window.location.hash = to), `#/tasks/${encodeURIComponent(done.id)}`);
      const failed = target.locator('.output-failed');
      await failed.waitFor();
      expect(await failed.textContent()).toContain('Video output 1 could not be loaded here');
      expect(await failed.getByRole('link', { name: 'open the file' }).getAttribute('href')).toBe(done.outputs[0]!.url);
      // No player, and no 16:9 of empty room where it was.
      expect(await target.locator('video').count()).toBe(0);
      const box = (await failed.boundingBox())!;
      expect(box.height).toBeLessThan((box.width * 9) / 16 / 2);
    } finally {
      await target.unroute(file);
    }
    browserErrors.length = 0; // the browser logs the refused file (404) itself
  });
  it('drops the last period\'s cost error when another period is chosen, and says its report is loading', async () => {
    const target = await openConsole();
    await signIn(target);
    // The reports of the first period cannot be had; those of the next take their time.
    let mode: 'refuse' | 'hold' = 'refuse';
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const usage = (url: URL) => url.pathname.endsWith('/v1/usage');
    await target.route(usage, async (route) => {
      if (mode === 'refuse') return route.abort('connectionrefused');
      await released;
      await route.continue().catch(() => undefined);
    });
    try {
      await target.getByRole('link', { name: 'Cost' }).first().click();
      await expect.poll(() => target.getByRole('alert').textContent()).toContain('Cannot reach the gateway');
      mode = 'hold';
      await target.getByLabel('Period').selectOption('30');
      await target.getByText('Loading…').waitFor({ timeout: 5_000 });
      expect(await target.getByRole('alert').count(), 'no error of the last period under "Last 30 days"').toBe(0);
      release();
      await target.locator('#chart-provider-title').waitFor();
      expect(await target.getByRole('alert').count()).toBe(0);
    } finally {
      release();
      await target.unroute(usage);
    }
    browserErrors.length = 0; // the browser logs the refused connections itself
  });
  it('lists each model with its operations and the providers serving each, as GET /v1/models has them: tables, and cards at 320 px', async () => {
    const models = await api.listModels();
    const target = await openConsole();
    await signIn(target);
    await target.getByRole('link', { name: 'Models' }).click();
    await target.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
    expect(target.url()).toMatch(/#\/models$/);
    await expect.poll(() => target.evaluate(() => document.activeElement?.tagName)).toBe('H1');
    const panels = target.locator('section[data-model]');
    await panels.first().waitFor();
    expect(await panels.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-model')))).toEqual(models.data.map((entry) => entry.model));
    for (const entry of models.data) {
      const panel = target.locator(`section[data-model="${entry.model}"]`);
      expect(await panel.getByRole('heading', { level: 2 }).textContent()).toBe(entry.model);
      const rows = panel.locator('tr[data-operation]');
      expect(await rows.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-operation')))).toEqual(entry.operations.map((item) => item.operation));
      for (const operation of entry.operations) {
        const served = panel.locator(`tr[data-operation="${operation.operation}"] li[data-provider]`);
        expect(await served.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-provider')))).toEqual(operation.providers.map((item) => item.provider));
        // A provider may serve an operation two ways (two upstream endpoints): each is listed.
        for (const [index, provider] of operation.providers.entries()) {
          const text = await served.nth(index).textContent();
          expect(text).toContain(provider.qualities.join(', '));
          expect(text).toContain(provider.upstream);
          expect(text?.includes('disabled')).toBe(!provider.enabled);
          for (const [field, rule] of Object.entries(provider.fields)) if (rule.required) expect(text).toContain(field);
        }
      }
    }
    // Freepik's text-to-video requires no one field, but one of two: said as such.
    const freepikT2v = target.locator('section[data-model="kling-v3"] tr[data-operation="text-to-video"] li[data-provider="freepik"]');
    expect(await freepikT2v.textContent()).toContain('needs prompt or multi_shot');
    expect(await target.locator('table.models').first().evaluate((table) => getComputedStyle(table).display), 'a table at 1280 px').toBe('table');
    expect(await accessibilityProblems(target)).toEqual([]);

    // At phone width each operation is a card, whole on the screen.
    await target.setViewportSize({ width: 320, height: 640 });
    expect(await target.locator('table.models').first().evaluate((table) => getComputedStyle(table).display), 'cards at 320 px').toBe('block');
    expect(await target.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), 'the Models page fits 320 px').toBeLessThanOrEqual(0);
    await target.screenshot({ path: join(ARTIFACTS, 'phone-models.png'), fullPage: true });
    expect(await accessibilityProblems(target)).toEqual([]);
  });
});
