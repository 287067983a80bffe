import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Membership, Room } from './room.entity';
import { RoomStore } from './room.store';

/** The rooms tables on their own, so the access policy can read them without a cycle. */
@Module({
  imports: [TypeOrmModule.forFeature([Room, Membership])],
  providers: [RoomStore],
  exports: [RoomStore],
})
export class RoomStoreModule {}
