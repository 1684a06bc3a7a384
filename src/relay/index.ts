/**
 * `strongroom/relay`: the WebSocket relay that lets browser pages use the HSM (server.ts), and
 * its wire protocol (protocol.ts), which the browser client (`strongroom/browser`) shares.
 *
 * @module
 */
export { startRelay, RELAY_OPERATIONS, type Relay, type RelayCluster, type RelayOptions } from './server.js';
export { demoSite, openDemoCa, packageRoot } from './demo.js';
export { RELAY_PROTOCOL_VERSIONS, CLOSE, type RelayCapabilities, type RelayMessage, type RelayAnswer } from './protocol.js';
