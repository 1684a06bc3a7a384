/**
 * CloudHSM CLI's `user list | create | delete | change-password | change-mfa token-sign | change-quorum token-sign register`.
 *
 * @module
 */
import type { Command } from 'commander';
import { withArticle, type Results } from '../../hsm-core/client.js';
import { ROLE_NAMES, bad, readJson, readRegistration, readText, registrationFile, unb64, write, type Kit } from './shared.js';

export function addUserCommands(root: Command, kit: Kit): void {
  const { ctx, leaf, run, password, approvalOf, roleOption } = kit;
  const user = root.command('user').description('HSM users');
  leaf(user.command('list').description('the users of the cluster')).action(run(async (o) => {
    const users = await (await ctx.connection(o.clusterId)).listUsers();
    const strategy = (on: boolean) => (on ? [{ strategy: 'token-sign', status: 'enabled' }] : []);
    return {
      users: users.map((u) => ({
        username: u.username,
        role: ROLE_NAMES[u.role] ?? u.role,
        locked: String(u.locked),
        mfa: strategy(u.mfa),
        quorum: strategy(u.quorum),
        'cluster-coverage': u.clusterCoverage,
      })),
    };
  }));
  leaf(user.command('create').description('create a user (admin)'))
    .requiredOption('--username <name>', 'up to 31 letters, digits and _')
    .addOption(roleOption())
    .option('--password <password>', 'prompted for when absent')
    .option('--approval <file>', 'a quorum token signed by approvers (user service)')
    .action(run(async (o, session) => {
      const s = await session();
      const pw = await password(o.password, true);
      const r = await s.send({ op: 'createUser', username: o.username as string, password: pw, role: o.role as 'admin' | 'crypto-user', ...approvalOf(o.approval) });
      return { username: r.username, role: r.role };
    }));
  leaf(user.command('delete').description('delete a user (admin)'))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .option('--approval <file>', 'a quorum token signed by approvers (user service)')
    .action(run(async (o, session) => {
      const s = await session();
      const users = await (await ctx.connection(o.clusterId)).listUsers();
      const target = users.find((u) => u.username === String(o.username).toLowerCase());
      if (target && target.role !== o.role) bad(`${target.username} is ${withArticle(target.role)}, not ${withArticle(String(o.role))}`);
      const r = await s.send({ op: 'deleteUser', username: o.username as string, ...approvalOf(o.approval) });
      return { username: r.username, role: o.role };
    }));
  leaf(user.command('change-password').description("change a user's password (admin: anyone's; crypto user: own)"))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .option('--password <password>', 'prompted for when absent')
    .option('--approval <file>', 'a quorum token signed by approvers (user service)')
    .option('--deregister-mfa', "also remove the user's MFA key (and so its quorum registration)")
    .option('--deregister-quorum', "also remove the user's quorum registration")
    .action(run(async (o, session) => {
      const s = await session();
      const pw = await password(o.password, true);
      const r = await s.send({
        op: 'changePassword',
        username: o.username as string,
        password: pw,
        ...approvalOf(o.approval),
        ...(o.deregisterMfa ? { deregisterMfa: true } : {}),
        ...(o.deregisterQuorum ? { deregisterQuorum: true } : {}),
      });
      return { username: r.username, role: r.role };
    }));
  leaf(user.command('change-mfa').description("change a user's MFA").command('token-sign').description('register or deregister a token-sign key'))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .option('--token <file>', 'where the unsigned registration token is written')
    .option('--deregister', 'remove MFA (and the quorum registration that uses the same key)')
    .option('--change-password <password>', "also set the user's password")
    .option('--change-quorum', 'register the key for quorum too')
    .option('--approval <file>', 'a quorum token signed by approvers (user service; for --deregister)')
    .option('--signed-token <file>', 'the signed token file (instead of the prompt)')
    .option('--public-key <file>', 'the PEM public key (instead of the prompt)')
    .action(run(async (o, session) => {
      const s = await session();
      if (Boolean(o.token) === Boolean(o.deregister)) bad('give exactly one of --token <file> and --deregister');
      const base = { op: 'changeMfa' as const, username: o.username as string, role: o.role as 'admin' | 'crypto-user', ...approvalOf(o.approval) };
      let r: Results['changeMfa'];
      if (o.deregister) {
        r = await s.send({ ...base, deregister: true });
      } else {
        const token = o.token as string;
        const { approvalData } = await s.send({ op: 'generateQuorumToken', service: 'registration' });
        write(token, registrationFile(approvalData));
        const signedPath = typeof o.signedToken === 'string' ? o.signedToken : (await ctx.io.ask('Enter signed token file path (press enter if same as the unsigned token file):')).trim() || token;
        const keyPath = typeof o.publicKey === 'string' ? o.publicKey : (await ctx.io.ask('Enter public key PEM file path:')).trim();
        const registration = readRegistration(signedPath, approvalData);
        r = await s.send({ ...base, publicKey: new TextEncoder().encode(readText(keyPath, 'public key')), registration, ...(o.changeQuorum ? { changeQuorum: true } : {}) });
      }
      if (typeof o.changePassword === 'string') await s.send({ op: 'changePassword', username: o.username as string, password: o.changePassword });
      return { username: r.username, role: r.role };
    }));
  leaf(user.command('change-quorum').description("change a user's quorum strategy").command('token-sign').description('token-sign quorum').command('register').description('register your quorum public key'))
    .requiredOption('--public-key <file>', 'the PEM public key (RSA 2048)')
    .requiredOption('--signed-token <file>', 'the registration token, signed with the private key')
    .action(run(async (o, session) => {
      const s = await session();
      const file = readJson(o.signedToken as string, '--signed-token');
      const tokens = Array.isArray(file.tokens) ? (file.tokens as { approval_data?: string }[]) : [];
      if (typeof tokens[0]?.approval_data !== 'string') bad(`--signed-token: ${String(o.signedToken)} is not a registration token file (quorum token-sign generate --service registration)`);
      const approvalData = unb64(tokens[0]!.approval_data!, '--signed-token approval_data');
      const r = await s.send({
        op: 'registerQuorumKey',
        publicKey: new TextEncoder().encode(readText(o.publicKey as string, '--public-key')),
        registration: readRegistration(o.signedToken as string, approvalData),
      });
      return { username: r.username, role: r.role };
    }));

  // quorum -----------------------------------------------------------------------------------------
}
