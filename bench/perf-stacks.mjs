#!/usr/bin/env node
// Where one thread's CPU goes, from Linux perf call chains: native work a
// V8 .cpuprofile cannot see (structured clone between threads, the kernel's
// socket work, V8's compiler and collector) sorted into a few kinds.
//
//   perf record -t TID -g -F 999 -o thread.data -- sleep 5      (TID from /proc/PID/task)
//   perf script -i thread.data > thread.txt
//   node bench/perf-stacks.mjs thread.txt [--seconds 5] [--requests N]
//
// Each sample counts once, for the first kind (in the order below) that any
// frame of its stack matches: a socket write made from inside a message
// handler counts as the handler's ("thread messages"). --seconds gives ms of
// CPU per second of the recording, --requests µs per request. The thread
// messages are then split into serialising (posting), deserialising
// (receiving) and the JavaScript run for what was received.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { seconds: { type: 'string' }, requests: { type: 'string' }, hz: { type: 'string', default: '999' } },
});
if (positionals.length !== 1) throw new Error('usage: perf-stacks.mjs PERF-SCRIPT.txt [--seconds S] [--requests N]');

const KINDS = [
  ['garbage collection', /Scaveng|MarkCompact|Heap::CollectGarbage|Heap::PerformGarbage|IncrementalMarking|ConcurrentMarking|Sweeper|ArrayBufferSweeper/],
  ['thread messages', /MessagePort|ValueSerializer|ValueDeserializer|uv_async_send|worker::Message/],
  ['compiling', /Compiler|compiler::|CompileLazy|Maglev|baseline::/],
  ['socket writes (kernel)', /tcp_sendmsg|sock_write_iter|do_writev|ksys_write/],
  ['socket reads (kernel)', /tcp_recvmsg|sock_read_iter|ksys_read/],
  ['waiting for events (kernel)', /epoll_wait|do_epoll|epoll_pwait/],
  ['other kernel', /\[kernel|entry_SYSCALL|do_syscall/],
];

const samples = readFileSync(positionals[0], 'utf8')
  .split(/\n\s*\n/)
  .filter((s) => s.trim())
  .map((s) => s.split('\n').slice(1).join('\n'));

const kinds = new Map();
const messages = new Map();
for (const stack of samples) {
  const kind = KINDS.find(([, re]) => re.test(stack))?.[0] ?? 'JavaScript and the rest';
  kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  if (kind !== 'thread messages') continue;
  const part = /ValueDeserializer|Message::Deserialize/.test(stack)
    ? 'receiving: deserialising'
    : /OnMessage/.test(stack)
      ? 'receiving: what the handlers ran'
      : /ValueSerializer|Message::Serialize/.test(stack)
        ? 'posting: serialising'
        : 'posting: the rest (wake-up, locks)';
  messages.set(part, (messages.get(part) ?? 0) + 1);
}

const seconds = Number(opts.seconds ?? 0);
const requests = Number(opts.requests ?? 0);
const hz = Number(opts.hz);
const row = (name, n) => {
  const cells = [name, String(n), `${((n / samples.length) * 100).toFixed(1)}%`];
  if (seconds) cells.push(`${((n / hz / seconds) * 1000).toFixed(1)} ms/s`);
  if (requests) cells.push(`${((n / hz / requests) * 1e6).toFixed(1)} µs/req`);
  return `| ${cells.join(' | ')} |`;
};
const head = ['kind', 'samples', 'share', ...(seconds ? ['CPU'] : []), ...(requests ? ['per request'] : [])];
const table = (title, map) => {
  console.log(`\n${title}\n\n| ${head.join(' | ')} |\n|${head.map(() => ' --- |').join('')}`);
  for (const [name, n] of [...map].sort((a, b) => b[1] - a[1])) console.log(row(name, n));
};
console.log(`${samples.length} samples`);
table('By kind', kinds);
if (messages.size) table('Thread messages', messages);
