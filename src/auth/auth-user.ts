import type { Role } from '../users/user.entity';

/** Who is calling: resolved from a verified access token, on HTTP and on sockets alike. */
export interface AuthUser {
  id: string;
  username: string;
  displayName: string | null;
  role: Role;
  sessionId: string;
}

export interface AccessClaims {
  sub: string;
  sid: string;
  typ: 'access';
  exp?: number;
}

export interface RefreshClaims {
  sub: string;
  sid: string;
  typ: 'refresh';
  jti: string;
}
