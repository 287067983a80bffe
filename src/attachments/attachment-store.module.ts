import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Attachment } from './attachment.entity';
import { AttachmentStore } from './attachment.store';

/** The attachments table on its own, so the send path can claim uploads without a cycle. */
@Module({
  imports: [TypeOrmModule.forFeature([Attachment])],
  providers: [AttachmentStore],
  exports: [AttachmentStore],
})
export class AttachmentStoreModule {}
