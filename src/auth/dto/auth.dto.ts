import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { plainToInstance } from 'class-transformer';
import {
  IsEmail,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  MinLength,
  ValidateBy,
  validate,
  ValidationOptions,
} from 'class-validator';
import { flattenValidationErrors } from '../../common/validation';
import { UserDto } from '../../users/dto/user.dto';

/** bcrypt silently ignores bytes past 72: refuse such passwords instead of truncating them. */
export const PASSWORD_MAX_BYTES = 72;
function MaxBytes(max: number, options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'maxBytes',
      validator: {
        validate: (v: unknown) => typeof v === 'string' && Buffer.byteLength(v, 'utf8') <= max,
        defaultMessage: (args) =>
          `${args?.property ?? 'value'} must be at most ${max} bytes (UTF-8)`,
      },
    },
    options,
  );
}

/**
 * bcrypt mishandles NUL (U+0000): "\0\0\0\0\0\0\0\0" hashes like the empty password. Refuse
 * NUL anywhere in a new password.
 */
function NoNul(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'noNul',
      validator: {
        validate: (v: unknown) => typeof v === 'string' && !v.includes('\0'),
        defaultMessage: (args) =>
          `${args?.property ?? 'value'} must not contain NUL (U+0000) characters`,
      },
    },
    options,
  );
}

/** NIST-style: at least 8 characters, no composition rules, at most 72 bytes, no NUL. */
export function IsPassword(): PropertyDecorator {
  return (target, key) => {
    IsString()(target, key);
    MinLength(8)(target, key);
    MaxBytes(PASSWORD_MAX_BYTES)(target, key);
    NoNul()(target, key);
  };
}

export class SignupDto {
  @ApiProperty({
    example: 'alice',
    description: '3–32 letters, digits, `_`, `.` or `-`; unique in any case',
  })
  @IsString()
  @MinLength(3)
  @MaxLength(32)
  @Matches(/^[A-Za-z0-9_.-]{3,32}$/, {
    message: 'username must be 3–32 letters, digits, underscores, dots or hyphens',
  })
  username: string;

  @ApiProperty({ example: 'alice@example.com' })
  @IsEmail()
  @MaxLength(254)
  email: string;

  @ApiProperty({
    example: 'correct horse battery staple',
    minLength: 8,
    description: 'At least 8 characters, at most 72 bytes',
  })
  @IsPassword()
  password: string;

  @ApiPropertyOptional({ example: 'Alice' })
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(64)
  displayName?: string;
}

/**
 * `values` checked by signup's rules, for admins made outside HTTP (ADMIN_* at boot, `cli
 * create-admin`): the DTO, and what is wrong with it by field (empty: nothing).
 */
export async function checkSignup(
  values: Record<string, unknown>,
): Promise<{ dto: SignupDto; errors: Record<string, string[]> }> {
  const dto = plainToInstance(SignupDto, values);
  return { dto, errors: flattenValidationErrors(await validate(dto)) };
}

export class LoginDto {
  @ApiProperty({ example: 'alice', description: 'Username or email' })
  @IsString()
  @IsNotEmpty()
  @MaxLength(254)
  username: string;

  @ApiProperty({ example: 'correct horse battery staple' })
  @IsString()
  @IsNotEmpty()
  @MaxLength(1024)
  password: string;
}

export class RefreshDto {
  @ApiPropertyOptional({
    example: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXAiOiJyZWZyZXNoIn0.c2lnbmF0dXJl',
    description: 'The refresh token; may come from the httpOnly cookie instead',
  })
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  refreshToken?: string;
}

export class ChangePasswordDto {
  @ApiProperty({ example: 'correct horse battery staple' })
  @IsString()
  @IsNotEmpty()
  @MaxLength(1024)
  currentPassword: string;

  @ApiProperty({
    example: 'a new, longer passphrase',
    minLength: 8,
    description: 'At least 8 characters, at most 72 bytes; must differ from the current one',
  })
  @IsPassword()
  newPassword: string;
}

export class TokensDto {
  @ApiProperty({ example: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…' })
  accessToken: string;
  @ApiProperty({ example: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…' })
  refreshToken: string;
  @ApiProperty({ example: 'Bearer' })
  tokenType: 'Bearer';
  @ApiProperty({ example: 900, description: 'Access token lifetime in seconds' })
  expiresIn: number;
  @ApiProperty({ type: UserDto })
  user: UserDto;
}
