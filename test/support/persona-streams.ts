import type { PersonaStreamDelta, PersonaStreamSnapshot } from '../../src/chat/contract';

/**
 * The text a client shows for a reply it met mid-stream: the snapshot of room.join, then the
 * deltas of that stream with seq >= nextSeq, which must follow each other with no gap and no
 * duplicate (those below nextSeq are already in the snapshot's text).
 */
export function reconstruct(snapshot: PersonaStreamSnapshot, deltas: PersonaStreamDelta[]): string {
  let text = snapshot.text;
  let nextSeq = snapshot.nextSeq;
  for (const d of deltas) {
    if (d.messageId !== snapshot.messageId || d.seq < nextSeq) continue;
    if (d.seq !== nextSeq) throw new Error(`gap: expected seq ${nextSeq}, got ${d.seq}`);
    text += d.delta;
    nextSeq++;
  }
  return text;
}

/** A long deterministic reply: `n` chunks, `delayMs` apart. */
export const longReply = (n: number, delayMs: number) => ({
  chunks: Array.from({ length: n }, (_, i) => `w${i} `),
  delayMs,
});
export const fullText = (n: number) => Array.from({ length: n }, (_, i) => `w${i} `).join('');
