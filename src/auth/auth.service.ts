import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { JwtService } from '@nestjs/jwt';
import * as bcrypt from 'bcrypt';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Env } from '../config/env';
import { DomainEvents } from '../events/domain-events';
import { AppError, ErrorCode } from '../common/errors';
import { UserDto } from '../users/dto/user.dto';
import type { Role, User } from '../users/user.entity';
import { UsersService } from '../users/users.service';
import type { AccessClaims, AuthUser, RefreshClaims } from './auth-user';
import {
  ChangePasswordDto,
  checkSignup,
  LoginDto,
  PASSWORD_MAX_BYTES,
  SignupDto,
  TokensDto,
} from './dto/auth.dto';
import { ALGORITHM, JWT_SETTINGS, type JwtSettings } from './jwt-settings';
import { SessionStore } from './session.store';

const INVALID_LOGIN = 'Invalid username or password';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * bcrypt reads at most 72 bytes, so "stored password + anything" would match, and it
 * mishandles NUL. No stored password is like that (signup refuses it): such a password is
 * simply wrong.
 */
function comparable(password: string): boolean {
  return Buffer.byteLength(password, 'utf8') <= PASSWORD_MAX_BYTES && !password.includes('\0');
}

/** The cost a bcrypt hash was made with (0 if it is not one). */
function costOf(hash: string): number {
  try {
    return bcrypt.getRounds(hash);
  } catch {
    return 0;
  }
}

@Injectable()
export class AuthService implements OnApplicationBootstrap {
  private readonly logger = new Logger(AuthService.name);
  /**
   * Dummy hashes at the costs in use (see `login`), compared against on a failed login so
   * timing does not reveal who exists.
   */
  private dummyHashes?: Promise<{ hash: string; cost: number }[]>;

  constructor(
    private readonly users: UsersService,
    private readonly sessions: SessionStore,
    private readonly jwt: JwtService,
    @Inject(JWT_SETTINGS) private readonly settings: JwtSettings,
    private readonly config: ConfigService<Env, true>,
    private readonly events: DomainEvents,
  ) {}

  /**
   * The first admin, from ADMIN_USERNAME/EMAIL/PASSWORD: created if absent, never overwritten.
   * Replicas booting together may all find it absent: the insert of all but one then conflicts,
   * and finding the admin there after that conflict is the admin being there (the process boots).
   * A conflict with the username still free (ADMIN_EMAIL is another user's) stops the boot.
   */
  async onApplicationBootstrap(): Promise<void> {
    const username = this.config.get('ADMIN_USERNAME', { infer: true });
    const email = this.config.get('ADMIN_EMAIL', { infer: true });
    const password = this.config.get('ADMIN_PASSWORD', { infer: true });
    if (!username || !email || !password) return;
    if (await this.users.exists(username)) return;
    // The rules signup and `cli create-admin` apply (an ASCII name matches PostgreSQL's
    // lower() as JavaScript's does): a mistyped setting stops the boot, saying which.
    const { errors } = await checkSignup({ username, email, password });
    if (Object.keys(errors).length) {
      const fields = Object.entries(errors).map(
        ([field, why]) => `ADMIN_${field.toUpperCase()}: ${why.join('; ')}`,
      );
      throw new Error(`Invalid ADMIN_* settings: ${fields.join('. ')}`);
    }
    try {
      await this.createUser({ username, email, password }, 'admin');
    } catch (err) {
      const conflict = err instanceof AppError && err.code === ErrorCode.CONFLICT;
      if (conflict && (await this.users.exists(username))) {
        this.logger.log(`Admin user "${username}" was created meanwhile (another instance)`);
        return;
      }
      throw err;
    }
    this.logger.log(`Created admin user "${username}" from ADMIN_* settings`);
  }

  async createUser(dto: SignupDto, role: Role = 'user'): Promise<User> {
    // The DTO checks this for signup; ADMIN_PASSWORD and the CLI come here directly.
    if (Buffer.byteLength(dto.password, 'utf8') > PASSWORD_MAX_BYTES) {
      throw AppError.invalid(`Password must be at most ${PASSWORD_MAX_BYTES} bytes (UTF-8)`);
    }
    if (dto.password.includes('\0')) {
      throw AppError.invalid('Password must not contain NUL (U+0000) characters');
    }
    const passwordHash = await bcrypt.hash(dto.password, this.cost);
    return this.users.create({ ...dto, passwordHash, role });
  }

