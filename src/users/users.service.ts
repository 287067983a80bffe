import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, Repository } from 'typeorm';
import { AppError } from '../common/errors';
import { DomainEvents } from '../events/domain-events';
import type { AuthUser } from '../auth/auth-user';
import { ListUsersQuery, PublicUserDto, UpdateUserDto, UserDto, UserPageDto } from './dto/user.dto';
import { Role, User } from './user.entity';

const UNIQUE_VIOLATION = '23505';

@Injectable()
export class UsersService {
  constructor(
    @InjectRepository(User) private readonly users: Repository<User>,
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
    try {
      return await this.users.save(
        this.users.create({
          username: input.username,
          email: input.email.toLowerCase(),
          passwordHash: input.passwordHash,
          displayName: input.displayName ?? null,
          role: input.role ?? 'user',
        }),
      );
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
        throw AppError.conflict('Username or email is already taken');
      }
      throw err;
    }
  }

  /** For login: by username (any case) or email, with the password hash. */
  findForLogin(login: string): Promise<User | null> {
    return this.users
      .createQueryBuilder('u')
      .addSelect('u.passwordHash')
      .where('lower(u.username) = lower(:login) OR u.email = lower(:login)', { login })
      .getOne();
  }

  findById(id: string): Promise<User | null> {
    return this.users.findOneBy({ id });
  }

  findByIdWithPassword(id: string): Promise<User | null> {
    return this.users.createQueryBuilder('u').addSelect('u.passwordHash').where({ id }).getOne();
  }

  /** Password change (AuthService), inside its transaction that also revokes sessions. */
  async setPasswordHash(
    id: string,
    passwordHash: string,
    manager: EntityManager = this.users.manager,
  ): Promise<void> {
    await manager.update(User, { id }, { passwordHash });
  }

  exists(username: string): Promise<boolean> {
    return this.users
      .createQueryBuilder('u')
      .where('lower(u.username) = lower(:username)', { username })
      .getExists();
  }

  async profile(id: string): Promise<PublicUserDto> {
    const user = await this.findById(id);
    if (!user) throw AppError.notFound('User');
    return PublicUserDto.of(user);
  }

  async list(query: ListUsersQuery): Promise<UserPageDto> {
    const qb = this.users
      .createQueryBuilder('u')
      .orderBy('lower(u.username)')
      .limit(query.limit + 1);
    if (query.after) qb.where('lower(u.username) > lower(:after)', { after: query.after });
    const rows = await qb.getMany();
    const items = rows.slice(0, query.limit).map((u) => UserDto.of(u));
    return {
      items,
      nextCursor: rows.length > query.limit ? items[items.length - 1].username : null,
    };
  }

  /** Admin: change role or disable. Disabling revokes every session (REST and sockets). */
  async update(actor: AuthUser, id: string, dto: UpdateUserDto): Promise<UserDto> {
    const user = await this.findById(id);
    if (!user) throw AppError.notFound('User');
    if (id === actor.id && (dto.role === 'user' || dto.disabled === true)) {
      throw AppError.conflict('Admins cannot demote or disable themselves');
    }
    const roleChanged = dto.role !== undefined && dto.role !== user.role;
    if (dto.role !== undefined) user.role = dto.role;
    if (dto.disabled !== undefined) user.disabled = dto.disabled;
    const saved = await this.users.save(user);
    if (roleChanged) this.events.emit('user.role.changed', { userId: id, role: saved.role });
    if (dto.disabled) this.events.emit('session.revoked', { userId: id, reason: 'user_disabled' });
    return UserDto.of(saved);
  }
}
