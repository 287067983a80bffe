/**
 * The receiving side of `parts`' Redis lines, in a process of its own so that decoding what it
 * receives does not take CPU from the publisher's event loop: one ioredis connection subscribed
 * the way Parlor's adapters subscribe, counting the messages it receives.
 *
 *   node redis-subscriber.js <redis url> classic <pattern>        PSUBSCRIBE (classic adapter)
 *   node redis-subscriber.js <redis url> sharded <channel> …      SSUBSCRIBE (sharded, dynamic)
 *
 * Sends `{ ready: true }` once subscribed; answers `{ count }` to every `'count'` it is sent.
 */
import { Redis } from 'ioredis';

const [url, mode, ...channels] = process.argv.slice(2);
const redis = new Redis(url, { maxRetriesPerRequest: 1 });
let count = 0;
const seen = () => void count++;
redis.on('pmessageBuffer', seen);
redis.on('smessageBuffer', seen);
redis.on('error', (err: Error) => process.send?.({ error: err.message }));
process.on('message', (m) => {
  if (m === 'count') process.send?.({ count });
});
process.on('disconnect', () => process.exit(0));

void (mode === 'classic' ? redis.psubscribe(...channels) : redis.ssubscribe(...channels)).then(
  () => process.send?.({ ready: true }),
  (err: Error) => {
    process.send?.({ error: err.message });
    process.exit(1);
  },
);
