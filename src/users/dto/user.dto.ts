import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsOptional, IsString, IsUUID } from 'class-validator';
import { Omittable } from '../../common/validation';
import { ROLES, type Role, User } from '../user.entity';
import { PageLimit } from '../../common/pagination';

export class UserIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsUUID()
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

  static override of(u: User): UserDto {
    return { ...PublicUserDto.of(u), email: u.email, disabled: u.disabled };
  }
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
