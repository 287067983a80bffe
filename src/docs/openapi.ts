/**
 * The OpenAPI document's schemas carry the validation rules the server enforces. @nestjs/swagger
 * only knows what `@ApiProperty` says; the class-validator decorators (the rules actually
 * applied by the validation pipe) are turned into JSON Schema keywords by class-validator-jsonschema
 * (as for the AsyncAPI document) and merged in: into each request body's component schema and
 * into each query and path parameter. The DTO classes are found from the routes themselves
 * (the parameter types of every controller method), so a new DTO needs nothing registered.
 *
 * Swagger's CLI plugin would do part of this, but it is a TypeScript compiler transformer: it
 * runs under `nest build` / ts-loader, not under plain `tsc` (the build) or swc (the tests).
 */
import type { INestApplication } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import type { OpenAPIObject } from '@nestjs/swagger';
import { targetConstructorToSchema } from 'class-validator-jsonschema';
import type { JsonSchema } from './schema';

type Ctor = abstract new (...args: never[]) => unknown;
type SchemaObject = JsonSchema & { properties?: Record<string, JsonSchema> };
interface ParameterObject {
  name: string;
  in: string;
  description?: string;
  schema?: JsonSchema;
}

/** The JSON Schema keywords copied from the validators (type only to refine number → integer). */
const KEYWORDS = [
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'enum',
  'format',
  'minItems',
  'maxItems',
] as const;

/** class-validator's @IsUrl is `format: url`; OpenAPI (and JSON Schema) call it `uri`. */
const FORMATS: Record<string, string> = { url: 'uri' };

/** A DTO's properties as JSON Schema, from its class-validator rules (inherited ones included). */
export function validatorSchema(cls: Ctor): Record<string, JsonSchema> {
  const schema = targetConstructorToSchema(cls, {
    additionalConverters: {
      // Min/Max must not turn IsInt's integer back into a number.
      min: (meta) => ({ minimum: meta.constraints[0] as number }),
      max: (meta) => ({ maximum: meta.constraints[0] as number }),
      matches: (meta) => {
        const re = meta.constraints[0] as RegExp;
        // A JSON Schema pattern has no flags: one written with /i (or /g, /y) would document
        // a different rule than the one enforced. Write it without (e.g. [0-9a-fA-F]).
        if (re.flags.replace('u', '') !== '')
          throw new Error(`OpenAPI: ${re} has flags a JSON Schema pattern cannot carry`);
        return { type: 'string', pattern: re.source };
      },
    },
  }) as JsonSchema;
  return (schema.properties ?? {}) as Record<string, JsonSchema>;
}

/** Copies the validator-derived keywords into a Swagger schema (the validators win). */
function merge(target: SchemaObject, rules: JsonSchema | undefined): void {
  if (!rules) return;
  const out = target as Record<string, unknown>;
  for (const key of KEYWORDS) {
    if (rules[key] === undefined) continue;
    const value = key === 'format' ? (FORMATS[rules.format as string] ?? rules.format) : rules[key];
    // An enum property documented as a $ref (or allOf) keeps its reference.
    if (key === 'enum' && (out.$ref || out.allOf)) continue;
    out[key] = value;
  }
  if (rules.type === 'integer' && out.type === 'number') out.type = 'integer';
}

/** `Controller_method` (Swagger's default operationId) → the classes of the method's parameters. */
function routeParamTypes(app: INestApplication): Map<string, Ctor[]> {
  const out = new Map<string, Ctor[]>();
  for (const mod of app.get(ModulesContainer).values()) {
    for (const wrapper of mod.controllers.values()) {
      const ctrl = wrapper.metatype as Ctor | null;
      if (!ctrl) continue;
      const proto = ctrl.prototype as object;
      for (const method of Object.getOwnPropertyNames(proto)) {
        if (method === 'constructor') continue;
        const types = (Reflect.getMetadata('design:paramtypes', proto, method) ?? []) as unknown[];
        out.set(
          `${ctrl.name}_${method}`,
          types.filter((t): t is Ctor => typeof t === 'function' && t.prototype !== undefined),
        );
      }
    }
  }
  return out;
}

/**
 * Where the id a path names comes from. Swagger UI's "Try it out" fills a parameter with its
 * `example`, and no example id exists on the reader's server (it would answer 404): id
 * parameters carry no example, and say instead which response holds a real one. By the
 * parameter's name, else by the path segment before it (`/rooms/{id}` is a room id).
 */
