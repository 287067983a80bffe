import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
} from 'class-validator';
import { HANDLE_PATTERN } from '../persona.entity';
import { PageLimit } from '../../common/pagination';
import { Omittable, IsId } from '../../common/validation';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);
const handle = ({ value }: { value: unknown }) =>
  typeof value === 'string' ? value.trim().toLowerCase() : value;

/** Upper bound of a persona's maxTokens (the model server may enforce a lower one). */
const MAX_TOKENS_CAP = 32768;

/** A persona's stop list: OpenAI's `stop` takes 4 sequences at most. */
const STOP_MAX = 4;
const STOP_MAX_LENGTH = 32;

/** The `stop` field of the create and update bodies (same rules, same example). */
function StopList(): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({
      type: [String],
      example: ['\nUser:', '###'],
      maxItems: STOP_MAX,
      default: [],
      description: `Up to ${STOP_MAX} distinct sequences of 1–${STOP_MAX_LENGTH} characters where the model stops writing (sent as the request's \`stop\`); [] sends none`,
    }),
    Omittable(),
    IsArray(),
    ArrayMaxSize(STOP_MAX),
    ArrayUnique(),
    IsString({ each: true }),
    MinLength(1, { each: true }),
    MaxLength(STOP_MAX_LENGTH, { each: true }),
  );
}

/** Largest daily token budget of a persona (personas.daily_token_budget is an integer). */
const MAX_BUDGET = 2_147_483_647;

/** A persona's own daily token budget (create and update): null clears it. */
function DailyTokenBudget(): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({
      example: 200000,
      nullable: true,
      type: Number,
      minimum: 0,
      maximum: MAX_BUDGET,
      description:
        'Tokens (prompt + completion) this persona may spend per UTC day, all rooms together; ' +
        'null or absent: PERSONA_DAILY_TOKENS_PERSONA; 0: unlimited',
    }),
    IsOptional(),
    IsInt(),
    Min(0),
    Max(MAX_BUDGET),
  );
}
const TALKATIVENESS = {
  example: 0.5,
  minimum: 0,
  maximum: 1,
  description:
    "The `auto` turn policy's chance that the persona speaks when nobody is mentioned (1 always, 0 never)",
};

export class PersonaIdParam {
  @ApiProperty({ format: 'uuid' })
  @IsId()
  id: string;
}

export class RoomPersonaParams {
  @ApiProperty({ format: 'uuid', description: 'Room id' })
  @IsId()
  id: string;

  @ApiProperty({ format: 'uuid' })
  @IsId()
  personaId: string;
}

export class CreatePersonaDto {
  @ApiProperty({
    example: 'sage',
    description: 'Unique; 2–32 of a–z 0–9 _ (lower-cased). People call the persona with @handle.',
  })
  @Transform(handle)
  @IsString()
  @Matches(HANDLE_PATTERN, { message: 'handle must be 2–32 of a–z, 0–9 and _' })
  handle: string;

  @ApiProperty({ example: 'Sage', description: '1–80 characters' })
  @Transform(trim)
  @IsString()
  @MinLength(1)
  @MaxLength(80)
  displayName: string;

  @ApiPropertyOptional({
    example: 'You are Sage, a patient tutor who answers questions about astronomy.',
    description: 'Admins only: never shown to users',
    default: '',
  })
  @Omittable()
  @IsString()
  @MaxLength(20000)
  systemPrompt?: string;

  @ApiPropertyOptional({
    example: 'Short answers, one idea at a time, no emoji.',
    description: 'Appended to the system prompt',
    default: '',
  })
  @Omittable()
  @Transform(trim)
  @IsString()
  @MaxLength(2000)
  style?: string;

  @ApiPropertyOptional({
    example: 'llama3.2',
    nullable: true,
    type: String,
    description: 'Model override; null or absent: the server-wide LLM_MODEL',
  })
  @IsOptional()
  @Transform(trim)
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  model?: string | null;

  @ApiPropertyOptional({ example: 0.7, minimum: 0, maximum: 2, default: 0.7 })
  @Omittable()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(2)
  temperature?: number;

  @ApiPropertyOptional({ example: 512, minimum: 1, maximum: MAX_TOKENS_CAP, default: 512 })
  @Omittable()
  @IsInt()
  @Min(1)
  @Max(MAX_TOKENS_CAP)
  maxTokens?: number;

  @StopList()
  stop?: string[];
  @ApiPropertyOptional({ ...TALKATIVENESS, default: 0.5 })
  @Omittable()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(1)
  talkativeness?: number;

  @ApiPropertyOptional({
    default: true,
    example: true,
    description: 'A disabled persona never replies',
  })
  @Omittable()
  @IsBoolean()
  enabled?: boolean;

