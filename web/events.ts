/** Live events from the socket, each handed to the part of the page it changes. */
import type { MemberDto } from '../src/rooms/dto/room.dto';
import { signedOut } from './app';
import { $ } from './dom';
import {
  redrawMessages,
  resumeStreams,
  showMessage,
  streamDelta,
  streamEnd,
  streamStart,
} from './messages';
import { reasonText, untilText } from './moderation';
import { loadNotifications, notificationCreated, notificationsRead } from './notifications';
import { reportArrived, reportClosed } from './reports';
import {
  markRead,
  renderMembers,
  renderRoomTools,
  renderTyping,
  roomStateChanged,
} from './room-view';
import { countNew, loadRooms, removeRoom, roomLabel, uncountDeleted, upsertRoom } from './rooms';
import { showRoomSettings } from './settings';
import { me, state } from './state';
import { threadMessage, threadUpdated } from './threads';
import { notice } from './ui';

export function wireEvents(): void {
  const { client } = state;
  const conn = $('#conn');
  client.on('connection', ({ state: s }) => {
    conn.textContent =
      s === 'connected' ? 'online' : s === 'disconnected' ? 'reconnecting…' : 'offline';
    conn.className = s;
    // Notifications written while the socket was down come with no event: load them again.
    if (s === 'connected') void loadNotifications().catch(() => undefined);
  });
  conn.textContent = 'online';
  conn.className = 'connected';

  client.on('message.created', (m) => {
    threadMessage(m);
    const open = state.open;
    if (open?.id !== m.roomId) return countNew(m);
    showMessage(m);
    markRead([m]);
    if (m.author) open.typing.delete(m.author.id);
    renderTyping();
  });
  client.on('message.updated', (m) => {
    showMessage(m);
    threadMessage(m);
  });
  client.on('message.deleted', (m) => {
    showMessage(m);
    threadMessage(m);
    uncountDeleted(m);
  });
  client.on('thread.updated', threadUpdated);
  client.on('notification.created', notificationCreated);
  client.on('notifications.read', (e) => notificationsRead(e.ids));
  client.on('reaction.updated', (e) => {
    const m = state.shown.get(e.messageId);
    if (m) showMessage({ ...m, version: e.version, reactions: e.reactions });
  });
  client.on('typing', (e) => {
    const open = state.open;
    if (!open || e.roomId !== open.id) return;
    if (e.typing) open.typing.set(e.userId, e.username);
    else open.typing.delete(e.userId);
    renderTyping();
  });
  client.on('presence.changed', (e) => {
    const open = state.open;
    if (!open) return;
    if (e.online) open.online.add(e.userId);
    else open.online.delete(e.userId);
    renderMembers();
  });
  client.on('member.joined', (e) => {
    const open = state.open;
    if (open?.id !== e.roomId) return;
    open.members.set(e.user.id, {
      userId: e.user.id,
      username: e.user.username,
      displayName: e.user.displayName,
      role: 'member',
      joinedAt: new Date(),
      muted: false,
      mutedUntil: null,
      muteReason: null,
    });
    open.online.add(e.user.id);
    renderMembers();
  });
  client.on('member.left', (e) => {
    if (e.userId === me().id) return removeRoom(e.roomId);
    const open = state.open;
    if (open?.id !== e.roomId) return;
    open.members.delete(e.userId);
    renderMembers();
  });
  client.on('room.created', (r) =>
    upsertRoom({
      unreadCount: 0,
      unreadMentions: 0,
      lastReadMessageId: 0,
      lastMessage: null,
      notify: r.joined ? 'default' : null,
      ...r,
    }),
  );
  client.on('room.updated', (r) => {
    // The room as every member sees it: no `joined`/`myRole`, so ours are kept.
    const known = state.rooms.get(r.id);
    if (known) upsertRoom({ ...known, ...r });
    const title = document.querySelector('[data-testid=room-title]');
    if (state.open?.id === r.id && title) {
      state.open.room = { ...state.open.room, ...r };
      if (!r.slowModeMs) state.open.sendAfter = 0;
      title.textContent = roomLabel(state.open.room);
      roomStateChanged();
    }
    redrawScreen(r.id);
  });
  client.on('room.deleted', ({ roomId }) => removeRoom(roomId));
  client.on('room.resynced', (r) => {
    const open = state.open;
    if (open?.id !== r.room.id) return;
    open.online = new Set(r.online);
    renderMembers();
    resumeStreams(r.streams);
  });
  client.on('persona.stream.start', streamStart);
  client.on('persona.stream.delta', streamDelta);
  client.on('persona.stream.end', streamEnd);
  client.on('session.revoked', (e) => {
    if (e.reason !== 'token_expired') signedOut(`Signed out: ${e.reason}`);
  });
  wireModeration();
}

