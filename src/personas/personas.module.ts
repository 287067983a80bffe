import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { MessageStoreModule } from '../messages/message-store.module';
import { RoomsModule } from '../rooms/rooms.module';
import { ConversationsController } from './conversations.controller';
import { ConversationsService } from './conversations.service';
import { LlmClient } from './llm-client';
import { PersonaRepliesService } from './persona-replies.service';
import { Persona, RoomPersona } from './persona.entity';
import { PersonaStore } from './persona.store';
import { PersonasController } from './personas.controller';
import { PersonasService } from './personas.service';

/** Personas, their rooms, conversations, and their streamed replies. */
@Module({
  imports: [TypeOrmModule.forFeature([Persona, RoomPersona]), RoomsModule, MessageStoreModule],
  controllers: [PersonasController, ConversationsController],
  providers: [
    PersonaStore,
    PersonasService,
    ConversationsService,
    PersonaRepliesService,
    LlmClient,
  ],
  // The chat gateway's persona.cancel calls PersonasService.cancel.
  exports: [PersonasService],
})
export class PersonasModule {}
