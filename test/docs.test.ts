/**
 * The documentation a newcomer reads: a README that stays short and opens with what most users
 * come for, and links that lead somewhere in this repository.
 */
import { existsSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { documentation } from './helpers/docs.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** GitHub's anchor for a heading. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');

describe('documentation', () => {
  const pages = documentation();
  const anchors = new Map(pages.map(({ file, text }) => [file, new Set([...text.matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1]!)))]));

  it('README stays under 300 lines, with contents, and opens with crypto.subtle through session.crypto and strongroom/register', () => {
    const readme = pages.find((p) => p.file === 'README.md')!.text;
    expect(readme.split('\n').length).to.be.lessThan(300);
    expect(readme).to.match(/\*\*Contents:\*\*/);
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]!);
    expect(headings.slice(0, 4)).to.deep.equal(['Quick start', "Your app's crypto.subtle, in the HSM", 'Apps you cannot change: strongroom/register', 'The CLI: CloudHSM CLI commands']);
  });

  it('every relative link names a file of the repository, and every anchor a heading of it', () => {
    const broken: string[] = [];
    let links = 0;
    for (const { file, text } of pages) {
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        links++;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const resolved = path === '' ? file : normalize(join(dirname(file), path));
        if (!existsSync(join(ROOT, resolved))) broken.push(`${file}: ${target} (no ${resolved})`);
        else if (anchor !== undefined && !anchors.get(resolved)?.has(anchor)) broken.push(`${file}: ${target} (no heading #${anchor} in ${resolved})`);
      }
    }
    expect(links).to.be.greaterThan(20);
    expect(broken).to.deep.equal([]);
  });

  it('cites no file the repository does not hold', () => {
    const cited = pages.filter(({ text }) => /CLOUDHSM\.md|DESIGN\.md|STYLE\.md/.test(text)).map((p) => p.file);
    expect(cited).to.deep.equal([]);
  });
});
