import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { AccessPolicy } from '../access/access.policy';
import { Presence } from '../common/presence';
import type { Env } from '../config/env';
import { RoomMembersCache, type RoomMember } from '../rooms/room-members.cache';
import { type MessageMentions, NO_MENTIONS, type StoredMention } from './message-store';
import { mentionTokens, resolveMentions } from './mentions';

/**
 * Resolves a message's mentions at send and edit: names from the room's members in memory
 * (RoomMembersCache: no query per message), `@here` through Presence (members with a live
 * socket on any instance), `@room` only for whoever holds `moderate` on the room (asked only
 * when the text says `@room`; otherwise it stays plain text). A text without `@` costs nothing.
 * The author is never among the mentioned rows (`userIds`); at most MENTION_MAX_USERS rows,
 * names first.
 */
@Injectable()
export class MentionsService {
  private readonly maxUsers: number;

  constructor(
    private readonly members: RoomMembersCache,
    private readonly presence: Presence,
    private readonly access: AccessPolicy,
    config: ConfigService<Env, true>,
  ) {
    this.maxUsers = config.get('MENTION_MAX_USERS', { infer: true });
  }

  /** NO_MENTIONS synchronously when the text has no `@token`. */
  resolve(
    author: { id: string },
    roomId: string,
    text: string,
  ): MessageMentions | Promise<MessageMentions> {
    const tokens = mentionTokens(text);
    return tokens.length ? this.resolveTokens(author, roomId, tokens) : NO_MENTIONS;
  }

  /**
   * A persona's reply: members mentioned by name only. `@here` and `@room` stay plain text (a
   * persona holds no power to page a room, and its text is whatever its prompt led it to say).
   */
  async resolveForPersona(roomId: string, text: string): Promise<MessageMentions> {
    const tokens = mentionTokens(text);
    return tokens.length ? this.resolveTokens(null, roomId, tokens) : NO_MENTIONS;
  }

  /** `author` null: a persona (names only). */
  private async resolveTokens(
    author: { id: string } | null,
    roomId: string,
    tokens: string[],
  ): Promise<MessageMentions> {
    const held = this.members.get(roomId);
    const members = held instanceof Promise ? await held : held;
    const parsed = resolveMentions<RoomMember>(tokens, (name) => members.byName.get(name));
    if (!author) parsed.here = parsed.room = false;
    const room = parsed.room && !!author && (await this.access.may(author, roomId, 'moderate'));
    const here = parsed.here && !room;
    const stored: StoredMention[] = parsed.users.map(({ userId, username }) => ({
      userId,
      username,
    }));
    if (parsed.here) stored.push({ group: 'here' });
    if (room) stored.push({ group: 'room' });
    const ids = new Set(parsed.users.map((u) => u.userId));
    const others = members.ids.filter((id) => id !== author?.id);
    if (room) for (const id of others) ids.add(id);
    else if (here) for (const id of await this.presence.onlineAmong(others)) ids.add(id);
    if (author) ids.delete(author.id);
    return { stored, userIds: [...ids].slice(0, this.maxUsers) };
  }
}
