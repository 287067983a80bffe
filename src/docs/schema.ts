/**
 * A tiny JSON Schema builder whose values carry the TypeScript type they describe. The AsyncAPI
 * document maps every command and event of the contract to a `Schema<T>` of exactly the
 * contract's type, so a schema that disagrees with `src/chat/contract.ts` (a field added,
 * removed or retyped) is a compile error, not a stale document.
 */

export type JsonSchema = { [key: string]: unknown };

/** `T` appears in and out, so `Schema<A>` is assignable to `Schema<B>` only when A and B agree. */
export interface Schema<T> {
  readonly json: JsonSchema;
  readonly optional?: boolean;
  readonly _type?: (value: T) => T;
}

/** Any schema (Schema<T> is invariant, so Schema<unknown> would not do). */
interface AnySchema {
  readonly json: JsonSchema;
  readonly optional?: boolean;
  readonly _type?: (value: never) => unknown;
}
type Infer<S> = S extends Schema<infer T> ? T : never;
type Props = Record<string, AnySchema>;
type OptionalKeys<P extends Props> = {
  [K in keyof P]: P[K] extends { optional: true } ? K : never;
}[keyof P];
type ObjectOf<P extends Props> = {
  [K in Exclude<keyof P, OptionalKeys<P>>]: Infer<P[K]>;
} & { [K in OptionalKeys<P>]?: Infer<P[K]> };
/** Flattens the intersection so the types compare (and read) as one object. */
type Flat<T> = { [K in keyof T]: T[K] };

/** A class the document refers to by name: a REST DTO (from Swagger) or a command payload DTO. */
export type Ctor<T> = abstract new (...args: never[]) => T;

const schema = <T>(json: JsonSchema): Schema<T> => ({ json });

export const s = {
  string: (extra: JsonSchema = {}) => schema<string>({ type: 'string', ...extra }),
  integer: (extra: JsonSchema = {}) => schema<number>({ type: 'integer', ...extra }),
  boolean: (extra: JsonSchema = {}) => schema<boolean>({ type: 'boolean', ...extra }),
  null: () => schema<null>({ type: 'null' }),
  /** A flag that is either `true` or absent (wrap in `optional`). */
  literalTrue: () => schema<true>({ type: 'boolean', const: true }),
  literal: <const V extends string>(...values: V[]) => schema<V>({ type: 'string', enum: values }),
  array: <T>(items: Schema<T>) => schema<T[]>({ type: 'array', items: items.json }),
  nullable: <T>(inner: Schema<T>) => schema<T | null>({ oneOf: [inner.json, { type: 'null' }] }),
  optional: <T>(inner: Schema<T>): Schema<T> & { optional: true } => ({ ...inner, optional: true }),
  describe: <T>(inner: Schema<T>, description: string): Schema<T> => ({
    ...inner,
    json: { ...inner.json, description },
  }),
  object: <P extends Props>(props: P): Schema<Flat<ObjectOf<P>>> => {
    const required = Object.keys(props).filter((k) => !props[k].optional);
    return schema({
      type: 'object',
      properties: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, v.json])),
      ...(required.length ? { required } : {}),
    });
  },
  /** A named class schema, defined once under components.schemas. */
  ref: <T>(cls: Ctor<T>) => schema<T>({ $ref: `#/components/schemas/${cls.name}` }),
};
