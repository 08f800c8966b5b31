/**
 * Follows an events.jsonl that another process appends to: from a byte offset, complete lines only
 * (a torn last line waits for its newline). Polling, because fs.watch misses appends on some
 * filesystems (NFS, overlay) and a run dir may live on one of them.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { parseEventLine, type ShimEvent } from "./events.ts";

export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

export class EventTail {
  private offset: number;
  private partial = "";

  constructor(
    private readonly file: string,
    fromOffset = fileSize(file),
  ) {
    this.offset = fromOffset;
  }

  /** Reads what was appended since the last call and returns its complete events. */
  poll(): ShimEvent[] {
    if (!existsSync(this.file)) return [];
    const fd = openSync(this.file, "r");
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset) this.offset = 0; // truncated or replaced: start over
      if (size === this.offset) return [];
      const buffer = Buffer.alloc(size - this.offset);
      const read = readSync(fd, buffer, 0, buffer.length, this.offset);
      this.offset += read;
      const text = this.partial + buffer.subarray(0, read).toString("utf8");
      const lines = text.split("\n");
      this.partial = lines.pop() ?? "";
      return lines.map(parseEventLine).filter((e): e is ShimEvent => e !== undefined);
    } finally {
      closeSync(fd);
    }
  }
}
