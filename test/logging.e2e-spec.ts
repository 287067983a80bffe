import { Logger } from '@nestjs/common';
import pino from 'pino';
import { DataSource } from 'typeorm';
import { PinoNestLogger } from '../src/common/logger';
import { startApp, type TestApp } from './support/app';
import { ADMIN_ENV, join, loginAdmin, newRoom, newUser } from './support/factories';
import { call, connect, sleep } from './support/socket';

/**
 * Server errors are logged as structured lines with the error's message, stack and code — never
 * "[object Object]" (a flood once wrote 2,017 such lines with no stack). The app's own pino
 * logger (PinoNestLogger, as configureApp installs it) writes into memory here.
 */
interface LogLine {
  [k: string]: unknown;
  err: { message?: string; stack?: string; code?: string };
}

describe('error logs', () => {
  let t: TestApp;
  const lines: string[] = [];

  beforeAll(async () => {
    t = await startApp(ADMIN_ENV);
    const root = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    Logger.overrideLogger(new PinoNestLogger(root));
  });
  afterAll(() => t.close());

  it('a failing socket command and a failing request log message and stack, not [object Object]', async () => {
    const admin = await loginAdmin(t);
    const u = await newUser(t);
    const room = await newRoom(t, admin);
    await join(t, u, room.id);
    const socket = await connect(t, u.accessToken);
    // Let the handshake's last look (session and rooms, read once the socket is connected)
    // finish before the database goes away.
    await sleep(500);
    const db = t.app.get(DataSource);
    // The database goes away under a live socket: every command now fails inside the server.
    await db.destroy();
    try {
      lines.length = 0;
      const ack = await call(socket, 'history.fetch', { roomId: room.id });
      expect(ack.ok).toBe(false);
      const res = await t.http().get('/api/v1/auth/me').set(u.auth);
      expect(res.status).toBeGreaterThanOrEqual(500);
    } finally {
      socket.close();
      await db.initialize();
    }
    const logged = lines.join('');
    expect(logged).not.toContain('[object Object]');
    const errors = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === 50);
    const gateway = errors.find((l) => l.context === 'Gateway');
    const http = errors.find((l) => l.context === 'HTTP');
    for (const entry of [gateway, http]) {
      expect(entry).toBeDefined();
      const err = entry?.err as { message?: string; stack?: string; type?: string };
      expect(typeof entry?.msg).toBe('string');
      expect((entry?.msg as string).length).toBeGreaterThan(0);
      expect(err.message).toEqual(expect.any(String));
      // A real stack: the error's first line, then "at …" frames.
      expect(err.stack).toMatch(/\n\s+at /);
    }
    expect(gateway?.socketId).toEqual(expect.any(String));
  });

  it('PinoNestLogger: an Error or an object as the message keeps its fields, message, stack and code', () => {
    const out: string[] = [];
    const logger = new PinoNestLogger(
      pino({ level: 'info' }, { write: (l: string) => void out.push(l) }),
    );
    const err = Object.assign(new Error('boom'), { code: 'E_TEST' });
    logger.error(err, undefined, 'Gateway');
    logger.warn({ msg: 'slow', err, socketId: 's1' }, 'Gateway');
    logger.error({ socketId: 's2', reason: 'x' }, 'Gateway');
    const [a, b, c] = out.map((l) => JSON.parse(l) as LogLine);
    expect(out.join('')).not.toContain('[object Object]');
    expect(a).toMatchObject({
      context: 'Gateway',
      msg: 'boom',
      err: { message: 'boom', code: 'E_TEST' },
    });
    expect(a.err.stack).toMatch(/\n\s+at /);
    expect(b).toMatchObject({ msg: 'slow', socketId: 's1', err: { code: 'E_TEST' } });
    expect(c).toMatchObject({ context: 'Gateway', socketId: 's2', reason: 'x' });
  });
});
