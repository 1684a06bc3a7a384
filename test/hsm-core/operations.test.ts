/**
 * The operations table (hsm-core/operations.ts) against what it describes: the handles it lists
 * are the request's handle fields, the relay forwards what it says, a member keeps what it says
 * (and records its last change only for what changes state), and the cluster client takes its
 * replication from it.
 */
import { expect } from 'chai';
import { OPERATIONS, OPS, handlesOf, type Op } from '../../src/hsm-core/index.js';
import { requestSchemas } from '../../src/hsm-core/protocol.js';
import { RELAY_OPERATIONS } from '../../src/relay/index.js';
import { activatedMember } from '../helpers/member.js';

type Shape = Record<string, { options?: { shape?: Record<string, unknown> }[]; unwrap?: () => unknown; def?: { innerType?: unknown } }>;

/** The top-level fields of an operation's request schema that hold key handles, and `mechanism.publicHandle` when a mechanism may carry one. */
function schemaHandles(op: Op): string[] {
  const shape = (requestSchemas[op] as unknown as { shape: Shape }).shape;
  const fields = Object.keys(shape).filter((f) => f === 'handle' || /[a-z]Handle$/.test(f));
  const mechanism = shape.mechanism;
  if (mechanism?.options?.some((o) => o.shape && 'publicHandle' in o.shape)) fields.push('mechanism.publicHandle');
  return fields.sort();
}

describe('hsm-core: the operations table', () => {
  it('has a row for every operation, and lists exactly the request fields that name key handles', () => {
    expect(Object.keys(OPERATIONS).sort()).to.deep.equal([...OPS].sort());
    const mismatched = OPS.filter((op) => JSON.stringify([...OPERATIONS[op].handles].sort()) !== JSON.stringify(schemaHandles(op)));
    expect(mismatched).to.deep.equal([]);
    // Spot checks that the comparison above sees the fields at all.
    expect(schemaHandles('wrapKey')).to.deep.equal(['payloadHandle', 'wrappingHandle']);
    expect(schemaHandles('deriveBits')).to.deep.equal(['baseHandle', 'mechanism.publicHandle']);
  });

  it('handlesOf reads the handles the row names, and only those', () => {
    expect(handlesOf({ op: 'wrapKey', wrappingHandle: 7, payloadHandle: 9, session: 's' })).to.deep.equal([7, 9]);
    expect(handlesOf({ op: 'deriveBits', baseHandle: 3, mechanism: { name: 'ecdh', publicHandle: 4 } })).to.deep.equal([3, 4]);
    // findKeys' filter handle is a search term, not a key the request uses.
    expect(handlesOf({ op: 'findKeys', filter: { handle: 5 } })).to.deep.equal([]);
    expect(handlesOf({ op: 'noSuchOperation', handle: 5 })).to.deep.equal([]);
  });

  it('the relay offers exactly the rows marked relay', () => {
    expect([...RELAY_OPERATIONS].sort()).to.deep.equal(OPS.filter((op) => OPERATIONS[op].relay).sort());
    expect(RELAY_OPERATIONS).to.include.members(['sign', 'generateKey', 'getAuditLog']);
    expect(RELAY_OPERATIONS).to.not.include.members(['createUser', 'insertMaskedObject', 'restoreBackup', 'login']);
  });

  it('a member records a last change for a change, not for an audited read (an export, a login)', async () => {
    const { m, alice } = await activatedMember();
    const lastChange = async () => (await m.ok({ op: 'getHsmInfo' })).lastChange;
    const { handle } = await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, extractable: true, sensitive: false } });
    const afterChange = await lastChange();
    expect(afterChange).to.be.a('string');
    // A later change would carry a later time: wait until the clock has moved on.
    const start = Date.now();
    while (Date.now() === start) await new Promise((r) => setImmediate(r));
    await m.ok({ op: 'exportKey', session: alice, handle, format: 'raw' });
    await m.login('bob', 'bob-password');
    expect(await lastChange()).to.equal(afterChange);
    await m.ok({ op: 'setAttributes', session: alice, handle, attributes: { label: 'renamed' } });
    expect(await lastChange()).to.not.equal(afterChange);
  });
});
