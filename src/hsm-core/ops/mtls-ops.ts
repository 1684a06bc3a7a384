/**
 * Mutual TLS settings (CloudHSM hsm2m's `cluster mtls …`): trust anchors whose client
 * certificates the TLS members accept, and the enforcement level. Changing them needs the admin
 * service `cluster`'s quorum when its value is above 1; they travel as cluster settings. The TLS
 * host (hosts/tls.ts) reads them and enforces them on every connection.
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { HsmError } from '../errors.js';
import { MAX_TRUST_ANCHORS, type MtlsSettings } from '../quorum.js';
import type { Handler, MemberState } from '../state.js';
import { signedIn } from '../state.js';
import { adminApproval } from './quorum-ops.js';

const reference = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

function settingsOf(m: MemberState): MtlsSettings {
  m.quorum.mtls ??= { anchors: [], enforcement: 'none' };
  return m.quorum.mtls;
}

/** The certificates of a PEM chain, each a CA certificate, in hierarchical order. */
function parseAnchor(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new HsmError('BAD_REQUEST', 'certificate: Invalid Certificate: no PEM certificate (-----BEGIN CERTIFICATE-----) in it');
  const certs = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (e) {
      throw new HsmError('BAD_REQUEST', `certificate: Invalid Certificate: certificate ${i + 1} does not parse (${(e as Error).message})`, { cause: e });
    }
  });
  certs.forEach((c, i) => {
    if (!c.ca) throw new HsmError('BAD_REQUEST', `certificate: Invalid Certificate: ${c.subject.replace(/\n/g, ', ')} is not a CA certificate (basicConstraints CA:TRUE), so it cannot anchor client certificates`);
    if (Date.parse(c.validTo) < Date.now()) throw new HsmError('BAD_REQUEST', `certificate: Invalid Certificate: ${c.subject.replace(/\n/g, ', ')} expired on ${c.validTo}`);
    const parent = certs[i - 1];
    if (parent && !c.checkIssued(parent)) throw new HsmError('BAD_REQUEST', `certificate: Invalid Certificate: certificate ${i + 1} is not issued by certificate ${i}; give the chain in hierarchical order`);
  });
  return certs;
}

export const registerTrustAnchor: Handler<'registerTrustAnchor'> = (m, caller, req) => {
  const me = signedIn(caller);
  const certs = parseAnchor(req.certificate);
  const mtls = settingsOf(m);
  const fingerprint = certs.map((c) => c.fingerprint256).join(',');
  for (const a of mtls.anchors) {
    if (parseAnchor(a.certificate).map((c) => c.fingerprint256).join(',') === fingerprint) {
      throw new HsmError('BAD_REQUEST', `certificate: Invalid Certificate: Trust anchor already exists (${reference(a.reference)}).`);
    }
  }
  if (mtls.anchors.length >= MAX_TRUST_ANCHORS) {
    throw new HsmError('LIMIT_EXCEEDED', `certificate: ${MAX_TRUST_ANCHORS} trust anchors are registered already, as many as hsm2m allows; deregister one first`);
  }
  adminApproval(m, me, 'cluster', req.approval)();
  const taken = new Set(mtls.anchors.map((a) => a.reference));
  let ref = 1;
  while (taken.has(ref)) ref += 1;
  const certificate = certs.map((c) => c.toString().trim()).join('\n') + '\n';
  mtls.anchors.push({ reference: ref, certificate });
  mtls.anchors.sort((a, b) => a.reference - b.reference);
  m.quorumGen = m.stamp();
  return { reference: ref, certificate };
};

export const deregisterTrustAnchor: Handler<'deregisterTrustAnchor'> = (m, caller, req) => {
  const me = signedIn(caller);
  const mtls = settingsOf(m);
  const at = mtls.anchors.findIndex((a) => a.reference === req.reference);
  if (at < 0) throw new HsmError('BAD_REQUEST', `reference: no trust anchor ${reference(req.reference)} (registered: ${mtls.anchors.map((a) => reference(a.reference)).join(', ') || 'none'})`);
  if (mtls.enforcement === 'cluster' && mtls.anchors.length === 1) {
    throw new HsmError('BAD_REQUEST', `reference: ${reference(req.reference)} is the last trust anchor and mTLS is enforced; set the enforcement to none first, or no client could connect`);
  }
  adminApproval(m, me, 'cluster', req.approval)();
  mtls.anchors.splice(at, 1);
  m.quorumGen = m.stamp();
  return { reference: req.reference };
};

export const getMtlsSettings: Handler<'getMtlsSettings'> = (m) => {
  const mtls = m.quorum.mtls ?? { anchors: [], enforcement: 'none' };
  return { anchors: mtls.anchors.map((a) => ({ ...a })), enforcement: mtls.enforcement };
};

export const setMtlsEnforcement: Handler<'setMtlsEnforcement'> = (m, caller, req) => {
  const me = signedIn(caller);
  // As AWS: only the default admin, so an enforcement that locks clients out is the owner's choice.
  if (me.username !== 'admin') throw new HsmError('PERMISSION_DENIED', `level: only the admin named admin sets the mTLS enforcement, not ${me.username}`);
  const mtls = settingsOf(m);
  if (req.level === 'cluster' && mtls.anchors.length === 0) {
    throw new HsmError('BAD_REQUEST', 'level: no trust anchor is registered, so enforcing mTLS would refuse every client; register one with cluster mtls register-trust-anchor first');
  }
  adminApproval(m, me, 'cluster', req.approval)();
  mtls.enforcement = req.level;
  m.quorumGen = m.stamp();
  return { level: req.level };
};
