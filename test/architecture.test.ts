/**
 * The layers of src/ point one way: cli → (relay, keystore) → app → subtle → cluster-client →
 * hsm-core. Every import between folders must be one of the edges listed here, and no file may
 * reach itself through its imports (type imports count: they couple files as much as values do).
 * What a page runs (src/browser/index.ts and what it imports at run time) holds no Node built-in
 * and reaches hsm-core only through its browser-safe face.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/**
 * Every allowed edge between folders ('.' is the package's entry points, src/*.ts). An entry
 * `folder/file.ts` allows that one file only.
 */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  'hsm-core': [],
  // Making and reading certificates: a helper of ours that imports nothing of ours.
  certificates: [],
  'cluster-client': ['hsm-core', 'certificates'],
  subtle: ['cluster-client', 'hsm-core'],
  app: ['subtle', 'cluster-client', 'hsm-core'],
  keystore: ['app', 'hsm-core', 'certificates'],
  relay: ['keystore', 'app', 'subtle', 'cluster-client', 'hsm-core', 'certificates'],
  // The page's client speaks the relay's wire protocol (a module with no imports of its own).
  browser: ['relay/protocol.ts', 'app', 'subtle', 'cluster-client', 'hsm-core'],
  // The PKCS #11 door: p11-kit's protocol over a cluster session.
  pkcs11: ['cluster-client', 'hsm-core'],
  // The CloudHSM V2 API: clusters of local members, their backups and certificates.
  'control-plane': ['app', 'cluster-client', 'hsm-core', 'certificates'],
  cli: ['relay', 'keystore', 'pkcs11', 'control-plane', 'app', 'cluster-client', 'hsm-core', 'certificates'],
  '.': ['app', 'subtle', 'cluster-client', 'hsm-core'],
};

/** A module's imports of this project's files: `[target, typeOnly]`, targets relative to src/. */
export type Graph = Map<string, { target: string; typeOnly: boolean; dynamic?: boolean }[]>;

const IMPORT = /(?:^|;|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** src/'s import graph; bare and `node:` specifiers are listed separately per file. */
export function readGraph(root = SRC): { graph: Graph; external: Map<string, { spec: string; typeOnly: boolean; dynamic: boolean }[]> } {
  const graph: Graph = new Map();
  const external = new Map<string, { spec: string; typeOnly: boolean; dynamic: boolean }[]>();
  const files = sourceFiles(root).map((f) => relative(root, f));
  const known = new Set(files);
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8').replace(/\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm, '');
    const edges: { target: string; typeOnly: boolean; dynamic: boolean }[] = [];
    const outside: { spec: string; typeOnly: boolean; dynamic: boolean }[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[3] ?? m[4]!;
      const typeOnly = m[2] !== undefined || /^\s*(?:import|export)\s+type\s*\{/.test(m[0].replace(/^[;\n]/, ''));
      const dynamic = m[4] !== undefined;
      if (!spec.startsWith('.')) {
        outside.push({ spec, typeOnly, dynamic });
        continue;
      }
      const target = normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts');
      if (!known.has(target)) continue; // outside src/ (samples), checked by the compiler
      edges.push({ target, typeOnly, dynamic });
    }
    graph.set(file, edges);
    external.set(file, outside);
  }
  return { graph, external };
}

const folderOf = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '.');

/** Imports between folders that ALLOWED does not list, as `from -> to`. */
export function wrongEdges(graph: Graph, allowed: Readonly<Record<string, readonly string[]>> = ALLOWED): string[] {
  const wrong: string[] = [];
  for (const [file, edges] of graph) {
    const from = folderOf(file);
    for (const { target } of edges) {
      const to = folderOf(target);
      if (to === from) continue;
      const ok = (allowed[from] ?? []).some((a) => a === to || a === target);
      if (!ok) wrong.push(`${file} -> ${target}`);
    }
  }
  return wrong;
}

