/**
 * CloudHSM CLI's `login` (with `mfa-token-sign`) and `logout`.
 *
 * @module
 */
import type { Command } from 'commander';
import { loginTo } from '../cli-context.js';
import { b64, bad, readJson, unb64, write, type Kit } from './shared.js';

export function addLoginCommands(root: Command, kit: Kit): void {
  const { ctx, leaf, run, password, roleOption } = kit;
  // login / logout ---------------------------------------------------------------------------------
  leaf(root.command('login').description('log in to every HSM of the cluster'))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .option('--password <password>', 'prompted for when absent')
    .argument('[strategy]', 'mfa-token-sign, for a user with MFA')
    .option('--token <file>', 'with mfa-token-sign: where the unsigned tokens are written')
    .action(run(async (o, _s, strategy) => {
      if (strategy !== undefined && strategy !== 'mfa-token-sign') bad(`unknown login strategy ${JSON.stringify(strategy)}; the only one is mfa-token-sign`);
      if (strategy && typeof o.token !== 'string') bad('mfa-token-sign: --token <file> is required');
      if (!strategy && o.token !== undefined) bad('--token goes with mfa-token-sign');
      const current = ctx.sessionFor(o.clusterId);
      if (current) bad(`already logged in as ${current.username}; log out first`);
      const pw = await password(o.password, false);
      const conn = await ctx.connection(o.clusterId);
      const tokenFile = o.token as string | undefined;
      const session = await loginTo(conn, o.username as string, pw, {
        role: o.role as 'admin' | 'crypto-user',
        ...(tokenFile
          ? {
              mfa: async (tokens: Uint8Array[]) => {
                write(tokenFile, JSON.stringify({ version: '2.0', tokens: tokens.map((t) => ({ unsigned: b64(t), signed: '' })) }, null, 2) + '\n');
                const answer = (await ctx.io.ask('Enter signed token file path (press enter if same as the unsigned token file):')).trim() || tokenFile;
                const file = readJson(answer, 'signed token file');
                const entries = Array.isArray(file.tokens) ? (file.tokens as { unsigned?: string; signed?: string }[]) : [];
                return tokens.map((t) => {
                  const entry = entries.find((e) => e.unsigned === b64(t));
                  if (!entry?.signed) bad(`signed token file: no signature for token ${b64(t)}; sign every unsigned token`);
                  return unb64(entry!.signed!, 'signed');
                });
              },
            }
          : {}),
      });
      ctx.setSession(o.clusterId, session);
      return { username: session.username, role: session.role };
    }));
  leaf(root.command('logout').description('log out of every HSM')).action(run(async (o) => {
    const current = ctx.sessionFor(o.clusterId);
    if (!current) bad('not logged in');
    await current!.logout();
    ctx.setSession(o.clusterId, null);
    return 'Logout successful';
  }));

  // user -------------------------------------------------------------------------------------------
}
