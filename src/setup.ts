import type { Server as HttpServer } from 'node:http';
import { INestApplication, RequestMethod } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import cookieParser from 'cookie-parser';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { type Env, trustProxySetting } from './config/env';
import { HttpExceptionFilter } from './common/http-exception.filter';
import { createRootLogger, PinoNestLogger, requestLogger } from './common/logger';
import { createValidationPipe } from './common/validation';
import { ParlorIoAdapter } from './chat/io-adapter';
import { setupAsyncApi } from './docs/asyncapi';
import { addValidationRules } from './docs/openapi';
import { serveDemo } from './docs/demo';
import { ATTACHMENT_STORAGE } from './attachments/attachments.service';
import type { AttachmentStorage } from './attachments/storage';

/**
 * Everything main.ts and the e2e tests both need, so tests boot the app exactly as production.
 * `logger`: the root logger main.ts made before the app (Nest already logs through it); made
 * from the configuration otherwise.
 */
export function configureApp(app: NestExpressApplication, root?: Logger): INestApplication {
  const config = app.get<ConfigService<Env, true>>(ConfigService);
  const logger =
    root ??
    createRootLogger(
      config.get('LOG_LEVEL', { infer: true }),
      config.get('NODE_ENV', { infer: true }) === 'development',
    );
  if (!root) app.useLogger(new PinoNestLogger(logger));
  app.use(requestLogger(logger));
  app.useBodyParser('json', { limit: config.get('HTTP_BODY_LIMIT', { infer: true }) });
  app.use(cookieParser());
  app.set('trust proxy', trustProxySetting(config.get('TRUST_PROXY', { infer: true })));
  app.disable('x-powered-by');
  boundUploads(app, config.get('ATTACHMENT_UPLOAD_TIMEOUT_MS', { infer: true }));
  app.use(securityHeaders());
  // Tokens must not sit in a browser or proxy cache: every auth answer, errors included.
  app.use('/api/v1/auth', (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
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
  // On SIGTERM/SIGINT: the shutdown hooks, then exit(0), so 'exit' listeners run (main.ts logs
  // the stop there).
  app.enableShutdownHooks([], { useProcessExit: true });

  const document = addValidationRules(
    app,
    SwaggerModule.createDocument(
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
    ),
    { messageMaxLength: config.get('MESSAGE_MAX_LENGTH', { infer: true }) },
  );
  setupAsyncApi(app, document);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  serveDemo(app, { storageOrigin: app.get<AttachmentStorage>(ATTACHMENT_STORAGE).origin });
  return app;
}

/** How long past ATTACHMENT_UPLOAD_TIMEOUT_MS the server still receives a request's body. */
export const UPLOAD_TIMEOUT_SLACK_MS = 60_000;

/**
 * Node cuts a request whose body has not arrived after `server.requestTimeout` (300 s by
 * default), which would end a streamed upload long before ATTACHMENT_UPLOAD_TIMEOUT_MS. The
 * upload's own deadline (its row's `expires_at`, answered 400 "Upload took too long") bounds it;
 * the server's timeout is set a little past it, so the application answers first and a stalled
 * body is still cut.
 */
function boundUploads(app: NestExpressApplication, uploadTimeoutMs: number): void {
  const server: HttpServer = app.getHttpServer();
  // Never below Node's own default: a short upload timeout must not shorten other requests'.
  server.requestTimeout = Math.max(
    server.requestTimeout,
    uploadTimeoutMs + UPLOAD_TIMEOUT_SLACK_MS,
  );
}

/**
 * helmet on every response: X-Content-Type-Options nosniff, X-Frame-Options DENY and CSP
 * frame-ancestors 'none', HSTS, a same-origin Referrer-Policy and the cross-origin policies.
 * The Content-Security-Policy fits the HTML Parlor serves: Swagger UI at /docs loads its own
 * scripts and uses inline styles and data: images; the AsyncAPI page has no scripts; the demo
 * page at / sets its stricter policy itself (src/docs/demo.ts), which replaces this one. Nothing
 * is loaded from another origin. upgrade-insecure-requests is left out: it would break a
 * plain-HTTP deployment on a LAN address.
 */
export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        scriptSrcAttr: ["'none'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'", 'data:'],
        connectSrc: ["'self'", 'ws:', 'wss:'],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
  });
}
