import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/errors';
import { DomainEvents } from '../events/domain-events';
import type { AuthUser } from '../auth/auth-user';
import { SessionStore } from '../auth/session.store';
import {
  ListUsersQuery,
  PublicUserDto,
  SuspendUserDto,
  UpdateUserDto,
  UserDto,
  UserPageDto,
} from './dto/user.dto';
import { Role, User } from './user.entity';
import { type Suspension, UserStore } from './user.store';

/**
 * One account per address however it is typed: Unicode NFC (so "é" typed precomposed or as
 * "e" + combining accent is one address) and lower case.
 */
export function normalizeEmail(email: string): string {
  return email.normalize('NFC').toLowerCase();
}

/**
 * The one name of the account a login (username or email) asks for: NFC, lower case (as
 * `normalizeEmail`). The login throttle keys on it (AuthThrottleGuard) and `findForLogin` looks
 * up exactly it (`lower(username) = key OR email = key`, never PostgreSQL's `lower()` of what was
 * typed): the two cannot disagree, so no spelling reaches an account from another bucket ("İ",
 * U+0130, is "i" + U+0307 here but "i" to PostgreSQL's lower(); usernames are ASCII, so a
 * login with it names no account).
 */
export function normalizeLogin(login: string): string {
  return login.normalize('NFC').toLowerCase();
}

@Injectable()
export class UsersService {
  constructor(
    private readonly users: UserStore,
    private readonly sessions: SessionStore,
    private readonly events: DomainEvents,
    private readonly audit: AuditService,
  ) {}

  /** Creates a user; a taken username (any case) or email is a 409. */
  async create(input: {
    username: string;
    email: string;
    passwordHash: string;
    displayName?: string | null;
    role?: Role;
  }): Promise<User> {
    const user = await this.users.insert({
      username: input.username.normalize('NFC'),
      email: normalizeEmail(input.email),
      passwordHash: input.passwordHash,
      displayName: input.displayName ?? null,
      role: input.role ?? 'user',
    });
    if (!user) throw AppError.conflict('Username or email is already taken');
    return user;
  }

  /** For login: by username (any case) or email, with the password hash (`normalizeLogin`). */
  findForLogin(login: string): Promise<User | null> {
    return this.users.findForLogin(normalizeLogin(login));
  }

  findById(id: string): Promise<User | null> {
    return this.users.findById(id);
  }

  findByIdWithPassword(id: string): Promise<User | null> {
    return this.users.findByIdWithPassword(id);
  }

  /**
   * Replaces the hash if it is still `oldHash` (false otherwise): login's rehash to the
   * configured cost, and a password change (AuthService, in its transaction that also revokes
   * sessions), both checked against the hash they read.
   */
  replacePasswordHash(
    id: string,
    oldHash: string,
    newHash: string,
    manager?: EntityManager,
  ): Promise<boolean> {
    return this.users.replacePasswordHash(id, oldHash, newHash, manager);
  }

  /** The highest bcrypt cost among the stored password hashes (login's dummy compare). */
  maxPasswordCost(): Promise<number> {
    return this.users.maxPasswordCost();
  }

  exists(username: string): Promise<boolean> {
    return this.users.existsByUsername(username);
  }

  async profile(id: string): Promise<PublicUserDto> {
    const user = await this.findById(id);
    if (!user) throw AppError.notFound('User');
    return PublicUserDto.of(user);
  }

  async list(query: ListUsersQuery): Promise<UserPageDto> {
    const rows = await this.users.page(query.after, query.limit + 1);
    const page = rows.slice(0, query.limit);
    const suspended = await this.users.suspensionsOf(page.map((u) => u.id));
    const items = page.map((u) => UserDto.of(u, suspended.get(u.id)));
    return {
      items,
      nextCursor: rows.length > query.limit ? items[items.length - 1].username : null,
    };
  }

