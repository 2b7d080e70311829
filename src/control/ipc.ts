/**
 * Messages between the primary process (control plane) and its workers.
 * Config travels already validated and normalized, releases applied:
 * validated and overlaid once in the primary, compiled by each worker (a
 * compiled snapshot holds functions and pickers, which cannot cross
 * processes), applied by all.
 */
import type { GatewayConfig } from '../config/types.js';
import type { ListenerMaterial } from '../tls/listener.js';

export interface SnapshotMessage {
  readonly config: GatewayConfig;
  readonly generation: number;
  /** Unique per snapshot the primary serves: what `applied` acknowledges. */
  readonly servedGeneration: number;
  readonly source: string;
  readonly loadedAt: string;
}

export type ToWorker =
  | { readonly type: 'start'; readonly snapshot: SnapshotMessage; readonly host: string; readonly port: number; readonly tls?: ListenerMaterial }
  | { readonly type: 'apply'; readonly snapshot: SnapshotMessage }
  | { readonly type: 'tls'; readonly material: ListenerMaterial }
  | { readonly type: 'metrics'; readonly id: number }
  | { readonly type: 'drain'; readonly deadlineMs: number }
  | { readonly type: 'reopen-logs' }
  | { readonly type: 'event'; readonly channel: string; readonly payload: unknown };

export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'listening'; readonly port: number }
  | { readonly type: 'listen-failed'; readonly code: string; readonly message: string }
  | { readonly type: 'applied'; readonly servedGeneration: number }
  | { readonly type: 'tls-applied'; readonly generation: number }
  | { readonly type: 'metrics'; readonly id: number; readonly metrics: unknown[] }
  | { readonly type: 'event'; readonly channel: string; readonly payload: unknown };

export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}
