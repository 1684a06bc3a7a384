/**
 * CloudHSM CLI's `audit show | verify`: the members' hash-chained audit logs.
 *
 * @module
 */
import type { Command } from 'commander';
import { HsmError, verifyAuditChain, type Results } from '../../hsm-core/client.js';
import { bad, type Flags, type Kit } from './shared.js';

export function addAuditCommands(root: Command, kit: Kit): void {
  const { ctx, leaf, run } = kit;
  // audit ------------------------------------------------------------------------------------------
  const audit = root.command('audit').description("the members' audit logs (admins)");
  /** The members to read: `--member`, or every one of the cluster. */
  const members = async (o: Flags) => {
    const count = (await (await ctx.connection(o.clusterId)).hsmInfo()).length;
    if (o.member === undefined) return Array.from({ length: count }, (_, i) => i);
    const n = Number(o.member);
    if (!Number.isInteger(n) || n < 0 || n >= count) bad(`--member: 0 to ${count - 1}, got ${JSON.stringify(o.member)}`);
    return [n];
  };
  leaf(audit.command('show').description('audit records of each member'))
    .option('--member <n>', 'only this member')
    .option('--from-sequence <n>', 'the first record', '0')
    .option('--max-items <n>', 'records per member', '100')
    .action(run(async (o, session) => {
      const s = await session();
      const from = Number(o.fromSequence);
      const max = Number(o.maxItems);
      if (!Number.isInteger(from) || from < 0) bad(`--from-sequence: 0 or more, got ${JSON.stringify(o.fromSequence)}`);
      if (!Number.isInteger(max) || max < 1 || max > 10_000) bad(`--max-items: 1 to 10000, got ${JSON.stringify(o.maxItems)}`);
      const out = [];
      for (const i of await members(o)) {
        const log = await s.sendToMember(i, { op: 'getAuditLog', fromSequence: from, maxItems: max });
        out.push({ member: i, head: log.head, records: log.records });
      }
      return { members: out };
    }));
  leaf(audit.command('verify').description("verify each member's hash chain from record 0"))
    .option('--member <n>', 'only this member')
    .action(run(async (o, session) => {
      const s = await session();
      const out = [];
      for (const i of await members(o)) {
        const records: Results['getAuditLog']['records'] = [];
        let head: Results['getAuditLog']['head'];
        for (;;) {
          const page = await s.sendToMember(i, { op: 'getAuditLog', fromSequence: records.length, maxItems: 10_000 });
          records.push(...page.records);
          head = page.head;
          if (page.records.length === 0 || records.length > head.sequence) break;
        }
        const verdict = verifyAuditChain(records);
        const headMatches = records.at(-1)?.hash === head.hash;
        out.push({ member: i, records: records.length, head, verified: verdict.ok && headMatches, ...(verdict.ok ? {} : { 'broken-at': verdict.sequence, reason: verdict.reason }) });
      }
      if (out.some((m) => !m.verified)) throw new HsmError('DATA_INVALID', `audit chain broken: ${out.filter((m) => !m.verified).map((m) => `member ${m.member} at record ${String(m['broken-at'] ?? 'head')}`).join(', ')}`);
      return { members: out };
    }));
}
