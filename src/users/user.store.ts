import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { isUniqueViolation } from '../common/pg-errors';
import { updatedRows } from '../common/sql';
import { Role, User } from './user.entity';

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

  /** By username (any case) or by email (given normalised), with the password hash. */
  findForLogin(username: string, email: string): Promise<User | null> {
    return this.db
      .getRepository(User)
      .createQueryBuilder('u')
      .addSelect('u.passwordHash')
      .where('lower(u.username) = lower(:username) OR u.email = :email', { username, email })
      .getOne();
  }

  /** With `lock`, inside a transaction: the row is locked until it commits (FOR UPDATE). */
  findById(
    id: string,
    manager: EntityManager = this.db.manager,
    lock = false,
  ): Promise<User | null> {
    return manager.findOne(User, {
      where: { id },
      ...(lock ? { lock: { mode: 'pessimistic_write' as const } } : {}),
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

  async setPasswordHash(
    id: string,
    passwordHash: string,
    manager: EntityManager = this.db.manager,
  ): Promise<void> {
    await manager.update(User, { id }, { passwordHash });
  }

  /**
   * Replaces the hash only if it is still `oldHash` (a rehash at login must not undo a password
   * change that committed in between). True when it replaced it.
   */
  async replacePasswordHash(id: string, oldHash: string, newHash: string): Promise<boolean> {
    const result: unknown = await this.db.query(
      `UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3`,
      [newHash, id, oldHash],
    );
    return updatedRows(result) > 0;
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
}
