/**
 * The few Node built-ins the door's conformance tests use to find and read their vector files,
 * for the browser bundle: the page loads the files first (test/relay/conformance.test.ts) into
 * `globalThis.__STRONGROOM_FILES__` (path → text), and these read from there.
 *
 * @module
 */
const files = (): Record<string, string> => (globalThis as unknown as { __STRONGROOM_FILES__: Record<string, string> }).__STRONGROOM_FILES__ ?? {};

function normalise(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}

export const join = (...parts: string[]): string => normalise(parts.join('/'));
export const dirname = (path: string): string => normalise(path).replace(/\/[^/]*$/, '') || '/';
export const fileURLToPath = (url: string | URL): string => new URL(String(url)).pathname;

export function readdirSync(dir: string): string[] {
  const prefix = `${normalise(dir)}/`;
  return Object.keys(files()).filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length));
}

export function readFileSync(path: string): string {
  const text = files()[normalise(path)];
  if (text === undefined) throw new Error(`ENOENT: ${path} was not loaded for the browser`);
  return text;
}
