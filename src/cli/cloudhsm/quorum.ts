/**
 * CloudHSM CLI's `quorum token-sign generate | list | list-quorum-values | list-timeouts | set-quorum-value | set-timeout | delete`.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { Option, type Command } from 'commander';
import { ADMIN_SERVICES, QUORUM_SERVICES, type AdminService, type QuorumService, type Results } from '../../hsm-core/client.js';
import { b64, bad, oneKey, registrationFile, write, type Kit } from './shared.js';

export function addQuorumCommands(root: Command, kit: Kit): void {
  const { ctx, leaf, run, approvalOf } = kit;
  const qts = root.command('quorum').description('quorum (M of N) authentication').command('token-sign').description('the token-sign strategy');
  leaf(qts.command('generate').description('generate a quorum token for a service'))
    .addOption(new Option('--service <service>', 'what the token is for').choices(QUORUM_SERVICES).makeOptionMandatory())
    .requiredOption('--token <file>', 'where to write the token file')
    .option('--filter <terms...>', 'for key-management and key-usage: the key')
    .action(run(async (o, session) => {
      const s = await session();
      const service = o.service as QuorumService;
      const keyService = service === 'key-management' || service === 'key-usage';
      if (keyService !== Array.isArray(o.filter)) bad(keyService ? `--filter: a ${service} token names its key` : '--filter: only key-management and key-usage tokens name a key');
      const handle = keyService ? (await oneKey(s, o.filter as string[], '--filter')).handle : undefined;
      const { approvalData } = await s.send({ op: 'generateQuorumToken', service, ...(handle !== undefined ? { handle } : {}) });
      write(o.token as string, service === 'registration' ? registrationFile(approvalData) : JSON.stringify({
        version: '2.0',
        approval_data: b64(approvalData),
        token: b64(createHash('sha256').update(approvalData).digest()),
        signatures: [],
      }, null, 2) + '\n');
      return { path: o.token };
    }));
  leaf(qts.command('list').description('the live quorum tokens')).action(run(async (o) => {
    const lists = await (await ctx.connection(o.clusterId)).askEveryMember('listQuorumTokens');
    const seen = new Map<string, { t: Results['listQuorumTokens']['tokens'][number]; n: number }>();
    for (const list of lists) {
      for (const t of list.tokens) {
        const key = `${t.username}/${t.service}/${t.handle ?? ''}`;
        const entry = seen.get(key);
        if (entry) entry.n += 1;
        else seen.set(key, { t, n: 1 });
      }
    }
    return {
      tokens: [...seen.values()].map(({ t, n }) => ({
        username: t.username,
        service: t.service,
        ...(t.handle !== null ? { 'key-reference': `0x${t.handle.toString(16).padStart(16, '0')}` } : {}),
        'approvals-required': { value: t.approvalsRequired },
        'number-of-approvals': { value: t.approvals },
        'token-timeout-seconds': { value: t.secondsLeft },
        'cluster-coverage': n === lists.length ? 'full' : 'inconsistent',
      })),
    };
  }));
  leaf(qts.command('list-quorum-values').description('the quorum value of each admin service')).action(run(async (o) => {
    const [settings] = await (await ctx.connection(o.clusterId)).askEveryMember('getQuorumSettings');
    return settings!.values;
  }));
  leaf(qts.command('list-timeouts').description('token timeouts, seconds')).action(run(async (o) => {
    const [settings] = await (await ctx.connection(o.clusterId)).askEveryMember('getQuorumSettings');
    return settings!.timeouts;
  }));
  leaf(qts.command('set-quorum-value').description('set the quorum value of a service (admin)'))
    .addOption(new Option('--service <service>', 'the admin service').choices(ADMIN_SERVICES).makeOptionMandatory())
    .requiredOption('--value <n>', 'approvals needed, 1 (off) to 8')
    .option('--approval <file>', 'a quorum token signed by approvers (quorum service, when its value is above 1)')
    .action(run(async (o, session) => {
      const value = Number(o.value);
      if (!Number.isInteger(value) || value < 1 || value > 8) bad(`--value: 1 to 8, got ${JSON.stringify(o.value)}`);
      await (await session()).send({ op: 'setQuorumValue', service: o.service as AdminService, value, ...approvalOf(o.approval) });
      return 'Set quorum value successful';
    }));
  leaf(qts.command('set-timeout').description('set token timeouts, seconds (admin)'))
    .option('--generated <s>', 'how long a generated token stays valid')
    .option('--approved <s>', 'how long an approved token stays valid')
    .action(run(async (o, session) => {
      const seconds = (flag: string, v: unknown) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 86_400) bad(`${flag}: 1 to 86400 seconds, got ${JSON.stringify(v)}`);
        return n;
      };
      if (o.generated === undefined && o.approved === undefined) bad('give --generated and/or --approved');
      await (await session()).send({
        op: 'setQuorumTimeouts',
        ...(o.generated !== undefined ? { generated: seconds('--generated', o.generated) } : {}),
        ...(o.approved !== undefined ? { approved: seconds('--approved', o.approved) } : {}),
      });
      return 'Set token timeout successful';
    }));
  leaf(qts.command('delete').description('delete quorum tokens: your own (--scope user) or every one on the HSMs (--scope all, admins)'))
    .addOption(new Option('--scope <scope>', 'user: the tokens of the user logged in; all: every token on the HSMs').choices(['user', 'all']).makeOptionMandatory())
    .action(run(async (o, session) => {
      const s = await session();
      if (o.scope === 'all' && s.role !== 'admin') bad('--scope all: only an admin deletes every token; use --scope user for your own');
      await s.send({ op: 'deleteQuorumTokens', ...(o.scope === 'user' ? { username: s.username } : {}) });
      return 'Deletion of quorum token(s) successful';
    }));
}