const ID_SOURCES: Record<string, string> = {
  rooms:
    'Room id: `id` of an item of GET /api/v1/rooms (or of the answer of POST /api/v1/rooms or POST /api/v1/direct/{userId})',
  users:
    'User id: `userId` of an item of GET /api/v1/rooms/{id}/members, `id` of an item of GET /api/v1/users (admins), or `id` of GET /api/v1/auth/me',
  messages:
    'Message id: `id` of an item of GET /api/v1/rooms/{id}/messages (or of the answer of POST /api/v1/rooms/{id}/messages)',
  personas: 'Persona id: `id` of an item of GET /api/v1/personas',
  conversations:
    'Conversation id: `id` of an item of GET /api/v1/conversations (or of the answer of POST /api/v1/conversations)',
  reports:
    'Report id: `id` of an item of GET /api/v1/rooms/{id}/reports or GET /api/v1/admin/reports (or of the answer of POST /api/v1/messages/{id}/reports)',
  filters:
    'Filter id: `id` of an item of GET /api/v1/rooms/{id}/filters or GET /api/v1/admin/filters (or of the answer of the POST that created it)',
  pushers:
    'Pusher id: `id` of an item of GET /api/v1/push/pushers (or of the answer of POST /api/v1/push/pushers)',
  streams:
    'Stream id: `messageId` of the persona.stream.start socket event (while that reply streams)',
  notifications:
    'Notification id: `id` of an item of GET /api/v1/notifications (or of the notification.created socket event)',
  attachments:
    'Attachment id: `id` of the answer of POST /api/v1/rooms/{id}/attachments (or of an item of a message’s `attachments`)',
};
const ID_PARAM_KINDS: Record<string, string> = {
  userId: 'users',
  personaId: 'personas',
  streamId: 'streams',
  filterId: 'filters',
};

/** The description of path parameter `name` of `path`, when it is an id of a known kind. */
export function idParamDescription(path: string, name: string): string | undefined {
  const segments = path.split('/');
  const before = segments[segments.indexOf(`{${name}}`) - 1];
  return ID_SOURCES[ID_PARAM_KINDS[name] ?? (name === 'id' ? before : '')];
}

function describePathIds(path: string, parameters: ParameterObject[] | undefined): void {
  for (const param of parameters ?? []) {
    const source = param.in === 'path' ? idParamDescription(path, param.name) : undefined;
    if (!source) continue;
    param.description = source;
    delete param.schema?.example;
  }
}

export interface OpenApiLimits {
  /** MESSAGE_MAX_LENGTH: the service's limit on content, below the DTO's hard cap. */
  messageMaxLength: number;
}

/**
 * Merges the validators' constraints into the document's request bodies and parameters, and the
 * configured limits the validators cannot know; says where each path id comes from (no example
 * id). Returns the same document.
 */
export function addValidationRules(
  app: INestApplication,
  document: OpenAPIObject,
  limits: OpenApiLimits,
): OpenAPIObject {
  const schemas = (document.components?.schemas ?? {}) as Record<string, SchemaObject>;
  const paramTypes = routeParamTypes(app);
  for (const [path, ops] of Object.entries(document.paths)) {
    for (const op of Object.values(ops as Record<string, { operationId?: string }>)) {
      if (!op || typeof op !== 'object' || !op.operationId) continue;
      const operation = op as {
        operationId: string;
        parameters?: ParameterObject[];
        requestBody?: { content: Record<string, { schema?: { $ref?: string } }> };
      };
      // A route with several paths (`@Post(['signup', 'register'])`) gets `…_signup[0]`, `[1]`.
      const classes = paramTypes.get(operation.operationId.replace(/\[\d+\]$/, '')) ?? [];
      const rules = classes.map((cls) => ({ cls, props: validatorSchema(cls) }));
      const ref = operation.requestBody?.content['application/json']?.schema?.$ref;
      const bodyName = ref?.split('/').pop();
      const body = rules.find((r) => r.cls.name === bodyName);
      if (body && bodyName && schemas[bodyName]?.properties) {
        for (const [name, prop] of Object.entries(schemas[bodyName].properties))
          merge(prop, body.props[name]);
      }
      describePathIds(path, operation.parameters);
      for (const param of operation.parameters ?? []) {
        if (param.in !== 'query' && param.in !== 'path') continue;
        const found = rules.find((r) => r.cls !== body?.cls && r.props[param.name]);
        if (found && param.schema) merge(param.schema, found.props[param.name]);
      }
    }
  }
  for (const name of ['SendMessageDto', 'EditMessageDto']) {
    const content = schemas[name]?.properties?.content;
    if (content) content.maxLength = limits.messageMaxLength;
  }
  return document;
}
