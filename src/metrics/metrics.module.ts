import { Global, MiddlewareConsumer, Module, NestModule } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';

@Global()
@Module({
  controllers: [MetricsController],
  providers: [MetricsService],
  exports: [MetricsService],
})
export class MetricsModule implements NestModule {
  constructor(private readonly metrics: MetricsService) {}

  /** HTTP latency by route pattern (not raw URL, which would explode the label set). */
  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply((req: Request, res: Response, next: NextFunction) => {
        const end = this.metrics.httpDuration.startTimer();
        res.on('finish', () => {
          const route = (req.route as { path?: string } | undefined)?.path;
          end({
            method: req.method,
            route: route ? `${req.baseUrl}${route}` : 'unmatched',
            status: String(res.statusCode),
          });
        });
        next();
      })
      // `{*path}`: every path (Express 5's path-to-regexp has no bare `*`).
      .forRoutes('{*path}');
  }
}
