/**
 * The Evident client for Node.js: {@link Client} records audit events through a durable file
 * spool, {@link Reader} reads them back, and `verifyReceipt` checks a receipt offline (RFC 6962
 * inclusion proof and Ed25519 C2SP checkpoint signature).
 */

export { Client, MAX_EVENT_BYTES, type ClientMetrics, type ClientOptions } from "./client.js";
export { ApiError, Reader, type ReaderOptions } from "./reader.js";
export {
  ClosedError,
  InvalidInputError,
  SpoolFullError,
  SpoolLockedError,
  VerificationError,
  type VerificationFailure,
} from "./errors.js";
export {
  openCheckpoint,
  openNote,
  parseCheckpoint,
  parseTlogProof,
  verifyReceipt,
  Verifier,
  type Checkpoint,
  type Note,
  type NoteSignature,
  type TlogProof,
  type VerifiedReceipt,
  type VerifyReceiptInput,
} from "./note.js";
export {
  emptyRoot,
  hashFromBase64,
  hashToBase64,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
  type Hash,
} from "./tlog.js";
export { DEAD_LETTER_FILE } from "./spool.js";
export type * from "./types.js";
