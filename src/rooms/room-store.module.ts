import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Membership, Room } from './room.entity';
import { RoomMembersCache } from './room-members.cache';
import { RoomStore } from './room.store';

/**
 * The rooms tables on their own, so the access policy can read them without a cycle; with the
 * members' names in memory (RoomMembersCache, for mentions).
 */
@Module({
  imports: [TypeOrmModule.forFeature([Room, Membership])],
  providers: [RoomStore, RoomMembersCache],
  exports: [RoomStore, RoomMembersCache],
})
export class RoomStoreModule {}