/** Moderation: members' marks, my own mute and role, bans, archive, the reports queue. */
function wireModeration(): void {
  const { client } = state;
  client.on('member.muted', (e) => {
    // The reason comes only to the muted member and to those who moderate the room.
    const reason = e.reason ?? null;
    patchMember(e.roomId, e.userId, { muted: true, mutedUntil: e.until, muteReason: reason });
    if (e.userId === me().id)
      changeOpenRoom(e.roomId, (o) => (o.myMute = { until: e.until, reason: reason ?? '' }));
  });
  client.on('member.unmuted', (e) => {
    patchMember(e.roomId, e.userId, { muted: false, mutedUntil: null, muteReason: null });
    if (e.userId === me().id) changeOpenRoom(e.roomId, (o) => (o.myMute = null));
  });
  client.on('member.role.changed', (e) => {
    patchMember(e.roomId, e.userId, { role: e.role });
    if (e.userId !== me().id) return;
    const known = state.rooms.get(e.roomId);
    if (known) upsertRoom({ ...known, myRole: e.role });
    changeOpenRoom(e.roomId, (o) => {
      o.room = { ...o.room, myRole: e.role };
      redrawMessages(); // Remove buttons come or go
    });
  });
  client.on('member.banned', (e) => {
    if (e.userId === me().id) {
      const known = state.rooms.get(e.roomId);
      if (!known) return;
      notice(
        `You were banned from #${roomLabel(known)} ${untilText(e.until)}${reasonText(e.reason)}`,
      );
      return removeRoom(e.roomId);
    }
    const open = state.open;
    if (open?.id === e.roomId) {
      open.members.delete(e.userId);
      renderMembers();
    }
    redrawScreen(e.roomId);
  });
  client.on('member.unbanned', (e) => {
    if (e.userId === me().id) void loadRooms().catch(() => undefined);
    else redrawScreen(e.roomId);
  });
  for (const name of ['room.archived', 'room.unarchived'] as const)
    client.on(name, (e) => {
      const archivedAt = e.archivedAt ? new Date(e.archivedAt) : null;
      const known = state.rooms.get(e.roomId);
      if (known) upsertRoom({ ...known, archivedAt });
      changeOpenRoom(e.roomId, (o) => (o.room = { ...o.room, archivedAt }));
      redrawScreen(e.roomId);
    });
  client.on('report.created', (r) => {
    countReport(r.roomId, 1);
    reportArrived(r);
  });
  client.on('report.resolved', (r) => {
    countReport(r.roomId, -1);
    reportClosed(r);
  });
}

/** Changes the open room's state, if `roomId` is open, and redraws its head and composer. */
function changeOpenRoom(roomId: string, change: (open: NonNullable<typeof state.open>) => void) {
  if (state.open?.id !== roomId) return;
  change(state.open);
  roomStateChanged();
}

/** One member of the open room changed: its list; and the settings screen, if on it. */
function patchMember(roomId: string, userId: string, change: Partial<MemberDto>): void {
  const open = state.open;
  const m = open?.id === roomId ? open.members.get(userId) : undefined;
  if (open && m) {
    open.members.set(userId, { ...m, ...change });
    renderMembers();
  }
  redrawScreen(roomId);
}

/** The open room's count of open reports. */
function countReport(roomId: string, delta: number): void {
  const open = state.open;
  if (open?.id !== roomId || open.openReports === null) return;
  open.openReports = Math.max(0, open.openReports + delta);
  renderRoomTools();
}

/** The room's settings screen, if on screen, loaded again (moderation events). */
function redrawScreen(roomId: string): void {
  const screen = state.screen;
  if (screen?.kind !== 'settings' || screen.roomId !== roomId) return;
  void showRoomSettings(roomId, screen.name, true).catch(() => undefined);
}