  async signup(dto: SignupDto, userAgent?: string): Promise<TokensDto> {
    const user = await this.createUser(dto);
    return this.startSession(user, user.passwordHash, userAgent);
  }

  /**
   * Every failed login costs one compare at each cost in use: BCRYPT_COST, and the dearest
   * cost among stored hashes when that is higher (hashes made before the cost was lowered;
   * read once). An unknown user is compared against a dummy hash at each; a wrong password
   * against its own hash and a dummy at the other. So timing does not tell who has an account
   * after the cost was raised over older hashes or lowered under them. (A hash of a third,
   * cheaper cost pays its own compare on top.)
   * A successful login with a hash of another cost is rehashed at the configured one.
   */
  async login(dto: LoginDto, userAgent?: string): Promise<TokensDto> {
    const user = await this.users.findForLogin(dto.username);
    let ok = false;
    if (!user) {
      await this.failureCompares(dto.password, null);
    } else {
      ok = (await bcrypt.compare(dto.password, user.passwordHash)) && comparable(dto.password);
      if (!ok) await this.failureCompares(dto.password, costOf(user.passwordHash));
    }
    if (!user || !ok || user.disabled) throw AppError.unauthorized(INVALID_LOGIN);
    const hash =
      costOf(user.passwordHash) !== this.cost
        ? await this.rehash(user, dto.password)
        : user.passwordHash;
    return this.startSession(user, hash, userAgent);
  }

