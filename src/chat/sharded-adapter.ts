import { createShardedAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';

/** What a broadcast asks the adapter for (the part of a ClusterAdapter message read here). */
interface ClusterMessage {
  data?: { opts?: { rooms?: string[] } };
}

type ShardedAdapter = ReturnType<ReturnType<typeof createShardedAdapter>>;

/** The sharded adapter's own members this module builds on (@socket.io/redis-adapter 8.3). */
interface ShardedInternals {
  /** Publishes to the other instances (the channel from `computeChannel`); never throws. */
  publish(message: {
    type: number;
    data: { packet: unknown; opts: { rooms: string[]; except: string[]; flags: unknown } };
  }): void;
  /** `<prefix>#<nsp>#`: every instance's channel (joins, leaves, disconnects, requests). */
  readonly channel: string;
  /** `<prefix>#<nsp>#<uid>#`: answers to this instance's requests. */
  readonly responseChannel: string;
  /** The channel a message goes to: one room's own channel, or `channel`. */
  computeChannel(message: ClusterMessage): string;
}

/** Which channel a received message came on, for the counter. */
export type AdapterChannelKind = 'room' | 'server' | 'response';

/** The server-side event of the join barrier (see `shardedAdapter`). */
const SUBSCRIBED = 'parlor:adapter:subscribed';
/** `MessageType.BROADCAST` of socket.io-adapter's ClusterAdapter (the message it publishes). */
const BROADCAST = 3;
/** A join whose barrier never completes (an instance away) stops being special after this. */
const BARRIER_TIMEOUT_MS = 10_000;

const noop = () => undefined;

/**
 * The Socket.IO adapter over Redis 7 sharded pub/sub, one channel per room ("dynamic"
 * subscriptions): an instance subscribes to a room's channel while one of its sockets is in the
 * room (rooms, user and session channels alike), so it receives and decodes only the broadcasts
 * of its own rooms. Joins, leaves, disconnects, fetchSockets, broadcasts to several rooms or to
 * everyone travel on one channel every instance subscribes to (`server` below).
 *
 * What the package alone does not give, which Parlor's guarantees need:
 *
 * - **A join reaches before what follows it.** A socket joined to a room by another instance
 *   (`server.in(user).socketsJoin(room)`, then an emit to the room, as on `member.joined`)
 *   arrives at its instance on the server channel; that instance subscribes to the room's
 *   channel only then, so an emit published right after the join would pass it by. So the
 *   instance that published a join sends its broadcasts to those rooms on the server channel
 *   (which every instance reads in publish order, after the join) until every instance has
 *   confirmed that its subscriptions are in place (a barrier request sent after the join, each
 *   answering once its subscriber connection has processed everything issued before).
 * - **Local sockets first.** A broadcast reaches this instance's sockets at once, before the
 *   publish is answered (the package waits for it), as with the classic adapter.
 * - **A handshake's joins are subscribed before it completes.** `socket.join` here resolves once
 *   Redis has confirmed the subscriptions the join created, so a command sent right after
 *   `connect` already has its rooms' broadcasts from every instance flowing.
 *
 * `onReceived` counts each message the subscriber connection receives, by channel kind.
 */
export function shardedAdapter(
  pub: Redis,
  sub: Redis,
  onReceived: (kind: AdapterChannelKind) => void,
): (nsp: unknown) => ShardedAdapter {
  const make = createShardedAdapter(pub, sub, { subscriptionMode: 'dynamic' });
  const serverChannels = new Set<string>();
  const responseChannels = new Set<string>();
  // The package sends (un)subscriptions without handling their failure: a client closed on
  // shutdown, or Redis away, must not be an unhandled rejection (ioredis re-subscribes on
  // reconnect whatever it was subscribed to).
  for (const name of ['ssubscribe', 'sunsubscribe'] as const) {
    const send = sub[name].bind(sub) as (...channels: string[]) => Promise<unknown>;
    (sub as unknown as Record<typeof name, typeof send>)[name] = (...channels) =>
      send(...channels).catch(noop);
  }
  sub.on('smessageBuffer', (channel: Buffer) => {
    const name = channel.toString();
    if (serverChannels.has(name)) onReceived('server');
    else if (responseChannels.has(name)) onReceived('response');
    else onReceived('room');
  });
  /**
   * Resolves once Redis has processed every (un)subscription issued on `sub` before it (one
   * connection answers in order); at once while Redis is away, so nothing waits on an outage.
   */
  const subscribed = (channel: string): Promise<void> =>
    sub.status === 'ready' ? sub.ssubscribe(channel).then(noop) : Promise.resolve();

  // A function, not an arrow: Socket.IO calls the factory with `new`.
  return function parlorShardedAdapter(nsp: unknown) {
    const adapter = make(nsp);
    const own = adapter as unknown as ShardedInternals;
    serverChannels.add(own.channel);
    responseChannels.add(own.responseChannel);

    /** Rooms this instance published a join to whose barrier is not complete: count of joins. */
    const joining = new Map<string, number>();
    const computeChannel = own.computeChannel.bind(adapter);
    own.computeChannel = (message) => {
      const channel = computeChannel(message);
      const room = message.data?.opts?.rooms?.[0];
      return channel !== own.channel && room !== undefined && joining.has(room)
        ? own.channel
        : channel;
    };

    // This instance's sockets first, synchronously, as with the classic adapter (the package
    // delivers locally only once the publish has been answered): an emit reaches local sockets
    // before anything the caller does next (an ack, a leave), without a Redis round trip.
    const broadcast = adapter.broadcast.bind(adapter);
    adapter.broadcast = (packet, opts) => {
      if (opts.flags?.local) return broadcast(packet, opts);
      const encoded = {
        rooms: [...opts.rooms],
        except: [...(opts.except ?? [])],
        flags: opts.flags,
      };
      own.publish({ type: BROADCAST, data: { packet, opts: encoded } });
      return broadcast(packet, { ...opts, flags: { ...opts.flags, local: true } });
    };

    const addSockets = adapter.addSockets.bind(adapter);
    adapter.addSockets = (opts, rooms) => {
      if (opts.flags?.local) return addSockets(opts, rooms);
      for (const r of rooms) joining.set(r, (joining.get(r) ?? 0) + 1);
      let pending = true;
      const settle = () => {
        if (!pending) return;
        pending = false;
        clearTimeout(timer);
        for (const r of rooms) {
          const n = (joining.get(r) ?? 1) - 1;
          if (n > 0) joining.set(r, n);
          else joining.delete(r);
        }
      };
      const timer = setTimeout(settle, BARRIER_TIMEOUT_MS).unref();
      const done = addSockets(opts, rooms); // publishes the join (synchronously queued first)
      // Every instance handles the join before this request (same channel, publish order).
      adapter.serverSideEmit([SUBSCRIBED, settle]).catch(settle);
      return done;
    };
    (nsp as { on(event: string, fn: (ack: () => void) => void): void }).on(SUBSCRIBED, (ack) => {
      void subscribed(own.channel).then(ack);
    });

    const addAll = adapter.addAll.bind(adapter);
    adapter.addAll = (id, rooms) => {
      const creates = [...rooms].some((r) => r !== id && !adapter.rooms.has(r));
      const result = addAll(id, rooms);
      return creates ? subscribed(own.channel) : result;
    };
    return adapter;
  };
}
