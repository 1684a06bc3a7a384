/**
 * Imports point one way (STYLE.md): hsm-core imports nothing of ours and only node built-ins and
 * its few libraries; everything else reaches hsm-core only through its index.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"`;]*?from\s+['"]([^'"]+)['"]/g), ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
}

describe('architecture: import rules', () => {
  it('hsm-core imports only node built-ins, its own files and zod, @msgpack/msgpack (frames), @peculiar/x509 (cluster CSRs), lmdb (durable members)', () => {
    const offences: string[] = [];
    for (const file of files(join(SRC, 'hsm-core'))) {
      for (const spec of imports(file)) {
        const ok = spec.startsWith('node:') || spec === 'zod' || ['@msgpack/msgpack', '@peculiar/x509', 'reflect-metadata', 'lmdb'].includes(spec) || (spec.startsWith('.') && resolve(dirname(file), spec).startsWith(join(SRC, 'hsm-core')));
        if (!ok) offences.push(`${relative(SRC, file)} imports ${spec}`);
      }
    }
    expect(offences).to.deep.equal([]);
  });

  it('nothing outside hsm-core reaches past its index', () => {
    const offences: string[] = [];
    for (const file of files(SRC).filter((f) => !f.startsWith(join(SRC, 'hsm-core')))) {
      for (const spec of imports(file)) {
        if (!spec.startsWith('.')) continue;
        const target = relative(SRC, resolve(dirname(file), spec));
        if (target.startsWith('hsm-core') && target !== join('hsm-core', 'index.js')) offences.push(`${relative(SRC, file)} imports ${spec}`);
      }
    }
    expect(offences).to.deep.equal([]);
  });

  it('the package exports point at built files that exist after npm run build', () => {
    const pkg = JSON.parse(readFileSync(join(SRC, '..', 'package.json'), 'utf8')) as { exports: Record<string, { default: string } | string>; bin: Record<string, string> };
    for (const [entry, target] of Object.entries(pkg.exports)) {
      const path = typeof target === 'string' ? target : target.default;
      expect(() => statSync(join(SRC, '..', path)), `${entry} → ${path}`).to.not.throw();
    }
    expect(() => statSync(join(SRC, '..', pkg.bin.strongroom!))).to.not.throw();
  });
});
