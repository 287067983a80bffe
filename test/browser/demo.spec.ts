/**
 * The demo web client in real Chromium (Debian's /usr/bin/chromium driven by playwright-core):
 * several users in separate browser contexts against one app, at desktop and phone (390×844)
 * sizes. Screenshots go to test-results/browser/ (not committed). Without Chromium the suite is skipped loudly, except in CI (CI=true),
 * where that is a failure: .ci/run installs it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutBucketCorsCommand } from '@aws-sdk/client-s3';
import { chromium, type Browser, type Page, type Response } from 'playwright-core';
import { ChatBroadcaster } from '../../src/chat/chat.broadcaster';
import { type ChatServer, userChannel } from '../../src/chat/types';
import { startApp, type TestApp } from '../support/app';
import {
  ADMIN,
  ADMIN_ENV,
  join as joinRoom,
  loginAdmin,
  NO_WRITE_LIMITS,
  newRoom,
  newUser,
  post,
  send,
  uniqueName,
  type TestUser,
} from '../support/factories';
import { FakeLlm } from '../support/fake-llm';
import { startS3 } from '../support/s3';

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
const DESKTOP = { name: 'desktop', width: 1100, height: 720 };
const PHONE = { name: 'phone', width: 390, height: 844 };

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

  async function newPage(
    viewport = { width: 1100, height: 720 },
    hasTouch = false,
    url = t.url,
  ): Promise<Page> {
    const context = await browser.newContext({ viewport, hasTouch });
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
    await page.goto(url);
    return page;
  }
  async function logIn(
    user: { username: string; password: string },
    viewport?: { width: number; height: number },
    hasTouch = false,
    url = t.url,
  ): Promise<Page> {
    const page = await newPage(viewport, hasTouch, url);
    await page.fill('input[name=username]', user.username);
    await page.fill('input[name=password]', user.password);
    await page.click('button[type=submit]');
    await page.locator('[data-testid=me]', { hasText: user.username }).waitFor();
    return page;
  }
  /** At phone width the sidebar is a drawer: opens it (with the header's ☰) when closed. */
  const showSidebar = async (page: Page) => {
    if (await page.locator('[data-testid=sidebar]').isVisible()) return;
    await page.click('[data-testid=sidebar-toggle]');
    await page.locator('[data-testid=sidebar]').waitFor();
  };
  const openRoom = async (page: Page, name: string) => {
    await showSidebar(page);
    await page.click(`[data-room="${name}"] button.link`);
    await page.locator('[data-testid=room-title]', { hasText: name }).waitFor();
  };
  /** A persona made by the admin through the API: `{ id }` and its handle. */
  const newPersona = async (prefix: string, displayName: string, style = 'Brief.') => {
    const handle = `${prefix}_${Date.now() % 100000}`;
    const res = await t
      .http()
      .post('/api/v1/personas')
      .set(admin.auth)
      .send({ handle, displayName, systemPrompt: `You are ${displayName}.`, style })
      .expect(201);
    return { id: res.body.id as string, handle };
  };
  /** GET /rooms as `user`: the server's unread count of a room. */
  const serverUnread = async (user: { username: string; password: string }, roomId: string) => {
    const login = await t
      .http()
      .post('/api/v1/auth/login')
      .send({ username: user.username, password: user.password })
      .expect(200);
    const rooms = await t
      .http()
      .get('/api/v1/rooms?limit=200')
      .set({ Authorization: `Bearer ${login.body.accessToken}` })
      .expect(200);
    return (rooms.body.items as { id: string; unreadCount: number }[]).find((r) => r.id === roomId)!
      .unreadCount;
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
      ATTACHMENT_MAX_BYTES: '65536', // the attachments test sends one file bigger
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
      // A system notice ("… joined") is not unread, for the server as for the badge.
      await joinRoom(t, await newUser(t), room.id);
      await send(t, alice, room.id, 'while bob looks elsewhere 2');
      const badge = pb.locator(`[data-room="${room.name}"] [data-testid=unread]`);
      await badge.filter({ hasText: '2' }).waitFor();
      expect(await serverUnread(bob, room.id)).toBe(2);
      await pb.waitForTimeout(300); // a late event would have moved the badge by now
      expect(await badge.textContent()).toBe('2');
      await openRoom(pb, room.name);
      await message(pb, 'while bob looks elsewhere 2').waitFor();
      await badge.waitFor({ state: 'detached' });
      // The page marked it read: the server agrees (polled: the mark is debounced).
      const deadline = Date.now() + 5000;
      while ((await serverUnread(bob, room.id)) !== 0 && Date.now() < deadline)
        await pb.waitForTimeout(100);
      expect(await serverUnread(bob, room.id)).toBe(0);
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
      const { id: personaId } = await newPersona('sage', 'Sage');
      fake.enqueue({ chunks: ['Hello', ' from', ' your', ' persona', '.'], delayMs: 250 });
      await pa.reload();
      await pa
        .locator(`#persona-select option[value="${personaId}"]`)
        .waitFor({ state: 'attached' });
      await pa.selectOption('#persona-select', personaId);
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
      const { id: personaId, handle } = await newPersona('sprout', 'Sprout');
      await t
        .http()
        .post(`/api/v1/rooms/${room.id}/personas/${personaId}`)
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
    'a reply in progress survives a reload: the text so far, then the rest, no gap and no repeat',
    async () => {
      const { id: personaId, handle } = await newPersona('teller', 'Teller');
      const { room: r, a, b } = await pairRoom('resume');
      await t
        .http()
        .post(`/api/v1/rooms/${r.id}/personas/${personaId}`)
        .set(admin.auth)
        .expect(200);
      const pages = await inRoom(r.name, a, b);
      const [pa, pb] = pages;
      const words = Array.from({ length: 30 }, (_, i) => ` w${String(i).padStart(2, '0')}`);
      const full = words.join('');
      fake.enqueue({ chunks: words, delayMs: 150 });
      await say(pa, `@${handle} count slowly`);
      const streamB = pb.locator('li.streaming .text');
      await pb.locator('li.streaming').filter({ hasText: 'w03' }).waitFor();
      await pb.reload();
      // Signed in again from storage, its rooms listed, before the room is opened.
      await pb.locator(`[data-room="${r.name}"]`).waitFor();
      await openRoom(pb, r.name);
      // The reply shows at once with what it had (nothing streams from scratch after a reload)…
      const first = (await streamB.first().textContent()) ?? '';
      expect(first.startsWith(' w00 w01 w02 w03')).toBe(true);
      // …and every state seen after it is the reply's start: a repeat or a gap would break that.
      const seen = [first];
      while ((await pb.locator('li.streaming').count()) > 0) {
        const text = await streamB
          .first()
          .textContent({ timeout: 1000 })
          .catch(() => null);
        if (text !== null) seen.push(text);
        await pb.waitForTimeout(50);
      }
      for (const text of seen) expect(full.startsWith(text)).toBe(true);
      expect(seen.at(-1)!.length).toBeGreaterThan(first.length);
      await pb.locator('li.msg.assistant:not(.streaming)', { hasText: full.trim() }).waitFor();
      expect(await pb.locator('#error').textContent()).toBe('');
      await closeAll(pages);
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

  for (const vp of [DESKTOP, PHONE]) {
    it(
      `main flows at ${vp.name} width (${vp.width}px): log in, sidebar, send, receive, start a direct message`,
      async () => {
        const viewport = { width: vp.width, height: vp.height };
        const [u1, u2] = [await newUser(t), await newUser(t)];
        const hall = await newRoom(t, admin, { name: uniqueName(`hall_${vp.name}`) });
        await joinRoom(t, u1, hall.id);
        await joinRoom(t, u2, hall.id);
        const p1 = await logIn(u1, viewport);
        const p2 = await logIn(u2, viewport);
        const sidebar = p1.locator('[data-testid=sidebar]');
        const toggle = p1.locator('[data-testid=sidebar-toggle]');
        // Nothing on screen yet: the room list shows (at phone width, as an open drawer).
        expect(await sidebar.isVisible()).toBe(true);
        if (vp === PHONE) await shot(p1, `${vp.name}-sidebar-open`);
        await openRoom(p1, hall.name);
        await openRoom(p2, hall.name);
        if (vp === PHONE) {
          // Picking a room closes the drawer; ☰ opens and closes it.
          expect(await sidebar.isVisible()).toBe(false);
          await toggle.click();
          await sidebar.waitFor();
          expect(await toggle.getAttribute('aria-expanded')).toBe('true');
          await toggle.click();
          await sidebar.waitFor({ state: 'hidden' });
        } else {
          // Wide screens: the sidebar stays, no toggle.
          expect(await sidebar.isVisible()).toBe(true);
          expect(await toggle.isVisible()).toBe(false);
        }
        // Send is on screen, and nothing is wider than the screen (no sideways scrolling).
        const sendButton = p1.getByRole('button', { name: 'Send' });
        const box = (await sendButton.boundingBox())!;
        expect(box.x).toBeGreaterThanOrEqual(0);
        expect(box.y).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width).toBeLessThanOrEqual(vp.width);
        expect(box.y + box.height).toBeLessThanOrEqual(vp.height);
        expect(
          await p1.evaluate<number>('document.documentElement.scrollWidth'),
        ).toBeLessThanOrEqual(vp.width);

        await p1.fill('input[name=message]', `hello from a ${vp.name}`);
        await sendButton.click();
        await message(p1, `hello from a ${vp.name}`).waitFor();
        const received = message(p2, `hello from a ${vp.name}`);
        await received.waitFor();
        expect(await received.isVisible()).toBe(true);
        await shot(p2, `${vp.name}-room`);

        // A direct message, started from a member's name in the room.
        await p1.click(`[data-member="${u2.username}"] [data-testid=dm]`);
        await p1.locator('[data-testid=room-title]', { hasText: u2.username }).waitFor();
        await say(p1, `psst, ${vp.name}`);
        await message(p1, `psst, ${vp.name}`).waitFor();
        // The other side: the room appears live among the direct messages, counted unread.
        await showSidebar(p2);
        const dm = p2.locator(`[data-testid=directs] [data-room="${u1.username}"]`);
        await dm.locator('[data-testid=unread]', { hasText: '1' }).waitFor();
        await shot(p2, `${vp.name}-dm-unread`);
        await openRoom(p2, u1.username);
        await message(p2, `psst, ${vp.name}`).waitFor();
        await dm.locator('[data-testid=unread]').waitFor({ state: 'detached' });
        // The same room on a second start, not a new one.
        await openRoom(p1, hall.name);
        await p1.click(`[data-member="${u2.username}"] [data-testid=dm]`);
        await message(p1, `psst, ${vp.name}`).waitFor();
        expect(await p1.locator('[data-testid=directs] li').count()).toBe(1);
        await shot(p1, `${vp.name}-dm`);
        await p1.context().close();
        await p2.context().close();
      },
      SLOW,
    );
  }

  it(
    'room settings: an admin renames and describes a room; a member sees the members, messages one, and leaves',
    async () => {
      const [u1, u2] = [await newUser(t), await newUser(t)];
      const club = await newRoom(t, admin, { name: uniqueName('club') });
      await joinRoom(t, u1, club.id);
      await joinRoom(t, u2, club.id);
      const pr = await logIn({ username: ADMIN.username, password: ADMIN.password });
      await pr.locator(`[data-room="${club.name}"]`).waitFor();
      await openRoom(pr, club.name);
      await pr.click('[data-testid=room-settings]');
      const form = pr.locator('[data-testid=room-settings-form]');
      await form.waitFor();
      const renamed = uniqueName('club2');
      await pr.fill('input[name=settings-name]', renamed);
      await pr.fill('textarea[name=settings-description]', 'Where the club meets');
      await form.getByRole('button', { name: 'Save' }).click();
      await pr.locator('[data-testid=settings-saved]', { hasText: 'Saved' }).waitFor();
      const saved = await t.http().get(`/api/v1/rooms/${club.id}`).set(admin.auth).expect(200);
      expect(saved.body).toMatchObject({ name: renamed, description: 'Where the club meets' });
      await shot(pr, 'room-settings-admin');
      await pr.context().close();

      const pm = await logIn(u1, PHONE);
      await openRoom(pm, renamed);
      await pm.click('[data-testid=room-settings]');
      await pm.locator(`[data-member-row="${u2.username}"]`).waitFor();
      // Not an admin: no form, the description as text; every member listed.
      expect(await pm.locator('[data-testid=room-settings-form]').count()).toBe(0);
      await pm.getByText('Where the club meets').waitFor();
      expect(await pm.locator('[data-testid=member-list] li').count()).toBe(3); // with its owner
      await shot(pm, 'phone-room-settings');
      // "Message" opens the direct room with that member.
      await pm.locator(`[data-member-row="${u2.username}"] [data-testid=dm]`).click();
      await pm.locator('[data-testid=room-title]', { hasText: u2.username }).waitFor();
      await openRoom(pm, renamed);
      await pm.click('[data-testid=room-settings]');
      // Leaving asks first, then the room's settings close and it is gone from the list.
      await pm.click('[data-testid=leave-room]');
      expect(confirms.splice(0)).toEqual([`Leave ${renamed}?`]);
      await pm.locator('[data-testid=room-title]').waitFor({ state: 'detached' });
      await showSidebar(pm);
      await pm.locator(`[data-room="${renamed}"]`).waitFor({ state: 'detached' });
      const members = await t
        .http()
        .get(`/api/v1/rooms/${club.id}/members`)
        .set(admin.auth)
        .expect(200);
      const ids = members.body.items.map((m: { userId: string }) => m.userId);
      expect(ids).toContain(u2.id);
      expect(ids).not.toContain(u1.id);
      await pm.context().close();
    },
    SLOW,
  );

  it(
    'personas screen: everyone sees the personas; an admin puts one in a room and takes it out',
    async () => {
      const { id: personaId, handle } = await newPersona('muse', 'Muse', 'Poetic.');
      const roomPersonas = async () =>
        (
          await t.http().get(`/api/v1/rooms/${room.id}/personas`).set(admin.auth).expect(200)
        ).body.map((p: { id: string }) => p.id);

      const other = await newRoom(t, admin, { name: uniqueName('side') });

      const pr = await logIn({ username: ADMIN.username, password: ADMIN.password });
      await pr.locator(`[data-room="${room.name}"]`).waitFor();
      await pr.click('[data-testid=nav-personas]');
      const item = pr.locator(`[data-persona="${handle}"]`);
      await item.waitFor();
      await pr.selectOption('select[name=persona-room]', other.id);
      await pr.locator(`[data-testid=personas][data-room="${other.id}"]`).waitFor();
      await item.locator('[data-testid=persona-attach]').waitFor();
      // The next room's list loads slowly: a click meanwhile must not act on the room shown
      // before it (its buttons go at once).
      await pr.route(`**/api/v1/rooms/${room.id}/personas`, async (route) => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        await route.continue();
      });
      await pr.selectOption('select[name=persona-room]', room.id);
      await item.locator('[data-testid=persona-attach]').click();
      await item.locator('[data-testid=persona-detach]').waitFor();
      expect(await roomPersonas()).toContain(personaId);
      await shot(pr, 'personas-admin');
      await item.locator('[data-testid=persona-detach]').click();
      await item.locator('[data-testid=persona-attach]').waitFor();
      expect(await roomPersonas()).not.toContain(personaId);
      const otherPersonas = await t
        .http()
        .get(`/api/v1/rooms/${other.id}/personas`)
        .set(admin.auth)
        .expect(200);
      expect(otherPersonas.body).toEqual([]);
      await pr.context().close();

      // A user: the list and "Talk", no room controls.
      const pu = await logIn(alice, PHONE);
      await showSidebar(pu);
      await pu.click('[data-testid=nav-personas]');
      await pu.locator(`[data-persona="${handle}"]`).waitFor();
      expect(await pu.locator('[data-testid=persona-attach]').count()).toBe(0);
      expect(await pu.locator('select[name=persona-room]').count()).toBe(0);
      await shot(pu, 'phone-personas');
      await pu.locator(`[data-persona="${handle}"]`).getByRole('button', { name: 'Talk' }).click();
      await pu.locator('[data-testid=room-title]', { hasText: 'Muse' }).waitFor();
      await pu.context().close();
    },
    SLOW,
  );

  /**
   * Moderation: a room owned by the admin, with a moderator and members, each on a page of
   * its own. The setup goes through the API; the moderation through the pages.
   */
  const moderatedRoom = async (prefix: string, members = 2) => {
    const r = await newRoom(t, admin, { name: uniqueName(prefix) });
    const mod = await newUser(t);
    const users: TestUser[] = [];
    for (let i = 0; i < members; i++) users.push(await newUser(t));
    for (const u of [mod, ...users]) await joinRoom(t, u, r.id);
    await t
      .http()
      .put(`/api/v1/rooms/${r.id}/members/${mod.id}/role`)
      .set(admin.auth)
      .send({ role: 'moderator' })
      .expect(200);
    return { room: r, mod, users };
  };
  /** Each user logged in on a page of their own (desktop unless given), the room open. */
  const inRoom = async (roomName: string, ...who: (TestUser | [TestUser, typeof PHONE])[]) => {
    const pages: Page[] = [];
    for (const w of who) {
      const [u, vp] = Array.isArray(w) ? w : [w, DESKTOP];
      const page = await logIn(u, { width: vp.width, height: vp.height });
      await openRoom(page, roomName);
      pages.push(page);
    }
    return pages;
  };
  const closeAll = (pages: Page[]) => Promise.all(pages.map((p) => p.context().close()));
  const note = (page: Page) => page.locator('[data-testid=composer-note]');
  const openSettings = async (page: Page) => {
    await page.click('[data-testid=room-settings]');
    await page.locator('[data-testid=member-list]').waitFor();
  };
  /** How the page words an end ("until 14:05", with the date when not today), in its locale. */
  const endText = (page: Page, iso: string) =>
    page.evaluate((at) => {
      const d = new Date(at);
      const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      const today = d.toDateString() === new Date().toDateString();
      return `until ${today ? time : `${d.toLocaleDateString()} ${time}`}`;
    }, iso);

  it(
    'persona turn-taking: a moderator picks "in turn" in room settings; messages that mention nobody are answered by the personas in turn',
    async () => {
      const { room: r, mod, users } = await moderatedRoom('turns', 1);
      const [u] = users;
      const first = await newPersona('first', 'First');
      const second = await newPersona('second', 'Second');
      for (const p of [first, second]) {
        await t.http().post(`/api/v1/rooms/${r.id}/personas/${p.id}`).set(admin.auth).expect(200);
      }
      const pages = await inRoom(r.name, mod, u);
      const [pm, pu] = pages;
      await openSettings(pm);
      const form = pm.locator('[data-testid=persona-policy]');
      expect(await form.textContent()).toContain(`@${first.handle}`);
      const select = form.locator('select[name=persona-policy]');
      expect(await select.inputValue()).toBe('mention');
      await select.selectOption('round-robin');
      // Saved on the server; the screen redraws from its answer.
      const saved = async () =>
        (await t.http().get(`/api/v1/rooms/${r.id}/persona-policy`).set(u.auth).expect(200)).body
          .policy as string;
      for (let i = 0; i < 50 && (await saved()) !== 'round-robin'; i++)
        await pm.waitForTimeout(100);
      expect(await saved()).toBe('round-robin');
      await pm
        .locator('[data-testid=persona-policy] option:checked', { hasText: 'in turn' })
        .waitFor({ state: 'attached' });
      await shot(pm, 'persona-policy');

      const script = { chunks: ['At', ' your', ' service.'] };
      fake.enqueue(script, script);
      const replies = async () => {
        const res = await t.http().get(`/api/v1/rooms/${r.id}/messages`).set(u.auth).expect(200);
        return (res.body.items as { author?: { kind: string; handle?: string } }[])
          .filter((m) => m.author?.kind === 'persona')
          .map((m) => m.author!.handle);
      };
      for (const [i, text] of ['anyone there?', 'and now?'].entries()) {
        await say(pu, text);
        await pu
          .locator('li.msg.assistant:not(.streaming)', { hasText: 'At your service.' })
          .nth(i)
          .waitFor();
      }
      expect(await replies()).toEqual([first.handle, second.handle]);
      await closeAll(pages);
    },
    SLOW,
  );

  for (const vp of [DESKTOP, PHONE]) {
    it(
      `a muted user sees why they cannot write (end and reason), live, until unmuted (${vp.name})`,
      async () => {
        const { room: r, mod, users } = await moderatedRoom(`muted_${vp.name}`, 1);
        const [u] = users;
        const pages = await inRoom(r.name, [u, vp], [mod, vp]);
        const [pu, pm] = pages;
        expect(await note(pu).isHidden()).toBe(true);
        await openSettings(pm);
        // Roles show; a moderator may not act on the owner, nor appoint (owner and admins).
        await pm
          .locator(`[data-member-row="${mod.username}"] [data-testid=role]`, {
            hasText: 'moderator',
          })
          .waitFor();
        const ownerRow = pm.locator(`[data-member-row="${ADMIN.username}"]`);
        expect(await ownerRow.locator('[data-testid=role]').textContent()).toBe('owner');
        expect(await ownerRow.locator('[data-testid=mute]').count()).toBe(0);
        expect(await pm.locator('[data-testid=set-role]').count()).toBe(0);

        const row = pm.locator(`[data-member-row="${u.username}"]`);
        await row.locator('[data-testid=mute]').click();
        const form = row.locator('[data-testid=mute-form]');
        await form.locator('select[name=duration]').selectOption({ label: '1 hour' });
        await form.locator('input[name=reason]').fill('Off topic, cool down');
        await form.getByRole('button', { name: 'Mute' }).click();
        await row.locator('[data-testid=muted]').waitFor();
        await row.locator('[data-testid=unmute]').waitFor();

        const members = await t
          .http()
          .get(`/api/v1/rooms/${r.id}/members`)
          .set(admin.auth)
          .expect(200);
        const until = (members.body.items as { userId: string; mutedUntil: string }[]).find(
          (m) => m.userId === u.id,
        )!.mutedUntil;
        expect(Date.parse(until) - Date.now()).toBeGreaterThan(55 * 60_000);
        const end = await endText(pu, until);
        await note(pu)
          .filter({ hasText: `Muted by a moderator ${end} — Off topic, cool down` })
          .waitFor();
        expect(await pu.locator('input[name=message]').isDisabled()).toBe(true);
        expect(await pu.locator('[data-testid=send]').isDisabled()).toBe(true);
        // Everyone in the room sees the mark on the member.
        await pu.locator(`[data-member="${u.username}"] [data-testid=muted]`).waitFor();
        await shot(pu, `${vp.name}-muted`);
        await shot(pm, `${vp.name}-moderator-members`);

        // After a reload the mute still shows, with its end (its reason comes with the event).
        await pu.reload();
        await pu.locator(`[data-room="${r.name}"]`).waitFor();
        await openRoom(pu, r.name);
        await note(pu)
          .filter({ hasText: `Muted by a moderator ${end}` })
          .waitFor();
        expect(await pu.locator('[data-testid=send]').isDisabled()).toBe(true);

        await row.locator('[data-testid=unmute]').click();
        await note(pu).waitFor({ state: 'hidden' });
        await say(pu, `free to speak, ${vp.name}`);
        await message(pu, `free to speak, ${vp.name}`).waitFor(); // acknowledged by the server
        expect(await pu.locator('#error').textContent()).toBe('');
        await closeAll(pages);
      },
      SLOW,
    );
  }

  it(
    'an archived room shows read-only to its members, live, until unarchived',
    async () => {
      const { room: r, users } = await moderatedRoom('archive', 1);
      const pages = await inRoom(r.name, users[0], admin);
      const [pu, pr] = pages;
      await openSettings(pr);
      await pr.click('[data-testid=archive]');
      expect(confirms.splice(0)).toEqual([`Archive ${r.name}? It becomes read-only for everyone.`]);
      await pr.locator('[data-testid=archived-note]').waitFor();
      await pu.locator('[data-testid=badge-archived]').waitFor();
      await note(pu).filter({ hasText: 'This room is archived (read-only)' }).waitFor();
      expect(await pu.locator('[data-testid=send]').isDisabled()).toBe(true);
      await pu.locator(`[data-room="${r.name}"] [data-testid=archived]`).waitFor();
      await shot(pu, 'archived-room');
      // Opened afresh, it is read-only too.
      await pu.reload();
      await pu.locator(`[data-room="${r.name}"]`).waitFor();
      await openRoom(pu, r.name);
      await note(pu).filter({ hasText: 'archived' }).waitFor();

      await pr.click('[data-testid=archive]'); // now "Unarchive": no question
      await pu.locator('[data-testid=badge-archived]').waitFor({ state: 'detached' });
      expect(await note(pu).isHidden()).toBe(true);
      await say(pu, 'writable again');
      await message(pu, 'writable again').waitFor();
      await closeAll(pages);
    },
    SLOW,
  );

  it(
    'a banned user loses the room at once, with the notice; unbanned from the ban list',
    async () => {
      const { room: r, mod, users } = await moderatedRoom('banned', 2);
      const [u, other] = users;
      const pages = await inRoom(r.name, [u, PHONE], other, mod);
      const [pu, po, pm] = pages;
      await po.locator(`[data-member="${u.username}"]`).waitFor();
      await openSettings(pm);
      const row = pm.locator(`[data-member-row="${u.username}"]`);
      await row.locator('[data-testid=ban]').click();
      const form = row.locator('[data-testid=ban-form]');
      await form.locator('select[name=duration]').selectOption({ label: '1 day' });
      await form.locator('input[name=reason]').fill('Spamming links');
      await form.getByRole('button', { name: 'Ban' }).click();

      // The click's request may still be on its way: wait for the ban to be stored.
      let until: string | undefined;
      for (const deadline = Date.now() + 10_000; !until && Date.now() < deadline;) {
        const bans = await t.http().get(`/api/v1/rooms/${r.id}/bans`).set(admin.auth).expect(200);
        until = (bans.body.items as { until: string }[])[0]?.until;
        if (!until) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (!until) throw new Error('the ban was not stored');
      const end = await endText(pu, until);
      await pu
        .locator('#error', { hasText: `You were banned from #${r.name} ${end} — Spamming links` })
        .waitFor();
      await pu.locator('[data-testid=room-title]').waitFor({ state: 'detached' });
      await showSidebar(pu);
      expect(await pu.locator(`[data-room="${r.name}"]`).count()).toBe(0);
      await shot(pu, 'phone-banned');
      // Public, so still listed after a reload: opening it says why not.
      await pu.reload();
      await pu.locator(`[data-room="${r.name}"]`).waitFor(); // the drawer is open: no room on screen
      await pu.click(`[data-room="${r.name}"] button.link`);
      await pu
        .locator('#error', { hasText: `You are banned from #${r.name} ${end} — Spamming links` })
        .waitFor();
      // The others see the member go; the moderator sees the ban, and lifts it.
      await po.locator(`[data-member="${u.username}"]`).waitFor({ state: 'detached' });
      const banRow = pm.locator(`[data-ban-row="${u.username}"]`);
      await banRow.filter({ hasText: 'Spamming links' }).waitFor();
      expect(await pm.locator(`[data-member-row="${u.username}"]`).count()).toBe(0);
      await shot(pm, 'moderator-ban-list');
      await banRow.getByRole('button', { name: 'Unban' }).click();
      await banRow.waitFor({ state: 'detached' });
      const after = await t.http().get(`/api/v1/rooms/${r.id}/bans`).set(admin.auth).expect(200);
      expect(after.body.items).toEqual([]);
      await joinRoom(t, u, r.id); // may join again
      await closeAll(pages);
    },
    SLOW,
  );

  it(
    'a moderator removes a message with a reason: its author sees why, the others only that it was',
    async () => {
      const { room: r, mod, users } = await moderatedRoom('removal', 2);
      const [author, reader] = users;
      const pages = await inRoom(r.name, author, [reader, PHONE], mod);
      const [pa2, pr2, pm] = pages;
      await say(pa2, 'buy cheap watches here');
      const theirs = message(pm, 'buy cheap watches here');
      await theirs.waitFor();
      // Only moderators get Remove; nobody reports or removes their own message.
      await message(pr2, 'buy cheap watches here').locator('[data-testid=report]').waitFor();
      expect(await message(pr2, 'buy cheap watches').locator('[data-testid=remove]').count()).toBe(
        0,
      );
      const own = message(pa2, 'buy cheap watches here');
      expect(await own.locator('[data-testid=report], [data-testid=remove]').count()).toBe(0);

      await theirs.locator('[data-testid=remove]').click();
      const form = pm.locator('[data-testid=remove-form]');
      await form.locator('input[name=reason]').fill('Advertising');
      await form.getByRole('button', { name: 'Remove' }).click();
      await pa2
        .locator('li.msg.removed', { hasText: 'removed by moderation: Advertising' })
        .waitFor();
      await pm
        .locator('li.msg.removed', { hasText: 'removed by moderation: Advertising' })
        .waitFor();
      const seen = pr2.locator('li.msg.removed [data-testid=text]');
      await seen.waitFor();
      expect(await seen.textContent()).toBe('removed by moderation');
      await shot(pa2, 'removed-by-moderation-author');
      await shot(pr2, 'phone-removed-by-moderation-reader');

      // Made a moderator while on the page: Remove appears at once (member.role.changed).
      await say(pa2, 'another one');
      const next = message(pr2, 'another one');
      await next.waitFor();
      await t
        .http()
        .put(`/api/v1/rooms/${r.id}/members/${reader.id}/role`)
        .set(admin.auth)
        .send({ role: 'moderator' })
        .expect(200);
      await next.locator('[data-testid=remove]').waitFor();
      await closeAll(pages);
    },
    SLOW,
  );

  it(
    "a report reaches the moderator's queue live; resolved by removal or a mute, or dismissed",
    async () => {
      const { room: r, mod, users } = await moderatedRoom('reports', 2);
      const [reporter, offender] = users;
      const pages = await inRoom(r.name, [reporter, PHONE], offender, mod);
      const [pu, po, pm] = pages;
      await say(po, 'you are all idiots');
      const bad = message(pu, 'you are all idiots');
      await bad.waitFor();

      // The moderator's head counts open reports live; the queue lists them.
      await bad.locator('[data-testid=report]').click();
      const form = pu.locator('[data-testid=report-form]');
      await form.locator('select[name=report-category]').selectOption('abuse');
      await form.locator('input[name=report-text]').fill('insults everyone');
      await form.getByRole('button', { name: 'Send report' }).click();
      await bad.locator('[data-testid=reported]').waitFor();
      await pm.locator('[data-testid=report-count]', { hasText: '1' }).waitFor();
      await pm.click('[data-testid=open-reports]');
      const item = pm.locator('[data-testid=report-list] li[data-report-id]');
      await item.filter({ hasText: 'insults everyone' }).waitFor();
      expect(await item.textContent()).toContain('abuse');
      expect(await item.textContent()).toContain(`by ${reporter.username}`);
      expect(await item.locator('[data-testid=reported-message]').textContent()).toContain(
        'you are all idiots',
      );
      await shot(pm, 'reports-queue');

      // Two more arrive while the queue is on screen; one being filled in is left alone.
      const reportLive = async (text: string) => {
        await say(po, text);
        const theirs = message(pu, text);
        await theirs.waitFor();
        await theirs.locator('[data-testid=report]').click();
        await pu
          .locator('[data-testid=report-form]')
          .getByRole('button', { name: 'Send report' })
          .click();
        await item.filter({ hasText: text }).waitFor();
      };
      await reportLive('buy my stuff');
      const second = item.filter({ hasText: 'buy my stuff' });
      await second.locator('select[name=report-action]').selectOption('mute');
      await second.locator('select[name=report-duration]').selectOption({ label: '10 minutes' });
      await second.locator('input[name=report-reason]').fill('Spam');
      await reportLive('nice weather');
      expect(await item.count()).toBe(3);
      expect(await second.locator('input[name=report-reason]').inputValue()).toBe('Spam');

      // Resolve one by removing the message, one by muting its author; dismiss the last.
      const first = item.filter({ hasText: 'you are all idiots' });
      await first.locator('select[name=report-action]').selectOption('delete');
      await first.locator('input[name=report-reason]').fill('Insults');
      await first.locator('[data-testid=resolve]').click();
      await po.locator('li.msg.removed', { hasText: 'removed by moderation: Insults' }).waitFor();
      await first.waitFor({ state: 'detached' });
      expect(await second.locator('input[name=report-reason]').inputValue()).toBe('Spam');
      await second.locator('[data-testid=resolve]').click();
      await note(po)
        .filter({ hasText: /^Muted by a moderator until .+ — Spam$/ })
        .waitFor();
      await second.waitFor({ state: 'detached' });
      await item.filter({ hasText: 'nice weather' }).locator('[data-testid=dismiss]').click();
      await pm.locator('[data-testid=report-list]', { hasText: 'No open reports.' }).waitFor();
      const open = await t
        .http()
        .get(`/api/v1/rooms/${r.id}/reports?status=open`)
        .set(admin.auth)
        .expect(200);
      expect(open.body.items).toEqual([]);
      // Members get no queue.
      expect(await pu.locator('[data-testid=open-reports]').count()).toBe(0);
      await closeAll(pages);
    },
    SLOW,
  );

  it(
    'slow mode: a badge, a countdown after each send and after a refusal; moderators exempt',
    async () => {
      const { room: r, mod, users } = await moderatedRoom('slow', 1);
      const pages = await inRoom(r.name, [users[0], PHONE], mod);
      const [pu, pm] = pages;
      await openSettings(pm);
      await pm.selectOption('select[name=slow-mode]', '30');
      await pu.locator('[data-testid=badge-slow]', { hasText: 'slow mode · 30 s' }).waitFor();
      const seconds = async () =>
        Number(/in (\d+) s/.exec((await note(pu).textContent()) ?? '')?.[1]);

      await say(pu, 'first, slowly');
      await message(pu, 'first, slowly').waitFor();
      await note(pu)
        .filter({ hasText: /^Slow mode: you can send again in \d+ s$/ })
        .waitFor();
      const first = await seconds();
      expect(first).toBeGreaterThan(25);
      expect(first).toBeLessThanOrEqual(30);
      expect(await pu.locator('[data-testid=send]').isDisabled()).toBe(true);
      await shot(pu, 'phone-slow-mode');
      // It counts down.
      const deadline = Date.now() + 5000;
      while ((await seconds()) >= first && Date.now() < deadline) await pu.waitForTimeout(200);
      expect(await seconds()).toBeLessThan(first);

      // A fresh page knows nothing of the last send: the server refuses, with retryAfterMs.
      await pu.reload();
      await pu.locator(`[data-room="${r.name}"]`).waitFor();
      await openRoom(pu, r.name);
      expect(await note(pu).isHidden()).toBe(true);
      await say(pu, 'second, too soon');
      await note(pu)
        .filter({ hasText: /^Slow mode: you can send again in \d+ s$/ })
        .waitFor();
      expect(await seconds()).toBeLessThanOrEqual(first);
      expect(await pu.inputValue('input[name=message]')).toBe('second, too soon'); // kept
      expect(await message(pu, 'second, too soon').count()).toBe(0);
      expect(await pu.locator('#error').textContent()).toBe('');

      // Moderators are exempt: no countdown for them.
      await openRoom(pm, r.name);
      await say(pm, 'mod one');
      await say(pm, 'mod two');
      await message(pm, 'mod two').waitFor();
      expect(await note(pm).isHidden()).toBe(true);

      // Off again: the badge goes.
      await openSettings(pm);
      await pm.selectOption('select[name=slow-mode]', '0');
      await pu.locator('[data-testid=badge-slow]').waitFor({ state: 'detached' });
      await closeAll(pages);
    },
    SLOW,
  );

  it(
    'the word filter: a blocked send says so and keeps the text to change',
    async () => {
      const { room: r, users } = await moderatedRoom('filtered', 1);
      await t
        .http()
        .post(`/api/v1/rooms/${r.id}/filters`)
        .set(admin.auth)
        .send({ pattern: 'frobnicate', action: 'block' })
        .expect(201);
      const pages = await inRoom(r.name, users[0]);
      const [pu] = pages;
      await say(pu, 'let us frobnicate the thing');
      await note(pu)
        .filter({ hasText: `Blocked by the room's word filter ("frobnicate")` })
        .waitFor();
      expect(await pu.inputValue('input[name=message]')).toBe('let us frobnicate the thing');
      expect(await pu.locator('[data-testid=send]').isDisabled()).toBe(false);
      await shot(pu, 'word-filter-blocked');
      await pu.fill('input[name=message]', '');
      await pu.type('input[name=message]', 'let us fix the thing');
      await note(pu).waitFor({ state: 'hidden' });
      await pu.press('input[name=message]', 'Enter');
      await message(pu, 'let us fix the thing').waitFor();
      await closeAll(pages);
    },
    SLOW,
  );

  // Mentions, threads and notifications (issue 15): a room of two fresh members per test.
  const pairRoom = async (prefix: string) => {
    const r = await newRoom(t, admin, { name: uniqueName(prefix) });
    const a = await newUser(t);
    const b = await newUser(t);
    for (const u of [a, b]) await joinRoom(t, u, r.id);
    return { room: r, a, b };
  };
  const bellCount = (page: Page) => page.locator('[data-testid=bell-count]');
  const unreadNotifications = async (u: TestUser) =>
    (await t.http().get('/api/v1/notifications/unread-count').set(u.auth).expect(200)).body
      .total as number;

  for (const vp of [DESKTOP, PHONE]) {
    it(
      `mentions: autocomplete inserts a name; the mentioned user sees the bell count live, and the notification opens the room with the mention highlighted (${vp.name})`,
      async () => {
        const { room: r, a, b } = await pairRoom(`mentions_${vp.name}`);
        const size = { width: vp.width, height: vp.height };
        const pa = await logIn(a, size); // in no room: the mention must reach the bell
        const pb = await logIn(b, size, vp === PHONE); // taps on the phone
        await openRoom(pb, r.name);
        await pb.locator(`[data-member="${a.username}"]`).waitFor();
        expect(await bellCount(pa).isHidden()).toBe(true);

        // Autocomplete: `@` and the start of a name lists it (with @here/@room); Escape closes.
        const box = pb.locator('input[name=message]');
        const list = pb.locator('#room [data-testid=mention-list]');
        await box.pressSequentially('@');
        await list.locator(`[data-mention="${a.username}"]`).waitFor();
        await list.locator('[data-mention=here]').waitFor();
        await box.press('Escape');
        await list.waitFor({ state: 'hidden' });
        await box.fill('');
        await box.pressSequentially(`hey @${a.username.slice(0, -2)}`);
        const option = list.locator(`[data-mention="${a.username}"]`);
        await option.waitFor();
        expect(await list.locator('li').first().getAttribute('data-mention')).toBe(a.username);
        await shot(pb, `${vp.name}-mention-autocomplete`);
        if (vp === PHONE) await option.tap();
        else await box.press('Enter'); // inserts; does not send
        await list.waitFor({ state: 'hidden' });
        expect(await box.inputValue()).toBe(`hey @${a.username} `);
        expect(await message(pb, 'hey @').count()).toBe(0);
        await box.pressSequentially('look at this');
        await box.press('Enter');
        const sent = message(pb, `hey @${a.username} look at this`);
        await sent.waitFor();
        // The sender sees the mention highlighted, not stressed (it is not about them).
        expect(await sent.locator('mark.mention').textContent()).toBe(`@${a.username}`);
        expect(await sent.locator('mark.mention.me').count()).toBe(0);

        // The mentioned user: the bell counts it live, the room shows an unread mention.
        await bellCount(pa).filter({ hasText: /^1$/ }).waitFor();
        await showSidebar(pa);
        await pa
          .locator(`[data-room="${r.name}"] [data-testid=unread-mentions]`, { hasText: '@1' })
          .waitFor();
        await pa.click('[data-testid=bell]');
        const item = pa.locator('[data-testid=notification]').first();
        await item.waitFor();
        expect(await item.getAttribute('class')).toBe('unread');
        expect(await item.getAttribute('data-kind')).toBe('mention');
        const text = await item.textContent();
        expect(text).toContain(b.username);
        expect(text).toContain(`mentioned you in #${r.name}`);
        expect(text).toContain(`hey @${a.username} look at this`);
        await shot(pa, `${vp.name}-notifications`);
        if (vp === PHONE) {
          const panel = (await pa.locator('[data-testid=notifications]').boundingBox())!;
          expect(panel.width).toBeGreaterThanOrEqual(vp.width - 1); // over the whole room
        }

        // Clicking it opens the room, the mention stressed for me, and marks it read.
        await item.click();
        await pa.locator('[data-testid=room-title]', { hasText: r.name }).waitFor();
        expect(await pa.locator('[data-testid=notifications]').isHidden()).toBe(true);
        const got = message(pa, `hey @${a.username} look at this`);
        expect(await got.locator('mark.mention.me').textContent()).toBe(`@${a.username}`);
        expect(await got.getAttribute('class')).toContain('mentions-me');
        await shot(pa, `${vp.name}-mentioned`);
        await bellCount(pa).waitFor({ state: 'hidden' });
        expect(await unreadNotifications(a)).toBe(0);
        await pa.click('[data-testid=bell]');
        expect(await item.getAttribute('class')).toBe('read');
        await closeAll([pa, pb]);
      },
      SLOW,
    );

    it(
      `threads: a reply makes "1 reply" on the root; the panel shows the replies, sends one, follows, live for both (${vp.name})`,
      async () => {
        const { room: r, a, b } = await pairRoom(`thread_${vp.name}`);
        const pages = await inRoom(r.name, [a, vp], [b, vp]);
        const [pa, pb] = pages;
        const panel = (page: Page) => page.locator('[data-testid=thread-panel]');
        const replies = (page: Page) => panel(page).locator('[data-testid=thread-replies] li.msg');
        await say(pa, 'what shall we build?');
        const root = (page: Page) => message(page, 'what shall we build?');
        await root(pb).waitFor();

        // b replies from the panel: the root shows "1 reply" for both, live.
        await root(pb).locator('[data-testid=reply]').click();
        await panel(pb)
          .locator('[data-testid=thread-count]', { hasText: 'No replies yet' })
          .waitFor();
        await panel(pb)
          .locator('[data-testid=thread-root]', { hasText: 'what shall we build?' })
          .waitFor();
        await pb.fill('input[name=thread-message]', 'a thread panel');
        await pb.press('input[name=thread-message]', 'Enter');
        await replies(pb).filter({ hasText: 'a thread panel' }).waitFor();
        await panel(pb)
          .locator('[data-testid=thread-count]', { hasText: /^1 reply · last / })
          .waitFor();
        await root(pa)
          .locator('[data-testid=thread-summary]', { hasText: /^1 reply · last / })
          .waitFor();
        await root(pb)
          .locator('[data-testid=thread-summary]', { hasText: /^1 reply/ })
          .waitFor();
        // The reply shows in the room too, marked as in a thread.
        await message(pa, 'a thread panel').locator('[data-testid=in-thread]').waitFor();

        // a opens the thread from the summary: the root, the reply, following (a wrote the root).
        await root(pa).locator('[data-testid=thread-summary]').click();
        await replies(pa).filter({ hasText: 'a thread panel' }).waitFor();
        await panel(pa)
          .locator('[data-testid=thread-follow]', { hasText: 'Following ✓' })
          .waitFor();
        if (vp === PHONE) {
          const box = (await panel(pa).boundingBox())!;
          expect(box.width).toBeGreaterThanOrEqual(vp.width - 1); // over the room
        } else {
          await root(pa).waitFor(); // beside the room, which stays on screen
          expect(await root(pa).isVisible()).toBe(true);
        }
        await pa.fill('input[name=thread-message]', 'and a bell');
        await pa.press('input[name=thread-message]', 'Enter');
        await replies(pa).filter({ hasText: 'and a bell' }).waitFor();
        await replies(pb).filter({ hasText: 'and a bell' }).waitFor(); // live in b's panel
        expect(await replies(pb).count()).toBe(2);
        await root(pb)
          .locator('[data-testid=thread-summary]', { hasText: /^2 replies/ })
          .waitFor();
        await shot(pa, `${vp.name}-thread-panel`);

        // Unfollow holds on the server.
        await panel(pa).locator('[data-testid=thread-follow]').click();
        await panel(pa)
          .locator('[data-testid=thread-follow]', { hasText: /^Follow$/ })
          .waitFor();
        const rootId = Number(await root(pb).getAttribute('data-id'));
        const thread = await t
          .http()
          .get(`/api/v1/messages/${rootId}/thread`)
          .set(a.auth)
          .expect(200);
        expect(thread.body.following).toBe(false);
        expect(thread.body.root.replyCount).toBe(2);

        await panel(pa).locator('[data-testid=thread-close]').click();
        await panel(pa).waitFor({ state: 'hidden' });
        await root(pa).waitFor();
        await closeAll(pages);
      },
      SLOW,
    );
  }

  it(
    'a long thread: its panel opens on the latest replies; earlier ones load above; a reply sent from it shows last',
    async () => {
      const { room: r, a, b } = await pairRoom('thread_long');
      const rootMsg = await send(t, a, r.id, 'a long story');
      for (let i = 1; i <= 55; i++) await post(t, i % 2 ? b : a, r.id, `chapter ${i}`, rootMsg.id);
      const [pb] = await inRoom(r.name, [b, DESKTOP]);
      const panel = pb.locator('[data-testid=thread-panel]');
      const replies = panel.locator('[data-testid=thread-replies] li.msg');
      const earlier = panel.locator('[data-testid=thread-earlier]');
      // The root is past the room's first page; its latest reply links to the thread.
      await exactly(pb, /^chapter 55$/).waitFor();
      await message(pb, 'chapter 55').locator('[data-testid=in-thread]').click();
      await replies.first().waitFor();
      expect(await replies.count()).toBe(50); // the latest page: chapters 6 to 55
      const text = (li: typeof replies) => li.locator('[data-testid=text]').textContent();
      expect(await text(replies.first())).toBe('chapter 6');
      expect(await text(replies.last())).toBe('chapter 55');
      expect(await earlier.isVisible()).toBe(true);

      await pb.fill('input[name=thread-message]', 'the end');
      await pb.press('input[name=thread-message]', 'Enter');
      await replies.filter({ hasText: 'the end' }).waitFor();
      expect(await replies.count()).toBe(51);
      expect(await text(replies.last())).toBe('the end');

      await earlier.click();
      await replies.nth(55).waitFor();
      expect(await replies.count()).toBe(56);
      expect(await text(replies.first())).toBe('chapter 1');
      expect(await text(replies.last())).toBe('the end');
      expect(await earlier.isVisible()).toBe(false);

      // Reading earlier replies: another's reply does not pull the view away; one's own does.
      const list = panel.locator('[data-testid=thread-replies]');
      const scroll = () =>
        list.evaluate((el) => ({ top: el.scrollTop, end: el.scrollHeight - el.clientHeight }));
      await list.evaluate((el) => (el.scrollTop = 0));
      await post(t, a, r.id, 'an aside', rootMsg.id);
      await replies.nth(56).waitFor();
      expect(await text(replies.last())).toBe('an aside');
      expect((await scroll()).top).toBe(0);
      await pb.fill('input[name=thread-message]', 'mine again');
      await pb.press('input[name=thread-message]', 'Enter');
      await replies.nth(57).waitFor();
      const after = await scroll();
      expect(after.end).toBeGreaterThan(0);
      expect(after.top).toBeGreaterThanOrEqual(after.end - 1);
      await closeAll([pb]);
    },
    SLOW,
  );

  it(
    "a notification for a reply far back opens its thread at that reply; later replies load below; a reply of one's own moves to the end",
    async () => {
      const { room: r, a, b } = await pairRoom('thread_far');
      const rootMsg = await send(t, b, r.id, 'a long story');
      await post(t, b, r.id, `@${a.username} see chapter 1`, rootMsg.id);
      // The mention made a follow the thread: unfollowed, so that the mention is a's one notification.
      await t.http().delete(`/api/v1/messages/${rootMsg.id}/follow`).set(a.auth).expect(200);
      for (let i = 2; i <= 60; i++) await post(t, b, r.id, `chapter ${i}`, rootMsg.id);
      const pa = await logIn(a);
      const panel = pa.locator('[data-testid=thread-panel]');
      const replies = panel.locator('[data-testid=thread-replies] li.msg');
      const later = panel.locator('[data-testid=thread-later]');
      const earlier = panel.locator('[data-testid=thread-earlier]');
      const text = (li: typeof replies) => li.locator('[data-testid=text]').textContent();
      const fromNotification = async () => {
        await pa.click('[data-testid=bell]');
        await pa.click('[data-testid=notification][data-kind=mention]');
        await replies.first().waitFor();
      };
      await bellCount(pa).filter({ hasText: /^1$/ }).waitFor();
      await fromNotification();
      expect(await replies.count()).toBe(1); // the page that ends at the reply: the first one
      expect(await text(replies.first())).toContain('see chapter 1');
      expect(await earlier.isVisible()).toBe(false);
      expect(await later.isVisible()).toBe(true);

      // A reply written now lies past the page shown: it comes with the later pages, in order.
      await post(t, b, r.id, 'chapter 61', rootMsg.id);
      await later.click();
      await replies.nth(50).waitFor();
      expect(await replies.count()).toBe(51); // and chapters 2 to 51
      expect(await text(replies.last())).toBe('chapter 51');
      await later.click();
      await replies.nth(60).waitFor();
      expect(await replies.count()).toBe(61);
      expect(await text(replies.last())).toBe('chapter 61');
      expect(await later.isVisible()).toBe(false);

      // Opened at the reply again, one's own reply moves the panel to the thread's end.
      await panel.locator('[data-testid=thread-close]').click();
      await fromNotification();
      expect(await replies.count()).toBe(1);
      await pa.fill('input[name=thread-message]', 'mine at the end');
      await pa.press('input[name=thread-message]', 'Enter');
      await replies.filter({ hasText: 'mine at the end' }).waitFor();
      expect(await replies.count()).toBe(50); // the latest page
      expect(await text(replies.last())).toBe('mine at the end');
      expect(await later.isVisible()).toBe(false);
      expect(await earlier.isVisible()).toBe(true);
      await closeAll([pa]);
    },
    SLOW,
  );

  // Attachments (issue 18): 📎 and pasted images, thumbnails, file cards, downloads.
  /** A 40×30 PNG (one colour). */
  const PNG = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAACgAAAAeCAIAAADRv8uKAAAAK0lEQVR42u3NMQ0AAAgDsMlBImIRgww4mvRvqudExGKxWCwWi8VisVj8N15vGvWb1Rmf/wAAAABJRU5ErkJggg==',
    'base64',
  );
  const chips = (page: Page) => page.locator('[data-testid=attach-chip]');
  /**
   * Evaluates `expression` in the page every 100 ms until `done` says so (5 s at most); answers
   * the last value. (waitForFunction would compile a string in the page: the CSP forbids it.)
   */
  const poll = async <T>(page: Page, expression: string, done: (v: T) => boolean) => {
    let value = await page.evaluate<T>(expression);
    for (let i = 0; i < 50 && !done(value); i++) {
      await page.waitForTimeout(100);
      value = await page.evaluate<T>(expression);
    }
    return value;
  };
  /** Waits until the first image under `selector` decoded; answers its naturalWidth. */
  const imageLoaded = (page: Page, selector: string) =>
    poll<number>(
      page,
      `(() => { const img = document.querySelector(${JSON.stringify(selector)}); ` +
        'return img && img.complete ? img.naturalWidth : 0; })()',
      (w) => w > 0,
    );

  for (const vp of [DESKTOP, PHONE]) {
    it(
      `attachments: a PNG and a text file through 📎, sent without text; the other member sees the thumbnail and the file card, opens the image, downloads the file; deleting revokes the preview (${vp.name})`,
      async () => {
        const { room: r, a, b } = await pairRoom(`files_${vp.name}`);
        const pages = await inRoom(r.name, [a, vp], [b, vp]);
        const [pa, pb] = pages;
        const notes = `notes from a ${vp.name}\nline two\n`;
        const [chooser] = await Promise.all([
          pa.waitForEvent('filechooser'),
          pa.click('[data-testid=attach]'),
        ]);
        await chooser.setFiles([
          { name: 'dot.png', mimeType: 'image/png', buffer: PNG },
          { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from(notes) },
        ]);
        await chips(pa).nth(1).waitFor();
        await pa.locator('[data-testid=attach-chip][data-state=ready]').nth(1).waitFor();
        expect(await chips(pa).allTextContents()).toEqual([
          expect.stringContaining('dot.png'),
          expect.stringContaining('notes.txt'),
        ]);
        expect(await chips(pa).nth(1).textContent()).toContain(`${notes.length} B`);
        expect(
          await pa.evaluate<number>('document.documentElement.scrollWidth'),
        ).toBeLessThanOrEqual(vp.width);
        await shot(pa, `${vp.name}-attach-tray`);
        expect(await pa.inputValue('input[name=message]')).toBe('');
        await pa.click('[data-testid=send]'); // no text: the files alone
        await pa.locator('[data-testid=attach-tray]').waitFor({ state: 'hidden' });

        const got = pb.locator('[data-testid=messages] li.msg', {
          has: pb.locator('[data-testid=attachments]'),
        });
        const img = got.locator('[data-testid=attachment-image]');
        await img.waitFor();
        // The size is reserved before the thumbnail arrives (no jump), then it decodes.
        expect([await img.getAttribute('width'), await img.getAttribute('height')]).toEqual([
          '40',
          '30',
        ]);
        expect(await imageLoaded(pb, '[data-testid=attachment-image]')).toBeGreaterThan(0);
        const src = (await img.getAttribute('src'))!;
        expect(src).toMatch(/^blob:/);
        const card = got.locator('[data-testid=attachment-file]');
        expect(await card.textContent()).toContain('notes.txt');
        expect(
          await pb.evaluate<number>('document.documentElement.scrollWidth'),
        ).toBeLessThanOrEqual(vp.width);
        await shot(pb, `${vp.name}-attachments`);

        // The full image over the page; a click closes it.
        await img.click();
        expect(await imageLoaded(pb, '[data-testid=lightbox] img')).toBe(40);
        await pb.locator('[data-testid=lightbox]').click();
        await pb.locator('[data-testid=lightbox]').waitFor({ state: 'detached' });

        // The card downloads the file (fetched with the token): the same bytes, the same name.
        const [download] = await Promise.all([pb.waitForEvent('download'), card.click()]);
        expect(download.suggestedFilename()).toBe('notes.txt');
        expect(readFileSync(await download.path(), 'utf8')).toBe(notes);

        // The author deletes it: the other page drops the preview and revokes its blob URL.
        const mine = pa.locator('[data-testid=messages] li.msg.mine', {
          has: pa.locator('[data-testid=attachments]'),
        });
        await mine.getByRole('button', { name: 'Delete' }).click();
        await img.waitFor({ state: 'detached' });
        const fetchBlob = `fetch(${JSON.stringify(src)}).then(() => 'live', () => 'revoked')`;
        expect(await poll<string>(pb, fetchBlob, (v) => v === 'revoked')).toBe('revoked');
        await closeAll(pages);
      },
      SLOW,
    );
  }

  it(
    "attachments: a file too big or of a type not allowed shows the API's reason and is not sent; a pasted image uploads and sends",
    async () => {
      const { room: r, a, b } = await pairRoom('files_refused');
      const pages = await inRoom(r.name, a, b);
      const [pa, pb] = pages;
      const input = pa.locator('[data-testid=attach-input]');
      await input.setInputFiles({
        name: 'big.bin',
        mimeType: 'application/octet-stream',
        buffer: Buffer.alloc(100_000, 7),
      });
      const errors = pa.locator('[data-testid=attach-error]');
      await errors
        .filter({ hasText: 'Files may be at most 65536 bytes (ATTACHMENT_MAX_BYTES)' })
        .waitFor();
      const gzip = Buffer.from('1f8b08000000000000ff030000000000000000', 'hex');
      await input.setInputFiles({ name: 'a.gz', mimeType: 'application/gzip', buffer: gzip });
      await errors.filter({ hasText: 'files of type application/gzip are not allowed' }).waitFor();
      expect(await pa.locator('[data-testid=attach-chip][data-state=failed]').count()).toBe(2);
      await shot(pa, 'attach-refused');
      // Nothing to send: Send with an empty box and refused files does nothing.
      await pa.click('[data-testid=send]');
      // Removed with ✕.
      await chips(pa).first().locator('[data-testid=attach-remove]').click();
      await chips(pa).first().locator('[data-testid=attach-remove]').click();
      await pa.locator('[data-testid=attach-tray]').waitFor({ state: 'hidden' });

      // An image pasted into the box uploads like a picked one and goes with the text.
      await pa.fill('input[name=message]', 'pasted, look');
      await pa.evaluate(`(() => {
        const bytes = Uint8Array.from(atob('${PNG.toString('base64')}'), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
        const paste = new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true });
        document.querySelector('input[name=message]').dispatchEvent(paste);
      })()`);
      await pa.locator('[data-testid=attach-chip][data-state=ready]').waitFor();
      expect(await pa.inputValue('input[name=message]')).toBe('pasted, look'); // not replaced
      await pa.press('input[name=message]', 'Enter');
      await message(pb, 'pasted, look').locator('[data-testid=attachment-image]').waitFor();
      await imageLoaded(pb, '[data-testid=attachment-image]');
      // Only the pasted file was sent (nothing refused), and B saw no error.
      const messages = await t.http().get(`/api/v1/rooms/${r.id}/messages`).set(b.auth).expect(200);
      const sent = (
        messages.body.items as { content: string; attachments: { name: string }[] }[]
      ).filter((m) => m.attachments.length);
      expect(sent.map((m) => [m.content, m.attachments.map((x) => x.name)])).toEqual([
        ['pasted, look', ['image.png']],
      ]);
      expect(await pb.locator('#error').textContent()).toBe('');
      await closeAll(pages);
    },
    SLOW,
  );

  it(
    'a reply notification opens the room and its thread (phone); "Mark all read" clears the rest',
    async () => {
      const { room: r, a, b } = await pairRoom('thread_notify');
      const other = await newRoom(t, admin, { name: uniqueName('elsewhere') });
      for (const u of [a, b]) await joinRoom(t, u, other.id);
      const rootMsg = await send(t, a, r.id, 'root by a');
      const pa = await logIn(a, { width: PHONE.width, height: PHONE.height });
      await t
        .http()
        .post(`/api/v1/rooms/${r.id}/messages`)
        .set(b.auth)
        .send({ content: 'reply by b', replyToId: rootMsg.id, clientMsgId: uniqueName('c') })
        .expect(201);
      await bellCount(pa).filter({ hasText: /^1$/ }).waitFor();
      await send(t, b, other.id, `@${a.username} over here too`);
      await bellCount(pa).filter({ hasText: /^2$/ }).waitFor();
      await pa.click('[data-testid=bell]');
      expect(await pa.locator('[data-testid=notification].unread').count()).toBe(2);
      const item = pa.locator('[data-testid=notification][data-kind=thread]');
      expect(await item.textContent()).toContain(`replied in a thread in #${r.name}`);
      await item.click();
      const panel = pa.locator('[data-testid=thread-panel]');
      await panel
        .locator('[data-testid=thread-replies] li.msg', { hasText: 'reply by b' })
        .waitFor();
      await panel.locator('[data-testid=thread-root]', { hasText: 'root by a' }).waitFor();
      await bellCount(pa).filter({ hasText: /^1$/ }).waitFor(); // the other room's is left
      await pa.click('[data-testid=bell]');
      await pa.click('[data-testid=notif-read-all]');
      await bellCount(pa).waitFor({ state: 'hidden' });
      expect(await pa.locator('[data-testid=notification].unread').count()).toBe(0);
      expect(await unreadNotifications(a)).toBe(0);
      await pa.context().close();
    },
    SLOW,
  );

  it(
    'the bell keeps a notification that came while an older load was on its way, past a reconnect',
    async () => {
      const { room: r, a, b } = await pairRoom('notify_reload');
      const rootMsg = await send(t, a, r.id, 'root by a');
      const page = await newPage();
      // The first load's count is read before the reply, and handed over only after the reconnect's
      // load has finished: an old answer landing last must not undo the live event.
      const countUrl = '**/api/v1/notifications/unread-count';
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let asked!: () => void;
      const firstAsked = new Promise<void>((resolve) => (asked = resolve));
      let first = true;
      await page.route(countUrl, async (route) => {
        if (!first) return route.continue();
        first = false;
        const stale = await route.fetch();
        asked();
        await held;
        await route.fulfill({ response: stale });
      });
      await page.fill('input[name=username]', a.username);
      await page.fill('input[name=password]', a.password);
      await page.click('button[type=submit]');
      await firstAsked;
      await post(t, b, r.id, 'reply by b', rootMsg.id);
      await bellCount(page).filter({ hasText: /^1$/ }).waitFor(); // the live event
      // Drop a's transport: the client reconnects and loads the notifications again.
      const isCount = (res: Response) => res.url().endsWith('/api/v1/notifications/unread-count');
      let answers = 0;
      page.on('response', (res) => void (isCount(res) && answers++));
      const answered = async (n: number) => {
        if (answers < n) await page.waitForResponse((res) => isCount(res) && answers >= n);
      };
      const io = t.app.get<ChatBroadcaster, { server: ChatServer }>(ChatBroadcaster).server;
      for (const id of io.sockets.adapter.rooms.get(userChannel(a.id)) ?? [])
        io.sockets.sockets.get(id)?.conn.close();
      await answered(1); // the reconnect's load
      await bellCount(page).filter({ hasText: /^1$/ }).waitFor();
      release(); // the old answer lands last, and is followed by a load of its own
      await answered(3);
      await bellCount(page).filter({ hasText: /^1$/ }).waitFor();
      expect(await unreadNotifications(a)).toBe(1);
      await page.context().close();
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
  // Last in the suite: it boots a second app in this process, and passport's strategies are
  // process-wide (the last app booted authenticates for all), so no test may follow it on `t`.
  it(
    'attachments on S3 storage: the preview and the download come from the bucket, which CSP and the bucket CORS allow',
    async () => {
      const s3 = await startS3('parlor-demo');
      const t2 = await startApp({ ...ADMIN_ENV, ...NO_WRITE_LIMITS, ...s3.env });
      const pages: Page[] = [];
      try {
        await s3.client.send(
          new PutBucketCorsCommand({
            Bucket: s3.bucket,
            CORSConfiguration: {
              CORSRules: [
                { AllowedOrigins: [t2.url], AllowedMethods: ['GET'], AllowedHeaders: ['*'] },
              ],
            },
          }),
        );
        const admin2 = await loginAdmin(t2);
        const r = await newRoom(t2, admin2, { name: uniqueName('s3files') });
        const [a, b] = [await newUser(t2), await newUser(t2)];
        for (const u of [a, b]) await joinRoom(t2, u, r.id);
        for (const u of [a, b]) {
          const page = await logIn(u, undefined, false, t2.url);
          await openRoom(page, r.name);
          pages.push(page);
        }
        const [pa, pb] = pages;
        const fromBucket: string[] = [];
        pb.on('requestfinished', (req) => {
          if (req.url().startsWith(`${s3.endpoint}/${s3.bucket}/`)) fromBucket.push(req.url());
        });
        const notes = 'notes kept in a bucket\n';
        await pa.locator('[data-testid=attach-input]').setInputFiles([
          { name: 'dot.png', mimeType: 'image/png', buffer: PNG },
          { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from(notes) },
        ]);
        await pa.locator('[data-testid=attach-chip][data-state=ready]').nth(1).waitFor();
        await pa.click('[data-testid=send]');

        const got = pb.locator('[data-testid=messages] li.msg', {
          has: pb.locator('[data-testid=attachments]'),
        });
        await got.locator('[data-testid=attachment-image]').waitFor();
        expect(await imageLoaded(pb, '[data-testid=attachment-image]')).toBeGreaterThan(0);
        const card = got.locator('[data-testid=attachment-file]');
        const [download] = await Promise.all([pb.waitForEvent('download'), card.click()]);
        expect(download.suggestedFilename()).toBe('notes.txt');
        expect(readFileSync(await download.path(), 'utf8')).toBe(notes);
        // Both came from the bucket through presigned URLs (the API answered 302).
        expect(fromBucket.filter((u) => /X-Amz-Signature=/.test(u)).length).toBeGreaterThanOrEqual(
          2,
        );
        expect(await pb.locator('#error').textContent()).toBe('');
      } finally {
        await closeAll(pages);
        await t2.close();
        await s3.close();
      }
    },
    SLOW,
  );
});