  /**
   * Rotates the refresh token. The swap is one conditional UPDATE, so two concurrent refreshes
   * with one token cannot both win; presenting a rotated token revokes the whole family. A
   * session past its end (REFRESH_TOKEN_TTL after login, whatever its newest token says) is
   * 401 "Session has expired": its natural end, not a reuse.
   */
  async refresh(token: string): Promise<TokensDto> {
    const claims = await this.verify<RefreshClaims>(token, 'refresh');
    const jti = randomUUID();
    if (!(await this.sessions.rotate(claims.sid, sha256(claims.jti), sha256(jti)))) {
      // A suspension ended every session of the user: say so (and until when).
      await this.refuseIfSuspended(claims.sub);
      const session = await this.sessions.refreshState(claims.sid);
      if (session?.expired && !session.revoked) throw AppError.unauthorized('Session has expired');
      if (session && !session.revoked) {
        await this.revokeSession(claims.sid, session.userId, 'refresh_reuse');
        this.logger.warn(`Refresh token reuse detected; session ${claims.sid} revoked`);
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
      comparable(dto.currentPassword) &&
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
    const hash = await bcrypt.hash(dto.newPassword, this.cost);
    // Only over the hash the current password was checked against: of two changes made at
    // once (two devices), the second would revoke the first's session and leave a password its
    // user never chose; it is refused instead. A hash replaced by a login's rehash (the same
    // password at another cost) is no change: the current password is checked against it once,
    // and the change goes on over it.
    const replace = (over: string) =>
      this.sessions.transaction(async (manager) =>
        (await this.users.replacePasswordHash(user.id, over, hash, manager))
          ? this.sessions.revokeAllOfUser(user.id, 'password_changed', manager, user.sessionId)
          : null,
      );
    let revoked = await replace(found.passwordHash);
    if (!revoked) {
      const now = await this.users.findByIdWithPassword(user.id);
      if (now && (await bcrypt.compare(dto.currentPassword, now.passwordHash)))
        revoked = await replace(now.passwordHash);
    }
    if (!revoked) throw AppError.conflict('The password was changed meanwhile: sign in again');
    for (const id of revoked) {
      this.events.emit('session.revoked', {
        userId: user.id,
        sessionId: id,
        reason: 'password_changed',
      });
    }
  }

  /** Resolves verified access claims to a live user: session not revoked, user not disabled. */
  async authenticate(claims: AccessClaims): Promise<AuthUser> {
    return (await this.authenticateUntil(claims)).user;
  }

  /**
   * `authenticate`, and until when the claims hold (ms since epoch): the token's expiry or its
   * session's end, whichever comes first. A socket lives until then; REST asks at each request.
   */
  async authenticateUntil(claims: AccessClaims): Promise<{ user: AuthUser; until: number }> {
    if (claims.typ !== 'access' || !claims.sid || !claims.sub) {
      throw AppError.unauthorized('Not an access token');
    }
    const row = await this.sessions.liveSessionUser(claims.sid, claims.sub);
    if (!row) throw AppError.unauthorized('Session has ended');
    const { endsAt, ...user } = row;
    const until = Math.min((claims.exp ?? 0) * 1000, new Date(endsAt).getTime());
    return { user: { ...user, sessionId: claims.sid }, until };
  }

  /** For the socket handshake: the same rules as the HTTP strategy; `expiresAt` as `until`. */
  async verifyAccessToken(token: string): Promise<AuthUser & { expiresAt: number }> {
    const { user, until } = await this.authenticateUntil(await this.accessClaims(token));
    return { ...user, expiresAt: until };
  }

  /**
   * An access token's claims, signature and expiry checked, without the database: whose and which
   * session it names. Not yet a live session: `authenticate` decides that (a socket's
   * `auth.refresh` subscribes to the session's revocations between the two).
   */
  async accessClaims(token: string): Promise<AccessClaims> {
    const claims = await this.verify<AccessClaims>(token, 'access');
    // Shaped as `authenticate` wants it (a socket joins the session's channel before that).
    if (!claims.sid || !claims.sub) throw AppError.unauthorized('Not an access token');
    return claims;
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

  /**
   * A new session for a user whose password hash was just checked to be `passwordHash`: not
   * created if the user was disabled or changed password meanwhile (then 401, as for a wrong
   * password).
   */
  private async startSession(
    user: User,
    passwordHash: string,
    userAgent?: string,
  ): Promise<TokensDto> {
    const jti = randomUUID();
    const create = () =>
      this.sessions.createIfCurrent(
        {
          userId: user.id,
          refreshHash: sha256(jti),
          expiresAt: new Date(Date.now() + this.settings.refreshTtl * 1000),
          userAgent: userAgent?.slice(0, 255) ?? null,
        },
        passwordHash,
      );
    let sessionId = await create();
    if (!sessionId) {
      // The password was right: a suspended user is told why, and until when.
      await this.refuseIfSuspended(user.id);
      // No suspension now: one may have ended between the two statements, so try once more
      // (a disable or password change refuses again).
      sessionId = await create();
      if (!sessionId) throw AppError.unauthorized(INVALID_LOGIN);
    }
    return this.tokens(user, sessionId, jti);
  }

  /** FORBIDDEN with `details: { reason, until }` while a global suspension of the user holds. */
  private async refuseIfSuspended(userId: string): Promise<void> {
    const suspension = await this.users.suspensionOf(userId);
    if (suspension) {
      throw new AppError(
        ErrorCode.FORBIDDEN,
        `Account suspended until ${suspension.until.toISOString()}: ${suspension.reason}`,
        { reason: suspension.reason, until: suspension.until },
      );
    }
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
    await this.sessions.revoke(sessionId, reason);
    this.events.emit('session.revoked', { userId, sessionId, reason });
  }

  private get cost(): number {
    return this.config.get('BCRYPT_COST', { infer: true });
  }

  /** The stored hash at the configured cost (unless the password changed meanwhile). */
  /** Answers the hash now stored (the new one, or the old one if the rehash did not happen). */
  private async rehash(user: User, password: string): Promise<string> {
    try {
      const hash = await bcrypt.hash(password, this.cost);
      if (await this.users.replacePasswordHash(user.id, user.passwordHash, hash)) return hash;
    } catch (err) {
      this.logger.warn({ msg: `Rehash at login failed for user ${user.id}`, err });
    }
    return user.passwordHash;
  }

  /** The compares a failed login pays beyond its own (`spent`: the cost of that one, if any). */
  private async failureCompares(password: string, spent: number | null): Promise<void> {
    for (const dummy of await this.getDummyHashes()) {
      if (dummy.cost === spent)
        spent = null; // paid already, once
      else await bcrypt.compare(password, dummy.hash);
    }
  }

  private getDummyHashes(): Promise<{ hash: string; cost: number }[]> {
    this.dummyHashes ??= this.users.maxPasswordCost().then((stored) =>
      Promise.all(
        [...new Set([this.cost, Math.max(this.cost, stored)])].map(async (cost) => ({
          hash: await bcrypt.hash(randomBytes(16).toString('hex'), cost),
          cost,
        })),
      ),
    );
    // Should the read fail, the next login tries again.
    this.dummyHashes.catch(() => (this.dummyHashes = undefined));
    return this.dummyHashes;
  }
}
