// Flow control for pipelined replication: the append messages sent to one
// follower and not yet acknowledged, bounded in count and in bytes.

/**
 * A ring buffer of in-flight MsgApp messages, each recorded by the last index
 * it carries and its size. An acknowledgement up to index i frees every
 * message whose last index is <= i.
 */
export class Inflights {
  private start = 0;
  private count_ = 0;
  private bytes_ = 0;
  private readonly indexes: Float64Array;
  private readonly sizes: Float64Array;

  constructor(
    /** Maximum messages in flight (>= 1). */
    readonly maxCount: number,
    /** Maximum bytes in flight; 0 means no byte limit. */
    readonly maxBytes: number,
  ) {
    this.indexes = new Float64Array(maxCount);
    this.sizes = new Float64Array(maxCount);
  }

  get count(): number {
    return this.count_;
  }

  get bytes(): number {
    return this.bytes_;
  }

  /**
   * Full when either limit is reached. A single message may overshoot the
   * byte limit (a large entry must still be sent); the window then stays full
   * until it is acknowledged.
   */
  full(): boolean {
    return this.count_ === this.maxCount || (this.maxBytes !== 0 && this.bytes_ >= this.maxBytes);
  }

  /** Records a message carrying entries up to `index`, of `bytes` bytes. Indexes must increase. */
  add(index: number, bytes: number): void {
    if (this.count_ === this.maxCount) {
      // The caller checks full() before sending; reaching this is a bug in the caller.
      throw new RangeError('inflights: cannot add into a full window');
    }
    const at = (this.start + this.count_) % this.maxCount;
    this.indexes[at] = index;
    this.sizes[at] = bytes;
    this.count_++;
    this.bytes_ += bytes;
  }

  /** Frees the messages whose last index is <= `index`. */
  freeLE(index: number): void {
    while (this.count_ > 0 && this.indexes[this.start]! <= index) {
      this.bytes_ -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.maxCount;
      this.count_--;
    }
    if (this.count_ === 0) {
      this.start = 0;
      this.bytes_ = 0;
    }
  }

  /**
   * Frees the oldest message. Used when a heartbeat response shows the
   * follower alive while the window is full: if every message in it was
   * lost, this lets one more append through instead of stalling forever.
   */
  freeFirstOne(): void {
    if (this.count_ === 0) return;
    this.freeLE(this.indexes[this.start]!);
  }

  reset(): void {
    this.start = 0;
    this.count_ = 0;
    this.bytes_ = 0;
  }
}
