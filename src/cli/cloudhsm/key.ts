/**
 * CloudHSM CLI's `key generate-symmetric | generate-asymmetric-pair | import pem | list | set-attribute | share | unshare | delete | wrap | unwrap`.
 *
 * @module
 */
import { writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { EC_CURVES, type Results, type WrapMechanism } from '../../hsm-core/client.js';
import { WRAP_MECHANISMS, allMatches, bad, message, unhex, describeKey, keyData, mechanismOptions, oneKey, optionKey, parseFilter, parseValue, readApproval, readBytes, readText, unb64, wrapMechanism, parseAttributes, type Flags, type Kit } from './shared.js';

export function addKeyCommands(root: Command, kit: Kit): void {
  const { leaf, run, approvalOf } = kit;
  // key --------------------------------------------------------------------------------------------
  const key = root.command('key').description('keys (crypto users)');
  const quorumValue = (flag: string, v: unknown) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 8) bad(`${flag}: 0 to 8, got ${JSON.stringify(v)}`);
    return n;
  };
  /** Shares a new key and checks the quorum values against the users it will have. */
  const creationExtras = (o: Flags, manageFlag: string, useFlag: string) => {
    const share = (o.shareCryptoUsers as string[] | undefined) ?? [];
    const manage = quorumValue(manageFlag, o[optionKey(manageFlag)]);
    const use = quorumValue(useFlag, o[optionKey(useFlag)]);
    for (const [flag, v] of [[manageFlag, manage], [useFlag, use]] as const) {
      if (v !== undefined && v > 1 + share.length) bad(`${flag}: ${v} is more than the ${1 + share.length} users the key will have (its owner and --share-crypto-users)`);
    }
    return { share, quorum: { ...(manage !== undefined ? { 'manage-key-quorum-value': manage } : {}), ...(use !== undefined ? { 'use-key-quorum-value': use } : {}) } };
  };
  const shareWith = (users: string[]) => (users.length ? { shareWith: users } : {});
  const genSym = key.command('generate-symmetric').description('generate a secret key');
  for (const [name, min, max] of [['aes', 16, 32], ['generic-secret', 1, 800]] as const) {
    leaf(genSym.command(name).description(`generate ${name === 'aes' ? 'an AES' : 'a generic secret'} key (a token key unless --session)`))
      .requiredOption('--label <label>', 'the key label')
      .requiredOption('--key-length-bytes <n>', name === 'aes' ? '16, 24 or 32' : '1 to 800')
      .option('--session', 'a session key (gone at logout) instead of a token key')
      .option('--attributes <k=v...>', 'more attributes, e.g. encrypt=true decrypt=true')
      .option('--share-crypto-users <users...>', 'share the new key with these crypto users')
      .option('--manage-key-quorum-value <n>', 'approvals to manage the key, 0–8')
      .option('--use-key-quorum-value <n>', 'approvals to use the key, 0–8')
      .action(run(async (o, session) => {
        const length = Number(o.keyLengthBytes);
        if (!Number.isInteger(length) || length < min || length > max || (name === 'aes' && ![16, 24, 32].includes(length))) {
          bad(`--key-length-bytes: ${name === 'aes' ? '16, 24 or 32' : '1 to 800'}, got ${JSON.stringify(o.keyLengthBytes)}`);
        }
        const { share, quorum } = creationExtras(o, '--manage-key-quorum-value', '--use-key-quorum-value');
        const s = await session();
        const attributes = { sign: true, verify: true, ...parseAttributes(o.attributes as string[], '--attributes'), label: o.label as string, token: !o.session, ...quorum };
        // Shared in the same step as it is made: a key whose quorum values count on these users is
        // never left without them.
        const { handle } = await s.send({ op: 'generateKey', keyType: name, lengthBytes: length, attributes, ...shareWith(share) });
        return { key: await keyData(s, handle) };
      }));
  }
  const genPair = key.command('generate-asymmetric-pair').description('generate a key pair (no usages unless the attributes say so)');
  for (const kind of ['rsa', 'ec'] as const) {
    const cmd = leaf(genPair.command(kind).description(`generate an ${kind.toUpperCase()} key pair (token keys unless --session)`))
      .requiredOption('--public-label <label>', 'the public key label')
      .requiredOption('--private-label <label>', 'the private key label')
      .option('--session', 'session keys instead of token keys')
      .option('--public-attributes <k=v...>', 'attributes of the public key, e.g. verify=true')
      .option('--private-attributes <k=v...>', 'attributes of the private key, e.g. sign=true')
      .option('--share-crypto-users <users...>', 'share the private key with these crypto users')
      .option('--manage-private-key-quorum-value <n>', 'approvals to manage the private key, 0–8')
      .option('--use-private-key-quorum-value <n>', 'approvals to use the private key, 0–8');
    if (kind === 'rsa') cmd.requiredOption('--modulus-size-bits <n>', '2048 to 4096').option('--public-exponent <n>', 'odd, at least 65537', '65537');
    else cmd.addOption(new Option('--curve <curve>', 'the curve (ed25519: an EdDSA pair)').choices(['prime256v1', ...EC_CURVES, 'ed25519']).makeOptionMandatory());
    cmd.action(run(async (o, session) => {
      const token = !o.session;
      const { share, quorum } = creationExtras(o, '--manage-private-key-quorum-value', '--use-private-key-quorum-value');
      const publicAttributes = { ...parseAttributes(o.publicAttributes as string[], '--public-attributes'), label: o.publicLabel as string, token };
      const privateAttributes = { ...parseAttributes(o.privateAttributes as string[], '--private-attributes'), label: o.privateLabel as string, token, ...quorum };
      let shape: { keyType: 'rsa' | 'ec' | 'ed25519'; modulusBits?: number; publicExponent?: number; curve?: string };
      if (kind === 'rsa') {
        const bits = Number(o.modulusSizeBits);
        const e = Number(o.publicExponent);
        if (!Number.isInteger(bits) || bits < 2048 || bits > 16384) bad(`--modulus-size-bits: at least 2048, got ${JSON.stringify(o.modulusSizeBits)}`);
        if (!Number.isSafeInteger(e) || e < 65537 || e % 2 === 0) bad(`--public-exponent: an odd number of at least 65537, got ${JSON.stringify(o.publicExponent)}`);
        shape = { keyType: 'rsa', modulusBits: bits, publicExponent: e };
      } else {
        shape = o.curve === 'ed25519' ? { keyType: 'ed25519' } : { keyType: 'ec', curve: o.curve as string };
      }
      const s = await session();
      const r = await s.send({ op: 'generateKeyPair', ...shape, publicAttributes, privateAttributes, ...shareWith(share) } as never) as Results['generateKeyPair'];
      return { public_key: await keyData(s, r.publicHandle), private_key: await keyData(s, r.privateHandle) };
    }));
  }
  leaf(key.command('import').description('import a key').command('pem').description('import a public key from a PEM file'))
    .requiredOption('--path <file>', 'the PEM file')
    .requiredOption('--label <label>', 'the key label')
    .addOption(new Option('--key-type-class <type>', 'what the PEM holds').choices(['rsa-public', 'ec-public']).makeOptionMandatory())
    .option('--attributes <k=v...>', 'attributes, e.g. verify=true')
    .action(run(async (o, session) => {
      const text = readText(o.path as string, '--path');
      const m = /-----BEGIN PUBLIC KEY-----([\s\S]+?)-----END PUBLIC KEY-----/.exec(text);
      if (!m) bad(`--path: ${String(o.path)} holds no PEM public key (-----BEGIN PUBLIC KEY-----); CloudHSM imports public keys only`);
      const s = await session();
      const r = await s.send({
        op: 'importKey',
        keyClass: 'public-key',
        keyType: o.keyTypeClass === 'rsa-public' ? 'rsa' : 'ec',
        format: 'spki',
        keyData: unb64(m![1]!.replace(/\s+/g, ''), '--path'),
        attributes: { ...parseAttributes(o.attributes as string[], '--attributes'), label: o.label as string, token: true },
      });
      return message('Successfully imported key', { key: await keyData(s, r.handle) });
    }));
  leaf(key.command('generate-file').description('write a key file: a public key as PEM, or a reference PEM for a private key (no key material leaves the HSM)'))
    .addOption(new Option('--encoding <encoding>', 'reference-pem: a PEM that references a private key; pem: a public key').choices(['reference-pem', 'pem']).makeOptionMandatory())
    .requiredOption('--path <file>', 'where the key file is written')
    .requiredOption('--filter <terms...>', 'the key')
    .action(run(async (o, session) => {
      const s = await session();
      const k = await oneKey(s, o.filter as string[], '--filter');
      let text: string;
      if (o.encoding === 'reference-pem') {
        // Loaded when used: the ASN.1 library is not what other key commands need.
        const { referencePem } = await import('../../cluster-client/reference-pem.js');
        text = referencePem(k);
      } else {
        if (k.attributes.class !== 'public-key') bad(`--encoding pem: key ${k.keyReference} is a ${k.attributes.class}; pem writes public keys (use --encoding reference-pem for a private key)`);
        const { keyData } = await s.send({ op: 'exportKey', handle: k.handle, format: 'spki' });
        text = `-----BEGIN PUBLIC KEY-----\n${Buffer.from(keyData as Uint8Array).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PUBLIC KEY-----\n`;
      }
      writeFileSync(o.path as string, text, { mode: 0o600 });
      return message('Successfully generated key file');
    }));
  leaf(key.command('pkcs11-uri').description("Strongroom: the PKCS #11 URI by which OpenSSL's engine, nginx and pkcs11-tool load a private key through the PKCS #11 door"))
    .option('--path <file>', 'a reference PEM (key generate-file --encoding reference-pem)')
    .option('--filter <terms...>', 'the key, instead of --path')
    .action(run(async (o, session) => {
      if ((o.path === undefined) === (o.filter === undefined)) bad('give the key by --path <reference PEM> or by --filter, one of the two');
      // Loaded when used, as generate-file's: the ASN.1 library and the door's attribute table.
      const [{ parseReferencePem }, { pkcs11Uri }] = await Promise.all([import('../../cluster-client/reference-pem.js'), import('../../pkcs11/uri.js')]);
      let filter = o.filter as string[] | undefined;
      if (o.path !== undefined) {
        const ref = parseReferencePem(readText(o.path as string, '--path'));
        if (!ref) bad(`--path: ${String(o.path)} is not a reference PEM (key generate-file --encoding reference-pem writes them)`);
        filter = [`key-reference=0x${ref!.keyReference.toString(16).padStart(16, '0')}`];
      }
      const s = await session();
      const k = await oneKey(s, filter, o.path !== undefined ? '--path' : '--filter');
      return { 'key-reference': k.keyReference, uri: pkcs11Uri(k, await allMatches(s, {})) };
    }));
  leaf(key.command('list').description('keys you own or share, and all public keys'))
    .option('--filter <terms...>', 'key-reference=0x… or attr.NAME=VALUE')
    .option('--max-items <n>', 'keys per page', '10')
    .option('--starting-token <token>', 'the next-token of the previous page')
    .option('-v, --verbose', 'attributes, owners, shared users and cluster coverage')
    .action(run(async (o, session) => {
      const max = Number(o.maxItems);
      if (!Number.isInteger(max) || max < 1 || max > 10_000) bad(`--max-items: 1 to 10000, got ${JSON.stringify(o.maxItems)}`);
      // As CloudHSM CLI: the token is an offset into the matches, and the total counts every match.
      const token = o.startingToken as string | undefined;
      if (token !== undefined && !/^\d{1,9}$/.test(token)) bad(`--starting-token: the next_token of the previous page (a number), got ${JSON.stringify(token)}`);
      const offset = token === undefined ? 0 : Number(token);
      const s = await session();
      const matches = await allMatches(s, parseFilter(o.filter as string[]));
      const page = matches.slice(offset, offset + max);
      return {
        matched_keys: page.map((k) => describeKey(k, o.verbose === true)),
        ...(offset + max < matches.length ? { next_token: String(offset + max) } : {}),
        total_key_count: matches.length,
        returned_key_count: page.length,
      };
    }));
  leaf(key.command('set-attribute').description("set one attribute of a key (owner; admin: trusted)"))
    .requiredOption('--filter <terms...>', 'the key')
    .requiredOption('--name <attribute>', 'e.g. label, encrypt, trusted')
    .requiredOption('--value <value>', 'true, false, a number or text')
    .option('--approval <file>', 'a key-management quorum token signed by approvers')
    .action(run(async (o, session) => {
      const s = await session();
      const k = await oneKey(s, o.filter as string[], '--filter');
      await s.send({ op: 'setAttributes', handle: k.handle, attributes: { [o.name as string]: parseValue(o.value as string) }, ...approvalOf(o.approval) });
      return message('Attribute set successfully');
    }));
  for (const verb of ['share', 'unshare'] as const) {
    leaf(key.command(verb).description(`${verb} a key with a crypto user (owner)`))
      .requiredOption('--filter <terms...>', 'the key')
      .requiredOption('--username <name>', 'the crypto user')
      .addOption(new Option('--role <role>', 'their role').choices(['crypto-user']).makeOptionMandatory())
      .option('--approval <file>', 'a key-management quorum token signed by approvers')
      .action(run(async (o, session) => {
        const s = await session();
        const k = await oneKey(s, o.filter as string[], '--filter');
        await s.send({ op: verb === 'share' ? 'shareKey' : 'unshareKey', handle: k.handle, username: o.username as string, ...approvalOf(o.approval) });
        return message(`Key ${verb}d successfully`);
      }));
  }
  leaf(key.command('delete').description('delete a key (owner)'))
    .requiredOption('--filter <terms...>', 'the key')
    .action(run(async (o, session) => {
      const s = await session();
      const k = await oneKey(s, o.filter as string[], '--filter');
      await s.send({ op: 'deleteKey', handle: k.handle });
      return message('Key deleted successfully');
    }));

  const wrap = key.command('wrap').description('wrap a key (the owner of the payload key)');
  const unwrap = key.command('unwrap').description('unwrap a key');
  for (const mech of WRAP_MECHANISMS) {
    const w = leaf(wrap.command(mech).description(`wrap with ${mech}`))
      .requiredOption('--payload-filter <terms...>', 'the key to wrap (extractable)')
      .requiredOption('--wrapping-filter <terms...>', 'the wrapping key (wrap=true)')
      .option('--path <file>', 'write the wrapped key here (binary) instead of printing it')
      .option('--payload-approval <file>', "a quorum token for the payload key")
      .option('--wrapping-approval <file>', 'a quorum token for the wrapping key');
    const u = leaf(unwrap.command(mech).description(`unwrap with ${mech} (a token key unless --session)`))
      .requiredOption('--filter <terms...>', 'the unwrapping key (unwrap=true)')
      .addOption(new Option('--key-type-class <type>', 'what the wrapped key is').choices(['aes', 'generic-secret', 'rsa-private', 'ec-private']).makeOptionMandatory())
      .requiredOption('--label <label>', 'the new key label')
      .option('--data-path <file>', 'the wrapped key, binary')
      .option('--data <base64>', 'the wrapped key, base64')
      .option('--session', 'a session key instead of a token key')
      .option('--attributes <k=v...>', 'attributes of the new key')
      .option('--share-crypto-users <users...>', 'share the new key with these crypto users')
      .option('--manage-key-quorum-value <n>', 'approvals to manage the new key, 0–8')
      .option('--use-key-quorum-value <n>', 'approvals to use the new key, 0–8')
      .option('--approval <file>', 'a quorum token for the unwrapping key');
    mechanismOptions(mech, w, 'wrap');
    mechanismOptions(mech, u, 'unwrap');
    w.action(run(async (o, session) => {
      const s = await session();
      const payload = await oneKey(s, o.payloadFilter as string[], '--payload-filter');
      const wrapping = await oneKey(s, o.wrappingFilter as string[], '--wrapping-filter');
      const r = await s.send({
        op: 'wrapKey',
        mechanism: wrapMechanism(mech, o),
        wrappingHandle: wrapping.handle,
        payloadHandle: payload.handle,
        ...(typeof o.wrappingApproval === 'string' ? { approval: readApproval(o.wrappingApproval, '--wrapping-approval') } : {}),
        ...(typeof o.payloadApproval === 'string' ? { payloadApproval: readApproval(o.payloadApproval, '--payload-approval') } : {}),
      });
      // aes-gcm: the HSM chose the IV, printed apart in hex as CloudHSM CLI does (key unwrap aes-gcm --iv).
      const wrapped = Buffer.from(r.wrapped);
      if (typeof o.path === 'string') writeFileSync(o.path, wrapped);
      return {
        payload_key_reference: payload.keyReference,
        wrapping_key_reference: wrapping.keyReference,
        ...(r.iv ? { iv: `0x${Buffer.from(r.iv).toString('hex')}` } : {}),
        ...(typeof o.path === 'string' ? { path: o.path } : { wrapped_key_data: wrapped.toString('base64') }),
      };
    }));
    u.action(run(async (o, session) => {
      if ((typeof o.dataPath === 'string') === (typeof o.data === 'string')) bad('give exactly one of --data-path and --data');
      const data = typeof o.dataPath === 'string' ? readBytes(o.dataPath, '--data-path') : unb64(o.data as string, '--data');
      const mechanism = wrapMechanism(mech, o) as WrapMechanism & { iv?: Uint8Array };
      if (mech === 'aes-gcm') {
        mechanism.iv = unhex(o.iv as string, '--iv');
        if (mechanism.iv.length !== 12) bad(`--iv: 12 bytes (0x and 24 hex digits) as key wrap aes-gcm prints it, got ${mechanism.iv.length}`);
      }
      const [keyClass, keyType] = ({ aes: ['secret-key', 'aes'], 'generic-secret': ['secret-key', 'generic-secret'], 'rsa-private': ['private-key', 'rsa'], 'ec-private': ['private-key', 'ec'] } as const)[o.keyTypeClass as 'aes'];
      const { share, quorum } = creationExtras(o, '--manage-key-quorum-value', '--use-key-quorum-value');
      const s = await session();
      const k = await oneKey(s, o.filter as string[], '--filter');
      const r = await s.send({
        op: 'unwrapKey',
        mechanism,
        unwrappingHandle: k.handle,
        wrapped: data,
        keyClass,
        keyType,
        attributes: { ...parseAttributes(o.attributes as string[], '--attributes'), label: o.label as string, token: !o.session, ...quorum },
        ...shareWith(share),
        ...approvalOf(o.approval),
      });
      return { key: await keyData(s, r.handle) };
    }));
  }
}
