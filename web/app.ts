/** Signing in and out: the shell, the socket, the first loads. */
import { ParlorClient } from '../client/index';
import { showAuth } from './auth';
import { wireEvents } from './events';
import { loadNotifications } from './notifications';
import { loadPersonas } from './personas';
import { loadConversations, loadRooms } from './rooms';
import type { Session } from './session';
import { renderShell } from './shell';
import { state } from './state';

export async function signedIn(s: Session): Promise<void> {
  state.session = s;
  renderShell();
  state.client = await ParlorClient.connect({
    url: location.origin,
    token: s.accessToken,
    refreshToken: () => s.refresh(),
  });
  wireEvents();
  await Promise.all([loadRooms(), loadConversations(), loadPersonas(), loadNotifications()]);
}

export async function logout(): Promise<void> {
  state.client.close();
  await state.session.logout().catch(() => undefined);
  signedOut();
}

/** Back to the sign-in form (logged out, or the session was revoked). */
export function signedOut(message = ''): void {
  state.open = null;
  state.thread = null;
  state.notifications = { items: [], unread: 0, nextCursor: null };
  state.rooms.clear();
  state.shown.clear();
  state.streams.clear();
  showAuth(message);
}
