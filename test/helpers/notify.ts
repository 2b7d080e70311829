/**
 * A stand-in for systemd's notification socket: a unix datagram socket
 * (bound by python3, since Node cannot bind one) that records what the real
 * `systemd-notify` sends, one message per line, and closes the barrier fds
 * systemd-notify waits on, as systemd does.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { eachLine } from './cli.js';
import { tempDir } from './gateway.js';

const RECEIVER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    msg, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array('i')
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    text = msg.decode().strip()
    if text != "BARRIER=1":
        print(text.replace("\\n", " "), flush=True)
`;

/** Why a notify test cannot run here, or undefined when it can. */
export function notifyUnavailable(): string | undefined {
  for (const [tool, args] of [['python3', ['--version']], ['systemd-notify', ['--version']]] as const) {
    try {
      execFileSync(tool, [...args], { stdio: 'ignore' });
    } catch {
      return `${tool} not installed`;
    }
  }
  return undefined;
}

export interface NotifySocket {
  readonly path: string;
  /** Messages received so far, in order. */
  readonly messages: string[];
  waitFor(predicate: (messages: string[]) => boolean, timeoutMs?: number): Promise<string[]>;
  close(): void;
}

export async function startNotifySocket(): Promise<NotifySocket> {
  const tmp = tempDir('gatewayctl-notify-');
  const path = join(tmp.dir, 'notify.sock');
  const child: ChildProcess = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  let bound!: () => void;
  const isBound = new Promise<void>((resolve, reject) => {
    bound = resolve;
    child.on('exit', (code) => reject(new Error(`the notify socket receiver exited (${code})`)));
  });
  eachLine(child.stdout!, (line) => {
    if (line === 'bound') bound();
    else messages.push(line);
  });
  await isBound;
  return {
    path,
    messages,
    async waitFor(predicate, timeoutMs = 10_000) {
      const started = Date.now();
      while (!predicate(messages)) {
        if (Date.now() - started > timeoutMs) throw new Error(`notify messages so far: ${JSON.stringify(messages)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return messages;
    },
    close() {
      child.kill('SIGKILL');
      tmp.remove();
    },
  };
}
