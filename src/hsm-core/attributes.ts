/**
 * Key attributes as data: one table says, for every attribute CloudHSM knows, who may set it,
 * when, on which classes of key, and how it may change afterwards. Every creation template and
 * every attribute change goes through the two functions below the table, so the rules live in
 * one place (CLOUDHSM.md §2.1–2.5).
 *
 * What the table protects: `extractable` never changes once a key exists; `wrap-with-trusted`,
 * `sensitive` and `token` only latch towards the safer or more durable value; `modifiable` and
 * `destroyable` only latch off; only an admin sets `trusted`; a usage a key type cannot have
 * (an EC key that "encrypts") is refused instead of being silently ignored.
 *
 * @module
 */
import { z } from 'zod';
import { HsmError, withArticle } from './errors.js';
import { EC_CURVES } from './names.js';

export const KEY_CLASSES = ['secret-key', 'public-key', 'private-key'] as const;
export type KeyClass = (typeof KEY_CLASSES)[number];

export const KEY_TYPES = ['aes', 'generic-secret', 'rsa', 'ec', 'ed25519', 'x25519', 'ed448', 'x448'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export { EC_CURVES };
export type EcCurve = (typeof EC_CURVES)[number];
export type Curve = EcCurve | 'ed25519' | 'x25519' | 'ed448' | 'x448';

export const USAGES = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'] as const;
export type Usage = (typeof USAGES)[number];

/** Which usages each class of each key type may carry. Anything else is refused when set to true. */
const USAGE_MATRIX: Readonly<Record<KeyType, Partial<Record<KeyClass, readonly Usage[]>>>> = {
  aes: { 'secret-key': ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap', 'derive'] },
  'generic-secret': { 'secret-key': ['sign', 'verify', 'derive'] },
  rsa: { 'public-key': ['encrypt', 'verify', 'wrap'], 'private-key': ['decrypt', 'sign', 'unwrap'] },
  ec: { 'public-key': ['verify'], 'private-key': ['sign', 'derive'] },
  ed25519: { 'public-key': ['verify'], 'private-key': ['sign'] },
  x25519: { 'public-key': [], 'private-key': ['derive'] },
  ed448: { 'public-key': ['verify'], 'private-key': ['sign'] },
  x448: { 'public-key': [], 'private-key': ['derive'] },
};

/** Whether a key of this class and type may ever carry `usage`. */
export function usageAllowed(cls: KeyClass, type: KeyType, usage: Usage): boolean {
  return USAGE_MATRIX[type][cls]?.includes(usage) ?? false;
}

/** How an attribute may change after creation. */
type Change =
  | 'never' // fixed at creation
  | 'free' // any value, by the owner
  | 'to-true' // false → true only (a latch)
  | 'to-false' // true → false only (a latch)
  | 'admin'; // only an admin, either way

interface SettableRule {
  /** May a creation template (generate, import, unwrap, derive) set it? */
  readonly atCreate: boolean;
  readonly change: Change;
  readonly classes: readonly KeyClass[];
  readonly schema: z.ZodType;
}

const ALL: readonly KeyClass[] = KEY_CLASSES;
const SECRET_PRIVATE: readonly KeyClass[] = ['secret-key', 'private-key'];
const bool = z.boolean();

/** Attributes with an origin in a template or a change. (Below: the computed ones.) */
const SETTABLE_BASE = {
  label: { atCreate: true, change: 'free', classes: ALL, schema: z.string().max(127, 'a label has at most 127 characters') },
  id: { atCreate: true, change: 'free', classes: ALL, schema: z.string().max(256, 'an id has at most 256 characters') },
  token: { atCreate: true, change: 'to-true', classes: ALL, schema: bool },
  sensitive: { atCreate: true, change: 'to-true', classes: SECRET_PRIVATE, schema: bool },
  encrypt: { atCreate: true, change: 'free', classes: ALL, schema: bool },
  decrypt: { atCreate: true, change: 'free', classes: ALL, schema: bool },
  sign: { atCreate: true, change: 'free', classes: ALL, schema: bool },
  verify: { atCreate: true, change: 'free', classes: ALL, schema: bool },
  wrap: { atCreate: true, change: 'free', classes: ALL, schema: bool },
  unwrap: { atCreate: true, change: 'free', classes: ALL, schema: bool },
  derive: { atCreate: true, change: 'free', classes: ALL, schema: bool },
  extractable: { atCreate: true, change: 'never', classes: SECRET_PRIVATE, schema: bool },
  modifiable: { atCreate: true, change: 'to-false', classes: ALL, schema: bool },
  destroyable: { atCreate: true, change: 'to-false', classes: ALL, schema: bool },
  trusted: { atCreate: false, change: 'admin', classes: ['secret-key', 'public-key'], schema: bool },
  'wrap-with-trusted': { atCreate: true, change: 'to-true', classes: SECRET_PRIVATE, schema: bool },
  /** Approvals (quorum M) needed to wrap, unwrap with, share, unshare or change the key; 0 or 1 = none. */
  'manage-key-quorum-value': { atCreate: true, change: 'never', classes: ALL, schema: z.int().min(0).max(8) },
  /** Approvals needed to sign with the key; 0 or 1 = none. */
  'use-key-quorum-value': { atCreate: true, change: 'never', classes: ALL, schema: z.int().min(0).max(8) },
} as const satisfies Record<string, SettableRule>;

/** Attributes the HSM computes; a template or a change that names one is refused. */
export const COMPUTED_ATTRIBUTES = [
  'class',
  'key-type',
  'private',
  'local',
  'never-extractable',
  'always-sensitive',
  'check-value',
  'key-length-bytes',
  'modulus',
  'modulus-size-bits',
  'public-exponent',
  'curve',
  'ec-point',
] as const;
export type ComputedAttribute = (typeof COMPUTED_ATTRIBUTES)[number];
const COMPUTED: ReadonlySet<string> = new Set(COMPUTED_ATTRIBUTES);

const filterShape = {
  ...Object.fromEntries(Object.entries(SETTABLE_BASE).map(([k, r]) => [k, r.schema.optional()])),
  class: z.enum(KEY_CLASSES).optional(),
  'key-type': z.enum(KEY_TYPES).optional(),
  private: bool.optional(),
  local: bool.optional(),
  'never-extractable': bool.optional(),
  'always-sensitive': bool.optional(),
  'check-value': z.string().optional(),
  'key-length-bytes': z.int().optional(),
  modulus: z.string().optional(),
  'modulus-size-bits': z.int().optional(),
  'public-exponent': z.int().optional(),
  curve: z.string().optional(),
  'ec-point': z.string().optional(),
};

/**
 * A filter or a nested wrap/unwrap template: any attribute (settable or computed) with a value to
 * match. Unknown attribute names are refused.
 */
export const filterSchema = z.strictObject(filterShape) as unknown as z.ZodType<AttributeFilter>;

const SETTABLE: Record<SettableName | 'wrap-template' | 'unwrap-template', SettableRule> = {
  ...SETTABLE_BASE,
  'wrap-template': { atCreate: true, change: 'never', classes: ['secret-key', 'public-key'], schema: filterSchema },
  'unwrap-template': { atCreate: true, change: 'never', classes: ['secret-key', 'private-key'], schema: filterSchema },
};

/**
 * A template: attributes to give a new key, or to change on an existing one. Computed attribute
 * names are accepted by the schema only so that the refusal can say they are read-only.
 */
export const templateSchema = z.strictObject({
  ...Object.fromEntries(Object.entries(SETTABLE).map(([k, r]) => [k, r.schema.optional()])),
  ...Object.fromEntries(COMPUTED_ATTRIBUTES.map((k) => [k, z.unknown().optional()])),
}) as unknown as z.ZodType<Template>;

export type SettableName = keyof typeof SETTABLE_BASE;

/** The attributes with an origin in a template or a change (within the rules of the table). */
export interface SettableAttributes {
  label: string;
  id: string;
  token: boolean;
  sensitive: boolean;
  encrypt: boolean;
  decrypt: boolean;
  sign: boolean;
  verify: boolean;
  wrap: boolean;
  unwrap: boolean;
  derive: boolean;
  extractable: boolean;
  modifiable: boolean;
  destroyable: boolean;
  trusted: boolean;
  'wrap-with-trusted': boolean;
  'manage-key-quorum-value': number;
  'use-key-quorum-value': number;
}

/** The attributes the HSM computes. The material-derived ones depend on the key type. */
export interface ComputedAttributes {
  class: KeyClass;
  'key-type': KeyType;
  private: boolean;
  local: boolean;
  'never-extractable': boolean;
  'always-sensitive': boolean;
  /** `0x` and 3 bytes of hex (KCV); null where CloudHSM has none (generic secrets). */
  'check-value': string | null;
  'key-length-bytes'?: number;
  modulus?: string;
  'modulus-size-bits'?: number;
  'public-exponent'?: number;
  curve?: Curve;
  'ec-point'?: string;
}

/** A filter, or a nested wrap/unwrap template: values any attribute must have. */
export type AttributeFilter = Partial<SettableAttributes> &
  Partial<Omit<ComputedAttributes, 'check-value' | 'curve'>> & { 'check-value'?: string; curve?: string };

/** Attributes a caller may give in a template (computed ones are refused by name). */
export type Template = Partial<SettableAttributes> & { 'wrap-template'?: AttributeFilter; 'unwrap-template'?: AttributeFilter };

/** The attributes every key reports (`key list --verbose`). */
export interface KeyAttributes extends SettableAttributes, ComputedAttributes {
  'wrap-template'?: AttributeFilter;
  'unwrap-template'?: AttributeFilter;
}

/** The facts about key material that the HSM computes (see mechanisms/keys.ts). */
export type MaterialFacts = Pick<
  KeyAttributes,
  'check-value' | 'key-length-bytes' | 'modulus' | 'modulus-size-bits' | 'public-exponent' | 'curve' | 'ec-point'
>;

/** How a key came to exist: decides `local`, `always-sensitive` and `never-extractable`. */
export type Origin =
  | { kind: 'generated' }
  | { kind: 'imported' }
  | { kind: 'unwrapped' }
  | { kind: 'derived'; base: KeyAttributes };

const USAGE_SET: ReadonlySet<string> = new Set(USAGES);

function describeKey(cls: KeyClass, type: KeyType): string {
  return `${type} ${cls}`;
}

function checkApplies(name: string, cls: KeyClass, type: KeyType, value: unknown): void {
  const rule = SETTABLE[name as SettableName];
  if (!rule.classes.includes(cls)) {
    throw new HsmError(
      'ATTRIBUTE_INVALID',
      `attribute ${name} does not apply to ${withArticle(describeKey(cls, type))} (it applies to ${rule.classes.join(', ')})`,
    );
  }
  if (USAGE_SET.has(name) && value === true && !usageAllowed(cls, type, name as Usage)) {
    const allowed = USAGE_MATRIX[type][cls] ?? [];
    throw new HsmError(
      'ATTRIBUTE_INVALID',
      `attribute ${name} cannot be true on ${withArticle(describeKey(cls, type))} (possible usages: ${allowed.length ? allowed.join(', ') : 'none'})`,
    );
  }
}

function refuseComputed(name: string): never {
  throw new HsmError('ATTRIBUTE_READ_ONLY', `attribute ${name} is read-only: the HSM computes it`);
}

/** Refuses a creation template that names a computed attribute, `trusted`, or one the key cannot have. */
export function checkCreationTemplate(cls: KeyClass, type: KeyType, template: Template): void {
  for (const [name, value] of Object.entries(template)) {
    if (value === undefined) continue;
    if (COMPUTED.has(name)) refuseComputed(name);
    const rule = SETTABLE[name as SettableName];
    if (!rule.atCreate) {
      throw new HsmError('PERMISSION_DENIED', `attribute ${name} cannot be given at creation: only an admin can set it, afterwards`);
    }
    checkApplies(name, cls, type, value);
  }
}

/**
 * Builds the attributes of a new key from the caller's template, refusing anything the table
 * forbids. `material` holds what the HSM read off the key material.
 */
export function attributesForNewKey(
  cls: KeyClass,
  type: KeyType,
  template: Template,
  origin: Origin,
  material: MaterialFacts,
): KeyAttributes {
  checkCreationTemplate(cls, type, template);
  const secretOrPrivate = cls !== 'public-key';
  const sensitive = secretOrPrivate ? (template.sensitive ?? true) : false;
  const extractable = secretOrPrivate ? (template.extractable ?? true) : true;
  let alwaysSensitive = false;
  let neverExtractable = false;
  if (secretOrPrivate) {
    if (origin.kind === 'generated') {
      alwaysSensitive = sensitive;
      neverExtractable = !extractable;
    } else if (origin.kind === 'derived') {
      alwaysSensitive = origin.base['always-sensitive'] && sensitive;
      neverExtractable = origin.base['never-extractable'] && !extractable;
    }
  }
  const attrs: KeyAttributes = {
    class: cls,
    'key-type': type,
    label: template.label ?? '',
    id: template.id ?? '',
    token: template.token ?? false,
    private: true,
    sensitive,
    encrypt: template.encrypt ?? false,
    decrypt: template.decrypt ?? false,
    sign: template.sign ?? false,
    verify: template.verify ?? false,
    wrap: template.wrap ?? false,
    unwrap: template.unwrap ?? false,
    derive: template.derive ?? false,
    extractable,
    local: origin.kind === 'generated',
    'never-extractable': neverExtractable,
    'always-sensitive': alwaysSensitive,
    modifiable: template.modifiable ?? true,
    destroyable: template.destroyable ?? true,
    trusted: false,
    'wrap-with-trusted': secretOrPrivate ? (template['wrap-with-trusted'] ?? false) : false,
    'manage-key-quorum-value': template['manage-key-quorum-value'] ?? 0,
    'use-key-quorum-value': template['use-key-quorum-value'] ?? 0,
    ...material,
  };
  if (template['wrap-template']) attrs['wrap-template'] = { ...template['wrap-template'] };
  if (template['unwrap-template']) attrs['unwrap-template'] = { ...template['unwrap-template'] };
  return attrs;
}

/** Who asks for an attribute change: the key's owner (a crypto user) or an admin. */
export type ChangeActor = 'owner' | 'admin';

/**
 * Applies `changes` to a copy of `current` and returns it, or refuses the whole change: nothing
 * is applied unless every attribute in it is allowed.
 */
export function changeAttributes(current: KeyAttributes, changes: Template, actor: ChangeActor): KeyAttributes {
  const cls = current.class;
  const type = current['key-type'];
  const next: KeyAttributes = { ...current };
  const entries = Object.entries(changes).filter(([, v]) => v !== undefined);
  if (entries.length === 0) {
    throw new HsmError('BAD_REQUEST', 'attributes: name at least one attribute to change');
  }
  for (const [name, value] of entries) {
    if (COMPUTED.has(name)) refuseComputed(name);
    const rule = SETTABLE[name as SettableName];
    if (actor === 'admin' && name !== 'trusted') {
      throw new HsmError('PERMISSION_DENIED', `an admin may change only the trusted attribute, not ${name}`);
    }
    if (rule.change === 'admin' && actor !== 'admin') {
      throw new HsmError('PERMISSION_DENIED', `only an admin can set ${name}`);
    }
    if (!current.modifiable) {
      throw new HsmError('ATTRIBUTE_READ_ONLY', `the key has modifiable=false, so ${name} cannot change`);
    }
    checkApplies(name, cls, type, value);
    const before = (current as unknown as Record<string, unknown>)[name];
    if (before === value) continue;
    switch (rule.change) {
      case 'never':
        throw new HsmError('ATTRIBUTE_READ_ONLY', `attribute ${name} can never change after the key is created`);
      case 'to-true':
        if (value !== true) throw new HsmError('ATTRIBUTE_READ_ONLY', `attribute ${name} can only change from false to true`);
        break;
      case 'to-false':
        if (value !== false) throw new HsmError('ATTRIBUTE_READ_ONLY', `attribute ${name} can only change from true to false`);
        break;
      case 'free':
      case 'admin':
        break;
    }
    (next as unknown as Record<string, unknown>)[name] = value;
  }
  return next;
}

/** Whether `attrs` has every value that `filter` names. Hex strings compare case-insensitively. */
export function matchesFilter(attrs: KeyAttributes, filter: AttributeFilter): boolean {
  return filterPredicate(filter)(attrs);
}

/**
 * {@link matchesFilter} for one filter over many keys: the filter's entries, its curve name and
 * its hex values are prepared once (findKeys over 100,000 keys).
 */
export function filterPredicate(filter: AttributeFilter): (attrs: KeyAttributes) => boolean {
  const tests = Object.entries(filter)
    .filter(([, want]) => want !== undefined)
    .map(([name, want]) => {
      const curve = name === 'curve' && typeof want === 'string' ? normaliseCurveName(want) : undefined;
      const hex = typeof want === 'string' && /^0x/i.test(want) ? want.toLowerCase() : undefined;
      const test = (have: unknown) => {
        if (curve !== undefined && curve === have) return true;
        if (hex !== undefined && typeof have === 'string') return hex === have.toLowerCase();
        return have === want;
      };
      return { name, test };
    });
  return (attrs) => {
    const record = attrs as unknown as Record<string, unknown>;
    for (const { name, test } of tests) if (!test(record[name])) return false;
    return true;
  };
}

/**
 * The template of an unwrapped key: the caller's template united with the unwrapping key's
 * `unwrap-template`; a value the two disagree on fails the unwrap (cloudhsm_using_trusted_keys).
 * Computed attributes in the unwrap template (class, key-type, …) must match the unwrapped key.
 */
export function uniteUnwrapTemplate(
  caller: Template,
  unwrapTemplate: AttributeFilter | undefined,
  cls: KeyClass,
  type: KeyType,
): Template {
  if (!unwrapTemplate) return caller;
  const united: Record<string, unknown> = { ...caller };
  for (const [name, value] of Object.entries(unwrapTemplate)) {
    if (value === undefined) continue;
    if (name === 'class' || name === 'key-type') {
      const actual = name === 'class' ? cls : type;
      if (value !== actual) {
        throw new HsmError('TEMPLATE_INCONSISTENT', `the unwrapping key's unwrap-template requires ${name}=${String(value)}, but the unwrapped key is ${actual}`);
      }
      continue;
    }
    if (COMPUTED.has(name)) continue;
    const given = united[name];
    if (given !== undefined && given !== value) {
      throw new HsmError(
        'TEMPLATE_INCONSISTENT',
        `attributes.${name}=${String(given)} conflicts with the unwrapping key's unwrap-template (${name}=${String(value)})`,
      );
    }
    united[name] = value;
  }
  return united as Template;
}

/** Accepts `prime256v1` for `secp256r1`; returns other names unchanged. */
export function normaliseCurveName(name: string): string {
  return name === 'prime256v1' ? 'secp256r1' : name;
}