  @ApiPropertyOptional({
    example: 'https://example.com/sage.png',
    nullable: true,
    type: String,
  })
  @IsOptional()
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true })
  @MaxLength(2000)
  avatarUrl?: string | null;

  @DailyTokenBudget()
  dailyTokenBudget?: number | null;
}

/** Every field optional; `model`, `avatarUrl` and `dailyTokenBudget` may be set to null to clear them. */
export class UpdatePersonaDto {
  @ApiPropertyOptional({ example: 'sage' })
  @Omittable()
  @Transform(handle)
  @IsString()
  @Matches(HANDLE_PATTERN, { message: 'handle must be 2–32 of a–z, 0–9 and _' })
  handle?: string;

  @ApiPropertyOptional({ example: 'Sage' })
  @Omittable()
  @Transform(trim)
  @IsString()
  @MinLength(1)
  @MaxLength(80)
  displayName?: string;

  @ApiPropertyOptional({
    example: 'You are Sage, a patient astronomer.',
    description: 'Admins only: never shown to users',
  })
  @Omittable()
  @IsString()
  @MaxLength(20000)
  systemPrompt?: string;

  @ApiPropertyOptional({ example: 'Answer in two sentences at most.' })
  @Omittable()
  @Transform(trim)
  @IsString()
  @MaxLength(2000)
  style?: string;

  @ApiPropertyOptional({ example: 'llama3.2', nullable: true, type: String })
  @IsOptional()
  @Transform(trim)
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  model?: string | null;

  @ApiPropertyOptional({ example: 0.7, minimum: 0, maximum: 2 })
  @Omittable()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(2)
  temperature?: number;

  @ApiPropertyOptional({ example: 512, minimum: 1, maximum: MAX_TOKENS_CAP })
  @Omittable()
  @IsInt()
  @Min(1)
  @Max(MAX_TOKENS_CAP)
  maxTokens?: number;

  @StopList()
  stop?: string[];
  @ApiPropertyOptional(TALKATIVENESS)
  @Omittable()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(1)
  talkativeness?: number;

  @ApiPropertyOptional({ example: false })
  @Omittable()
  @IsBoolean()
  enabled?: boolean;

  @ApiPropertyOptional({ example: 'https://example.com/sage.png', nullable: true, type: String })
  @IsOptional()
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true })
  @MaxLength(2000)
  avatarUrl?: string | null;

  @DailyTokenBudget()
  dailyTokenBudget?: number | null;
}

export class ListPersonasQuery {
  @PageLimit(200, 50)
  limit: number = 50;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page (a handle)' })
  @IsOptional()
  @Matches(HANDLE_PATTERN, { message: 'after is not a valid personas cursor' })
  after?: string;
}

export class PersonaDto {
  @ApiProperty({ format: 'uuid' })
  id: string;
  @ApiProperty({ example: 'sage' })
  handle: string;
  @ApiProperty({ example: 'Sage' })
  displayName: string;
  @ApiPropertyOptional({
    description: 'Present for admins only; users never receive the system prompt',
  })
  systemPrompt?: string;
  @ApiProperty({ example: 'Short answers, one idea at a time.' })
  style: string;
  @ApiProperty({ nullable: true, type: String, description: 'null: the server-wide LLM_MODEL' })
  model: string | null;
  @ApiProperty({ example: 0.7 })
  temperature: number;
  @ApiProperty({ example: 512 })
  maxTokens: number;
  @ApiProperty({ type: [String], example: ['###'], description: 'Stop sequences; [] none' })
  stop: string[];
  @ApiProperty({ example: 0.5, description: "The `auto` turn policy's chance of speaking (0–1)" })
  talkativeness: number;
  @ApiProperty()
  enabled: boolean;
  @ApiProperty({ nullable: true, type: String })
  avatarUrl: string | null;
  @ApiProperty({
    nullable: true,
    type: Number,
    description:
      "Tokens per UTC day (0: unlimited); null: the server's PERSONA_DAILY_TOKENS_PERSONA",
  })
  dailyTokenBudget: number | null;
  @ApiProperty({ nullable: true, type: String, format: 'uuid' })
  createdBy: string | null;
  @ApiProperty()
  createdAt: Date;
  @ApiProperty()
  updatedAt: Date;
}

export class PersonaPageDto {
  @ApiProperty({ type: [PersonaDto], description: 'By handle' })
  items: PersonaDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Pass as `after` for the next page' })
  nextCursor: string | null;
}

/** What a conversation shows of its persona (no prompt, no settings). */
export class PersonaSummaryDto {
  @ApiProperty({ format: 'uuid' })
  id: string;
  @ApiProperty({ example: 'sage' })
  handle: string;
  @ApiProperty({ example: 'Sage' })
  displayName: string;
  @ApiProperty({ nullable: true, type: String })
  avatarUrl: string | null;
  @ApiProperty({ description: 'A disabled persona does not reply' })
  enabled: boolean;
}
