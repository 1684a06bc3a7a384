/**
 * The protocol's fixed lists and names, apart from its schemas: what a client shows or checks
 * (hashes, curves, quorum services) without loading the schema library. protocol.ts and
 * attributes.ts build their schemas from these and export them again.
 *
 * @module
 */

/** CloudHSM's quorum services: what a quorum token approves. */
export const QUORUM_SERVICES = ['user', 'quorum', 'cluster', 'registration', 'key-management', 'key-usage'] as const;
/**
 * The services whose quorum value is a member setting (key services take theirs from the key).
 * `cluster` (hsm2m) approves the mutual-TLS trust anchor and enforcement changes.
 */
export const ADMIN_SERVICES = ['user', 'quorum', 'cluster'] as const;

export const HASHES = ['sha1', 'sha224', 'sha256', 'sha384', 'sha512'] as const;

/** Curves for `ec` keys, by CloudHSM's names. `prime256v1` is accepted as an alias of `secp256r1`. */
export const EC_CURVES = ['secp224r1', 'secp256r1', 'secp384r1', 'secp521r1', 'secp256k1'] as const;

/** The temporary admin of a never-activated member. */
export const PRECO_USERNAME = 'admin';
