/**
 * Every CloudHSM CLI command, run without its arguments (or with nothing to connect to), refuses
 * with a message that names what is missing, and sends nothing: no cluster is reachable here, so
 * a command that tried to run would fail on the connection instead.
 */
import { expect } from 'chai';
import { Command, CommanderError } from 'commander';
import { CliContext } from '../../src/cli/cli-context.js';
import { addCloudHsmCommands } from '../../src/cli/cloudhsm/index.js';
import { parseFilter } from '../../src/cli/cloudhsm/shared.js';
import { HsmError } from '../../src/hsm-core/face.js';
import { complete, splitWords } from '../../src/cli/interactive.js';

function leaves(cmd: Command, path: string[] = []): string[][] {
  if (!cmd.commands.length) return [path];
  return cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]));
}

function program(out: string[]): { root: Command; ctx: CliContext } {
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s), ask: (prompt: string) => Promise.reject(new Error(`no answer to "${prompt}" (end of input)`)) };
  // An address with no trust anchor: any attempt to connect fails, naming STRONGROOM_CA.
  const ctx = new CliContext(io, 'single', { STRONGROOM_CLUSTER: '127.0.0.1:9', STRONGROOM_CLI_CONFIG: '/nonexistent/cli.json' });
  const root = new Command('strongroom').exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => out.push(s) });
  addCloudHsmCommands(root, ctx);
  return { root, ctx };
}

describe('cli: every CloudHSM command refuses missing arguments clearly', () => {
  const all = leaves(program([]).root);

  it('covers the command set of CLOUDHSM.md §10', () => {
    const names = all.map((p) => p.join(' '));
    for (const expected of [
      'cluster activate', 'cluster hsm-info', 'login', 'logout', 'user list', 'user create', 'user delete', 'user change-password',
      'user change-mfa token-sign', 'user change-quorum token-sign register', 'quorum token-sign generate', 'quorum token-sign list',
      'quorum token-sign list-quorum-values', 'quorum token-sign list-timeouts', 'quorum token-sign set-quorum-value',
      'quorum token-sign set-timeout', 'quorum token-sign delete', 'key generate-symmetric aes', 'key generate-symmetric generic-secret',
      'key generate-asymmetric-pair rsa', 'key generate-asymmetric-pair ec', 'key import pem', 'key list', 'key set-attribute',
      'key share', 'key unshare', 'key delete', 'crypto sign ecdsa', 'crypto verify rsa-pkcs-pss', 'audit show', 'audit verify', 'configure',
    ]) expect(names).to.include(expected);
    for (const mech of ['aes-gcm', 'aes-no-pad', 'aes-pkcs5-pad', 'aes-zero-pad', 'cloudhsm-aes-gcm', 'rsa-aes', 'rsa-oaep', 'rsa-pkcs']) {
      expect(names).to.include(`key wrap ${mech}`);
      expect(names).to.include(`key unwrap ${mech}`);
    }
  });

  for (const path of all) {
    it(path.join(' '), async () => {
      const out: string[] = [];
      const { root } = program(out);
      let commanderError: CommanderError | null = null;
      try {
        await root.parseAsync(path, { from: 'user' });
      } catch (e) {
        if (!(e instanceof CommanderError)) throw e;
        commanderError = e;
      } finally {
        process.exitCode = undefined;
      }
      const text = out.join('');
      if (commanderError) {
        expect(text).to.match(/required option '--[a-z-]+ [<[][^>\]]+[>\]]' not specified|missing required argument/);
        return;
      }
      const answer = JSON.parse(text) as { error_code: number; data: string };
      expect(answer.error_code).to.equal(1);
      // Refused before or at the connection: never by a member.
      expect(answer.data).to.match(/STRONGROOM_CA|not logged in|log in|CLOUDHSM_PIN|give |--|no answer to "Enter password:"/);
    });
  }

  it('interactive words and completion', () => {
    expect(splitWords(`key list --filter "attr.label=my key" 'a b' c\\ d`)).to.deep.equal(['key', 'list', '--filter', 'attr.label=my key', 'a b', 'c d']);
    expect(() => splitWords('login "unclosed')).to.throw('unclosed');
    const { root } = program([]);
    expect(complete(root, 'ke')).to.deep.equal([['key'], 'ke']);
    expect(complete(root, 'key wrap rsa-')[0]).to.deep.equal(['rsa-aes', 'rsa-oaep', 'rsa-pkcs']);
    expect(complete(root, 'key list --ve')).to.deep.equal([['--verbose'], '--ve']);
    expect(complete(root, 'quorum token-sign ')[0]).to.include.members(['generate', 'list', 'set-quorum-value']);
    expect(complete(root, 'login --role ')).to.deep.equal([['admin', 'crypto-user'], '']);
    expect(complete(root, 'quorum token-sign generate --service key-')[0]).to.deep.equal(['key-management', 'key-usage']);
  });
});

describe('cli: key references in filters (issue 19, item 1)', () => {
  const refusal = (words: string[]) => {
    try {
      parseFilter(words, '--key-filter');
    } catch (e) {
      expect(e).to.be.instanceOf(HsmError);
      return (e as HsmError).message;
    }
    return expect.fail(`${words.join(' ')} was accepted`);
  };

  it('takes the form every output prints (0x and 16 hex digits), shorter hex, and decimal', () => {
    expect(parseFilter(['key-reference=0x0000000000040da2'])).to.deep.equal({ handle: 0x40da2 });
    expect(parseFilter(['key-reference=0x40DA2'])).to.deep.equal({ handle: 0x40da2 });
    expect(parseFilter(['key-reference=265634'])).to.deep.equal({ handle: 0x40da2 });
    expect(parseFilter(['key-reference=0x0000000000000021', 'attr.label=k'])).to.deep.equal({ handle: 0x21, attributes: { label: 'k' } });
  });

  it('refuses what is not a key reference, naming the forms it takes', () => {
    expect(refusal(['key-reference=0x00000000000000021'])).to.equal('--key-filter: key-reference is 0x and up to 16 hex digits as key list prints it (0x0000000000000021), or a decimal number; got "0x00000000000000021"');
    expect(refusal(['key-reference=0xZZ'])).to.contain('got "0xZZ"');
    expect(refusal(['key-reference=-5'])).to.contain('got "-5"');
    expect(refusal(['key-reference=0xffffffffffffffff'])).to.equal('--key-filter: key-reference 0xffffffffffffffff is larger than any key reference');
  });
});
