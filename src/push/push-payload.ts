import type { PushCandidate } from './push.store';

/** Longest message text a push carries (a lock-screen preview, not the message). */
export const PUSH_BODY_MAX_CHARS = 200;

/**
 * The JSON body POSTed to a push gateway (Matrix-like, docs/operations.md). One device per
 * request: the pusher this outbox row is for.
 */
export interface PushPayload {
  notification: {
    /** The notification's id (GET /api/v1/notifications). */
    id: number;
    kind: string;
    roomId: string;
    roomName: string;
    messageId: number;
    /** The sender's user id and username (null: a persona or a deleted account). */
    senderId: string | null;
    sender: string | null;
    senderDisplayName: string | null;
    /** Absent when the recipient hides content (PUT /api/v1/push/settings). */
    content?: { body: string };
    counts: { unread: number };
    devices: { app_id: string; pushkey: string; data: { lang: string } }[];
  };
}

/** Text cut to `max` characters (code points), with an ellipsis when cut. */
function preview(text: string, max: number): string {
  const chars = Array.from(text.replace(/\s+/g, ' ').trim());
  return chars.length <= max ? chars.join('') : chars.slice(0, max - 1).join('') + '…';
}

/**
 * One payload per pusher of the candidate's recipient, as the outbox keeps it: without the
 * message's text, which is added at delivery from the message as it is then
 * (withCurrentContent), so a row waiting for its retry never holds a deleted or edited text.
 */
export function renderPushes(c: PushCandidate): { pusherId: string; payload: PushPayload }[] {
  return c.pushers.map((p) => ({
    pusherId: p.id,
    payload: {
      notification: {
        id: Number(c.notificationId),
        kind: c.kind,
        roomId: c.roomId,
        roomName: c.roomName,
        messageId: Number(c.messageId),
        senderId: c.senderId,
        sender: c.senderUsername,
        senderDisplayName: c.senderDisplayName,
        counts: { unread: c.unread },
        devices: [{ app_id: p.appId, pushkey: p.pushKey, data: { lang: p.lang } }],
      },
    },
  }));
}

/**
 * A queued payload as it is delivered: its text taken from the message as it is now (an edit
 * shows; the outbox holds none), or left out when the recipient hides content now.
 * The rest (room, sender, counts, device) stays as rendered at enqueue.
 */
export function withCurrentContent(
  payload: unknown,
  now: { body: string; hideContent: boolean },
): PushPayload {
  const { notification } = payload as PushPayload;
  const { content: _enqueued, ...rest } = notification;
  return {
    notification: {
      ...rest,
      ...(now.hideContent ? {} : { content: { body: preview(now.body, PUSH_BODY_MAX_CHARS) } }),
    },
  };
}
