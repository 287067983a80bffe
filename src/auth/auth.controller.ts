import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  Post,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { Env } from '../config/env';
import { ApiErrors } from '../common/swagger';
import { AppError } from '../common/errors';
import { UserDto } from '../users/dto/user.dto';
import { UsersService } from '../users/users.service';
import type { AuthUser } from './auth-user';
import { AuthService } from './auth.service';
import { CurrentUser, Public } from './decorators';
import { ChangePasswordDto, LoginDto, RefreshDto, SignupDto, TokensDto } from './dto/auth.dto';
import { AuthThrottleGuard } from './guards';

export const REFRESH_COOKIE = 'parlor_refresh';

@ApiTags('auth')
@Controller('auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly users: UsersService,
    private readonly config: ConfigService<Env, true>,
  ) {}

  @Public()
  @UseGuards(AuthThrottleGuard)
  @Post(['signup', 'register'])
  @ApiOperation({ summary: 'Create an account (never an admin) and start a session' })
  @ApiCreatedResponse({
    type: TokensDto,
    description: 'Account created: access and refresh tokens and the new user',
  })
  @ApiErrors(400, 409, 429)
  async signup(
    @Body() dto: SignupDto,
    @Headers('user-agent') ua: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<TokensDto> {
    return this.withCookie(res, await this.auth.signup(dto, ua));
  }

  @Public()
  @UseGuards(AuthThrottleGuard)
  @Post('login')
  @HttpCode(200)
  @ApiOperation({ summary: 'Log in with username (or email) and password' })
  @ApiOkResponse({
    type: TokensDto,
    description: 'Logged in: access and refresh tokens and the user',
  })
  @ApiErrors(
    400,
    [
      401,
      'Invalid credentials: no such user, wrong password, or the account is disabled',
      'Invalid username or password',
    ],
    [403, 'The account is suspended: `details: { reason, until }` say why and until when'],
    429,
  )
  async login(
    @Body() dto: LoginDto,
    @Headers('user-agent') ua: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<TokensDto> {
    return this.withCookie(res, await this.auth.login(dto, ua));
  }

  @Public()
  @UseGuards(AuthThrottleGuard)
  @Post('refresh')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Rotate the refresh token',
    description: 'Presenting an already-rotated refresh token revokes the whole session.',
  })
  @ApiOkResponse({
    type: TokensDto,
    description: 'A new token pair (the presented refresh token is now used up)',
  })
  @ApiErrors(
    400,
    [
      401,
      'No refresh token (body or cookie), or one that is invalid, expired, already used or of an ended session',
      'Refresh token is no longer valid',
    ],
    [403, 'The account is suspended: `details: { reason, until }` say why and until when'],
    429,
  )
  async refresh(
    @Body() dto: RefreshDto,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<TokensDto> {
    const token =
      dto.refreshToken ?? (req.cookies as Record<string, string> | undefined)?.[REFRESH_COOKIE];
    if (!token) throw AppError.unauthorized('Refresh token required');
    return this.withCookie(res, await this.auth.refresh(token));
  }

  @Post('logout')
  @HttpCode(204)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'End this session: its access and refresh tokens stop working at once' })
  @ApiNoContentResponse({
    description: 'Session ended (the refresh cookie is cleared when AUTH_COOKIE is on)',
  })
  @ApiErrors(401)
  async logout(
    @CurrentUser() user: AuthUser,
    @Res({ passthrough: true }) res: Response,
  ): Promise<void> {
    await this.auth.logout(user);
    if (this.cookies) res.clearCookie(REFRESH_COOKIE, { path: '/api/v1/auth' });
  }

  @UseGuards(AuthThrottleGuard)
  @Post('password')
  @HttpCode(204)
  @ApiBearerAuth()
  @ApiOperation({
    summary: 'Change my password',
    description:
      'Needs the current password. Every other session of the user ends at once (REST and ' +
      'sockets, `session.revoked` reason `password_changed`); this session stays signed in.',
  })
  @ApiNoContentResponse({ description: 'Password changed; the other sessions are ended' })
  @ApiErrors(
    [
      400,
      'Invalid input, a wrong currentPassword, or a newPassword equal to it (per-field details)',
    ],
    401,
    [409, 'The password was changed meanwhile (by another session): sign in again'],
    429,
  )
  changePassword(@CurrentUser() user: AuthUser, @Body() dto: ChangePasswordDto): Promise<void> {
    return this.auth.changePassword(user, dto);
  }

  @Get('me')
  @ApiBearerAuth()
  @ApiOperation({ summary: 'The current user' })
  @ApiOkResponse({ type: UserDto, description: 'The user the access token belongs to' })
  @ApiErrors(401)
  async me(@CurrentUser() user: AuthUser): Promise<UserDto> {
    const found = await this.users.findById(user.id);
    if (!found) throw AppError.unauthorized();
    return UserDto.of(found);
  }

  private get cookies(): boolean {
    return this.config.get('AUTH_COOKIE', { infer: true });
  }

  /** With AUTH_COOKIE on, browser clients also get the refresh token as an httpOnly cookie. */
  private withCookie(res: Response, tokens: TokensDto): TokensDto {
    if (this.cookies) {
      res.cookie(REFRESH_COOKIE, tokens.refreshToken, {
        httpOnly: true,
        sameSite: 'strict',
        secure: this.config.get('NODE_ENV', { infer: true }) === 'production',
        path: '/api/v1/auth',
        maxAge: this.config.get('REFRESH_TOKEN_TTL', { infer: true }) * 1000,
      });
    }
    return tokens;
  }
}
