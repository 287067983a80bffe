import { randomInt } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import type { TurnPolicy } from './room-persona-settings.entity';

/** A room's turn-taking settings as stored (null overrides: the server's defaults). */
export interface TurnSettings {
  policy: TurnPolicy;
  crossTalk: boolean;
  maxSpeakers: number;
  seed: number;
  maxConsecutiveTurns: number | null;
  chainBudget: number | null;
  cooldownMs: number | null;
}

/** The settings a room without a row has: today's behaviour (mentions only, no cross-talk). */
export const DEFAULT_TURN_SETTINGS: TurnSettings = {
  policy: 'mention',
  crossTalk: false,
  maxSpeakers: 1,
  seed: 0,
  maxConsecutiveTurns: null,
  chainBudget: null,
  cooldownMs: null,
};

/** The settings' columns of `room_persona_settings s`, as `TurnSettingsRow` reads them. */
export const TURN_COLUMNS = `s.policy AS turn_policy, s.cross_talk, s.max_speakers, s.seed,
  s.max_consecutive_turns, s.chain_budget, s.cooldown_ms`;

export interface TurnSettingsRow {
  /** null: the room has no row. */
  turn_policy: TurnPolicy | null;
  cross_talk: boolean;
  max_speakers: number;
  seed: number;
  max_consecutive_turns: number | null;
  chain_budget: number | null;
  cooldown_ms: number | null;
}

export function toTurnSettings(r: TurnSettingsRow): TurnSettings | null {
  if (r.turn_policy === null) return null;
  return {
    policy: r.turn_policy,
    crossTalk: r.cross_talk,
    maxSpeakers: r.max_speakers,
    seed: r.seed,
    maxConsecutiveTurns: r.max_consecutive_turns,
    chainBudget: r.chain_budget,
    cooldownMs: r.cooldown_ms,
  };
}

/** A seed for a room that was given none: any non-negative 31-bit integer. */
function newSeed(): number {
  return randomInt(0, 2 ** 31);
}

/**
 * The `room_persona_settings` table (the personas module's): the only code that reads or
 * writes it, besides the named query `PersonaStore.roomPersonas`, which joins it for the reply
 * path's cache.
 */
@Injectable()
export class PersonaTurnStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** The room's settings; null when it has no row. */
  async get(roomId: string): Promise<TurnSettings | null> {
    const rows = await this.db.query<TurnSettingsRow[]>(
      `SELECT ${TURN_COLUMNS} FROM room_persona_settings s WHERE s.room_id = $1`,
      [roomId],
    );
    return rows.length ? toTurnSettings(rows[0]) : null;
  }

  /**
   * The room's settings, locked until `em`'s transaction ends; the row is made first (with
   * the defaults and a random seed) when there is none, so two changes at once apply one after
   * the other.
   */
  async lock(em: EntityManager, roomId: string): Promise<TurnSettings> {
    await em.query(
      `INSERT INTO room_persona_settings (room_id, seed) VALUES ($1, $2)
       ON CONFLICT (room_id) DO NOTHING`,
      [roomId, newSeed()],
    );
    const rows = await em.query<TurnSettingsRow[]>(
      `SELECT ${TURN_COLUMNS} FROM room_persona_settings s WHERE s.room_id = $1 FOR UPDATE`,
      [roomId],
    );
    return toTurnSettings(rows[0])!;
  }

  /** Writes the room's settings (its row locked by `lock` in the same transaction). */
  async save(em: EntityManager, roomId: string, s: TurnSettings, by: string): Promise<void> {
    await em.query(
      `UPDATE room_persona_settings
          SET policy = $2, cross_talk = $3, max_speakers = $4, seed = $5,
              max_consecutive_turns = $6, chain_budget = $7, cooldown_ms = $8,
              updated_by = $9, updated_at = now()
        WHERE room_id = $1`,
      [
        roomId,
        s.policy,
        s.crossTalk,
        s.maxSpeakers,
        s.seed,
        s.maxConsecutiveTurns,
        s.chainBudget,
        s.cooldownMs,
        by,
      ],
    );
  }
}
