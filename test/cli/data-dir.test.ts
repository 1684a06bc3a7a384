/**
 * The cluster folder the CLI uses when none is named: found from any folder of a project.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { defaultDataDir } from '../../src/cli/data-dir.js';

describe('cli: the default cluster folder', () => {
  // Made when the tests run (not when mocha loads the file, as a dry run does).
  let root: string;
  before(() => (root = mkdtempSync(join(tmpdir(), 'strongroom-data-dir-'))));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('is the nearest .strongroom at or above the current folder', () => {
    mkdirSync(join(root, 'project', '.strongroom'), { recursive: true });
    mkdirSync(join(root, 'project', 'src', 'deep'), { recursive: true });
    expect(defaultDataDir({}, join(root, 'project'))).to.equal('.strongroom');
    expect(defaultDataDir({}, join(root, 'project', 'src', 'deep'))).to.equal(join('..', '..', '.strongroom'));
  });

  it('is STRONGROOM_DATA_DIR when set, and .strongroom here when there is none to find', () => {
    expect(defaultDataDir({ STRONGROOM_DATA_DIR: '/srv/hsm' }, join(root, 'project'))).to.equal('/srv/hsm');
    mkdirSync(join(root, 'elsewhere'), { recursive: true });
    expect(defaultDataDir({}, join(root, 'elsewhere'))).to.equal('.strongroom');
    // A file of that name is not a cluster folder.
    writeFileSync(join(root, 'elsewhere', '.strongroom'), '');
    mkdirSync(join(root, 'elsewhere', 'sub'));
    expect(defaultDataDir({}, join(root, 'elsewhere', 'sub'))).to.equal('.strongroom');
  });
});
