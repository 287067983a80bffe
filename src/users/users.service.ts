import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { AppError } from '../common/errors';
import { DomainEvents } from '../events/domain-events';
import type { AuthUser } from '../auth/auth-user';
import { SessionStore } from '../auth/session.store';
import { ListUsersQuery, PublicUserDto, UpdateUserDto, UserDto, UserPageDto } from './dto/user.dto';
import { Role, User } from './user.entity';
import { UserStore } from './user.store';

/**
 * One account per address however it is typed: Unicode NFC (so "é" typed precomposed or as
 * "e" + combining accent is one address) and lower case.
 */
export function normalizeEmail(email: string): string {
  return email.normalize('NFC').toLowerCase();
}

@Injectable()
export class UsersService {
  constructor(
    private readonly users: UserStore,
    private readonly sessions: SessionStore,
    private readonly events: DomainEvents,
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

  /** For login: by username (any case) or email, with the password hash. */
  findForLogin(login: string): Promise<User | null> {
    return this.users.findForLogin(login.normalize('NFC'), normalizeEmail(login));
  }

  findById(id: string): Promise<User | null> {
    return this.users.findById(id);
  }

  findByIdWithPassword(id: string): Promise<User | null> {
    return this.users.findByIdWithPassword(id);
  }

  /** Password change (AuthService), inside its transaction that also revokes sessions. */
  setPasswordHash(id: string, passwordHash: string, manager?: EntityManager): Promise<void> {
    return this.users.setPasswordHash(id, passwordHash, manager);
  }

  /** Login's rehash to the configured cost; a no-op if the password changed meanwhile. */
  replacePasswordHash(id: string, oldHash: string, newHash: string): Promise<boolean> {
    return this.users.replacePasswordHash(id, oldHash, newHash);
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
    const items = rows.slice(0, query.limit).map((u) => UserDto.of(u));
    return {
      items,
      nextCursor: rows.length > query.limit ? items[items.length - 1].username : null,
    };
  }

  /**
   * Admin: change role or disable. Disabling ends every session of the user in the same
   * transaction as the flag (so re-enabling later brings none of them back); after commit,
   * `session.revoked` tells live sockets, and `user.role.changed` tells the chat module to
   * re-evaluate what the user's sockets may see.
   */
  async update(actor: AuthUser, id: string, dto: UpdateUserDto): Promise<UserDto> {
    if (id === actor.id && (dto.role === 'user' || dto.disabled === true)) {
      throw AppError.conflict('Admins cannot demote or disable themselves');
    }
    const changes: { role?: Role; disabled?: boolean } = {};
    if (dto.role !== undefined) changes.role = dto.role;
    if (dto.disabled !== undefined) changes.disabled = dto.disabled;
    const { before, saved } = await this.users.transaction(async (manager) => {
      const before = await this.users.findById(id, manager, true);
      if (!before) throw AppError.notFound('User');
      const saved = (await this.users.update(id, changes, manager)) ?? before;
      if (changes.disabled === true) {
        await this.sessions.revokeAllOfUser(id, 'user_disabled', manager);
      }
      return { before, saved };
    });
    if (dto.disabled) {
      this.events.emit('session.revoked', { userId: id, reason: 'user_disabled' });
    }
    if (saved.role !== before.role) {
      this.events.emit('user.role.changed', { userId: id, role: saved.role });
    }
    return UserDto.of(saved);
  }
}
