import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsOptional, IsString, Matches, MaxLength, MinLength } from 'class-validator';
import { MessageDto } from '../../messages/dto/message.dto';
import { PersonaSummaryDto } from './persona.dto';
import { PageLimit, ACTIVITY_CURSOR } from '../../common/pagination';
import { IsId } from '../../common/validation';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

export class CreateConversationDto {
  @ApiProperty({
    format: 'uuid',
    example: '3f0c9a52-8e1d-4b7a-9c2e-5d6f7a8b9c0d',
    description: 'An enabled persona',
  })
  @IsId()
  personaId: string;

  @ApiPropertyOptional({
    example: 'Trip to Lisbon',
    description: "1–80 characters; default: the persona's display name",
  })
  @IsOptional()
  @Transform(trim)
  @IsString()
  @MinLength(1)
  @MaxLength(80)
  title?: string;
}

export class UpdateConversationDto {
  @ApiProperty({ example: 'Trip to Lisbon (final plan)' })
  @Transform(trim)
  @IsString()
  @MinLength(1)
  @MaxLength(80)
  title: string;
}

export class ListConversationsQuery {
  @PageLimit(200, 50)
  limit: number = 50;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @Matches(ACTIVITY_CURSOR, { message: 'cursor is not a valid conversations cursor' })
  cursor?: string;
}

export class ConversationDto {
  @ApiProperty({
    format: 'uuid',
    description: 'Also the room id: use the room message routes and socket commands with it',
  })
  id: string;
  @ApiProperty({ example: 'Trip to Lisbon' })
  title: string;
  @ApiProperty({
    type: PersonaSummaryDto,
    nullable: true,
    description: 'null when the persona was deleted (the conversation stays readable)',
  })
  persona: PersonaSummaryDto | null;
  @ApiProperty()
  createdAt: Date;
  @ApiProperty()
  updatedAt: Date;
  @ApiProperty({ type: MessageDto, nullable: true })
  lastMessage: MessageDto | null;
}

export class ConversationPageDto {
  @ApiProperty({ type: [ConversationDto], description: 'Newest activity first' })
  items: ConversationDto[];
  @ApiProperty({ nullable: true, type: String })
  nextCursor: string | null;
}
