import { Inject, Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import type { AccessClaims, AuthUser } from './auth-user';
import { AuthService } from './auth.service';
import { ALGORITHM, JWT_SETTINGS, type JwtSettings } from './jwt-settings';

/** HTTP side of authentication; the socket handshake uses AuthService.verifyAccessToken with the same rules. */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy) {
  constructor(
    @Inject(JWT_SETTINGS) settings: JwtSettings,
    private readonly auth: AuthService,
  ) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      secretOrKey: settings.secret,
      algorithms: [ALGORITHM],
      issuer: settings.issuer,
      audience: settings.audience,
      ignoreExpiration: false,
    });
  }

  validate(claims: AccessClaims): Promise<AuthUser> {
    return this.auth.authenticate(claims);
  }
}
