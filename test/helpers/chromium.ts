/**
 * Debian's Chromium for the browser tests (headless, driven by playwright-core): where it is, how
 * it is started, and what a test does when it is missing.
 */
import { existsSync } from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Chromium, or a skip (a failure when STRONGROOM_REQUIRE_BROWSER is set). */
export function requireChromium(ctx: Mocha.Context): void {
  if (existsSync(CHROMIUM)) return;
  if (process.env.STRONGROOM_REQUIRE_BROWSER) throw new Error(`Chromium is missing at ${CHROMIUM} (apt-get install chromium), and STRONGROOM_REQUIRE_BROWSER is set`);
  ctx.skip();
}
