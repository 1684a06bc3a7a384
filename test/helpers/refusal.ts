/**
 * The error a call is refused with, for tests that go on to check it: `refusal` insists on an
 * HsmError (the HSM's and the cluster client's doors), `rejection` takes any error (WebCrypto's
 * DOMExceptions, the relay). A call that succeeds fails the test.
 */
import { expect } from 'chai';
import { HsmError } from '../../src/hsm-core/index.js';

export async function rejection(call: Promise<unknown> | (() => unknown)): Promise<Error> {
  try {
    await (typeof call === 'function' ? call() : call);
  } catch (e) {
    return e as Error;
  }
  return expect.fail('expected a refusal');
}

export async function refusal(call: Promise<unknown> | (() => unknown)): Promise<HsmError> {
  const e = await rejection(call);
  expect(e).to.be.instanceOf(HsmError);
  return e as HsmError;
}
