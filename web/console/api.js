// The admin API as the console uses it: JSON reads, POSTs that change state,
// and the /diffs event stream, all with the token from this tab's session.
// EventSource cannot send an Authorization header, so the stream is read
// with fetch.

const TOKEN_KEY = 'gatewayctl.console.token';

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** The API answered 401: the token is missing or wrong. */
export class Unauthorized extends Error {}

function headers(extra) {
  const out = { accept: 'application/json', ...extra };
  if (session.token) out.authorization = `Bearer ${session.token}`;
  return out;
}

async function failure(response) {
  if (response.status === 401) return new Unauthorized('the admin API wants the token');
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') message = body.error;
  } catch {
    // not JSON: keep the status line
  }
  return new Error(message);
}

export async function getJson(path) {
  const response = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** A state change: POST with JSON and the token, as the admin API's CSRF rules ask. */
export async function post(path) {
  const response = await fetch(path, {
    method: 'POST',
    headers: headers({ 'content-type': 'application/json', 'x-requested-by': 'gatewayctl console' }),
    body: '{}',
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/**
 * Follows the /diffs stream, reconnecting with Last-Event-ID. `onOpen` runs
 * each time the gateway accepts it; `onRefused` gets the error when it does
 * not (and following stops); `onDown` when a connection breaks.
 */
export function followDiffs({ replay, onOpen, onEvent, onLag, onRefused, onDown }) {
  const controller = new AbortController();
  let lastId;
  let stopped = false;

  async function connect() {
    const extra = { accept: 'text/event-stream' };
    if (lastId) extra['last-event-id'] = lastId;
    const path = lastId ? '/diffs' : `/diffs?replay=${replay}`;
    const response = await fetch(path, { headers: headers(extra), cache: 'no-store', signal: controller.signal });
    if (!response.ok) {
      stopped = true;
      onRefused(await failure(response));
      return;
    }
    onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = '';
    let data = [];
    let id;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        let line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length > 0) dispatch(event || 'message', data.join('\n'));
          if (id !== undefined) lastId = id;
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'event') event = text;
        else if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
      }
    }
  }

  function dispatch(event, data) {
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    if (event === 'diff') onEvent(parsed);
    else if (event === 'lag') onLag(parsed.skipped ?? 0);
  }

  (async () => {
    while (!stopped) {
      try {
        await connect();
      } catch (err) {
        if (controller.signal.aborted) return;
        onDown(err);
      }
      if (stopped) return;
      onDown();
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();

  return {
    stop() {
      stopped = true;
      controller.abort();
    },
  };
}
