// A priority queue of timed events. Ties are broken by insertion order, so
// the order of simultaneous events is deterministic.

export class EventQueue<E> {
  private times: number[] = [];
  private seqs: number[] = [];
  private items: E[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.items.length;
  }

  push(time: number, item: E): void {
    const seq = this.nextSeq++;
    let i = this.items.length;
    this.times.push(time);
    this.seqs.push(seq);
    this.items.push(item);
    // Sift up.
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(time, seq, this.times[p]!, this.seqs[p]!)) break;
      this.move(p, i);
      i = p;
    }
    this.set(i, time, seq, item);
  }

  peekTime(): number | undefined {
    return this.items.length > 0 ? this.times[0] : undefined;
  }

  /** The earliest event, left in the queue. */
  peek(): E | undefined {
    return this.items[0];
  }

  /** Removes and returns the earliest event (its time is peekTime()), or undefined when empty. */
  pop(): E | undefined {
    const n = this.items.length;
    if (n === 0) return undefined;
    const item = this.items[0]!;
    const lastTime = this.times.pop()!;
    const lastSeq = this.seqs.pop()!;
    const lastItem = this.items.pop()!;
    if (n > 1) {
      // Sift the last element down from the root.
      let i = 0;
      const size = n - 1;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= size) break;
        const r = l + 1;
        const c = r < size && this.less(this.times[r]!, this.seqs[r]!, this.times[l]!, this.seqs[l]!) ? r : l;
        if (!this.less(this.times[c]!, this.seqs[c]!, lastTime, lastSeq)) break;
        this.move(c, i);
        i = c;
      }
      this.set(i, lastTime, lastSeq, lastItem);
    }
    return item;
  }

  private less(t1: number, s1: number, t2: number, s2: number): boolean {
    return t1 < t2 || (t1 === t2 && s1 < s2);
  }

  private move(from: number, to: number): void {
    this.times[to] = this.times[from]!;
    this.seqs[to] = this.seqs[from]!;
    this.items[to] = this.items[from]!;
  }

  private set(i: number, time: number, seq: number, item: E): void {
    this.times[i] = time;
    this.seqs[i] = seq;
    this.items[i] = item;
  }
}
