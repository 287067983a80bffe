import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { AccessPolicy } from '../access/access.policy';
import { AuditService } from '../audit/audit.service';
import type { AuthUser } from '../auth/auth-user';
import { AppError } from '../common/errors';
import type { Env } from '../config/env';
import type { RoomDto } from '../rooms/dto/room.dto';
import { RoomsService } from '../rooms/rooms.service';

/**
 * Slow mode, set by whoever may moderate the room (its owner and moderators, admins). The
 * rooms module writes it and announces `room.updated`; the audit row commits with the change.
 */
@Injectable()
export class RoomSettingsService {
  private readonly maxSeconds: number;

  constructor(
    private readonly access: AccessPolicy,
    private readonly rooms: RoomsService,
    private readonly audit: AuditService,
    config: ConfigService<Env, true>,
  ) {
    this.maxSeconds = config.get('SLOW_MODE_MAX_SECONDS', { infer: true });
  }

  async setSlowMode(user: AuthUser, roomId: string, seconds: number): Promise<RoomDto> {
    const { room } = await this.access.room(user, roomId, 'moderate');
    if (room.kind !== 'group') throw AppError.invalid('Slow mode applies to group rooms only');
    if (seconds > this.maxSeconds) {
      throw AppError.invalid('Validation failed', {
        seconds: [`seconds must not be greater than ${this.maxSeconds}`],
      });
    }
    const slowModeMs = seconds * 1000;
    // The previous interval is the row's, read where it is changed (never the cache's copy,
    // which may be stale); an unchanged interval is no change: no audit row, no event.
    return this.rooms.setSlowMode(roomId, slowModeMs, user.id, (em, previousMs) =>
      this.audit.record(
        {
          actorId: user.id,
          action: 'room.slow_mode',
          targetType: 'room',
          targetId: roomId,
          roomId,
          details: { slowModeMs, previousMs },
        },
        em,
      ),
    );
  }
}
