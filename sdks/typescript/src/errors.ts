/**
 * The errors this package throws: operational ones (a bad option, a full spool, a spool held by
 * another process) kept apart from tamper evidence ({@link VerificationError}).
 */

/** A client option or an event is not usable; `field` names it. */
export class InvalidInputError extends Error {
  override name = "InvalidInputError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * The spool holds `maxSpoolBytes` of unacknowledged events and this one does not fit. Nothing of
 * the event was written: the caller still owns it (keep it, retry later, or fail the request).
 */
export class SpoolFullError extends Error {
  override name = "SpoolFullError";
  readonly code = "EVIDENT_SPOOL_FULL";
  constructor(
    readonly spoolBytes: number,
    readonly maxSpoolBytes: number,
    readonly eventBytes: number,
  ) {
    super(
      `the spool is full (${spoolBytes} of ${maxSpoolBytes} bytes unacknowledged, the event needs ` +
        `${eventBytes}); the event was NOT recorded: wait for delivery (flush) or raise maxSpoolBytes`,
    );
  }
}

/** Another live process (or another Client in this one) holds the spool directory. */
export class SpoolLockedError extends Error {
  override name = "SpoolLockedError";
  constructor(
    readonly spoolDir: string,
    readonly pid: number,
  ) {
    super(`spool directory ${spoolDir} is in use by process ${pid}; give each Client its own spoolDir`);
  }
}

/** The client was closed: it records nothing more. */
export class ClosedError extends Error {
  override name = "ClosedError";
  constructor() {
    super("the client is closed; create a new Client to record more events");
  }
}

/** Why a verification failed. Tamper evidence first, then unreadable input. */
export type VerificationFailure =
  /** A known key's signature does not verify. */
  | "bad_signature"
  /** No signature by a trusted key. */
  | "no_known_signature"
  /** The checkpoint names another log. */
  | "wrong_origin"
  /** The proof leads to another root: the entry or the proof was changed. */
  | "root_mismatch"
  /** The proof has the wrong length for the index and size. */
  | "proof_mismatch"
  /** An index or size outside the tree. */
  | "invalid_position"
  /** The input cannot be parsed (a note, a key, a proof, a hash). */
  | "malformed";

/** A receipt, checkpoint, note or proof does not verify. */
export class VerificationError extends Error {
  override name = "VerificationError";
  constructor(
    readonly failure: VerificationFailure,
    message: string,
  ) {
    super(message);
  }
}
