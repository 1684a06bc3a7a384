/**
 * CloudHSM CLI's commands ([CloudHSM CLI reference](https://docs.aws.amazon.com/cloudhsm/latest/userguide/cloudhsm_cli-reference.html)),
 * the same in single-command and interactive mode, one file per family: `configure` and
 * `cluster activate | hsm-info` (cluster.ts), `login [mfa-token-sign]` and `logout` (login.ts),
 * `user …`, `quorum token-sign …`, `key …`, `key replicate` and `user replicate` (replicate.ts),
 * `crypto sign | verify`, `audit show | verify`.
 *
 * Every command prints CloudHSM's shape on stdout, `{"error_code":0,"data":…}`, or
 * `{"error_code":1,"data":"<what was wrong>"}` with a non-zero exit status in single-command mode.
 * Defaults are CloudHSM CLI's: keys are token keys unless `--session`; AES and generic secrets
 * get sign and verify only; key pairs get no usages unless `--attributes` say so.
 *
 * @module
 */
import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { addAuditCommands } from './audit.js';
import { addClusterCommands } from './cluster.js';
import { addCryptoCommands } from './crypto.js';
import { addKeyCommands } from './key.js';
import { addLoginCommands } from './login.js';
import { addQuorumCommands } from './quorum.js';
import { addReplicateCommands } from './replicate.js';
import { commandKit } from './shared.js';
import { addUserCommands } from './user.js';

export { parseAttributes, parseFilter, readApproval } from './shared.js';

/**
 * Adds the CloudHSM CLI commands to `root` (reusing its `cluster` command if there is one).
 * `ctx` holds the connection and session.
 */
export function addCloudHsmCommands(root: Command, ctx: CliContext): void {
  const kit = commandKit(ctx);
  addClusterCommands(root, kit);
  addLoginCommands(root, kit);
  addUserCommands(root, kit);
  addQuorumCommands(root, kit);
  addKeyCommands(root, kit);
  addReplicateCommands(root, kit);
  addCryptoCommands(root, kit);
  addAuditCommands(root, kit);
}
