import { Controller, Get, Query, StreamableFile } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { Roles } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { AuditService } from './audit.service';
import { AuditFilterQuery, AuditPageDto, ListAuditQuery } from './dto/audit.dto';

/**
 * The audit log, read-only: admins (their role read from current state at each request) list
 * and export it. No route updates or deletes an entry; the database refuses it as well.
 */
@ApiTags('admin')
@ApiBearerAuth()
@ApiErrors(401)
@Controller('admin/audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @Roles('admin')
  @ApiOperation({
    summary: 'The audit log (admin): filtered, newest first, keyset-paginated by id',
  })
  @ApiOkResponse({ type: AuditPageDto, description: 'A page of audit entries, newest first' })
  @ApiErrors(400, 403)
  list(@Query() q: ListAuditQuery): Promise<AuditPageDto> {
    return this.audit.list(q);
  }

  @Get('export')
  @Roles('admin')
  @ApiOperation({
    summary: 'Export the audit log as JSON Lines (admin), streamed, with the same filters',
  })
  @ApiProduces('application/x-ndjson')
  @ApiOkResponse({
    description:
      'An attachment: one AuditEntryDto as JSON per line, newest first (entries recorded after ' +
      'the export began are not included)',
    schema: { type: 'string' },
    headers: {
      'Content-Disposition': {
        description: 'attachment; filename="parlor-audit-<time>.jsonl"',
        schema: { type: 'string' },
      },
    },
  })
  @ApiErrors(400, 403)
  export(@Query() q: AuditFilterQuery): Promise<StreamableFile> {
    return this.audit.export(q);
  }
}
