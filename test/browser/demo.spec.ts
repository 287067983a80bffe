/**
 * The demo web client in real Chromium (Debian's /usr/bin/chromium driven by playwright-core):
 * several users in separate browser contexts against one app. Screenshots go to
 * test-results/browser/. Without Chromium the suite is skipped loudly, except in CI (CI=true),
 * where that is a failure: .ci/run installs it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startApp, type TestApp } from '../support/app';
import {
  ADMIN,
  ADMIN_ENV,
  loginAdmin,
  NO_WRITE_LIMITS,
  newRoom,
  newUser,
  send,
  uniqueName,
  type TestUser,
} from '../support/factories';
import { FakeLlm } from '../support/fake-llm';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SHOTS = join(process.cwd(), 'test-results', 'browser');
const hasChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === 'true';
if (!hasChromium && !inCi) {
  const bar = '!'.repeat(78);
  console.warn(
    `\n${bar}\n!! SKIPPING the browser tests (test/browser): ${CHROMIUM} is missing.\n` +
      `!! Install it with: apt-get update && apt-get install -y chromium\n${bar}\n`,
  );
}
const suite = hasChromium || inCi ? describe : describe.skip;
const SLOW = 60_000;

suite('demo web client in Chromium', () => {
  let t: TestApp;
  let fake: FakeLlm;
  let browser: Browser;
  let admin: TestUser;
  let alice: TestUser;
  let bob: { username: string; password: string };
  let room: { id: string; name: string };
  const dialogs: string[] = []; // alerts and prompts: none is expected
  const confirms: string[] = []; // window.confirm: answered with `confirmAnswer`
  let confirmAnswer = true;
  const pageErrors: string[] = [];
  let pa: Page; // alice
  let pb: Page; // bob

  async function newPage(viewport = { width: 1100, height: 720 }): Promise<Page> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on('dialog', (d) => {
      if (d.type() === 'confirm') {
        confirms.push(d.message());
        void (confirmAnswer ? d.accept() : d.dismiss());
        return;
      }
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(t.url);
    return page;
  }
  async function logIn(
    user: { username: string; password: string },
    viewport?: { width: number; height: number },
  ): Promise<Page> {
    const page = await newPage(viewport);
    await page.fill('input[name=username]', user.username);
    await page.fill('input[name=password]', user.password);
    await page.click('button[type=submit]');
    await page.locator('[data-testid=me]', { hasText: user.username }).waitFor();
    return page;
  }
  const openRoom = async (page: Page, name: string) => {
    await page.click(`[data-room="${name}"] button.link`);
    await page.locator('[data-testid=room-title]', { hasText: name }).waitFor();
  };
  const message = (page: Page, text: string) =>
    page.locator('[data-testid=messages] li.msg', { hasText: text });
  /** A message whose text is exactly `text` (hasText matches substrings: "1" would match "10"). */
  const exactly = (page: Page, text: RegExp) =>
    page.locator('[data-testid=messages] [data-testid=text]').filter({ hasText: text });
  const say = async (page: Page, text: string) => {
    await page.fill('input[name=message]', text);
    await page.press('input[name=message]', 'Enter');
  };
  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    if (!hasChromium) throw new Error(`${CHROMIUM} is missing: CI must install it (.ci/run)`);
    mkdirSync(SHOTS, { recursive: true });
    // The page is served from dist/web: build it (esbuild, well under a second) before the app starts.
    execFileSync(process.execPath, ['web/build.mjs'], { stdio: 'pipe' });
    fake = await FakeLlm.start();
    // The scroll-back test seeds history faster than a person types.
    t = await startApp({
      ...ADMIN_ENV,
      ...NO_WRITE_LIMITS,
      LLM_BASE_URL: fake.url,
      PERSONA_STREAM_FLUSH_MS: '20',
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    admin = await loginAdmin(t);
    alice = await newUser(t);
    room = await newRoom(t, admin, { name: uniqueName('lobby') });
  }, SLOW);
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await fake?.close();
  });
  afterEach(() => {
    expect(pageErrors.splice(0)).toEqual([]);
  });

  it(
    'signs up and logs in; one user sends, the other sees it live, with typing and presence',
    async () => {
      bob = { username: uniqueName('bob'), password: 'bob-password-1' };
      pb = await newPage();
      await pb.fill('input[name=username]', bob.username);
      await pb.fill('input[name=email]', `${bob.username}@example.com`);
      await pb.fill('input[name=password]', bob.password);
      await pb.click('[data-testid=signup]');
      await pb.locator('[data-testid=me]', { hasText: bob.username }).waitFor();

      pa = await logIn(alice);
      await openRoom(pa, room.name);
      await openRoom(pb, room.name);
      await pb.locator(`[data-member="${alice.username}"].online`).waitFor();

      await pa.fill('input[name=message]', 'hello bo');
      await pb.locator('#typing', { hasText: `${alice.username} is typing` }).waitFor();
      await pa.fill('input[name=message]', '');
      await say(pa, 'hello bob, live from alice');
      await message(pb, 'hello bob, live from alice').waitFor();
      expect(await pb.locator('#typing').textContent()).toBe('');
      // Each message shows its time (createdAt, in the reader's local time).
      const time = message(pb, 'hello bob, live from alice').locator('[data-testid=time]');
      const at = new Date((await time.getAttribute('datetime'))!);
      expect(Math.abs(Date.now() - at.getTime())).toBeLessThan(60_000);
      expect(await time.textContent()).toBe(
        await pb.evaluate(
          (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }),
          at.toISOString(),
        ),
      );
      await shot(pb, 'room-view');
    },
    SLOW,
  );

  it(
    'shows <img src=x onerror=alert(1)> as text and runs nothing',
    async () => {
      const evil = '<img src=x onerror=alert(1)>';
      await say(pa, evil);
      const li = message(pb, evil);
      await li.waitFor();
      expect(await li.locator('[data-testid=text]').textContent()).toBe(evil);
      expect(await pb.locator('[data-testid=messages] img').count()).toBe(0);
      expect(await pa.locator('[data-testid=messages] img').count()).toBe(0);
      await pb.waitForTimeout(300); // an onerror would have fired by now
      expect(dialogs).toEqual([]);
      await shot(pb, 'xss-as-text');
    },
    SLOW,
  );

  it(
    'edit, react and delete own messages reach the other user live',
    async () => {
      await say(pa, 'a message to change');
      const mine = message(pa, 'a message to change');
      await mine.waitFor();
      await mine.getByRole('button', { name: 'Edit' }).click();
      await pa.fill('[data-testid=edit-input]', 'a message, changed');
      await pa.press('[data-testid=edit-input]', 'Enter');
      const theirs = message(pb, 'a message, changed');
      await theirs.waitFor();
      expect(await theirs.textContent()).toContain('(edited)');

      await message(pa, 'a message, changed').getByRole('button', { name: '👍' }).click();
      await theirs.getByRole('button', { name: '👍 1' }).waitFor();

      // Delete asks first; "Cancel" keeps the message.
      confirmAnswer = false;
      await message(pa, 'a message, changed').getByRole('button', { name: 'Delete' }).click();
      expect(confirms.splice(0)).toEqual(['Delete this message?']);
      await pa.waitForTimeout(300);
      expect(await message(pa, 'a message, changed').locator('.text').textContent()).toBe(
        'a message, changed',
      );
      confirmAnswer = true;
      await message(pa, 'a message, changed').getByRole('button', { name: 'Delete' }).click();
      expect(confirms.splice(0)).toEqual(['Delete this message?']);
      await pb.locator('li.msg.deleted', { hasText: 'message deleted' }).waitFor();
      expect(await message(pb, 'a message, changed').count()).toBe(0);
      // Only the author gets Edit and Delete.
      expect(await message(pb, 'hello bob').getByRole('button', { name: 'Edit' }).count()).toBe(0);
    },
    SLOW,
  );

  it(
    'counts unread messages of rooms not open, and clears the count on opening',
    async () => {
      const other = await newRoom(t, admin, { name: uniqueName('quiet') });
      await pb.reload();
      await pb.locator(`[data-room="${other.name}"]`).waitFor();
      await openRoom(pb, other.name);
      await send(t, alice, room.id, 'while bob looks elsewhere 1');
      await send(t, alice, room.id, 'while bob looks elsewhere 2');
      const badge = pb.locator(`[data-room="${room.name}"] [data-testid=unread]`);
      await badge.filter({ hasText: '2' }).waitFor();
      await openRoom(pb, room.name);
      await message(pb, 'while bob looks elsewhere 2').waitFor();
      await badge.waitFor({ state: 'detached' });
    },
    SLOW,
  );

  it(
    'scrolls back through history with "Load older messages"',
    async () => {
      const old = await newRoom(t, admin, { name: uniqueName('history') });
      await t.http().post(`/api/v1/rooms/${old.id}/join`).set(alice.auth).expect(200);
      for (let i = 1; i <= 60; i++) await send(t, alice, old.id, `old message ${i}`);
      await pa.reload();
      await pa.locator(`[data-room="${old.name}"]`).waitFor();
      await openRoom(pa, old.name);
      await message(pa, 'old message 60').waitFor();
      expect(await exactly(pa, /^old message 1$/).count()).toBe(0);
      await pa.click('#older');
      await exactly(pa, /^old message 1$/).waitFor();
      expect(await exactly(pa, /^old message \d+$/).count()).toBe(60);
      expect(await pa.locator('#older').isHidden()).toBe(true);
    },
    SLOW,
  );

  it(
    'keeps the session across a reload',
    async () => {
      await pb.reload();
      await pb.locator('[data-testid=me]', { hasText: bob.username }).waitFor();
      expect(await pb.locator('[data-testid=auth]').count()).toBe(0);
      await openRoom(pb, room.name);
      await message(pb, 'hello bob, live from alice').waitFor();
    },
    SLOW,
  );

  it(
    'an admin creates a room that appears for the other user at once, and deletes it',
    async () => {
      const pr = await logIn({ username: ADMIN.username, password: ADMIN.password });
      const name = uniqueName('fresh');
      await pr.fill('input[name=room-name]', name);
      await pr.click('[data-testid=create-room] button[type=submit]');
      await pr.locator(`[data-room="${name}"]`).waitFor();
      await pb.locator(`[data-room="${name}"]`).waitFor(); // no reload
      await shot(pb, 'room-created');
      // Bob goes in; when the admin deletes the room, it leaves his list and his view.
      await openRoom(pb, name);
      await pr.click(`[data-room="${name}"] button[title="Delete room"]`);
      expect(confirms.splice(0)).toEqual([`Delete room ${name} for everyone?`]);
      await pb.locator(`[data-room="${name}"]`).waitFor({ state: 'detached' });
      await pb.locator('[data-testid=room-title]').waitFor({ state: 'detached' });
      await pr.context().close();
    },
    SLOW,
  );

  it(
    'talks privately with a persona whose reply streams in',
    async () => {
      const handle = `sage_${Date.now() % 100000}`;
      const persona = await t
        .http()
        .post('/api/v1/personas')
        .set(admin.auth)
        .send({ handle, displayName: 'Sage', systemPrompt: 'You are Sage.', style: 'Brief.' })
        .expect(201);
      fake.enqueue({ chunks: ['Hello', ' from', ' your', ' persona', '.'], delayMs: 250 });
      await pa.reload();
      await pa
        .locator(`#persona-select option[value="${persona.body.id}"]`)
        .waitFor({ state: 'attached' });
      await pa.selectOption('#persona-select', persona.body.id);
      await pa.click('button:has-text("Talk to persona")');
      await pa.locator('[data-testid=room-title]', { hasText: 'Sage' }).waitFor();
      await pa.locator('[data-conversation="Sage"]').waitFor();
      await say(pa, 'hi sage');
      const streaming = pa.locator('li.streaming');
      await streaming.filter({ hasText: 'Hello from' }).waitFor();
      await shot(pa, 'persona-streaming');
      await pa
        .locator('li.msg.assistant:not(.streaming)', { hasText: 'Hello from your persona.' })
        .waitFor();
      expect(await streaming.count()).toBe(0);
      // Private: bob does not see alice's conversation.
      expect(await pb.locator('[data-conversation="Sage"]').count()).toBe(0);
      // Deleting the conversation asks first.
      await pa.click('[data-conversation="Sage"] button[title="Delete conversation"]');
      expect(confirms.splice(0)).toEqual(['Delete the conversation with Sage?']);
      await pa.locator('[data-conversation="Sage"]').waitFor({ state: 'detached' });
      await pa.locator('[data-testid=room-title]').waitFor({ state: 'detached' });
    },
    SLOW,
  );

  it(
    'shows Stop on a streaming reply only to whoever triggered it, and Stop cuts it short',
    async () => {
      const handle = `sprout_${Date.now() % 100000}`;
      const persona = await t
        .http()
        .post('/api/v1/personas')
        .set(admin.auth)
        .send({ handle, displayName: 'Sprout', systemPrompt: 'You are Sprout.', style: 'Brief.' })
        .expect(201);
      await t
        .http()
        .post(`/api/v1/rooms/${room.id}/personas/${persona.body.id}`)
        .set(admin.auth)
        .expect(200);
      fake.enqueue({
        chunks: ['Once', ' upon', ' a', ' time', ...Array(30).fill(' more')],
        delayMs: 200,
      });
      await openRoom(pa, room.name);
      await openRoom(pb, room.name);
      await say(pa, `@${handle} tell a story`);
      const streamA = pa.locator('li.streaming').filter({ hasText: 'Once upon' });
      const streamB = pb.locator('li.streaming').filter({ hasText: 'Once upon' });
      await streamA.waitFor();
      await streamB.waitFor();
      expect(await streamB.getByRole('button', { name: 'Stop' }).count()).toBe(0);
      await shot(pb, 'persona-streaming-no-stop');
      await streamA.getByRole('button', { name: 'Stop' }).click();
      const cut = pb.locator('li.msg.assistant:not(.streaming)', { hasText: '(cancelled)' });
      await cut.filter({ hasText: 'Once upon' }).waitFor();
      expect(await pa.locator('li.streaming').count()).toBe(0);
      expect(await pa.locator('#error').textContent()).toBe('');
    },
    SLOW,
  );

  it(
    'shows a failed signup\'s per-field errors, not only "Validation failed"',
    async () => {
      const page = await newPage();
      await page.fill('input[name=username]', uniqueName('shorty'));
      await page.fill('input[name=email]', 'not-an-email');
      await page.fill('input[name=password]', 'x');
      await page.click('[data-testid=signup]');
      const error = page.locator('[data-testid=auth-error]');
      await error.filter({ hasText: 'password' }).waitFor();
      const text = (await error.textContent())!;
      expect(text).toMatch(/password: \S/);
      expect(text).toMatch(/email: \S/);
      await shot(page, 'signup-errors');
      await page.context().close();
    },
    SLOW,
  );

  it(
    'works on a phone (390×844): the room list stacks, Send stays on screen',
    async () => {
      const phone = { width: 390, height: 844 };
      const pp = await logIn(alice, phone);
      await openRoom(pp, room.name);
      const sendButton = pp.getByRole('button', { name: 'Send' });
      const box = (await sendButton.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.y).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(phone.width);
      expect(box.y + box.height).toBeLessThanOrEqual(phone.height);
      // Nothing is wider than the screen (no sideways scrolling).
      expect(await pp.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(
        phone.width,
      );
      await pp.fill('input[name=message]', 'hello from a phone');
      await sendButton.click();
      const sent = message(pp, 'hello from a phone');
      await sent.waitFor();
      expect(await sent.isVisible()).toBe(true);
      await pp.screenshot({ path: join(SHOTS, 'phone-room.png') });
      await pp.context().close();
    },
    SLOW,
  );

  it(
    'renders the AsyncAPI page (self-contained: no request leaves the page)',
    async () => {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(`${t.url}/docs/asyncapi`);
      await page.locator('h1', { hasText: 'Parlor socket API' }).waitFor();
      await page.locator('#cmd-message\\.send').waitFor();
      expect(requests).toEqual([`${t.url}/docs/asyncapi`]);
      await shot(page, 'asyncapi');
      await page.close();
    },
    SLOW,
  );
});
