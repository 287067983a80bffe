import { UseFilters, UseGuards, UsePipes } from '@nestjs/common';
import {
  Ack as AckParam,
  ConnectedSocket,
  MessageBody,
  SubscribeMessage,
} from '@nestjs/websockets';
import { AppError, ErrorCode } from '../common/errors';
import { createValidationPipe } from '../common/validation';
import type { CommandTracker } from '../limits/command-tracker';
import { Roles } from '../auth/decorators';
import { RateLimit, type CommandLimits } from '../limits/limits.decorators';
import type { MetricsService } from '../metrics/metrics.service';
import { ChatGateway } from './chat.gateway';
import type { Ack } from './contract';
import { RoomPayload } from './dto';
import type { ChatSocket } from './types';
import { gatewayCommands, WsCommandRunner } from './ws-ack';

/**
 * WsCommandRunner: exactly one ack per command (a result, the handler's failure, or a refusal
 * by the limits), counted once by its result code; gatewayCommands: each handler behind the
 * validation pipe, and a gateway it cannot run faithfully refused. The end-to-end suites (limits,
 * metrics, socket abuse, validation) run both through the real adapter; this pins the paths.
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
const ROOM = '6f9619ff-8b86-4d01-b42d-00cf4fc964ff';

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

  it("the handler's failure: one failure ack in the error vocabulary, counted by its code", async () => {
    const r = runner();
    const a = acks();
    const failing = () => Promise.reject(AppError.notFound('Message'));
    await r.run.run('message.edit', socket, limits, failing, a.ack);
    await r.run.run('message.edit', socket, limits, () => Promise.reject(new Error('bug')), a.ack);
    expect(a.got).toEqual([
      { ok: false, error: { code: ErrorCode.NOT_FOUND, message: expect.any(String) as string } },
      { ok: false, error: { code: ErrorCode.INTERNAL, message: expect.any(String) as string } },
    ]);
    expect(a.got[1]).not.toMatchObject({ error: { message: 'bug' } }); // internals not leaked
    expect(r.counted.map((c) => c.result)).toEqual([ErrorCode.NOT_FOUND, ErrorCode.INTERNAL]);
  });

  it('refused by the limits: one failure ack with retryAfterMs, the handler never runs', async () => {
    const r = runner(new AppError(ErrorCode.RATE_LIMITED, 'Slow down', undefined, 250));
    const a = acks();
    let ran = false;
    const work = () => {
      ran = true;
      return Promise.resolve(null);
    };
    await r.run.run('message.send', socket, limits, work, a.ack);
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
    const muted = () => Promise.reject(AppError.forbidden('Muted'));
    await r.run.run('typing.start', socket, limits, muted, undefined);
    expect(r.counted.map((c) => c.result)).toEqual(['ok', ErrorCode.FORBIDDEN]);
  });
});

describe('gatewayCommands', () => {
  class Gateway {
    seen: unknown[] = [];
    @SubscribeMessage('room.leave')
    @RateLimit('rooms')
    leave(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
      this.seen.push(s, dto);
      return { left: dto.roomId };
    }
  }

  it('runs the method on its instance with the socket and the validated, transformed payload', async () => {
    const gw = new Gateway();
    const commands = gatewayCommands(gw);
    const leave = commands.get('room.leave')!;
    expect(leave.limits).toEqual({ bucket: 'rooms', dbBound: true });
    await expect(leave.invoke(socket, { roomId: ROOM.toUpperCase() })).resolves.toEqual({
      left: ROOM,
    });
    expect(gw.seen[0]).toBe(socket);
    expect(gw.seen[1]).toBeInstanceOf(RoomPayload);
  });

  it('refuses a payload the DTO does not accept, before the method runs', async () => {
    const gw = new Gateway();
    const leave = gatewayCommands(gw).get('room.leave')!;
    for (const bad of [{ roomId: 'nope' }, { roomId: ROOM, extra: 1 }, null, 'text']) {
      await expect(leave.invoke(socket, bad)).rejects.toMatchObject({
        code: ErrorCode.VALIDATION_FAILED,
      });
    }
    expect(gw.seen).toEqual([]);
  });

  it('refuses at boot what it would otherwise skip: guards, pipes, filters, other parameters', () => {
    @UseGuards(class {})
    class Guarded {
      @SubscribeMessage('a')
      a(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
        return [s, dto];
      }
    }
    class PipedHandler {
      @SubscribeMessage('a')
      @UsePipes(createValidationPipe())
      a(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
        return [s, dto];
      }
    }
    @UseFilters()
    class Filtered {
      @SubscribeMessage('a')
      @UseFilters(class {})
      a(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
        return [s, dto];
      }
    }
    class WithAck {
      @SubscribeMessage('a')
      a(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload, @AckParam() ack: never) {
        return [s, dto, ack];
      }
    }
    class BodyProperty {
      @SubscribeMessage('a')
      a(@ConnectedSocket() s: ChatSocket, @MessageBody('roomId') id: string) {
        return [s, id];
      }
    }
    class Swapped {
      @SubscribeMessage('a')
      a(@MessageBody() dto: RoomPayload, @ConnectedSocket() s: ChatSocket) {
        return [s, dto];
      }
    }
    class Untyped {
      @SubscribeMessage('a')
      a(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: unknown) {
        return [s, dto]; // `unknown` is emitted as Object: the pipe would not validate it
      }
    }
    class WithRoles {
      @SubscribeMessage('a')
      @Roles('admin')
      a(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
        return [s, dto];
      }
    }
    class Twice {
      @SubscribeMessage('a')
      a(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
        return [s, dto];
      }
      @SubscribeMessage('a')
      b(@ConnectedSocket() s: ChatSocket, @MessageBody() dto: RoomPayload) {
        return [s, dto];
      }
    }
    const enhanced = 'declares guards, interceptors, pipes, filters or roles';
    const params = 'a must take (@ConnectedSocket(), @MessageBody()) and nothing else';
    const refused: [new () => object, string][] = [
      [Guarded, enhanced],
      [PipedHandler, `a ${enhanced}`],
      [Filtered, `a ${enhanced}`],
      [WithRoles, `a ${enhanced}`],
      [WithAck, params],
      [BodyProperty, params],
      [Swapped, params],
      [Untyped, "a's @MessageBody() must be typed with a DTO class"],
      [Twice, 'two handlers subscribe to a'],
    ];
    for (const [type, why] of refused)
      expect(() => gatewayCommands(new type())).toThrow(`${type.name}: ${why}`);
  });

  it('finds inherited handlers, as Nest does', async () => {
    class Derived extends Gateway {}
    const gw = new Derived();
    const leave = gatewayCommands(gw).get('room.leave')!;
    await expect(leave.invoke(socket, { roomId: ROOM })).resolves.toEqual({ left: ROOM });
    await expect(leave.invoke(socket, { roomId: 1 })).rejects.toBeInstanceOf(AppError);
  });

  it("accepts Parlor's gateway: every command it declares, with its limits", () => {
    const gw = Object.create(ChatGateway.prototype) as ChatGateway;
    const commands = gatewayCommands(gw);
    expect(commands.size).toBeGreaterThanOrEqual(16);
    expect(commands.get('message.send')?.limits).toEqual({ bucket: 'send', dbBound: false });
    expect(commands.get('history.fetch')?.limits).toEqual({ bucket: undefined, dbBound: true });
  });
});
