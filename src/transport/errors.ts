// Typed errors of the peer transport, each with a stable `code`. Messages
// name what was wrong (which field, which byte, which peer) so that a log
// line is enough to find the cause.

export abstract class TransportError extends Error {
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Bytes from the network that are not a valid frame or message: an unknown
 * message type, a length or count that runs past the end, a value out of
 * range. The connection they came on is closed; nothing of them is delivered.
 */
export class TransportFrameError extends TransportError {
  readonly code = 'TRANSPORT_BAD_FRAME';
  constructor(
    readonly reason: string,
    /** The byte offset within the frame or message where the problem was found. */
    readonly offset: number,
  ) {
    super(`bad transport frame: ${reason} (at byte ${offset})`);
  }
}

/** A frame whose length prefix exceeds the receive limit: never allocated, the connection is closed. */
export class TransportFrameTooLargeError extends TransportError {
  readonly code = 'TRANSPORT_FRAME_TOO_LARGE';
  constructor(
    readonly length: number,
    readonly limit: number,
  ) {
    super(`transport frame of ${length} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** A message that cannot be encoded (a field that is not a non-negative safe integer): a bug in the caller. */
export class TransportEncodeError extends TransportError {
  readonly code = 'TRANSPORT_BAD_MESSAGE';
}

/** Bad transport options: an unusable URL, member id, cluster id or limit. */
export class TransportConfigError extends TransportError {
  readonly code = 'TRANSPORT_BAD_CONFIG';
}

/** The listener could not be started (address in use, permission denied, ...). */
export class TransportListenError extends TransportError {
  readonly code = 'TRANSPORT_LISTEN_FAILED';
  constructor(
    readonly address: string,
    override readonly cause: Error,
  ) {
    super(`cannot listen for peers on ${address}: ${cause.message}`);
  }
}
