/**
 * CloudHSM CLI's `key replicate` and `user replicate`: a key or a user copied from one configured
 * cluster to another cluster of the same lineage (one made from a backup of the other, or both
 * from one backup), as a masked object that only members sharing the masking key can open. The
 * copy keeps its key reference, owner, shares, attributes and generation; clusters of different
 * lineage refuse it. Logins: interactive mode logs in to each cluster (`login --cluster-id …`);
 * single-command mode uses CLOUDHSM_PIN/ROLE for the source and DESTINATION_CLOUDHSM_PIN/ROLE for
 * the destination, as AWS's tool does.
 *
 * @module
 */
import type { Command } from 'commander';
import { HsmError, type Request } from '../../hsm-core/client.js';
import type { ClusterSession as HsmSession } from '../../cluster-client/index.js';
import { ROLE_NAMES, bad, keyData, message, oneKey, type Flags, type Kit } from './shared.js';

export function addReplicateCommands(root: Command, kit: Kit): void {
  const { ctx, leaf, run, roleOption } = kit;
  const group = (name: string) => root.commands.find((c) => c.name() === name)!;

  /** Both clusters' logins, named by --source-cluster-id and --destination-cluster-id. */
  const sessions = async (o: Flags): Promise<{ source: HsmSession; destination: HsmSession; to: string; from: string }> => {
    const from = o.sourceClusterId as string;
    const to = o.destinationClusterId as string;
    if (from === to) bad(`--destination-cluster-id: ${to} is the source cluster; replicate to another cluster`);
    const source = await ctx.requireSession(from);
    const destination = await ctx.requireSession(to, 'DESTINATION_');
    return { source, destination, from, to };
  };

  /** Brings a masked object into every member of the destination that is up. */
  const insertEverywhere = async (destination: HsmSession, to: string, from: string, request: Request & { op: 'insertMaskedObject' | 'insertMaskedUser' }) => {
    const members = (await ctx.connection(to)).status().filter((m) => m.state === 'up');
    if (members.length === 0) throw new HsmError('MEMBER_UNAVAILABLE', `--destination-cluster-id: no member of ${to} is up`);
    for (const m of members) {
      try {
        await destination.sendToMember(m.index, request as never);
      } catch (e) {
        if (e instanceof HsmError && e.code === 'MASKED_OBJECT_INVALID' && /not masked by a member of this cluster/.test(e.message)) {
          throw new HsmError('MASKED_OBJECT_INVALID', `--destination-cluster-id: ${to} is not a clone of ${from} (made from a backup of it, or both from one backup); keys and users replicate only between clones`);
        }
        throw e;
      }
    }
  };

  const lineage = (leafCommand: Command) =>
    leafCommand.requiredOption('--source-cluster-id <id>', 'the configured cluster to copy from').requiredOption('--destination-cluster-id <id>', 'the configured clone to copy to');

  lineage(leaf(group('key').command('replicate').description('copy a key to a clone of its cluster (the owner, or an admin)')))
    .requiredOption('--filter <terms...>', 'the key, on the source cluster')
    .action(run(async (o) => {
      const { source, destination, from, to } = await sessions(o);
      const k = await oneKey(source, o.filter as string[], '--filter');
      if (source.role === 'crypto-user' && k.owner !== source.username) bad(`--filter: key ${k.keyReference} belongs to ${k.owner}; a crypto user replicates only keys they own`);
      if (k.sessionKey) bad(`--filter: key ${k.keyReference} is a session key; only token keys replicate`);
      const { maskedObject } = await source.send({ op: 'extractMaskedObject', handle: k.handle });
      await insertEverywhere(destination, to, from, { op: 'insertMaskedObject', maskedObject } as never);
      return message('Successfully replicated key', { key: await keyData(destination, k.handle) });
    }));

  lineage(leaf(group('user').command('replicate').description('copy a user to a clone of its cluster (admin)')))
    .requiredOption('--username <name>', 'the user')
    .addOption(roleOption())
    .action(run(async (o) => {
      const { source, destination, from, to } = await sessions(o);
      if (source.role !== 'admin') bad('user replicate: an admin replicates users');
      const users = await (await ctx.connection(from)).listUsers();
      const user = users.find((u) => u.username === String(o.username).toLowerCase());
      if (!user) throw new HsmError('USER_NOT_FOUND', `--username: no user ${String(o.username)} on ${from}`);
      if (user.role !== o.role) bad(`--role: ${user.username} is ${ROLE_NAMES[user.role] ?? user.role} on ${from}, not ${String(o.role)}`);
      const { maskedUser } = await source.send({ op: 'extractMaskedUser', username: user.username });
      await insertEverywhere(destination, to, from, { op: 'insertMaskedUser', maskedUser } as never);
      const there = (await (await ctx.connection(to)).listUsers()).find((u) => u.username === user.username)!;
      const strategy = (on: boolean) => (on ? [{ strategy: 'token-sign', status: 'enabled' }] : []);
      return message('Successfully replicated user', {
        user: { username: there.username, role: there.role, locked: String(there.locked), mfa: strategy(there.mfa), quorum: strategy(there.quorum), 'cluster-coverage': there.clusterCoverage },
      });
    }));
}
