import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { isUniqueViolation } from '../common/pg-errors';
import { updatedRows } from '../common/sql';
import { Role, User } from './user.entity';

/** A global suspension in force: until when, and why (users.suspended_until, suspension_reason). */
export interface Suspension {
  until: Date;
  reason: string;
}

export interface NewUser {
  username: string;
  /** Already normalised (NFC, lower case) by the service. */
  email: string;
  passwordHash: string;
  displayName: string | null;
  role: Role;
}

/** The `users` table: the only code that reads or writes it (other modules go through UsersService). */
@Injectable()
export class UserStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Runs `work` in one transaction; pass the manager to this and other stores' writes. */
  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.db.transaction(work);
  }

  /** Inserts a user; null when the username (any case) or the email is taken. */
  async insert(input: NewUser): Promise<User | null> {
    const repo = this.db.getRepository(User);
    try {
      return await repo.save(repo.create(input));
    } catch (err) {
      if (isUniqueViolation(err)) return null;
      throw err;
    }
  }

  /**
   * By username (any case) or by email, with the password hash. `login` is given normalised
   * (`normalizeLogin`) and compared as it is: lower() is applied to the stored name only (the
   * index's expression), never to the login, whose lower-casing the login throttle did already.
   */
  findForLogin(login: string): Promise<User | null> {
    return this.db
      .getRepository(User)
      .createQueryBuilder('u')
      .addSelect('u.passwordHash')
      .where('lower(u.username) = :login OR u.email = :login', { login })
      .getOne();
  }

  /**
   * With `lock`, inside a transaction: the row is locked until it commits (FOR NO KEY UPDATE:
   * against other changes of the row and a login's FOR SHARE, not against the foreign-key
   * checks of rows that point at the user, such as a message or a ban by them).
   */
  findById(
    id: string,
    manager: EntityManager = this.db.manager,
    lock = false,
  ): Promise<User | null> {
    return manager.findOne(User, {
      where: { id },
      ...(lock ? { lock: { mode: 'for_no_key_update' as const } } : {}),
    });
  }

  findByIdWithPassword(id: string): Promise<User | null> {
    return this.db
      .getRepository(User)
      .createQueryBuilder('u')
      .addSelect('u.passwordHash')
      .where({ id })
      .getOne();
  }

  /**
   * Replaces the hash only if it is still `oldHash` (a rehash at login must not undo a password
   * change that committed in between; of two password changes checked against one hash, only
   * the first commits). True when it replaced it.
   */
  async replacePasswordHash(
    id: string,
    oldHash: string,
    newHash: string,
    manager: EntityManager = this.db.manager,
  ): Promise<boolean> {
    const result: unknown = await manager.query(
      `UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3`,
      [newHash, id, oldHash],
    );
    return updatedRows(result) > 0;
  }

  /** The highest bcrypt cost among the stored password hashes (0: none). */
  async maxPasswordCost(): Promise<number> {
    const [row] = await this.db.query<{ cost: number }[]>(
      `SELECT COALESCE(max(split_part(password_hash, '$', 3)::int), 0)::int AS cost
         FROM users WHERE password_hash ~ '^\\$2[aby]?\\$[0-9]{2}\\$'`,
    );
    return row.cost;
  }

  existsByUsername(username: string): Promise<boolean> {
    return this.db
      .getRepository(User)
      .createQueryBuilder('u')
      .where('lower(u.username) = lower(:username)', { username })
      .getExists();
  }

  /** Ordered by lower(username); `limit` rows after the cursor. */
  page(after: string | undefined, limit: number): Promise<User[]> {
    const qb = this.db
      .getRepository(User)
      .createQueryBuilder('u')
      .orderBy('lower(u.username)')
      .limit(limit);
    if (after) qb.where('lower(u.username) > lower(:after)', { after });
    return qb.getMany();
  }

  /** Sets role and/or disabled; answers the row as saved. */
  async update(
    id: string,
    changes: { role?: Role; disabled?: boolean },
    manager: EntityManager = this.db.manager,
  ): Promise<User | null> {
    if (changes.role !== undefined || changes.disabled !== undefined) {
      await manager.update(User, { id }, changes);
    }
    return manager.findOne(User, { where: { id } });
  }

  /**
   * Suspends the user for `durationSec` from now (the database's clock, which every check
   * compares with) with a reason; answers the suspension as stored.
   */
  async suspend(
    id: string,
    durationSec: number,
    reason: string,
    manager: EntityManager = this.db.manager,
  ): Promise<Suspension> {
    const [rows] = await manager.query<[Suspension[], number]>(
      `UPDATE users SET suspended_until = now() + make_interval(secs => $2::double precision),
                        suspension_reason = $3
        WHERE id = $1
        RETURNING suspended_until AS until, suspension_reason AS reason`,
      [id, durationSec, reason],
    );
    return rows[0];
  }

  /** Lifts a suspension in force; false when there was none (or it had ended by itself). */
  async unsuspend(id: string, manager: EntityManager = this.db.manager): Promise<boolean> {
    const result: unknown = await manager.query(
      `UPDATE users SET suspended_until = NULL, suspension_reason = ''
        WHERE id = $1 AND suspended_until > now()
        RETURNING id`,
      [id],
    );
    return updatedRows(result) > 0;
  }

  /** The suspensions in force (until after now) of these users, by user id. */
  async suspensionsOf(ids: string[]): Promise<Map<string, Suspension>> {
    if (!ids.length) return new Map();
    const rows = await this.db.query<(Suspension & { id: string })[]>(
      `SELECT id, suspended_until AS until, suspension_reason AS reason FROM users
        WHERE id = ANY($1::uuid[]) AND suspended_until > now()`,
      [ids],
    );
    return new Map(rows.map(({ id, ...s }) => [id, s]));
  }
}
