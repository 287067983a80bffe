import { ApiProperty } from '@nestjs/swagger';

/** A persona's memory of a room or conversation: its summary of the older history. */
export class PersonaMemoryDto {
  @ApiProperty({ format: 'uuid', description: 'The room (or conversation)' })
  roomId: string;

  @ApiProperty({ format: 'uuid' })
  personaId: string;

  @ApiProperty({
    nullable: true,
    type: String,
    example: 'alice planned a trip to Lisbon in May; bob suggested the Alfama district.',
    description:
      'What the model made of the history that no longer fits the context; null while there is none',
  })
  summary: string | null;

  @ApiProperty({
    nullable: true,
    type: Number,
    example: 1042,
    description: 'The newest message folded into the summary; null while there is none',
  })
  throughMessageId: number | null;

  @ApiProperty({ example: 57, description: 'Messages folded in since the summary began' })
  foldedMessages: number;

  @ApiProperty({ nullable: true, type: Date, description: 'When the summary began' })
  createdAt: Date | null;

  @ApiProperty({ nullable: true, type: Date, description: 'Its last refresh' })
  updatedAt: Date | null;
}
