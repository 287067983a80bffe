import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { JwtService } from '@nestjs/jwt';
import { InjectRepository } from '@nestjs/typeorm';
import * as bcrypt from 'bcrypt';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Repository } from 'typeorm';
import type { Env } from '../config/env';
import { DomainEvents } from '../events/domain-events';
import { AppError, ErrorCode } from '../common/errors';
import { updatedRows } from '../common/sql';
import { UserDto } from '../users/dto/user.dto';
import type { Role, User } from '../users/user.entity';
import { UsersService } from '../users/users.service';
import type { AccessClaims, AuthUser, RefreshClaims } from './auth-user';
import {
  ChangePasswordDto,
  LoginDto,
  PASSWORD_MAX_BYTES,
  SignupDto,
  TokensDto,
} from './dto/auth.dto';
import { ALGORITHM, JWT_SETTINGS, type JwtSettings } from './jwt-settings';
import { Session } from './session.entity';

const INVALID_LOGIN = 'Invalid username or password';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

@Injectable()
export class AuthService implements OnApplicationBootstrap {
  private readonly logger = new Logger(AuthService.name);
  /** Compared against when the user does not exist, so timing does not reveal who exists. */
  private dummyHash?: Promise<string>;

  constructor(
    private readonly users: UsersService,
    @InjectRepository(Session) private readonly sessions: Repository<Session>,
    private readonly jwt: JwtService,
    @Inject(JWT_SETTINGS) private readonly settings: JwtSettings,
    private readonly config: ConfigService<Env, true>,
    private readonly events: DomainEvents,
  ) {}

  /** The first admin, from ADMIN_USERNAME/EMAIL/PASSWORD: created if absent, never overwritten. */
  async onApplicationBootstrap(): Promise<void> {
    const username = this.config.get('ADMIN_USERNAME', { infer: true });
    const email = this.config.get('ADMIN_EMAIL', { infer: true });
    const password = this.config.get('ADMIN_PASSWORD', { infer: true });
    if (!username || !email || !password) return;
    if (await this.users.exists(username)) return;
    await this.createUser({ username, email, password }, 'admin');
    this.logger.log(`Created admin user "${username}" from ADMIN_* settings`);
  }

  async createUser(dto: SignupDto, role: Role = 'user'): Promise<User> {
    // The DTO checks this for signup; ADMIN_PASSWORD and the CLI come here directly.
    if (Buffer.byteLength(dto.password, 'utf8') > PASSWORD_MAX_BYTES) {
      throw AppError.invalid(`Password must be at most ${PASSWORD_MAX_BYTES} bytes (UTF-8)`);
    }
    const passwordHash = await bcrypt.hash(
      dto.password,
      this.config.get('BCRYPT_COST', { infer: true }),
    );
    return this.users.create({ ...dto, passwordHash, role });
  }

  async signup(dto: SignupDto, userAgent?: string): Promise<TokensDto> {
    return this.startSession(await this.createUser(dto), userAgent);
  }

  async login(dto: LoginDto, userAgent?: string): Promise<TokensDto> {
    const user = await this.users.findForLogin(dto.username);
    const hash = user?.passwordHash ?? (await this.getDummyHash());
    const ok = await bcrypt.compare(dto.password, hash);
    // bcrypt reads 72 bytes and ignores the rest, so "stored password + anything" would match.
    // No stored password is longer (signup refuses it): a longer one is simply wrong.
    const tooLong = Buffer.byteLength(dto.password, 'utf8') > PASSWORD_MAX_BYTES;
    if (!user || !ok || tooLong || user.disabled) throw AppError.unauthorized(INVALID_LOGIN);
    return this.startSession(user, userAgent);
  }

  /**
   * Rotates the refresh token. The swap is one conditional UPDATE, so two concurrent refreshes
   * with one token cannot both win; presenting a rotated token revokes the whole family.
   */
  async refresh(token: string): Promise<TokensDto> {
    const claims = await this.verify<RefreshClaims>(token, 'refresh');
    const jti = randomUUID();
    const result: unknown = await this.sessions.query(
      `UPDATE sessions SET refresh_hash = $1
        WHERE id = $2 AND refresh_hash = $3 AND revoked_at IS NULL AND expires_at > now()
        RETURNING user_id`,
      [sha256(jti), claims.sid, sha256(claims.jti)],
    );
    if (updatedRows(result) === 0) {
      const session = await this.sessions.findOneBy({ id: claims.sid });
      if (session && !session.revokedAt) {
        await this.revokeSession(session.id, session.userId, 'refresh_reuse');
        this.logger.warn(`Refresh token reuse detected; session ${session.id} revoked`);
      }
      throw AppError.unauthorized('Refresh token is no longer valid');
    }
    const user = await this.users.findById(claims.sub);
    if (!user || user.disabled) throw AppError.unauthorized('Refresh token is no longer valid');
    return this.tokens(user, claims.sid, jti);
  }

  async logout(user: AuthUser): Promise<void> {
    await this.revokeSession(user.sessionId, user.id, 'logout');
  }

