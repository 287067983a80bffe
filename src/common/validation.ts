import {
  applyDecorators,
  type ArgumentMetadata,
  ValidationError,
  ValidationPipe,
} from '@nestjs/common';
import { Transform } from 'class-transformer';
import { IsBoolean, IsUUID, ValidateIf } from 'class-validator';
import { AppError } from './errors';

/**
 * Deepest nesting a request body or socket payload may have. No DTO nests deeper than a few
 * levels; class-transformer recurses per level, so a 2,000-deep array (a few KB) overflowed the
 * stack and answered 500 INTERNAL instead of 400.
 */
export const MAX_PAYLOAD_DEPTH = 32;

/** A UTF-16 surrogate that is not half of a pair (`\ud800` in JSON): not Unicode text. */
export const LONE_SURROGATE = /\p{Cs}/u;

/**
 * What a payload may not be, whatever its DTO: nested deeper than MAX_PAYLOAD_DEPTH, or holding
 * a string with a lone surrogate (validator.js's isEmail calls encodeURI, which throws URIError
 * on one: a 500 from a signup form). Iterative, since a recursive walk would overflow on
 * exactly the input it guards against. Only arrays and plain objects are walked: parsed JSON is
 * made of them, while other values a pipe sees (the socket, a Date) may have cycles.
 */
export function payloadProblem(value: unknown, maxDepth: number): string | undefined {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    const proto = Object.getPrototypeOf(v) as unknown;
    if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) continue;
    if (depth >= maxDepth) return `nested deeper than ${maxDepth} levels`;
    for (const [key, child] of Object.entries(v)) {
      if (LONE_SURROGATE.test(key)) return 'has a key with a lone UTF-16 surrogate';
      stack.push([child, depth + 1]);
    }
  }
  return undefined;
}

/**
 * An id: a uuid, which PostgreSQL reads in either case but writes in lower case. Kept in lower
 * case here, so the id a request names is the id the database returns: ids are also compared as
 * strings and used as socket channel and cache keys (a room joined as `6F96…` would otherwise
 * be a channel no event of the room `6f96…` reaches).
 */
export const IsId = () =>
  applyDecorators(
    Transform(({ value }: { value: unknown }) =>
      typeof value === 'string' ? value.toLowerCase() : value,
    ),
    IsUUID(),
  );

/** May be left out, but not sent as null (IsOptional lets null through to the database). */
export const Omittable = () => ValidateIf((_: object, v: unknown) => v !== undefined);

interface FastParsed {
  /** The DTO, or undefined when the full validation must decide. */
  fastParse?: (value: unknown) => unknown;
}

class ParlorValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // A hot-path DTO may check itself first (see MessageSendPayload.fastParse).
    const fast = (metadata.metatype as FastParsed | undefined)?.fastParse?.(value);
    if (fast !== undefined) return fast;
    const field = metadata.data ?? 'payload';
    const problem = payloadProblem(value, MAX_PAYLOAD_DEPTH);
    if (problem) throw AppError.invalid('Validation failed', { [field]: [problem] });
    try {
      return (await super.transform(value, metadata)) as unknown;
    } catch (err) {
      if (err instanceof AppError) throw err;
      // class-transformer converting hostile shapes, e.g. `{ "toString": 1 }` where a number is
      // expected (Number() then throws TypeError): the input's fault, not a 500.
      throw AppError.invalid('Validation failed', { [field]: ['has a shape that cannot be read'] });
    }
  }
}

/** Flattens class-validator errors into `{ field: [messages] }` with dotted paths for nested DTOs. */
export function flattenValidationErrors(
  errors: ValidationError[],
  prefix = '',
): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const e of errors) {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    if (e.constraints) out[path] = Object.values(e.constraints);
    if (e.children?.length) Object.assign(out, flattenValidationErrors(e.children, path));
  }
  return out;
}

/** Shared by HTTP and the socket gateway: unknown fields rejected, payloads transformed to DTOs. */
export function createValidationPipe(): ValidationPipe {
  return new ParlorValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: false,
    exceptionFactory: (errors) =>
      AppError.invalid('Validation failed', flattenValidationErrors(errors)),
  });
}

/**
 * A boolean that may come as a query string: `true` / `false` (the strings too); anything else
 * is left for IsBoolean to refuse (class-transformer's Boolean would read "false" as true).
 */
export const QueryBoolean = (): PropertyDecorator =>
  applyDecorators(
    Transform(({ value }: { value: unknown }) =>
      value === 'true' ? true : value === 'false' ? false : value,
    ),
    IsBoolean(),
  );
