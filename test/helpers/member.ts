/**
 * Test fixtures: members with the usual cast of users, and assertions on answers.
 */
import { expect } from 'chai';
import {
  createMember,
  type HsmErrorCode,
  type Member,
  type MemberOptions,
  type Request,
  type Response,
  type Results,
  type WireError,
} from '../../src/hsm-core/index.js';

/** Low scrypt cost keeps the many logins of the tests fast; the production default is 15. */
export const TEST_PASSWORD_COST = 10;

export class TestMember {
  constructor(readonly member: Member) {}

  raw(request: unknown): Promise<Response> {
    return this.member.handle(request);
  }

  /** Sends a request that must succeed, and returns its result. */
  async ok<R extends Request>(request: R): Promise<Results[R['op']]> {
    const response = await this.member.handle(request);
    if (!response.ok) {
      expect.fail(`${request.op} was refused: ${response.error.code}: ${response.error.message}`);
    }
    return response.result as Results[R['op']];
  }

  /** Sends a request that must be refused (with `code`, when given), and returns the error. */
  async fail(request: unknown, code?: HsmErrorCode): Promise<WireError> {
    const response = await this.member.handle(request);
    if (response.ok) expect.fail(`${(request as { op?: string }).op} succeeded but should have been refused${code ? ` with ${code}` : ''}`);
    if (code) expect(response.error.code, response.error.message).to.equal(code);
    return response.error;
  }

  async login(username: string, password: string): Promise<string> {
    return (await this.ok({ op: 'login', username, password })).session;
  }
}

export const PASSWORDS = {
  admin: 'admin-password',
  admin2: 'admin2-password',
  alice: 'alice-password',
  bob: 'bob-password',
  carol: 'carol-password',
  app_user: 'appliance-password',
} as const;

export interface Fixture {
  m: TestMember;
  /** Session tokens. */
  admin: string;
  alice: string;
  bob: string;
  carol: string;
  appliance: string;
}

/** A fresh, never-activated member (only the unactivated admin and app_user exist). */
export async function freshMember(options: MemberOptions = {}): Promise<TestMember> {
  return new TestMember(
    await createMember({ passwordCost: TEST_PASSWORD_COST, appliancePassword: PASSWORDS.app_user, ...options }),
  );
}

/**
 * An activated member with admins `admin` and `admin2`, crypto users `alice`, `bob` and `carol`,
 * and sessions for admin, alice, bob, carol and the appliance user.
 */
export async function activatedMember(options: MemberOptions = {}): Promise<Fixture> {
  const m = await freshMember(options);
  await m.ok({ op: 'activateCluster', password: PASSWORDS.admin });
  const admin = await m.login('admin', PASSWORDS.admin);
  await m.ok({ op: 'createUser', session: admin, username: 'admin2', password: PASSWORDS.admin2, role: 'admin' });
  for (const name of ['alice', 'bob', 'carol'] as const) {
    await m.ok({ op: 'createUser', session: admin, username: name, password: PASSWORDS[name], role: 'crypto-user' });
  }
  return {
    m,
    admin,
    alice: await m.login('alice', PASSWORDS.alice),
    bob: await m.login('bob', PASSWORDS.bob),
    carol: await m.login('carol', PASSWORDS.carol),
    appliance: await m.login('app_user', PASSWORDS.app_user),
  };
}

/** Everything observable about a member's keys and users, for "nothing changed" assertions. */
export async function snapshot(f: Fixture, options: { audit?: boolean } = {}): Promise<string> {
  const { m } = f;
  const parts: unknown[] = [];
  for (const session of [f.admin, f.alice, f.bob, f.carol]) {
    parts.push((await m.ok({ op: 'findKeys', session, maxItems: 10_000 })).keys);
  }
  parts.push((await m.ok({ op: 'getSyncStatus', session: f.admin })).keys);
  parts.push((await m.ok({ op: 'listUsers' })).users);
  const info = await m.ok({ op: 'getHsmInfo' });
  parts.push({ keys: info.keys, users: info.users, sessions: info.sessions, state: info.state });
  if (options.audit) parts.push(info.auditHead);
  return JSON.stringify(parts);
}

export const bytes = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'));
export const hex = (data: Uint8Array): string => Buffer.from(data).toString('hex');
