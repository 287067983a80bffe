import { INestApplication, RequestMethod } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import cookieParser from 'cookie-parser';
import type { Env } from './config/env';
import { HttpExceptionFilter } from './common/http-exception.filter';
import { createRootLogger, PinoNestLogger, requestLogger } from './common/logger';
import { createValidationPipe } from './common/validation';
import { ParlorIoAdapter } from './chat/io-adapter';
import { setupAsyncApi } from './docs/asyncapi';
import { serveDemo } from './docs/demo';

/** Everything main.ts and the e2e tests both need, so tests boot the app exactly as production. */
export function configureApp(app: NestExpressApplication): INestApplication {
  const config = app.get<ConfigService<Env, true>>(ConfigService);
  const logger = createRootLogger(
    config.get('LOG_LEVEL', { infer: true }),
    config.get('NODE_ENV', { infer: true }) === 'development',
  );
  app.useLogger(new PinoNestLogger(logger));
  app.use(requestLogger(logger));
  app.useBodyParser('json', { limit: config.get('HTTP_BODY_LIMIT', { infer: true }) });
  app.use(cookieParser());
  app.set('trust proxy', 'loopback');
  app.disable('x-powered-by');
  const origins = config.get('CORS_ORIGINS', { infer: true });
  if (origins.length) app.enableCors({ origin: origins, credentials: true });
  app.setGlobalPrefix('api/v1', {
    exclude: [
      { path: 'health', method: RequestMethod.GET },
      { path: 'health/ready', method: RequestMethod.GET },
      { path: 'metrics', method: RequestMethod.GET },
    ],
  });
  app.useGlobalPipes(createValidationPipe());
  app.useGlobalFilters(new HttpExceptionFilter());
  app.useWebSocketAdapter(new ParlorIoAdapter(app));
  app.enableShutdownHooks();

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Parlor API')
      .setDescription(
        'Real-time chat backend. REST under `/api/v1`; live events over Socket.IO at `/socket.io`. ' +
          'Errors are `{ statusCode, code, message, details? }`; switch on `code`. ' +
          'The socket contract (commands, acknowledgements, events): ' +
          '[AsyncAPI](/docs/asyncapi) ([JSON](/docs/asyncapi.json)). A demo client is served at [/](/).',
      )
      .setVersion('1')
      .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
      .build(),
  );
  setupAsyncApi(app, document);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  serveDemo(app);
  return app;
}
