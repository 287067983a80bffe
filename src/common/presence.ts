/**
 * Who has a live socket, on any instance. Implemented by the chat module's PresenceService and
 * provided globally under this class, so features outside src/chat (notifications for `@here`,
 * push for offline users) can ask without importing the chat module.
 */
export abstract class Presence {
  /** Of `userIds`, those with at least one connected socket on any live instance. */
  abstract onlineAmong(userIds: string[]): Promise<string[]>;
}
