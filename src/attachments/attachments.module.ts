import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env';
import { AttachmentStoreModule } from './attachment-store.module';
import { AttachmentsController } from './attachments.controller';
import { ATTACHMENT_STORAGE, AttachmentsService } from './attachments.service';
import { createStorage } from './storage';

/** Uploads, downloads and the cleanup job (docs/architecture.md § Attachments). */
@Module({
  imports: [AttachmentStoreModule],
  controllers: [AttachmentsController],
  providers: [
    AttachmentsService,
    {
      provide: ATTACHMENT_STORAGE,
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>) =>
        createStorage({
          ATTACHMENTS_STORAGE: config.get('ATTACHMENTS_STORAGE', { infer: true }),
          ATTACHMENTS_DIR: config.get('ATTACHMENTS_DIR', { infer: true }),
          PARLOR_DATA_DIR: config.get('PARLOR_DATA_DIR', { infer: true }),
          ATTACHMENTS_S3_ENDPOINT: config.get('ATTACHMENTS_S3_ENDPOINT', { infer: true }),
          ATTACHMENTS_S3_BUCKET: config.get('ATTACHMENTS_S3_BUCKET', { infer: true }),
          ATTACHMENTS_S3_REGION: config.get('ATTACHMENTS_S3_REGION', { infer: true }),
          ATTACHMENTS_S3_ACCESS_KEY_ID: config.get('ATTACHMENTS_S3_ACCESS_KEY_ID', { infer: true }),
          ATTACHMENTS_S3_SECRET_ACCESS_KEY: config.get('ATTACHMENTS_S3_SECRET_ACCESS_KEY', {
            infer: true,
          }),
          ATTACHMENTS_S3_FORCE_PATH_STYLE: config.get('ATTACHMENTS_S3_FORCE_PATH_STYLE', {
            infer: true,
          }),
        }),
    },
  ],
  exports: [AttachmentsService],
})
export class AttachmentsModule {}
