import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Roles } from '../auth/decorators';
import { ApiErrors } from '../common/swagger';
import { UsagePageDto, UsageQuery } from './dto/usage.dto';
import { PersonaUsageService } from './persona-usage';

/** What persona replies cost, for admins (their role read from current state at each request). */
@ApiTags('admin')
@ApiBearerAuth()
@ApiErrors(401)
@Controller('admin/usage')
export class UsageController {
  constructor(private readonly usage: PersonaUsageService) {}

  @Get()
  @Roles('admin')
  @ApiOperation({
    summary: 'Token usage of persona replies (admin), summed per user, room, persona or UTC day',
    description:
      'Filters are ANDed; days are UTC and inclusive. A reply counts for the user whose message ' +
      'called the persona. Keyset-paginated by key.',
  })
  @ApiOkResponse({ type: UsagePageDto, description: 'A page of sums, by key' })
  @ApiErrors(400, 403)
  list(@Query() q: UsageQuery): Promise<UsagePageDto> {
    return this.usage.list(q);
  }
}
