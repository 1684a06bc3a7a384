/**
 * p11-kit's RPC calls (protocol version 0, PKCS #11 2.40): each call's number with the signature
 * of its request and of its response (PKCS11-RPC.md §1.7). A message whose signature is not the
 * table's is refused.
 *
 * @module
 */

export const CALLS = {
  C_Initialize: [1, 'ayyay', ''],
  C_Finalize: [2, '', ''],
  C_GetInfo: [3, '', 'vsusv'],
  C_GetSlotList: [4, 'yfu', 'au'],
  C_GetSlotInfo: [5, 'u', 'ssuvv'],
  C_GetTokenInfo: [6, 'u', 'ssssuuuuuuuuuuuvvs'],
  C_GetMechanismList: [7, 'ufu', 'au'],
  C_GetMechanismInfo: [8, 'uu', 'uuu'],
  C_InitToken: [9, 'uayz', ''],
  C_OpenSession: [10, 'uu', 'u'],
  C_CloseSession: [11, 'u', ''],
  C_CloseAllSessions: [12, 'u', ''],
  C_GetSessionInfo: [13, 'u', 'uuuu'],
  C_InitPIN: [14, 'uay', ''],
  C_SetPIN: [15, 'uayay', ''],
  C_GetOperationState: [16, 'ufy', 'ay'],
  C_SetOperationState: [17, 'uayuu', ''],
  C_Login: [18, 'uuay', ''],
  C_Logout: [19, 'u', ''],
  C_CreateObject: [20, 'uaA', 'u'],
  C_CopyObject: [21, 'uuaA', 'u'],
  C_DestroyObject: [22, 'uu', ''],
  C_GetObjectSize: [23, 'uu', 'u'],
  C_GetAttributeValue: [24, 'uufA', 'aAu'],
  C_SetAttributeValue: [25, 'uuaA', ''],
  C_FindObjectsInit: [26, 'uaA', ''],
  C_FindObjects: [27, 'ufu', 'au'],
  C_FindObjectsFinal: [28, 'u', ''],
  C_EncryptInit: [29, 'uMu', ''],
  C_Encrypt: [30, 'uayfy', 'ay'],
  C_EncryptUpdate: [31, 'uayfy', 'ay'],
  C_EncryptFinal: [32, 'ufy', 'ay'],
  C_DecryptInit: [33, 'uMu', ''],
  C_Decrypt: [34, 'uayfy', 'ay'],
  C_DecryptUpdate: [35, 'uayfy', 'ay'],
  C_DecryptFinal: [36, 'ufy', 'ay'],
  C_DigestInit: [37, 'uM', ''],
  C_Digest: [38, 'uayfy', 'ay'],
  C_DigestUpdate: [39, 'uay', ''],
  C_DigestKey: [40, 'uu', ''],
  C_DigestFinal: [41, 'ufy', 'ay'],
  C_SignInit: [42, 'uMu', ''],
  C_Sign: [43, 'uayfy', 'ay'],
  C_SignUpdate: [44, 'uay', ''],
  C_SignFinal: [45, 'ufy', 'ay'],
  C_SignRecoverInit: [46, 'uMu', ''],
  C_SignRecover: [47, 'uayfy', 'ay'],
  C_VerifyInit: [48, 'uMu', ''],
  C_Verify: [49, 'uayay', ''],
  C_VerifyUpdate: [50, 'uay', ''],
  C_VerifyFinal: [51, 'uay', ''],
  C_VerifyRecoverInit: [52, 'uMu', ''],
  C_VerifyRecover: [53, 'uayfy', 'ay'],
  C_DigestEncryptUpdate: [54, 'uayfy', 'ay'],
  C_DecryptDigestUpdate: [55, 'uayfy', 'ay'],
  C_SignEncryptUpdate: [56, 'uayfy', 'ay'],
  C_DecryptVerifyUpdate: [57, 'uayfy', 'ay'],
  C_GenerateKey: [58, 'uMaA', 'u'],
  C_GenerateKeyPair: [59, 'uMaAaA', 'uu'],
  C_WrapKey: [60, 'uMuufy', 'ay'],
  C_UnwrapKey: [61, 'uMuayaA', 'u'],
  C_DeriveKey: [62, 'uMuaA', 'u'],
  C_SeedRandom: [63, 'uay', ''],
  C_GenerateRandom: [64, 'ufy', 'ay'],
  C_WaitForSlotEvent: [65, 'u', 'u'],
} as const satisfies Record<string, readonly [number, string, string]>;

export type CallName = keyof typeof CALLS;

/** The answer to a refused call: call 0 with a CK_RV. */
export const ERROR_CALL = 0;

const BY_ID = new Map<number, { name: CallName; request: string; response: string }>(
  (Object.entries(CALLS) as [CallName, readonly [number, string, string]][]).map(([name, [id, request, response]]) => [id, { name, request, response }]),
);

export function callById(id: number): { name: CallName; request: string; response: string } | undefined {
  return BY_ID.get(id);
}
