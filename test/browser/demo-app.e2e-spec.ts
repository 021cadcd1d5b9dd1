import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startDemoServer } from '../../scripts/demo-server.mjs';
import { launchChromium } from '../support/browser.js';
import { eventually } from '../support/eventually.js';
import { TestSystem } from '../support/system.js';

const SCREENSHOTS = 'test-output/browser';
const WAIT_MS = 10_000;

/**
 * The demo app in a real browser (Debian's Chromium) against the real services: two tabs stay in
 * sync, offline edits survive a reload and land once after reconnecting, concurrent edits merge.
 */
describe('demo app in a browser', () => {
  let system: TestSystem;
  let server: Server;
  let browser: Browser;
  let context: BrowserContext;
  let baseUrl: string;
  let alice: Page;
  let bob: Page;

  beforeAll(async () => {
    system = await TestSystem.start({ gateways: 1 });
    server = await startDemoServer({
      port: 0,
      host: '127.0.0.1',
      wsUrl: system.gateways[0]!.url,
      mintToken: ({ tenant, user }) => system.mintToken({ sub: user, tenant }),
    });
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1400, height: 700 } });
    [alice, bob] = await Promise.all([open('alice'), open('bob')]);
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    await system?.stop();
  });

  async function open(user: string, browserContext = context, query = ''): Promise<Page> {
    const page = await browserContext.newPage();
    page.on('pageerror', (error) => console.error(`[${user}] page error: ${error.message}`));
    await page.goto(`${baseUrl}/?user=${user}${query}`);
    await waitLive(page);
    return page;
  }

  const waitLive = (page: Page) => page.getByTestId('connection-state').getByText('live').waitFor({ timeout: WAIT_MS });
  const card = (page: Page, id: string) => page.getByTestId(`order-${id}`);
  const cardIn = (page: Page, id: string, stage: string) =>
    page.locator(`[data-testid="order-${id}"][data-stage="${stage}"]`);
  const pending = async (page: Page) => Number(await page.getByTestId('pending-count').textContent());

  async function createOrder(page: Page): Promise<string> {
    const before = new Set(await page.locator('[data-testid^="order-"]').evaluateAll(ids));
    await page.getByTestId('new-order').click();
    const handle = await page.waitForFunction(
      (known) =>
        [...document.querySelectorAll('[data-testid^="order-"]')]
          .map((element) => element.getAttribute('data-testid'))
          .find((id) => id && !known.includes(id)),
      [...before],
      { timeout: WAIT_MS },
    );
    return String(await handle.jsonValue()).replace(/^order-/, '');
  }

  const noteIs = (page: Page, id: string, note: string) =>
    page.waitForFunction(
      ([orderId, expected]) =>
        document.querySelector<HTMLInputElement>(`[data-testid="order-${orderId}"] input`)?.value === expected,
      [id, note] as const,
      { timeout: WAIT_MS },
    );
  const zeroPending = (page: Page) =>
    page.waitForFunction(() => document.querySelector('[data-testid="pending-count"]')?.textContent === '0', null, {
      timeout: WAIT_MS,
    });

  function ids(elements: Element[]): string[] {
    return elements.map((element) => element.getAttribute('data-testid') ?? '');
  }

  async function serverOrder(id: string): Promise<{ data: Record<string, unknown>; version: number } | undefined> {
    const rows = await system.query<{ data: Record<string, unknown>; version: number }>(
      `SELECT data, version::int AS version FROM entities WHERE tenant = 'acme' AND entity_type = 'orders' AND entity_id = $1`,
      [id],
    );
    return rows[0];
  }

  it('keeps two tabs in sync', async () => {
    const id = await createOrder(alice);
    await card(bob, id).waitFor({ timeout: WAIT_MS });

    await card(bob, id).getByLabel('move on').click();
    await cardIn(alice, id, 'picking').waitFor({ timeout: WAIT_MS });

    await card(alice, id).getByRole('textbox').fill('fragile, handle with care');
    await noteIs(bob, id, 'fragile, handle with care');
    await zeroPending(alice);
    await zeroPending(bob);
    await alice.screenshot({ path: `${SCREENSHOTS}/two-tabs-alice.png` });
    await bob.screenshot({ path: `${SCREENSHOTS}/two-tabs-bob.png` });
  });

  it('keeps an offline edit across a reload and lands it once after reconnecting', async () => {
    const id = await createOrder(alice);
    await card(bob, id).waitFor({ timeout: WAIT_MS });

    await alice.getByTestId('toggle-offline').click();
    await alice.getByTestId('connection-state').getByText('offline').waitFor({ timeout: WAIT_MS });
    await card(alice, id).getByLabel('move on').click();
    await cardIn(alice, id, 'picking').waitFor({ timeout: WAIT_MS });
    expect(await pending(alice)).toBe(1);

    await alice.reload();
    // Still offline (the choice is kept), and the edit is still there, still pending.
    await alice.getByTestId('connection-state').getByText('offline').waitFor({ timeout: WAIT_MS });
    await cardIn(alice, id, 'picking').waitFor({ timeout: WAIT_MS });
    expect(await pending(alice)).toBe(1);
    expect(await cardIn(bob, id, 'new').count()).toBe(1);
    expect((await serverOrder(id))?.data.stage).toBe('new');
    await alice.screenshot({ path: `${SCREENSHOTS}/offline-after-reload.png` });

    await alice.getByTestId('toggle-offline').click();
    await waitLive(alice);
    await cardIn(bob, id, 'picking').waitFor({ timeout: WAIT_MS });
    await zeroPending(alice);
    const stored = await serverOrder(id);
    expect(stored).toMatchObject({ version: 2, data: { stage: 'picking', updatedBy: 'alice' } });
    const changes = await system.query<{ n: string }>(
      `SELECT count(*) AS n FROM changes WHERE entity_type = 'orders' AND entity_id = $1`,
      [id],
    );
    expect(Number(changes[0]?.n)).toBe(2); // created once, moved once
  });

  it('merges an edit made offline in another browser with an edit made meanwhile', async () => {
    // Another browser profile, so that only it goes offline.
    const elsewhere = await browser.newContext({ viewport: { width: 1400, height: 700 } });
    try {
      const carol = await open('carol', elsewhere);
      const id = await createOrder(alice);
      await card(carol, id).waitFor({ timeout: WAIT_MS });

      await elsewhere.setOffline(true);
      await carol
        .getByTestId('connection-state')
        .getByText(/offline|reconnecting/)
        .waitFor({ timeout: WAIT_MS });
      await card(carol, id).getByLabel('move on').click();
      await cardIn(carol, id, 'picking').waitFor({ timeout: WAIT_MS });
      expect(await pending(carol)).toBe(1);

      await card(alice, id).getByRole('textbox').fill('gift wrap');
      await eventually(async () => (await serverOrder(id))?.data.note === 'gift wrap', 'the note on the server');

      await elsewhere.setOffline(false);
      await waitLive(carol);
      for (const page of [alice, bob, carol]) {
        await cardIn(page, id, 'picking').waitFor({ timeout: WAIT_MS });
        await noteIs(page, id, 'gift wrap');
      }
      await zeroPending(carol);
      expect((await serverOrder(id))?.data).toMatchObject({ stage: 'picking', note: 'gift wrap', updatedBy: 'carol' });
      await carol.screenshot({ path: `${SCREENSHOTS}/merged-after-offline.png` });
    } finally {
      await elsewhere.close();
    }
  });

  it('syncs a tab that uses Server-Sent Events and HTTP with one on WebSocket', async () => {
    const dave = await open('dave', context, '&transport=sse');
    const id = await createOrder(alice);
    await card(dave, id).waitFor({ timeout: WAIT_MS });
    await card(dave, id).getByLabel('move on').click();
    await cardIn(alice, id, 'picking').waitFor({ timeout: WAIT_MS });
    await zeroPending(dave);
    await dave.close();
  });
});
