import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsInt, IsString, Max, MaxLength, Min, MinLength } from 'class-validator';
import { RoomIdParam } from '../../rooms/dto/room.dto';
import { FILTER_ACTIONS, type FilterAction, PATTERN_MAX_LENGTH } from '../word-filter';
import { IsId } from '../../common/validation';

export class SlowModeDto {
  @ApiProperty({
    example: 30,
    minimum: 0,
    description:
      'Least time between two messages of one member, in seconds; 0 turns slow mode off. ' +
      'At most SLOW_MODE_MAX_SECONDS (default 21600).',
  })
  @IsInt()
  @Min(0)
  @Max(604800)
  seconds: number;
}

export class CreateWordFilterDto {
  @ApiProperty({
    example: 'spam*',
    description:
      'A word or phrase, matched case-insensitively and as whole words (letters of any script); ' +
      'spaces match any whitespace; `*` stands for letters or digits inside a word (one per ' +
      'word besides a trailing one). Not a regular expression. Stored lower-cased.',
  })
  @IsString()
  @MinLength(1)
  @MaxLength(PATTERN_MAX_LENGTH * 2)
  pattern: string;

  @ApiProperty({
    enum: FILTER_ACTIONS,
    example: 'mask',
    description:
      '`block`: the message or edit is refused (422 CONTENT_BLOCKED); `mask`: matches are ' +
      'replaced by `*` and the message is stored so',
  })
  @IsIn(FILTER_ACTIONS)
  action: FilterAction;
}

export class WordFilterDto {
  @ApiProperty({ format: 'uuid' })
  id: string;
  @ApiProperty({ format: 'uuid', nullable: true, type: String, description: 'null: global' })
  roomId: string | null;
  @ApiProperty({ example: 'spam*' })
  pattern: string;
  @ApiProperty({ enum: FILTER_ACTIONS })
  action: FilterAction;
  @ApiProperty({ format: 'uuid', nullable: true, type: String })
  createdBy: string | null;
  @ApiProperty()
  createdAt: Date;
}

export class WordFilterListDto {
  @ApiProperty({ type: [WordFilterDto], description: 'Oldest first' })
  items: WordFilterDto[];
  @ApiProperty({
    example: 100,
    description: 'How many rules this list may hold (WORD_FILTERS_MAX_PER_ROOM / _GLOBAL)',
  })
  max: number;
}

export class FilterIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  filterId: string;
}

export class RoomFilterParams extends RoomIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  filterId: string;
}
