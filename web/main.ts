/**
 * Parlor demo client: plain TypeScript and DOM on top of the typed client (client/). Everything
 * a user typed is put on the page with text nodes (see dom.ts), never parsed as HTML.
 *
 * The parts: state.ts (what the page knows), session.ts (REST, uploads, files and tokens),
 * auth.ts (sign-in), app.ts (sign in/out), shell.ts (layout, phone sidebar), rooms.ts (the
 * sidebar's lists, direct messages, unread badges), room-view.ts (the open room), messages.ts
 * (one message), mentions.ts (mentions highlighted), composer.ts (and why one cannot write),
 * autocomplete.ts (`@` names in a message box), attachments.ts (uploads, previews, downloads),
 * threads.ts (the thread panel), notifications.ts (the bell and the list), personas.ts
 * (personas screen), settings.ts (room settings, members and their moderation), moderation.ts
 * (who may moderate, the inline forms), reports.ts (a room's report queue), events.ts (live
 * events).
 */
import { signedIn } from './app';
import { showAuth } from './auth';
import { ApiError, Session } from './session';

void (async () => {
  const restored = await Session.restore();
  if (restored) await signedIn(restored);
  else showAuth();
})();

// Surface unexpected failures instead of failing silently.
window.addEventListener('unhandledrejection', (ev) => {
  const reason: unknown = ev.reason;
  const el = document.getElementById('error');
  if (el)
    el.textContent =
      reason instanceof ApiError || reason instanceof Error ? reason.message : String(reason);
});