  /**
   * Changes the password and ends every other session of the user (other devices, and any
   * stolen token) at once, REST and sockets. The session that made the change stays signed in:
   * it has just proved the current password. New hash and revocations commit together.
   */
  async changePassword(user: AuthUser, dto: ChangePasswordDto): Promise<void> {
    const found = await this.users.findByIdWithPassword(user.id);
    const matches =
      found !== null &&
      Buffer.byteLength(dto.currentPassword, 'utf8') <= PASSWORD_MAX_BYTES &&
      (await bcrypt.compare(dto.currentPassword, found.passwordHash));
    if (!matches) {
      throw AppError.invalid('Validation failed', {
        currentPassword: ['currentPassword is incorrect'],
      });
    }
    if (await bcrypt.compare(dto.newPassword, found.passwordHash)) {
      throw AppError.invalid('Validation failed', {
        newPassword: ['newPassword must differ from the current password'],
      });
    }
    const hash = await bcrypt.hash(
      dto.newPassword,
      this.config.get('BCRYPT_COST', { infer: true }),
    );
    const revoked = await this.sessions.manager.transaction(async (manager) => {
      await this.users.setPasswordHash(user.id, hash, manager);
      // TypeORM answers an UPDATE … RETURNING with [rows, rowCount].
      const [rows] = await manager.query<[{ id: string }[], number]>(
        `UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_changed'
          WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL
          RETURNING id`,
        [user.id, user.sessionId],
      );
      return rows;
    });
    for (const { id } of revoked) {
      this.events.emit('session.revoked', {
        userId: user.id,
        sessionId: id,
        reason: 'password_changed',
      });
    }
  }

  /** Resolves verified access claims to a live user: session not revoked, user not disabled. */
  async authenticate(claims: AccessClaims): Promise<AuthUser> {
    if (claims.typ !== 'access' || !claims.sid || !claims.sub) {
      throw AppError.unauthorized('Not an access token');
    }
    const row = await this.sessions
      .createQueryBuilder('s')
      .innerJoin('users', 'u', 'u.id = s.user_id')
      .select([
        'u.id AS id',
        'u.username AS username',
        'u.display_name AS "displayName"',
        'u.role AS role',
      ])
      .where('s.id = :sid AND s.user_id = :sub AND s.revoked_at IS NULL AND NOT u.disabled', claims)
      .getRawOne<Omit<AuthUser, 'sessionId'>>();
    if (!row) throw AppError.unauthorized('Session has ended');
    return { ...row, sessionId: claims.sid };
  }

  /** For the socket handshake: the same rules as the HTTP strategy. */
  async verifyAccessToken(token: string): Promise<AuthUser & { expiresAt: number }> {
    const claims = await this.verify<AccessClaims>(token, 'access');
    return { ...(await this.authenticate(claims)), expiresAt: (claims.exp ?? 0) * 1000 };
  }

  private async verify<T extends AccessClaims | RefreshClaims>(
    token: string,
    typ: T['typ'],
  ): Promise<T> {
    let claims: T;
    try {
      claims = await this.jwt.verifyAsync<T>(token, {
        secret: this.settings.secret,
        algorithms: [ALGORITHM],
        issuer: this.settings.issuer,
        audience: this.settings.audience,
      });
    } catch (err) {
      if ((err as Error).name === 'TokenExpiredError') {
        throw new AppError(ErrorCode.TOKEN_EXPIRED, 'Token has expired');
      }
      throw AppError.unauthorized('Invalid token');
    }
    if (claims.typ !== typ)
      throw AppError.unauthorized(`Not ${typ === 'access' ? 'an access' : 'a refresh'} token`);
    return claims;
  }

  private async startSession(user: User, userAgent?: string): Promise<TokensDto> {
    const jti = randomUUID();
    const session = await this.sessions.save(
      this.sessions.create({
        userId: user.id,
        refreshHash: sha256(jti),
        expiresAt: new Date(Date.now() + this.settings.refreshTtl * 1000),
        userAgent: userAgent?.slice(0, 255) ?? null,
      }),
    );
    return this.tokens(user, session.id, jti);
  }

  private async tokens(user: User, sid: string, jti: string): Promise<TokensDto> {
    const common = {
      algorithm: ALGORITHM,
      issuer: this.settings.issuer,
      audience: this.settings.audience,
    };
    const [accessToken, refreshToken] = await Promise.all([
      this.jwt.signAsync(
        { sub: user.id, sid, typ: 'access' },
        { ...common, secret: this.settings.secret, expiresIn: this.settings.accessTtl },
      ),
      this.jwt.signAsync(
        { sub: user.id, sid, typ: 'refresh', jti },
        { ...common, secret: this.settings.secret, expiresIn: this.settings.refreshTtl },
      ),
    ]);
    return {
      accessToken,
      refreshToken,
      tokenType: 'Bearer',
      expiresIn: this.settings.accessTtl,
      user: UserDto.of(user),
    };
  }

  private async revokeSession(sessionId: string, userId: string, reason: string): Promise<void> {
    await this.sessions
      .createQueryBuilder()
      .update()
      .set({ revokedAt: () => 'now()', revokedReason: reason })
      .where('id = :sessionId AND revoked_at IS NULL', { sessionId })
      .execute();
    this.events.emit('session.revoked', { userId, sessionId, reason });
  }

  private getDummyHash(): Promise<string> {
    this.dummyHash ??= bcrypt.hash(
      randomBytes(16).toString('hex'),
      this.config.get('BCRYPT_COST', { infer: true }),
    );
    return this.dummyHash;
  }
}
