import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { Omittable, IsId } from '../../common/validation';
import { ROLES, type Role, User } from '../user.entity';
import type { Suspension } from '../user.store';
import { PageLimit } from '../../common/pagination';

export class UserIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  id: string;
}

export class PublicUserDto {
  @ApiProperty({ format: 'uuid', example: '3f1c2d9e-2b9c-4f7e-9d0a-6c1b2a3d4e5f' })
  id: string;
  @ApiProperty({ example: 'alice' })
  username: string;
  @ApiPropertyOptional({ example: 'Alice', nullable: true, type: String })
  displayName: string | null;
  @ApiProperty({ enum: ROLES, example: 'user' })
  role: Role;
  @ApiProperty()
  createdAt: Date;

  static of(u: User): PublicUserDto {
    return {
      id: u.id,
      username: u.username,
      displayName: u.displayName,
      role: u.role,
      createdAt: u.createdAt,
    };
  }
}

/** What a user sees of themself, and what admins see of everyone. */
export class UserDto extends PublicUserDto {
  @ApiProperty({ example: 'alice@example.com' })
  email: string;
  @ApiProperty({ example: false })
  disabled: boolean;
  @ApiPropertyOptional({
    example: '2026-01-01T12:00:00.000Z',
    description: 'While a global suspension holds: when it ends by itself',
  })
  suspendedUntil?: Date;
  @ApiPropertyOptional({
    example: 'Spamming several rooms',
    description: 'While a global suspension holds: why',
  })
  suspensionReason?: string;

  /** With the user's suspension in force, if any (UserStore.suspensionsOf). */
  static override of(u: User, suspension?: Suspension | null): UserDto {
    return {
      ...PublicUserDto.of(u),
      email: u.email,
      disabled: u.disabled,
      ...(suspension
        ? { suspendedUntil: suspension.until, suspensionReason: suspension.reason }
        : {}),
    };
  }
}

/** The longest global suspension: ten years (longer is what disabling the account is for). */
export const SUSPENSION_MAX_SEC = 10 * 365 * 24 * 3600;

export class SuspendUserDto {
  @ApiProperty({
    example: 86400,
    minimum: 1,
    maximum: SUSPENSION_MAX_SEC,
    description: 'How long, in seconds from now; the suspension ends by itself then',
  })
  @IsInt()
  @Min(1)
  @Max(SUSPENSION_MAX_SEC)
  durationSec: number;

  @ApiProperty({
    example: 'Spamming several rooms',
    maxLength: 500,
    description: 'Why: told to the user when they try to log in',
  })
  @IsString()
  @IsNotEmpty()
  @MaxLength(500)
  reason: string;
}

export class UpdateUserDto {
  @ApiPropertyOptional({ enum: ROLES, example: 'admin' })
  @Omittable()
  @IsIn(ROLES)
  role?: Role;

  @ApiPropertyOptional({
    example: true,
    description: 'Disabling revokes every session of the user at once.',
  })
  @Omittable()
  @IsBoolean()
  disabled?: boolean;

  @ApiPropertyOptional({
    maxLength: 500,
    example: 'Runs the support team',
    description: 'Why: kept in the audit log with the change',
  })
  @Omittable()
  @IsString()
  @MaxLength(500)
  reason?: string;
}

export class ListUsersQuery {
  @PageLimit(200, 50)
  limit: number = 50;

  @ApiPropertyOptional({
    description: 'Cursor: the username of the last user of the previous page',
  })
  @IsOptional()
  @IsString()
  after?: string;
}

export class UserPageDto {
  @ApiProperty({ type: [UserDto] })
  items: UserDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Pass as `after` for the next page' })
  nextCursor: string | null;
}
