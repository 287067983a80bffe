import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsIn, IsInt, IsString, Max, MaxLength, Min } from 'class-validator';
import { Omittable, IsId } from '../../common/validation';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

/** A year: longer sanctions are "until lifted" (leave durationSec out). */
export const MAX_SANCTION_SEC = 366 * 24 * 3600;

export const ASSIGNABLE_ROLES = ['moderator', 'member'] as const;
export type AssignableRole = (typeof ASSIGNABLE_ROLES)[number];

export class SetMemberRoleDto {
  @ApiProperty({
    enum: ASSIGNABLE_ROLES,
    example: 'moderator',
    description: "The member's new role in this room (the owner's role cannot change)",
  })
  @IsIn(ASSIGNABLE_ROLES)
  role: AssignableRole;
}

/** A mute or a ban: who, for how long, why. */
export class SanctionDto {
  @ApiProperty({
    format: 'uuid',
    example: '3f0c9a52-8e1d-4b7a-9c2e-5d6f7a8b9c0d',
    description: 'Id of the user',
  })
  @IsId()
  userId: string;

  @ApiPropertyOptional({
    example: 3600,
    minimum: 1,
    maximum: MAX_SANCTION_SEC,
    description: 'Seconds from now; left out: until lifted',
  })
  @Omittable()
  @IsInt()
  @Min(1)
  @Max(MAX_SANCTION_SEC)
  durationSec?: number;

  @ApiPropertyOptional({
    example: 'Spamming links',
    maxLength: 500,
    description: 'Shown to the user in refusals and to the room in the event',
  })
  @Omittable()
  @Transform(trim)
  @IsString()
  @MaxLength(500)
  reason?: string;
}

export class BanDto {
  @ApiProperty({ format: 'uuid' })
  userId: string;
  @ApiProperty({ example: 'mallory' })
  username: string;
  @ApiProperty({
    nullable: true,
    type: String,
    format: 'date-time',
    description: 'When the ban ends; null: until lifted',
  })
  until: string | null;
  @ApiProperty({ example: 'Spamming links' })
  reason: string;
  @ApiProperty({ format: 'uuid', nullable: true, type: String })
  bannedBy: string | null;
  @ApiProperty()
  createdAt: Date;
}

export class BanListDto {
  @ApiProperty({ type: [BanDto], description: 'Bans in force, newest first' })
  items: BanDto[];
}
