import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { updatedRows } from '../common/sql';
import type { AuthUser } from './auth-user';
import { Session } from './session.entity';

/** The `sessions` table: the only code that reads or writes it. */
@Injectable()
export class SessionStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Runs `work` in one transaction; pass the manager to this and other stores' writes. */
  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.db.transaction(work);
  }

  /**
   * Starts a session only while the user is enabled, not suspended, and still has
   * `passwordHash`; null otherwise. Named cross-module read (users): the user's row is locked
   * FOR SHARE by the same statement, so a disable, a suspension or a password change committing
   * meanwhile either waits for this
   * session (and then revokes it) or wins (and no session is created). Checking first and
   * inserting after would let a login that overlaps a disable keep a live session.
   */
  async createIfCurrent(
    input: { userId: string; refreshHash: string; expiresAt: Date; userAgent: string | null },
    passwordHash: string,
  ): Promise<string | null> {
    const rows = await this.db.query<{ id: string }[]>(
      `INSERT INTO sessions (user_id, refresh_hash, expires_at, user_agent)
       SELECT u.id, $2, $3, $4 FROM users u
        WHERE u.id = $1 AND NOT u.disabled AND u.password_hash = $5
          AND (u.suspended_until IS NULL OR u.suspended_until <= now())
          FOR SHARE
       RETURNING id`,
      [input.userId, input.refreshHash, input.expiresAt, input.userAgent, passwordHash],
    );
    return rows[0]?.id ?? null;
  }

  findById(id: string): Promise<Session | null> {
    return this.db.getRepository(Session).findOneBy({ id });
  }

  /**
   * Why a rotation was refused, on the database's clock (the one `rotate` compares with):
   * the session's user, whether it was revoked, and whether it had expired. Null: no session.
   */
  async refreshState(
    id: string,
  ): Promise<{ userId: string; revoked: boolean; expired: boolean } | null> {
    const rows = await this.db.query<{ userId: string; revoked: boolean; expired: boolean }[]>(
      `SELECT user_id AS "userId", revoked_at IS NOT NULL AS revoked, expires_at <= now() AS expired
         FROM sessions WHERE id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  /**
   * Swaps the refresh hash in one conditional UPDATE (two concurrent refreshes with one token
   * cannot both win). False when the session is revoked, expired, or the hash is not current.
   */
  async rotate(id: string, currentHash: string, nextHash: string): Promise<boolean> {
    const result: unknown = await this.db.query(
      `UPDATE sessions SET refresh_hash = $1
        WHERE id = $2 AND refresh_hash = $3 AND revoked_at IS NULL AND expires_at > now()
        RETURNING user_id`,
      [nextHash, id, currentHash],
    );
    return updatedRows(result) > 0;
  }

  async revoke(id: string, reason: string): Promise<void> {
    await this.db.query(
      `UPDATE sessions SET revoked_at = now(), revoked_reason = $2
        WHERE id = $1 AND revoked_at IS NULL`,
      [id, reason],
    );
  }

  /** Ends every live session of a user (except one, if given); answers the ids it ended. */
  async revokeAllOfUser(
    userId: string,
    reason: string,
    manager: EntityManager = this.db.manager,
    exceptSessionId?: string,
  ): Promise<string[]> {
    // TypeORM answers an UPDATE … RETURNING with [rows, rowCount].
    const [rows] = await manager.query<[{ id: string }[], number]>(
      `UPDATE sessions SET revoked_at = now(), revoked_reason = $2
        WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3::uuid)
        RETURNING id`,
      [userId, reason, exceptSessionId ?? null],
    );
    return rows.map((r) => r.id);
  }

  /**
   * Named cross-module read: the user behind a live session (not revoked, not past its end; the
   * user neither disabled nor suspended), or null. Used for every authenticated request and
   * socket handshake: an access token stops working when its session ends (`endsAt`), whatever
   * its own expiry says.
   */
  async liveSessionUser(
    sessionId: string,
    userId: string,
  ): Promise<(Omit<AuthUser, 'sessionId'> & { endsAt: Date }) | null> {
    const rows = await this.db.query<(Omit<AuthUser, 'sessionId'> & { endsAt: Date })[]>(
      `SELECT u.id, u.username, u.display_name AS "displayName", u.role, s.expires_at AS "endsAt"
         FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
          AND NOT u.disabled
          AND (u.suspended_until IS NULL OR u.suspended_until <= now())`,
      [sessionId, userId],
    );
    return rows[0] ?? null;
  }
}
