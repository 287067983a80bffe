import { isForeignKeyViolation, isUniqueViolation } from '../common/pg-errors';
import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { AppError } from '../common/errors';
import { updatedRows } from '../common/sql';
import type { RoomKind } from '../rooms/room.entity';
import { Persona, RoomPersona } from './persona.entity';
import type { PromptRoom } from './prompt';
import {
  toTurnSettings,
  TURN_COLUMNS,
  type TurnSettings,
  type TurnSettingsRow,
} from './persona-turn.store';

/** The fields an admin sets on a persona (everything but ids and timestamps). */
export type PersonaFields = Partial<Omit<Persona, 'id' | 'createdAt' | 'updatedAt'>>;

/** A persona as the reply path needs it to decide who is called. */
export type RoomPersonaSummary = Pick<
  Persona,
  'id' | 'handle' | 'displayName' | 'enabled' | 'talkativeness'
>;

/** A room's kind and the personas present in it, in the order they were added. */
export interface RoomPersonas {
  kind: RoomKind;
  personas: RoomPersonaSummary[];
  /** The room's turn-taking settings; null: none stored (the `mention` policy). */
  turns: TurnSettings | null;
}

/** One conversation of a user with its persona, as `conversationsOf` reads it. */
export interface ConversationRow {
  id: string;
  name: string;
  created_at: Date;
  updated_at: Date;
  /** Newest activity in microseconds since the epoch (the list's cursor key), as a string. */
  activity: string;
  last_id: string | null;
  persona_id: string | null;
  handle: string | null;
  display_name: string | null;
  avatar_url: string | null;
  enabled: boolean | null;
}

/**
 * The personas module's store: the only code that reads or writes the `personas` and
 * `room_personas` tables. The rows of rooms (conversations included), memberships and messages
 * belong to the rooms and messages modules; the reads below that also look at them are named
 * queries owned here (`roomPersonas`, `promptRoom`, `conversationsOf`). PostgreSQL error codes
 * of these tables are interpreted here and nowhere else.
 */
