import { Controller, Get, Headers, Res } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { timingSafeEqual } from 'node:crypto';
import { Public } from '../auth/decorators';
import type { Env } from '../config/env';
import { AppError } from '../common/errors';
import { MetricsService } from './metrics.service';

@ApiExcludeController()
@Public()
@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly metrics: MetricsService,
    private readonly config: ConfigService<Env, true>,
  ) {}

  /** Prometheus text format; 404 when METRICS_ENABLED=false, bearer METRICS_TOKEN when set. */
  @Get()
  async scrape(
    @Headers('authorization') auth: string | undefined,
    @Res() res: Response,
  ): Promise<void> {
    if (!this.config.get('METRICS_ENABLED', { infer: true })) throw AppError.notFound('Route');
    const token = this.config.get('METRICS_TOKEN', { infer: true });
    if (token && !sameSecret(auth ?? '', `Bearer ${token}`)) throw AppError.unauthorized();
    res.setHeader('Content-Type', this.metrics.registry.contentType);
    res.send(await this.metrics.registry.metrics());
  }
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
