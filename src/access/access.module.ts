import { Global, Module } from '@nestjs/common';
import { RoomStoreModule } from '../rooms/room-store.module';
import { AccessPolicy } from './access.policy';

/** The access policy, available to every feature module (REST and sockets ask the same one). */
@Global()
@Module({
  imports: [RoomStoreModule],
  providers: [AccessPolicy],
  exports: [AccessPolicy],
})
export class AccessModule {}
