// Structured logs: one JSON object per line on stdout (as etcd's zap logger
// writes them), through pino. Every part takes the small Logger interface
// below, so tests and the simulator can pass their own.

import { pino } from 'pino';

export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  child(bindings: object): Logger;
}

export function createLogger(level: 'debug' | 'info' | 'warn' | 'error', bindings: object = {}): Logger {
  return pino({ level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything (library use without logging). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
