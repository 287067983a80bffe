/**
 * What the demo page knows, in one place: the session and socket client, the room list, the
 * personas, and the room on screen. Modules read and change it; each renders its own part.
 */
import type { MessageDto, NotificationDto, ParlorClient, ServerEvents } from '../client/index';
import type { PersonaDto } from '../src/personas/dto/persona.dto';
import type { MemberDto, RoomDto, RoomSummaryDto } from '../src/rooms/dto/room.dto';
import type { Session } from './session';

export interface OpenRoom {
  id: string;
  room: RoomDto;
  members: Map<string, MemberDto>;
  online: Set<string>;
  typing: Map<string, string>; // userId → username
  oldestId: number | null;
  hasMoreBefore: boolean;
  lastTypingSent: number;
  /** My mute in this room (the reason is known from member.muted or a refusal), or null. */
  myMute: { until: string | null; reason: string | null } | null;
  /** Slow mode (or the rate limit): no send before this time (epoch ms). */
  sendAfter: number;
  /** Why the word filter refused the last send (cleared when the text changes), or null. */
  blocked: string | null;
  /** Open reports in this room (moderators), or null when not shown. */
  openReports: number | null;
}

/**
 * The thread panel: a root, the replies loaded (the latest, and earlier pages as asked for), and
 * whether I follow it.
 */
export interface OpenThread {
  root: MessageDto;
  replies: Map<number, MessageDto>;
  /** `before` for the page of earlier replies; null when all are loaded. */
  prevCursor: number | null;
  /** `after` for the page of later replies (opened from a notification); null at the end. */
  nextCursor: number | null;
  following: boolean;
}

export const state = {
  session: undefined as unknown as Session,
  client: undefined as unknown as ParlorClient,
  /** Group and direct rooms in the sidebar (conversations are listed apart). */
  rooms: new Map<string, RoomSummaryDto>(),
  personas: new Map<string, PersonaDto>(),
  /** The room on screen (its messages, or its settings). */
  open: null as OpenRoom | null,
  /** Persona stream id → the element its text streams into, and the `seq` of the next delta. */
  streams: new Map<string, { text: HTMLElement; nextSeq: number }>(),
  /**
   * Stream events that came while a room was being joined, before its snapshot: applied (or
   * dropped as already in the snapshot's text) once the join answered (resumeStreams).
   */
  early: {
    deltas: new Map<string, ServerEvents['persona.stream.delta'][]>(),
    ended: new Map<string, ServerEvents['persona.stream.end']>(),
  },
  /** Messages of the open room on the page. */
  shown: new Map<number, MessageDto>(),
  /** The room whose settings or reports screen is on screen, if any (for live redraws). */
  screen: null as { kind: 'settings' | 'reports'; roomId: string; name: string } | null,
  /** The thread panel beside (on a phone: over) the open room, if shown. */
  thread: null as OpenThread | null,
  /** My notifications: the pages loaded (newest first) and the unread count of all of them. */
  notifications: { items: [] as NotificationDto[], unread: 0, nextCursor: null as number | null },
};

export const me = () => state.session.user;
export const isAdmin = () => state.session.user.role === 'admin';
