/**
 * The project's documentation as tests read it: README.md and every page of docs/, so that each
 * example is executed wherever it lives.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** README.md and docs/*.md, each with its path. */
export function documentation(): { file: string; text: string }[] {
  const pages = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => join('docs', f));
  return ['README.md', ...pages].map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }));
}

/** The code block right after `<!-- marker -->`, in whichever page holds it (exactly one must). */
export function markedBlock(marker: string, language: string): string {
  const pattern = new RegExp(`<!-- ${marker} -->\\n\`\`\`${language}\\n([\\s\\S]*?)\`\`\``);
  const found = documentation().flatMap(({ file, text }) => {
    const m = pattern.exec(text);
    return m ? [{ file, code: m[1]! }] : [];
  });
  if (found.length !== 1) throw new Error(`<!-- ${marker} -->: expected in exactly one page, found in ${found.map((f) => f.file).join(', ') || 'none'}`);
  return found[0]!.code;
}
