import { jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AuditRetention } from '../src/audit/audit-retention.service';
import { INSTANCE } from '../src/audit/audit.service';
import { AuditStore } from '../src/audit/audit.store';
import type { AuditEntryDto, AuditPageDto } from '../src/audit/dto/audit.dto';
import { startApp, TestApp } from './support/app';
import {
  ADMIN_ENV,
  join,
  loginAdmin,
  newRoom,
  newUser,
  NO_WRITE_LIMITS,
  TestUser,
} from './support/factories';

const api = (path: string) => `/api/v1${path}`;

describe('audit log (e2e)', () => {
  let t: TestApp;
  let db: DataSource;
  let admin: TestUser;

  beforeAll(async () => {
    t = await startApp({ ...ADMIN_ENV, ...NO_WRITE_LIMITS });
    db = t.app.get(DataSource);
    admin = await loginAdmin(t);
  });
  afterAll(() => t.close());

  /** Every entry the list returns for `query` (as admin unless said), following nextCursor. */
  const all = async (query: string, as: TestUser = admin): Promise<AuditEntryDto[]> => {
    const items: AuditEntryDto[] = [];
    let before = '';
    for (;;) {
      const res = await req(as, 'get', `/admin/audit?${query}&limit=200${before}`, 200);
      const page = res.body as AuditPageDto;
      items.push(...page.items);
      if (page.nextCursor === null) return items;
      before = `&before=${page.nextCursor}`;
    }
  };
  const byTarget = (targetId: string) => all(`targetId=${targetId}`);
  /** One request as `who` that must answer `status`. */
  const req = (
    who: TestUser,
    method: 'get' | 'post' | 'patch' | 'delete',
    path: string,
    status: number,
    body?: object,
  ) => {
    const r = t.http()[method](api(path)).set(who.auth);
    return (body ? r.send(body) : r).expect(status);
  };

  /** Audit rows written directly (backdated), as the application would have. */
  const insertRows = async (
    rows: { at: string; action?: string; actorId?: string | null; targetId: string }[],
  ) => {
    for (const r of rows) {
      await db.query(
        `INSERT INTO audit_log (at, actor_id, action, target_type, target_id, instance)
         VALUES ($1, $2, $3, 'user', $4, 'test:0')`,
        [r.at, r.actorId ?? null, r.action ?? 'user.role', r.targetId],
      );
    }
  };

  describe('admin actions are recorded with who, what, target, reason and instance', () => {
    it('room create, update and delete', async () => {
      const room = await newRoom(t, admin, { visibility: 'private' });
      await req(admin, 'patch', `/rooms/${room.id}`, 200, {
        theme: 'cheerful',
        description: 'hello',
      });
      await req(admin, 'delete', `/rooms/${room.id}`, 204);
      const rows = await byTarget(room.id);
      expect(rows.map((r) => r.action)).toEqual(['room.delete', 'room.update', 'room.create']);
      for (const r of rows) {
        expect(r).toMatchObject({
          actorId: admin.id,
          actorUsername: admin.username,
          targetType: 'room',
          targetId: room.id,
          roomId: room.id,
          reason: '',
          instance: INSTANCE,
        });
        expect(typeof r.id).toBe('number');
        expect(Date.now() - new Date(r.at).getTime()).toBeLessThan(60_000);
      }
      expect(rows[2].details).toEqual({ name: room.name, visibility: 'private' });
      expect(rows[1].details).toEqual({
        name: room.name,
        changes: { theme: 'cheerful', description: 'hello' },
      });
      expect(rows[0].details).toEqual({ kind: 'group', name: room.name });
    });

    it('a PATCH that changes nothing records nothing; a partial one records what changed', async () => {
      const room = await newRoom(t, admin);
      await req(admin, 'patch', `/rooms/${room.id}`, 200, {});
      await req(admin, 'patch', `/rooms/${room.id}`, 200, { name: room.name, description: '' });
      expect((await byTarget(room.id)).map((r) => r.action)).toEqual(['room.create']);
      await req(admin, 'patch', `/rooms/${room.id}`, 200, { theme: 'dark' });
      const body = await req(admin, 'patch', `/rooms/${room.id}`, 200, {
        theme: 'dark',
        description: 'now described',
      });
      expect(body.body).toMatchObject({ theme: 'dark', description: 'now described' });
      await req(admin, 'patch', `/rooms/${room.id}`, 200, { theme: 'dark' });
      const rows = await byTarget(room.id);
      expect(rows.map((r) => r.action)).toEqual(['room.update', 'room.update', 'room.create']);
      expect(rows.map((r) => r.details)).toEqual([
        { name: room.name, changes: { description: 'now described' } },
        { name: room.name, changes: { theme: 'dark' } },
        { name: room.name, visibility: 'public' },
      ]);
    });

    it('a refused change records nothing (the record is in its transaction)', async () => {
      const taken = await newRoom(t, admin);
      const room = await newRoom(t, admin);
      await req(admin, 'patch', `/rooms/${room.id}`, 409, { name: taken.name });
      expect((await byTarget(room.id)).map((r) => r.action)).toEqual(['room.create']);
      const user = await newUser(t);
      await req(user, 'patch', `/rooms/${room.id}`, 403, { theme: 'x' });
      expect((await byTarget(room.id)).map((r) => r.action)).toEqual(['room.create']);
    });

    it('members added or removed by others, not joining or leaving oneself', async () => {
      const room = await newRoom(t, admin, { visibility: 'public' });
      const bob = await newUser(t);
      const carol = await newUser(t);
      await req(admin, 'post', `/rooms/${room.id}/members`, 201, { userId: bob.id });
      // Adding an existing member again changes nothing and records nothing.
      await req(admin, 'post', `/rooms/${room.id}/members`, 201, { userId: bob.id });
      await req(admin, 'delete', `/rooms/${room.id}/members/${bob.id}`, 204);
      await join(t, carol, room.id);
      await req(carol, 'post', `/rooms/${room.id}/leave`, 204);
      const rows = await byTarget(bob.id);
      expect(rows.map((r) => r.action)).toEqual(['member.remove', 'member.add']);
      for (const r of rows) {
        expect(r).toMatchObject({
          actorId: admin.id,
          targetType: 'user',
          targetId: bob.id,
          roomId: room.id,
          instance: INSTANCE,
        });
      }
      expect(await byTarget(carol.id)).toEqual([]);
    });

    it('role changes (from/to) and disable/enable, with the reason given; no-ops are not', async () => {
      const bob = await newUser(t);
      const patch = (body: Record<string, unknown>) =>
        t
          .http()
          .patch(api(`/users/${bob.id}`))
          .set(admin.auth)
          .send(body)
          .expect(200);
      await patch({ role: 'admin', reason: 'Runs the support team' });
      await patch({ role: 'admin' }); // already admin
      await patch({ role: 'user', disabled: true, reason: 'Left the company' });
      await patch({ disabled: false });
      const rows = await byTarget(bob.id);
      expect(rows.map((r) => [r.action, r.reason, r.details])).toEqual([
        ['user.enable', '', {}],
        ['user.disable', 'Left the company', {}],
        ['user.role', 'Left the company', { from: 'admin', to: 'user' }],
        ['user.role', 'Runs the support team', { from: 'user', to: 'admin' }],
      ]);
      for (const r of rows) {
        expect(r).toMatchObject({
          actorId: admin.id,
          targetType: 'user',
          roomId: null,
          instance: INSTANCE,
        });
      }
      // The reason is bounded like every audit reason.
      const long = await req(admin, 'patch', `/users/${bob.id}`, 400, {
        role: 'admin',
        reason: 'x'.repeat(501),
      });
      expect(Object.keys(long.body.details)).toEqual(['reason']);
      expect(await byTarget(bob.id)).toHaveLength(4);
    });

    it('persona create, update, attach, detach and delete', async () => {
      const room = await newRoom(t, admin);
      const handle = `audit_${randomUUID().slice(0, 8)}`;
      const created = await req(admin, 'post', '/personas', 201, {
        handle,
        displayName: 'Auditor',
        systemPrompt: 'You audit.',
      });
      const id = (created.body as { id: string }).id;
      await req(admin, 'patch', `/personas/${id}`, 200, {
        systemPrompt: 'You audit carefully.',
        temperature: 0.5,
      });
      await req(admin, 'post', `/rooms/${room.id}/personas/${id}`, 200);
      await req(admin, 'post', `/rooms/${room.id}/personas/${id}`, 200); // already there: nothing recorded
      await req(admin, 'delete', `/rooms/${room.id}/personas/${id}`, 204);
      await req(admin, 'delete', `/personas/${id}`, 204);
      await req(admin, 'delete', `/personas/${id}`, 404);
      const rows = await byTarget(id);
      expect(rows.map((r) => [r.action, r.roomId])).toEqual([
        ['persona.delete', null],
        ['persona.detach', room.id],
        ['persona.attach', room.id],
        ['persona.update', null],
        ['persona.create', null],
      ]);
      for (const r of rows) {
        expect(r).toMatchObject({ actorId: admin.id, targetType: 'persona', instance: INSTANCE });
        expect([r.action, r.details.handle]).toEqual([r.action, handle]);
      }
      // Which fields changed, never the prompt itself.
      expect(rows[3].details).toEqual({ handle, fields: ['systemPrompt', 'temperature'] });
    });
  });

  describe('races (real concurrency on server PostgreSQL)', () => {
    it('the same change sent ten times at once is recorded once, with the right from/to', async () => {
      const bob = await newUser(t);
      await Promise.all(
        Array.from({ length: 10 }, () =>
          req(admin, 'patch', `/users/${bob.id}`, 200, { role: 'admin', disabled: true }),
        ),
      );
      const rows = await byTarget(bob.id);
      expect(rows.map((r) => [r.action, r.details]).sort()).toEqual(
        [
          ['user.disable', {}],
          ['user.role', { from: 'user', to: 'admin' }],
        ].sort(),
      );
      // Promote and demote racing: each entry's from/to is what that transaction saw.
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          req(admin, 'patch', `/users/${bob.id}`, 200, { role: i % 2 ? 'admin' : 'user' }),
        ),
      );
      const roles = (await byTarget(bob.id))
        .filter((r) => r.action === 'user.role')
        .reverse()
        .map((r) => r.details as { from: string; to: string });
      for (let i = 1; i < roles.length; i++) expect(roles[i].from).toBe(roles[i - 1].to);
      const [{ role }] = await db.query<{ role: string }[]>(
        `SELECT role FROM users WHERE id = $1`,
        [bob.id],
      );
      expect(roles[roles.length - 1].to).toBe(role);
    });

    it('one member added by several requests at once: one entry', async () => {
      const room = await newRoom(t, admin);
      const bob = await newUser(t);
      await Promise.all(
        Array.from({ length: 8 }, () =>
          req(admin, 'post', `/rooms/${room.id}/members`, 201, { userId: bob.id }),
        ),
      );
      expect((await byTarget(bob.id)).map((r) => r.action)).toEqual(['member.add']);
    });
  });

  describe('reading', () => {
    it('admins only, decided from the current role (not the token)', async () => {
      const user = await newUser(t);
      for (const path of ['/admin/audit', '/admin/audit/export']) {
        const res = await t.http().get(api(path)).set(user.auth).expect(403);
        expect(res.body.code).toBe('FORBIDDEN');
        await t.http().get(api(path)).expect(401);
      }
      // Promoted: the same token works at once; demoted: refused at once.
      await req(admin, 'patch', `/users/${user.id}`, 200, { role: 'admin' });
      await t.http().get(api('/admin/audit')).set(user.auth).expect(200);
      await req(admin, 'patch', `/users/${user.id}`, 200, { role: 'user' });
      await t.http().get(api('/admin/audit')).set(user.auth).expect(403);
      await t.http().get(api('/admin/audit/export')).set(user.auth).expect(403);
    });

    it('filters by actor, target, action(s), room and time range', async () => {
      const other = await newUser(t);
      const target = randomUUID();
      const actorA = randomUUID();
      await insertRows([
        { at: '2025-01-01T00:00:00Z', actorId: actorA, targetId: target, action: 'user.role' },
        { at: '2025-01-02T00:00:00Z', actorId: actorA, targetId: target, action: 'user.disable' },
        { at: '2025-01-03T00:00:00Z', actorId: other.id, targetId: target, action: 'user.enable' },
        { at: '2025-01-04T00:00:00Z', actorId: actorA, targetId: target, action: 'member.ban' },
        { at: '2025-01-05T00:00:00Z', actorId: null, targetId: target, action: 'user.unsuspend' },
      ]);
      const actions = async (q: string) =>
        (await all(`targetId=${target}&${q}`)).map((r) => r.action);
      expect(await actions('')).toEqual([
        'user.unsuspend',
        'member.ban',
        'user.enable',
        'user.disable',
        'user.role',
      ]);
      expect(await actions(`actorId=${actorA}`)).toEqual([
        'member.ban',
        'user.disable',
        'user.role',
      ]);
      expect(await actions('action=user.role')).toEqual(['user.role']);
      expect(await actions('action=user.role&action=member.ban')).toEqual([
        'member.ban',
        'user.role',
      ]);
      expect(await actions('action=user.role,user.enable')).toEqual(['user.enable', 'user.role']);
      expect(await actions('from=2025-01-02T00:00:00Z&to=2025-01-04T00:00:00Z')).toEqual([
        'user.enable',
        'user.disable',
      ]);
      expect(await actions('from=2025-01-04T00:00:00Z')).toEqual(['user.unsuspend', 'member.ban']);
      expect(await actions(`actorId=${randomUUID()}`)).toEqual([]);
      // The actor's current username when the account exists; none for a system action.
      const rows = await all(`targetId=${target}`);
      expect(rows.find((r) => r.action === 'user.enable')!.actorUsername).toBe(other.username);
      expect(rows.find((r) => r.action === 'user.role')).not.toHaveProperty('actorUsername');
      expect(rows.find((r) => r.action === 'user.unsuspend')!.actorId).toBeNull();

      // Room: actions in one room (recorded by the app).
      const room = await newRoom(t, admin);
      const bob = await newUser(t);
      await req(admin, 'post', `/rooms/${room.id}/members`, 201, { userId: bob.id });
      expect((await all(`roomId=${room.id}`)).map((r) => [r.action, r.targetId])).toEqual([
        ['member.add', bob.id],
        ['room.create', room.id],
      ]);
      expect(
        (await all(`roomId=${room.id}&actorId=${admin.id}&action=member.add`)).map((r) => r.action),
      ).toEqual(['member.add']);
    });

    it('keyset pages by id, newest first: complete, no overlap, stable under new entries', async () => {
      const target = randomUUID();
      await insertRows(
        Array.from({ length: 7 }, (_, i) => ({
          at: new Date(Date.UTC(2025, 5, 1, 0, i)).toISOString(),
          targetId: target,
        })),
      );
      const seen: number[] = [];
      let before = '';
      let pages = 0;
      for (;;) {
        const res = await req(
          admin,
          'get',
          `/admin/audit?targetId=${target}&limit=3${before}`,
          200,
        );
        const page = res.body as AuditPageDto;
        pages++;
        seen.push(...page.items.map((r) => r.id));
        // A new entry between pages lands above the cursor: never in a later page.
        if (pages === 1) await insertRows([{ at: new Date().toISOString(), targetId: target }]);
        if (page.nextCursor === null) break;
        expect(page.nextCursor).toBe(page.items[page.items.length - 1].id);
        before = `&before=${page.nextCursor}`;
      }
      expect(pages).toBe(3);
      expect(seen).toHaveLength(7);
      expect([...seen].sort((a, b) => b - a)).toEqual(seen);
      expect(new Set(seen).size).toBe(7);
      expect(await byTarget(target)).toHaveLength(8);
    });

    it('validates the query', async () => {
      const bad = async (q: string, fields: string[]) => {
        const res = await req(admin, 'get', `/admin/audit?${q}`, 400);
        expect(res.body.code).toBe('VALIDATION_FAILED');
        expect(Object.keys(res.body.details).sort()).toEqual(fields.sort());
      };
      await bad('actorId=nope&roomId=1', ['actorId', 'roomId']);
      await bad('action=user.role,room.explode', ['action']);
      await bad('from=yesterday&to=2025-13-01T00:00:00Z', ['from', 'to']);
      await bad('before=0&limit=0', ['before', 'limit']);
      await bad('before=abc&limit=201', ['before', 'limit']);
      await bad(`targetId=${'x'.repeat(65)}`, ['targetId']);
      const exp = await req(admin, 'get', '/admin/audit/export?action=nope', 400);
      expect(Object.keys(exp.body.details)).toEqual(['action']);
    });
  });

  describe('export', () => {
    it('streams JSON Lines matching the filter, across many chunks', async () => {
      const target = randomUUID();
      const n = 1234; // more than two export chunks
      await db.query(
        `INSERT INTO audit_log (at, action, target_type, target_id, details, instance)
         SELECT now() - make_interval(secs => g), CASE WHEN g % 2 = 0 THEN 'user.role' ELSE 'user.enable' END,
                'user', $1, jsonb_build_object('n', g), 'test:0'
           FROM generate_series(1, $2::int) g`,
        [target, n],
      );
      // Read in keyset chunks (500 rows a query), not one query for everything.
      const page = jest.spyOn(t.app.get(AuditStore), 'page');
      const res = await t
        .http()
        .get(api(`/admin/audit/export?targetId=${target}`))
        .set(admin.auth)
        .buffer(true)
        .parse((r, done) => {
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (c: string) => (text += c));
          r.on('end', () => done(null, text));
        })
        .expect(200);
      expect(page.mock.calls.map(([, before, limit]) => [before === undefined, limit])).toEqual([
        [true, 500],
        [false, 500],
        [false, 500],
      ]);
      page.mockRestore();
      expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
      expect(res.headers['content-disposition']).toMatch(
        /^attachment; filename="parlor-audit-[0-9TZ-]+\.jsonl"$/,
      );
      const text = res.body as string;
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.trimEnd().split('\n');
      expect(lines).toHaveLength(n);
      const rows = lines.map((l) => JSON.parse(l) as AuditEntryDto);
      const ids = rows.map((r) => r.id);
      expect(new Set(ids).size).toBe(n);
      expect([...ids].sort((a, b) => b - a)).toEqual(ids);
      expect(rows.every((r) => r.targetId === target && r.instance === 'test:0')).toBe(true);
      // The same entries as the list, field for field.
      const listed = await byTarget(target);
      expect(JSON.parse(JSON.stringify(listed))).toEqual(rows);

      // Filters apply to the export too.
      const enables = await req(
        admin,
        'get',
        `/admin/audit/export?targetId=${target}&action=user.enable`,
        200,
      );
      const enableLines = String(enables.text).trimEnd().split('\n');
      expect(enableLines).toHaveLength(n / 2);
      expect(
        enableLines.every((l) => (JSON.parse(l) as AuditEntryDto).action === 'user.enable'),
      ).toBe(true);
      // Nothing selected: an empty body.
      const none = await req(admin, 'get', `/admin/audit/export?targetId=${randomUUID()}`, 200);
      expect(none.text).toBe('');
    });
  });

  describe('append-only', () => {
    it('no route updates or deletes entries', async () => {
      const [{ id }] = await db.query<{ id: string }[]>(
        `SELECT max(id)::text AS id FROM audit_log`,
      );
      for (const method of ['put', 'patch', 'delete', 'post'] as const) {
        for (const path of ['/admin/audit', `/admin/audit/${id}`, '/admin/audit/export']) {
          const res = await t.http()[method](api(path)).set(admin.auth).send({ reason: 'x' });
          expect([404, 405]).toContain(res.status);
        }
      }
      const [{ n }] = await db.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM audit_log WHERE id = $1`,
        [id],
      );
      expect(n).toBe(1);
    });

    it('the database refuses UPDATE and DELETE outside the retention job', async () => {
      const target = randomUUID();
      await insertRows([{ at: '2020-01-01T00:00:00Z', targetId: target }]);
      await expect(
        db.query(`UPDATE audit_log SET reason = 'rewritten' WHERE target_id = $1`, [target]),
      ).rejects.toThrow(/append-only/);
      await expect(
        db.query(`DELETE FROM audit_log WHERE target_id = $1`, [target]),
      ).rejects.toThrow(/append-only/);
      // Even with the retention flag, an UPDATE is refused.
      await expect(
        db.transaction(async (em) => {
          await em.query(`SELECT set_config('parlor.audit_retention', 'on', true)`);
          await em.query(`UPDATE audit_log SET reason = 'rewritten' WHERE target_id = $1`, [
            target,
          ]);
        }),
      ).rejects.toThrow(/append-only/);
      // The flag is transaction-local: the next statement on any connection is refused again.
      await expect(
        db.query(`DELETE FROM audit_log WHERE target_id = $1`, [target]),
      ).rejects.toThrow(/append-only/);
      const rows = await byTarget(target);
      expect(rows).toHaveLength(1);
      expect(rows[0].reason).toBe('');
    });
  });

  describe('retention', () => {
    it('deletes entries older than AUDIT_RETENTION_DAYS and keeps the rest', async () => {
      const old = randomUUID();
      const recent = randomUUID();
      const day = 86_400_000;
      const ago = (days: number) => new Date(Date.now() - days * day).toISOString();
      await insertRows([
        { at: ago(800), targetId: old },
        { at: ago(366), targetId: old },
        { at: ago(364), targetId: recent },
        { at: ago(1), targetId: recent },
      ]);
      const retention = t.app.get(AuditRetention);
      const deleted = await retention.purge();
      expect(deleted).toBeGreaterThanOrEqual(2); // the backdated rows of other tests are older too
      expect(await byTarget(old)).toEqual([]);
      expect(await byTarget(recent)).toHaveLength(2);
      // Idempotent: a second round finds nothing to delete.
      expect(await retention.purge()).toBe(0);
      // Several rounds at once (several instances): together they delete each row once.
      const many = randomUUID();
      await db.query(
        `INSERT INTO audit_log (at, action, target_type, target_id, instance)
         SELECT now() - interval '400 days' - make_interval(secs => g), 'user.role', 'user', $1, 'test:0'
           FROM generate_series(1, 300) g`,
        [many],
      );
      const counts = await Promise.all([retention.purge(), retention.purge(), retention.purge()]);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(300);
      expect(await byTarget(many)).toEqual([]);
    });

    it('0 keeps everything', async () => {
      const keep = await startApp({ ...ADMIN_ENV, AUDIT_RETENTION_DAYS: '0' });
      try {
        const ds = keep.app.get(DataSource);
        const target = randomUUID();
        await ds.query(
          `INSERT INTO audit_log (at, action, target_type, target_id, instance)
           VALUES (now() - interval '5000 days', 'user.role', 'user', $1, 'test:0')`,
          [target],
        );
        expect(await keep.app.get(AuditRetention).purge()).toBe(0);
        const [{ n }] = await ds.query<{ n: number }[]>(
          `SELECT count(*)::int AS n FROM audit_log WHERE target_id = $1`,
          [target],
        );
        expect(n).toBe(1);
      } finally {
        await keep.close();
      }
    });

    it('refuses an invalid setting at boot', async () => {
      await expect(startApp({ AUDIT_RETENTION_DAYS: '-1' })).rejects.toThrow(
        /AUDIT_RETENTION_DAYS/,
      );
      await expect(startApp({ AUDIT_RETENTION_DAYS: 'forever' })).rejects.toThrow(
        /AUDIT_RETENTION_DAYS/,
      );
    });
  });
});
