import { AppError, ErrorCode } from '../common/errors';
import type { CommandTracker } from '../limits/command-tracker';
import type { CommandLimits } from '../limits/limits.decorators';
import type { MetricsService } from '../metrics/metrics.service';
import type { Ack } from './contract';
import type { ChatSocket } from './types';
import { failureAck, WsCommandRunner } from './ws-ack';

/**
 * WsCommandRunner: exactly one ack per command (a result, the filter's failure, or a refusal
 * by the limits), counted once by its result code. The end-to-end suites (limits, metrics,
 * socket abuse) run it through the real adapter; this pins the paths one by one.
 */
function runner(refuse?: AppError) {
  const counted: { command: string; result: string }[] = [];
  let timers = 0;
  const commands = {
    run: (_u: string, _s: string, _l: CommandLimits, work: () => Promise<unknown>) =>
      refuse ? Promise.reject(refuse) : work(),
  } as unknown as CommandTracker;
  const metrics = {
    acks: { inc: (labels: { command: string; result: string }) => counted.push(labels) },
    sendToAck: { startTimer: () => () => timers++ },
  } as unknown as MetricsService;
  return { run: new WsCommandRunner(commands, metrics), counted, timers: () => timers };
}

const socket = { id: 's1', data: { user: { id: 'u1' } } } as unknown as ChatSocket;
const limits: CommandLimits = { bucket: 'send', dbBound: false };

function acks() {
  const got: Ack<unknown>[] = [];
  return { got, ack: (r: Ack<unknown>) => got.push(r) };
}

describe('WsCommandRunner', () => {
  it('a result: one ok ack with its data (null for none), counted ok; message.send timed', async () => {
    const r = runner();
    const a = acks();
    await r.run.run('message.send', socket, limits, () => Promise.resolve({ id: 1 }), a.ack);
    await r.run.run('typing.stop', socket, limits, () => Promise.resolve(undefined), a.ack);
    expect(a.got).toEqual([
      { ok: true, data: { id: 1 } },
      { ok: true, data: null },
    ]);
    expect(r.counted).toEqual([
      { command: 'message.send', result: 'ok' },
      { command: 'typing.stop', result: 'ok' },
    ]);
    expect(r.timers()).toBe(1);
  });

  it('a failure the filter answers: its ack only, counted by its code', async () => {
    const r = runner();
    const a = acks();
    await r.run.run(
      'message.edit',
      socket,
      limits,
      (answer) => {
        answer(failureAck(AppError.notFound('Message')));
        return Promise.resolve(undefined); // what Nest's proxy returns after its filter ran
      },
      a.ack,
    );
    expect(a.got).toEqual([
      { ok: false, error: { code: ErrorCode.NOT_FOUND, message: expect.any(String) as string } },
    ]);
    expect(r.counted).toEqual([{ command: 'message.edit', result: ErrorCode.NOT_FOUND }]);
  });

  it('refused by the limits: one failure ack with retryAfterMs, the handler never runs', async () => {
    const r = runner(new AppError(ErrorCode.RATE_LIMITED, 'Slow down', undefined, 250));
    const a = acks();
    let ran = false;
    await r.run.run(
      'message.send',
      socket,
      limits,
      () => {
        ran = true;
        return Promise.resolve(null);
      },
      a.ack,
    );
    expect(ran).toBe(false);
    expect(a.got).toEqual([
      {
        ok: false,
        error: { code: ErrorCode.RATE_LIMITED, message: 'Slow down', retryAfterMs: 250 },
      },
    ]);
    expect(r.counted).toEqual([{ command: 'message.send', result: ErrorCode.RATE_LIMITED }]);
  });

  it('without an ack callback: nothing thrown, still counted', async () => {
    const r = runner();
    await r.run.run('typing.start', socket, limits, () => Promise.resolve(null), undefined);
    await r.run.run(
      'typing.start',
      socket,
      limits,
      (answer) => {
        answer(failureAck(AppError.forbidden('Muted')));
        return Promise.resolve(undefined);
      },
      undefined,
    );
    expect(r.counted.map((c) => c.result)).toEqual(['ok', ErrorCode.FORBIDDEN]);
  });

  it('a handler that acks by itself (@Ack()) gets no second ack', async () => {
    const r = runner();
    const a = acks();
    await r.run.run(
      'custom',
      socket,
      limits,
      (answer) => {
        answer({ ok: true, data: 'mine' });
        return Promise.resolve('ignored');
      },
      a.ack,
      true,
    );
    expect(a.got).toEqual([{ ok: true, data: 'mine' }]);
    expect(r.counted).toEqual([{ command: 'custom', result: 'ok' }]);
  });
});
