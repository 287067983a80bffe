import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditLogEntry } from './audit-log.entity';
import { AuditController } from './audit.controller';
import { AuditRetention } from './audit-retention.service';
import { AuditService } from './audit.service';
import { AuditStore } from './audit.store';

/**
 * The audit log, available to every feature module that performs admin or moderation actions;
 * its read routes (admins) and its retention job.
 */
@Global()
@Module({
  imports: [TypeOrmModule.forFeature([AuditLogEntry])],
  controllers: [AuditController],
  providers: [AuditStore, AuditService, AuditRetention],
  exports: [AuditService],
})
export class AuditModule {}
