import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';
import { Omittable } from '../../common/validation';
import { MAX_SPEAKERS_CAP, TURN_POLICIES, type TurnPolicy } from '../room-persona-settings.entity';

/** Upper bounds of the per-room overrides (sanity, not policy). */
const MAX_TURNS_CAP = 100;
const MAX_BUDGET_CAP = 100000;
const MAX_COOLDOWN_MS = 24 * 3600_000;

const POLICY_DOC =
  '`mention`: only personas called with @handle answer (the default). `round-robin`: a ' +
  'message that mentions no persona is answered by the next one in the order they were added. ' +
  "`auto`: by a seeded draw against each persona's talkativeness (one at random when none " +
  'wins). `director`: the model names the next speaker (or none). An @handle always calls ' +
  'that persona.';

/**
 * A change of a room's turn-taking (PUT): fields left out keep their value; `null` puts an
 * override back to the server's default.
 */
export class UpdatePersonaPolicyDto {
  @ApiPropertyOptional({ enum: TURN_POLICIES, example: 'round-robin', description: POLICY_DOC })
  @Omittable()
  @IsIn(TURN_POLICIES)
  policy?: TurnPolicy;

  @ApiPropertyOptional({
    example: true,
    description:
      "Whether a persona's reply may call other personas (its @mentions, else the policy's " +
      'next speaker), under the loop guards',
  })
  @Omittable()
  @IsBoolean()
  crossTalk?: boolean;

  @ApiPropertyOptional({
    example: 1,
    minimum: 1,
    maximum: MAX_SPEAKERS_CAP,
    description: '`auto`: at most this many personas answer one message',
  })
  @Omittable()
  @IsInt()
  @Min(1)
  @Max(MAX_SPEAKERS_CAP)
  maxSpeakers?: number;

  @ApiPropertyOptional({
    example: 42,
    minimum: 0,
    maximum: 2147483647,
    description:
      "`auto`: the room's seed; with a message's id it fixes the draw (set it to replay a " +
      'scenario)',
  })
  @Omittable()
  @IsInt()
  @Min(0)
  @Max(2147483647)
  seed?: number;

  @ApiPropertyOptional({
    example: 4,
    nullable: true,
    type: Number,
    minimum: 1,
    maximum: MAX_TURNS_CAP,
    description:
      "Persona turns in a row without a person's message; null: PERSONA_MAX_CONSECUTIVE_TURNS",
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_TURNS_CAP)
  maxConsecutiveTurns?: number | null;

  @ApiPropertyOptional({
    example: 20,
    nullable: true,
    type: Number,
    minimum: 0,
    maximum: MAX_BUDGET_CAP,
    description:
      'Persona-to-persona replies per PERSONA_CHAIN_BUDGET_WINDOW_MS; null: PERSONA_CHAIN_BUDGET',
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_BUDGET_CAP)
  chainBudget?: number | null;

  @ApiPropertyOptional({
    example: 10000,
    nullable: true,
    type: Number,
    minimum: 0,
    maximum: MAX_COOLDOWN_MS,
    description:
      "How long a persona must have been silent before another persona's reply calls it (ms); " +
      'null: PERSONA_COOLDOWN_MS',
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_COOLDOWN_MS)
  cooldownMs?: number | null;
}

/** The loop guards in force (the room's overrides, else the server's defaults). */
export class EffectiveGuardsDto {
  @ApiProperty({ example: 3 })
  maxConsecutiveTurns: number;
  @ApiProperty({ example: 50 })
  chainBudget: number;
  @ApiProperty({ example: 3600000, description: 'PERSONA_CHAIN_BUDGET_WINDOW_MS' })
  chainBudgetWindowMs: number;
  @ApiProperty({ example: 5000 })
  cooldownMs: number;
}

export class PersonaPolicyDto {
  @ApiProperty({ enum: TURN_POLICIES, example: 'mention', description: POLICY_DOC })
  policy: TurnPolicy;
  @ApiProperty({ example: false })
  crossTalk: boolean;
  @ApiProperty({ example: 1 })
  maxSpeakers: number;
  @ApiProperty({ example: 42, description: "`auto`: the room's seed" })
  seed: number;
  @ApiProperty({ nullable: true, type: Number, description: 'null: the server default' })
  maxConsecutiveTurns: number | null;
  @ApiProperty({ nullable: true, type: Number, description: 'null: the server default' })
  chainBudget: number | null;
  @ApiProperty({ nullable: true, type: Number, description: 'null: the server default' })
  cooldownMs: number | null;
  @ApiProperty({ type: EffectiveGuardsDto })
  effective: EffectiveGuardsDto;
}
