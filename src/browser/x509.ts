/**
 * `@peculiar/x509` for pages (dist/browser/x509.js), with the Reflect metadata it needs: the demo
 * makes a certificate request in the page, signed by an HSM key through the relay.
 *
 * @module
 */
import 'reflect-metadata';
export * from '@peculiar/x509';