/** Every set of files that import one another in a circle (strongly connected components of two or more, or a file importing itself). */
export function cycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const { target: w } of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).some((e) => e.target === v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** The files `entry` loads at run time (type-only imports are erased), itself included. */
export function runtimeClosure(graph: Graph, entry: string, options: { atStart?: boolean } = {}): Set<string> {
  const seen = new Set<string>([entry]);
  const todo = [entry];
  while (todo.length) {
    for (const { target, typeOnly, dynamic } of graph.get(todo.pop()!) ?? []) {
      // atStart: what loading `entry` loads, without what it imports later (import()).
      if (typeOnly || seen.has(target) || (options.atStart && dynamic)) continue;
      seen.add(target);
      todo.push(target);
    }
  }
  return seen;
}

describe('architecture: layers that point one way', () => {
  const { graph, external } = readGraph();

  it('reads the whole of src/ (the check is not vacuous)', () => {
    expect(graph.size).to.be.greaterThan(80);
    expect(graph.get('app/session.ts')!.map((e) => e.target)).to.include.members(['cluster-client/session.ts', 'subtle/crypto.ts']);
    expect(graph.get('subtle/crypto.ts')!.find((e) => e.target === 'cluster-client/session.ts')).to.deep.equal({ target: 'cluster-client/session.ts', typeOnly: true, dynamic: false });
  });

  it('has no import between folders other than the listed ones', () => {
    expect(wrongEdges(graph)).to.deep.equal([]);
  });

  it('has no import cycle, type imports included', () => {
    expect(cycles(graph)).to.deep.equal([]);
  });

  it('keeps what a page runs free of Node built-ins, and out of hsm-core but for its face', () => {
    const page = runtimeClosure(graph, 'browser/index.ts');
    expect(page.has('subtle/subtle.ts'), 'the WebCrypto door is in the page bundle').to.equal(true);
    const builtins = [...page].flatMap((f) => external.get(f)!.filter((x) => !x.typeOnly && x.spec.startsWith('node:')).map((x) => `${f}: ${x.spec}`));
    expect(builtins).to.deep.equal([]);
    expect([...page].filter((f) => f.startsWith('hsm-core/')).sort()).to.deep.equal(['hsm-core/errors.ts', 'hsm-core/face.ts', 'hsm-core/usages.ts']);
  });

  it('hsm-core imports only node built-ins, its own files and zod, @msgpack/msgpack (frames), @peculiar/x509 and reflect-metadata (cluster CSRs), lmdb (durable members), @noble/curves and @noble/hashes (signing digests)', () => {
    const libraries = new Set(['zod', '@msgpack/msgpack', '@peculiar/x509', 'reflect-metadata', 'lmdb']);
    // @noble's subpath modules: ECDSA over a caller's digest and Ed25519ph (mechanisms/prehashed.ts).
    const allowed = (spec: string) => libraries.has(spec) || /^@noble\/(curves|hashes)\/[a-z0-9/]+\.js$/.test(spec);
    const offences = [...external].filter(([f]) => f.startsWith('hsm-core/')).flatMap(([f, specs]) => specs.filter((x) => !x.spec.startsWith('node:') && !allowed(x.spec)).map((x) => `${f} imports ${x.spec}`));
    expect(offences).to.deep.equal([]);
  });

  it('nothing outside hsm-core reaches past its index, its browser-safe face or its client face', () => {
    const faces = new Set(['hsm-core/index.ts', 'hsm-core/face.ts', 'hsm-core/client.ts']);
    const offences = [...graph].filter(([f]) => !f.startsWith('hsm-core/')).flatMap(([f, edges]) =>
      edges.filter((e) => e.target.startsWith('hsm-core/') && !faces.has(e.target)).map((e) => `${f} imports ${e.target}`),
    );
    expect(offences).to.deep.equal([]);
  });

  it('a CLI command starts without a member, a store or the protocol\'s schemas (they load only where a command runs a member)', () => {
    for (const entry of ['cli/main.ts', 'hsm-core/client.ts', 'cluster-client/connect.ts']) {
      const loaded = runtimeClosure(graph, entry, { atStart: true });
      expect([...loaded].filter((f) => ['hsm-core/member.ts', 'hsm-core/store.ts', 'hsm-core/protocol.ts', 'hsm-core/attributes.ts'].includes(f)), entry).to.deep.equal([]);
      const libraries = [...loaded].flatMap((f) => external.get(f)!.filter((x) => !x.typeOnly && !x.dynamic && !x.spec.startsWith('node:')).map((x) => x.spec));
      expect(libraries, entry).to.not.include.members(['zod', 'lmdb', '@peculiar/x509']);
    }
  });

  it('the package exports point at built files that exist after npm run build', () => {
    const root = join(SRC, '..');
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, { default: string } | string>; bin: Record<string, string> };
    for (const [entry, target] of Object.entries(pkg.exports)) {
      const path = typeof target === 'string' ? target : target.default;
      expect(() => statSync(join(root, path)), `${entry} → ${path}`).to.not.throw();
    }
    expect(() => statSync(join(root, pkg.bin.strongroom!))).to.not.throw();
  });

  it('imports tsyringe nowhere but the composition root', () => {
    const users = [...external].filter(([, specs]) => specs.some((s) => s.spec === 'tsyringe')).map(([f]) => f);
    expect(users.every((f) => f === 'app/container.ts')).to.equal(true, `tsyringe imported by ${users.join(', ')}`);
  });

  describe('the checks themselves', () => {
    const edge = (target: string, typeOnly = false) => ({ target, typeOnly });
    it('report an upward import, naming the file and its target', () => {
      const g: Graph = new Map([
        ['cluster-client/session.ts', [edge('subtle/crypto.ts')]],
        ['subtle/crypto.ts', []],
      ]);
      expect(wrongEdges(g)).to.deep.equal(['cluster-client/session.ts -> subtle/crypto.ts']);
    });
    it('allow a file-level edge for that file only', () => {
      const g: Graph = new Map([
        ['browser/index.ts', [edge('relay/protocol.ts'), edge('relay/server.ts')]],
        ['relay/protocol.ts', []],
        ['relay/server.ts', []],
      ]);
      expect(wrongEdges(g)).to.deep.equal(['browser/index.ts -> relay/server.ts']);
    });
    it('report a cycle made of type imports', () => {
      const g: Graph = new Map([
        ['hsm-core/a.ts', [edge('hsm-core/b.ts', true)]],
        ['hsm-core/b.ts', [edge('hsm-core/c.ts')]],
        ['hsm-core/c.ts', [edge('hsm-core/a.ts', true)]],
        ['hsm-core/d.ts', [edge('hsm-core/a.ts')]],
      ]);
      expect(cycles(g)).to.deep.equal([['hsm-core/a.ts', 'hsm-core/b.ts', 'hsm-core/c.ts']]);
    });
    it('leave type-only imports out of what a page runs', () => {
      const g: Graph = new Map([
        ['browser/index.ts', [edge('subtle/x.ts'), edge('hsm-core/index.ts', true)]],
        ['subtle/x.ts', []],
        ['hsm-core/index.ts', []],
      ]);
      expect([...runtimeClosure(g, 'browser/index.ts')].sort()).to.deep.equal(['browser/index.ts', 'subtle/x.ts']);
    });
  });
});
