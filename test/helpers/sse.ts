/**
 * A test client for Server-Sent Event streams: collects messages, waits
 * for a number of them, closes.
 */
import http from 'node:http';
import { SseParser, type SseMessage } from '../../src/admin/sse.js';

export interface SseClient {
  readonly status: number;
  readonly messages: SseMessage[];
  /** Resolves with the first `count` messages named `event`. */
  waitFor(count: number, event?: string, timeoutMs?: number): Promise<SseMessage[]>;
  close(): void;
}

export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const parser = new SseParser();
      const messages: SseMessage[] = [];
      const listeners = new Set<() => void>();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        messages.push(...parser.push(chunk));
        for (const l of [...listeners]) l();
      });
      res.on('error', () => undefined);
      resolve({
        status: res.statusCode ?? 0,
        messages,
        waitFor(count, event = 'diff', timeoutMs = 5000) {
          const named = () => messages.filter((m) => m.event === event);
          return new Promise((done, fail) => {
            const check = () => {
              if (named().length < count) return;
              listeners.delete(check);
              clearTimeout(timer);
              done(named().slice(0, count));
            };
            const timer = setTimeout(() => {
              listeners.delete(check);
              fail(new Error(`waited ${timeoutMs}ms for ${count} "${event}" events, got ${named().length}`));
            }, timeoutMs);
            listeners.add(check);
            check();
          });
        },
        close: () => res.destroy(),
      });
    });
    req.on('error', reject);
  });
}