  /**
   * Admin: change role or disable. Disabling ends every session of the user in the same
   * transaction as the flag (so re-enabling later brings none of them back); after commit,
   * `session.revoked` tells live sockets, and `user.role.changed` tells the chat module to
   * re-evaluate what the user's sockets may see. Each actual change is audited in the same
   * transaction (`user.role` with from/to, `user.disable`, `user.enable`); a no-op is not.
   */
  async update(actor: AuthUser, id: string, dto: UpdateUserDto): Promise<UserDto> {
    if (id === actor.id && (dto.role === 'user' || dto.disabled === true)) {
      throw AppError.conflict('Admins cannot demote or disable themselves');
    }
    const changes: { role?: Role; disabled?: boolean } = {};
    if (dto.role !== undefined) changes.role = dto.role;
    if (dto.disabled !== undefined) changes.disabled = dto.disabled;
    const { before, saved } = await this.users.transaction(async (manager) => {
      // The actor's row too, both locked in id order (two admins changing each other at once
      // never deadlock): the actor is asked again to be an enabled admin now, so two admins
      // demoting (or disabling) each other at once cannot both succeed and leave no admin.
      const locked = new Map<string, User | null>();
      for (const uid of [...new Set([actor.id, id])].sort()) {
        locked.set(uid, await this.users.findById(uid, manager, true));
      }
      const self = locked.get(actor.id);
      if (!self || self.role !== 'admin' || self.disabled) {
        throw AppError.forbidden('Requires role: admin');
      }
      const before = locked.get(id);
      if (!before) throw AppError.notFound('User');
      const saved = (await this.users.update(id, changes, manager)) ?? before;
      if (changes.disabled === true) {
        await this.sessions.revokeAllOfUser(id, 'user_disabled', manager);
      }
      const entry = {
        actorId: actor.id,
        targetType: 'user',
        targetId: id,
        reason: dto.reason,
      } as const;
      if (saved.role !== before.role) {
        const details = { from: before.role, to: saved.role };
        await this.audit.record({ ...entry, action: 'user.role', details }, manager);
      }
      if (saved.disabled !== before.disabled) {
        const action = saved.disabled ? 'user.disable' : 'user.enable';
        await this.audit.record({ ...entry, action }, manager);
      }
      return { before, saved };
    });
    if (dto.disabled) {
      this.events.emit('session.revoked', { userId: id, reason: 'user_disabled' });
    }
    if (saved.role !== before.role) {
      this.events.emit('user.role.changed', { userId: id, role: saved.role });
    }
    return UserDto.of(saved, (await this.users.suspensionsOf([id])).get(id));
  }

  /** The user's global suspension in force, or null (login and refresh ask, to say why). */
  async suspensionOf(id: string): Promise<Suspension | null> {
    return (await this.users.suspensionsOf([id])).get(id) ?? null;
  }

  /**
   * Admin: a global suspension for a duration, with a reason. Unlike disabling it ends by
   * itself. Every session of the user ends in the same transaction (login and refresh then
   * answer FORBIDDEN with the reason and the end, see AuthService); after commit
   * `session.revoked` (reason `suspended`) tells their live sockets, which then disconnect.
   * Admins cannot be suspended (an admin is demoted first), so no admin suspends themself.
   * Suspending a suspended user replaces the end and the reason.
   */
  async suspend(actor: AuthUser, id: string, dto: SuspendUserDto): Promise<UserDto> {
    const { user, suspension } = await this.users.transaction(async (manager) => {
      const user = await this.users.findById(id, manager, true);
      if (!user) throw AppError.notFound('User');
      if (user.role === 'admin') throw AppError.forbidden('Admins cannot be suspended');
      const suspension = await this.users.suspend(id, dto.durationSec, dto.reason, manager);
      await this.sessions.revokeAllOfUser(id, 'suspended', manager);
      await this.audit.record(
        {
          actorId: actor.id,
          action: 'user.suspend',
          targetType: 'user',
          targetId: id,
          reason: dto.reason,
          details: { until: suspension.until, durationSec: dto.durationSec },
        },
        manager,
      );
      return { user, suspension };
    });
    this.events.emit('session.revoked', { userId: id, reason: 'suspended' });
    return UserDto.of(user, suspension);
  }

  /** Admin: lifts a suspension in force (audited); a no-op when there is none. */
  async unsuspend(actor: AuthUser, id: string): Promise<UserDto> {
    return this.users.transaction(async (manager) => {
      const user = await this.users.findById(id, manager, true);
      if (!user) throw AppError.notFound('User');
      if (await this.users.unsuspend(id, manager)) {
        await this.audit.record(
          { actorId: actor.id, action: 'user.unsuspend', targetType: 'user', targetId: id },
          manager,
        );
      }
      return UserDto.of(user);
    });
  }
}
