import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { MessagesModule } from '../messages/messages.module';
import { MessageStoreModule } from '../messages/message-store.module';
import { RoomSettingsModule } from '../moderation/room-settings.module';
import { RoomsModule } from '../rooms/rooms.module';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { LlmClient } from './llm-client';
import { PersonaRepliesService } from './persona-replies.service';
import { PersonaStreams } from './persona-streams';
import { PersonaUsageService } from './persona-usage';
import { PersonaUsageDaily } from './persona-usage.entity';
import { PersonaUsageStore } from './persona-usage.store';
import { Persona, RoomPersona } from './persona.entity';
import { PersonaMemory } from './persona-memory';
import { PersonaMemoryController } from './persona-memory.controller';
import { PersonaSummaryRow } from './persona-memory.entity';
import { PersonaMemoryStore } from './persona-memory.store';
import { PersonaStore } from './persona.store';
import { PersonasController } from './personas.controller';
import { PersonasService } from './personas.service';
import { UsageController } from './usage.controller';
import { PersonaPolicyController } from './persona-policy.controller';
import { PersonaPolicyService } from './persona-policy.service';
import { PersonaTurnStore } from './persona-turn.store';
import { PersonaTurns } from './persona-turns.service';
import { RoomPersonaSettings } from './room-persona-settings.entity';
import { TurnGuards } from './turn-guards';

/** Personas, their rooms, conversations, their streamed replies, and turn-taking. */
@Module({
  imports: [
    TypeOrmModule.forFeature([
      Persona,
      RoomPersona,
      PersonaSummaryRow,
      PersonaUsageDaily,
      RoomPersonaSettings,
    ]),
    RoomsModule,
    MessageStoreModule,
    MessagesModule,
    RoomSettingsModule,
  ],
  controllers: [
    PersonasController,
    ConversationsController,
    PersonaMemoryController,
    UsageController,
    PersonaPolicyController,
  ],
  providers: [
    PersonaStore,
    PersonasService,
    ConversationsService,
    PersonaRepliesService,
    PersonaStreams,
    LlmClient,
    PersonaMemory,
    PersonaMemoryStore,
    PersonaUsageStore,
    PersonaUsageService,
    PersonaTurnStore,
    PersonaTurns,
    PersonaPolicyService,
    TurnGuards,
  ],
  // The chat gateway's persona.cancel calls PersonasService.cancel; room.join reads the replies
  // in progress from PersonaStreams.
  exports: [PersonasService, PersonaStreams],
})
export class PersonasModule {}
