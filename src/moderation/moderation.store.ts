import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import type { BanDto } from './dto/moderation.dto';

interface BanRow {
  user_id: string;
  username: string;
  until: Date | null;
  reason: string;
  banned_by: string | null;
  created_at: Date;
}

/**
 * The room_bans table (a ban outlives the membership it removes). Only bans in force count:
 * an expired ban is just a row nobody reads (a new ban of the same user replaces it).
 * "Until lifted" is stored as 'infinity' and answered as null.
 */
@Injectable()
export class ModerationStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Bans (or re-bans) a user for `durationSec` from now (database clock), or until lifted. */
  async ban(
    em: EntityManager,
    ban: {
      roomId: string;
      userId: string;
      durationSec: number | null;
      reason: string;
      bannedBy: string;
    },
  ): Promise<{ until: Date | null; createdAt: Date }> {
    const [row] = await em.query<{ until: Date | null; createdAt: Date }[]>(
      `INSERT INTO room_bans (room_id, user_id, until, reason, banned_by)
       VALUES ($1, $2, CASE WHEN $3::int IS NULL THEN 'infinity'::timestamptz
                            ELSE now() + $3::int * interval '1 second' END, $4, $5)
       ON CONFLICT (room_id, user_id) DO UPDATE
         SET until = EXCLUDED.until, reason = EXCLUDED.reason, banned_by = EXCLUDED.banned_by,
             created_at = now()
       RETURNING NULLIF(until, 'infinity') AS until, created_at AS "createdAt"`,
      [ban.roomId, ban.userId, ban.durationSec, ban.reason, ban.bannedBy],
    );
    return row;
  }

  /** Lifts a ban; false when none was in force (an expired row goes too). */
  async unban(em: EntityManager, roomId: string, userId: string): Promise<boolean> {
    const [rows] = await em.query<[{ active: boolean }[], number]>(
      `DELETE FROM room_bans WHERE room_id = $1 AND user_id = $2 RETURNING until > now() AS active`,
      [roomId, userId],
    );
    return rows.some((r) => r.active);
  }

  /** The bans in force in a room, newest first (named cross-module read of users.username). */
  async bans(roomId: string): Promise<BanDto[]> {
    const rows = await this.db.query<BanRow[]>(
      `SELECT b.user_id, u.username, NULLIF(b.until, 'infinity') AS until, b.reason,
              b.banned_by, b.created_at
         FROM room_bans b JOIN users u ON u.id = b.user_id
        WHERE b.room_id = $1 AND b.until > now()
        ORDER BY b.created_at DESC, b.user_id`,
      [roomId],
    );
    return rows.map((r) => ({
      userId: r.user_id,
      username: r.username,
      until: r.until ? r.until.toISOString() : null,
      reason: r.reason,
      bannedBy: r.banned_by,
      createdAt: r.created_at,
    }));
  }
}
