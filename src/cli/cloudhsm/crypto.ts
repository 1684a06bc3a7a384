/**
 * CloudHSM CLI's `crypto sign | verify`.
 *
 * @module
 */
import { Option, type Command } from 'commander';
import { HASHES, HsmError } from '../../hsm-core/client.js';
import { MGF1_CHOICES, b64, bad, message, dataOf, oneKey, readBytes, signMechanism, unb64, type Kit } from './shared.js';

export function addCryptoCommands(root: Command, kit: Kit): void {
  const { leaf, run, approvalOf } = kit;
  // crypto -----------------------------------------------------------------------------------------
  const crypto = root.command('crypto').description('sign and verify (crypto users)');
  const signCmd = crypto.command('sign').description('sign data with a private key');
  const verifyCmd = crypto.command('verify').description('verify a signature with a public key');
  for (const mech of ['ecdsa', 'ed25519', 'ed25519ph', 'rsa-pkcs', 'rsa-pkcs-pss'] as const) {
    const common = (cmd: Command) => {
      leaf(cmd)
        .requiredOption('--key-filter <terms...>', 'the key')
        .option('--data-path <file>', 'the data, binary')
        .option('--data <base64>', 'the data, base64');
      if (mech !== 'ed25519') {
        // raw: the HSM hashes the data; digest: the data is the hash the caller computed.
        const dataType = new Option('--data-type <type>', 'raw (the HSM hashes the data) or digest (the data is its hash)').choices(['raw', 'digest']);
        cmd.addOption(mech === 'ed25519ph' ? dataType.makeOptionMandatory() : dataType.default('raw'));
        cmd.addOption(new Option('--hash-function <hash>', 'the hash').choices(mech === 'ed25519ph' ? ['sha512'] : HASHES).makeOptionMandatory());
      }
      if (mech === 'rsa-pkcs-pss') {
        cmd.addOption(new Option('--mgf <mgf>', 'the mask generation function (its hash must be the hash function)').choices(MGF1_CHOICES).makeOptionMandatory());
        cmd.requiredOption('--salt-length <n>', 'salt bytes');
      }
      return cmd;
    };
    common(signCmd.command(mech).description(`sign with ${mech}`)).option('--approval <file>', 'a key-usage quorum token signed by approvers').action(run(async (o, session) => {
      const s = await session();
      const k = await oneKey(s, o.keyFilter as string[], '--key-filter');
      const { signature } = await s.send({ op: 'sign', handle: k.handle, mechanism: signMechanism(mech, o), data: dataOf(o), ...approvalOf(o.approval) });
      return { 'key-reference': k.keyReference, signature: b64(signature) };
    }));
    common(verifyCmd.command(mech).description(`verify with ${mech}`))
      .option('--signature-path <file>', 'the signature, binary')
      .option('--signature <base64>', 'the signature, base64')
      .action(run(async (o, session) => {
        if ((typeof o.signaturePath === 'string') === (typeof o.signature === 'string')) bad('give exactly one of --signature-path and --signature');
        const signature = typeof o.signaturePath === 'string' ? readBytes(o.signaturePath, '--signature-path') : unb64(o.signature as string, '--signature');
        const s = await session();
        const k = await oneKey(s, o.keyFilter as string[], '--key-filter');
        const { valid } = await s.send({ op: 'verify', handle: k.handle, mechanism: signMechanism(mech, o), data: dataOf(o), signature });
        if (!valid) throw new HsmError('DATA_INVALID', 'Signature verification failed');
        return message('Signature verified successfully');
      }));
  }
}