@Injectable()
export class PersonaStore {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @InjectRepository(Persona) private readonly personas: Repository<Persona>,
  ) {}

  findById(id: string): Promise<Persona | null> {
    return this.personas.findOneBy({ id });
  }

  /** Personas by handle, after the `after` handle (exclusive), at most `limit`. */
  page(after: string | undefined, limit: number): Promise<Persona[]> {
    return this.personas
      .createQueryBuilder('p')
      .where(after ? 'p.handle > :after' : '1 = 1', { after })
      .orderBy('p.handle', 'ASC')
      .limit(limit)
      .getMany();
  }

  /** Creates a persona (in `em` when given); a taken handle is a 409. */
  insert(fields: PersonaFields, em?: EntityManager): Promise<Persona> {
    return this.saveUnique(this.personas.create(fields), em);
  }

  /** Applies `patch` to `persona` and saves it (in `em` when given); a taken handle is a 409. */
  update(persona: Persona, patch: PersonaFields, em?: EntityManager): Promise<Persona> {
    return this.saveUnique(Object.assign(persona, patch), em);
  }

  /** Deletes a persona (its room links go with it); false when there was none. */
  async delete(id: string, em?: EntityManager): Promise<boolean> {
    const result = await (em?.getRepository(Persona) ?? this.personas).delete({ id });
    return !!result.affected;
  }

  /** The personas present in a room, by handle. */
  inRoom(roomId: string): Promise<Persona[]> {
    return this.personas
      .createQueryBuilder('p')
      .innerJoin(RoomPersona, 'rp', 'rp.persona_id = p.id AND rp.room_id = :roomId', { roomId })
      .orderBy('p.handle', 'ASC')
      .getMany();
  }

  /**
   * Puts a persona in a room (idempotent). When the link is new, `then` runs in the same
   * transaction (the room's notice) and its result is returned; otherwise null.
   */
  async link(em: EntityManager, roomId: string, personaId: string, addedBy: string) {
    const added = await em.query<unknown[]>(
      `INSERT INTO room_personas (room_id, persona_id, added_by) VALUES ($1, $2, $3)
       ON CONFLICT DO NOTHING RETURNING persona_id`,
      [roomId, personaId, addedBy],
    );
    return added.length > 0;
  }

  /**
   * Takes a persona out of a room. When it was there, `then` runs in the same transaction (the
   * room's notice) and its result is returned; otherwise null.
   */
  async unlink(em: EntityManager, roomId: string, personaId: string): Promise<boolean> {
    const removed = await em.query<unknown>(
      `DELETE FROM room_personas WHERE room_id = $1 AND persona_id = $2`,
      [roomId, personaId],
    );
    return updatedRows(removed) > 0;
  }

  /** Puts a persona in a new conversation; false when the persona no longer exists. */
  async linkConversation(
    em: EntityManager,
    roomId: string,
    personaId: string,
    addedBy: string,
  ): Promise<boolean> {
    try {
      await em.insert(RoomPersona, { roomId, personaId, addedBy });
      return true;
    } catch (err) {
      if (isForeignKeyViolation(err)) return false;
      throw err;
    }
  }

  /**
   * Named query (rooms × personas × room_persona_settings): the room's kind, its personas in
   * the order they were added (ties by id: the round-robin order), and its turn-taking
   * settings; null when the room does not exist. Read for every person's message (cached).
   */
  async roomPersonas(roomId: string): Promise<RoomPersonas | null> {
    const rows = await this.db.query<
      (TurnSettingsRow & {
        kind: RoomKind;
        id: string | null;
        handle: string;
        display_name: string;
        enabled: boolean;
        talkativeness: number;
      })[]
    >(
      `SELECT r.kind, p.id, p.handle, p.display_name, p.enabled, p.talkativeness, ${TURN_COLUMNS}
         FROM rooms r
         LEFT JOIN room_persona_settings s ON s.room_id = r.id
         LEFT JOIN room_personas rp ON rp.room_id = r.id
         LEFT JOIN personas p ON p.id = rp.persona_id
        WHERE r.id = $1
        ORDER BY rp.added_at, rp.persona_id`,
      [roomId],
    );
    if (!rows.length) return null;
    return {
      kind: rows[0].kind,
      personas: rows
        .filter((r) => r.id !== null)
        .map((r) => ({
          id: r.id!,
          handle: r.handle,
          displayName: r.display_name,
          enabled: r.enabled,
          // A real (float4): 0.3 reads 0.30000001…; the selector sees the value that was set.
          talkativeness: Math.round(r.talkativeness * 1e6) / 1e6,
        })),
      turns: toTurnSettings(rows[0]),
    };
  }

  /** Named query (rooms): what a persona's prompt says about the room; null when it is gone. */
  async promptRoom(roomId: string): Promise<PromptRoom | null> {
    const rows = await this.db.query<PromptRoom[]>(
      `SELECT name, kind, theme, description FROM rooms WHERE id = $1`,
      [roomId],
    );
    return rows[0] ?? null;
  }

  /**
   * Named query (memberships × rooms × messages × personas): the user's conversations with
   * their persona, newest activity first (the last live message, or the creation of an empty
   * conversation); `only` narrows to one, `activity`/`id` continue after a cursor.
   */
  conversationsOf(
    userId: string,
    o: { only?: string; activity?: string | null; id?: string | null; limit: number },
  ): Promise<ConversationRow[]> {
    return this.db.query<ConversationRow[]>(
      `WITH mine AS (
         SELECT r.id, r.name, r.created_at, r.updated_at, lm.id AS last_id,
                (extract(epoch FROM COALESCE(lm.created_at, r.created_at)) * 1000000)::bigint AS activity
           FROM memberships ms
           JOIN rooms r ON r.id = ms.room_id AND r.kind = 'conversation'
           LEFT JOIN LATERAL (SELECT x.id, x.created_at FROM messages x
                               WHERE x.room_id = r.id AND x.deleted_at IS NULL
                               ORDER BY x.id DESC LIMIT 1) lm ON true
          WHERE ms.user_id = $1 AND ($2::uuid IS NULL OR r.id = $2))
       SELECT mine.*, p.id AS persona_id, p.handle, p.display_name, p.avatar_url, p.enabled
         FROM mine
         LEFT JOIN room_personas rp ON rp.room_id = mine.id
         LEFT JOIN personas p ON p.id = rp.persona_id
        WHERE $3::bigint IS NULL OR (mine.activity, mine.id) < ($3::bigint, $4::uuid)
        ORDER BY mine.activity DESC, mine.id DESC
        LIMIT $5`,
      [userId, o.only ?? null, o.activity ?? null, o.id ?? null, o.limit],
    );
  }

  private async saveUnique(persona: Persona, em?: EntityManager): Promise<Persona> {
    try {
      return await (em?.getRepository(Persona) ?? this.personas).save(persona);
    } catch (err) {
      if (isUniqueViolation(err))
        throw AppError.conflict('A persona with this handle already exists');
      throw err;
    }
  }
}
