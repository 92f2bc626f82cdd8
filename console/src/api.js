// The API client: every call carries the session's token in the
// Authorization header (never in a URL), decodes the 1.5 envelope and turns
// failures into ApiError with the server's message.

const KEY = 'agentfleet.token';

// The token lives in the tab's sessionStorage: a reload keeps the session,
// closing the tab ends it, other sites and tabs never see it.
export const session = {
  token() {
    try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
  },
  set(tok) {
    sessionStorage.setItem(KEY, tok);
    sessionStorage.removeItem('agentfleet.read-only'); // a new token: what it may do is asked afresh
  },
  clear() { try { sessionStorage.removeItem(KEY); } catch { /* storage off */ } },
};

// takeFragmentToken reads a sign-in link's token (/ui/#token=...) and
// removes it from the address bar and the history before anything else
// runs. The fragment is never sent to the server.
export function takeFragmentToken() {
  const h = location.hash;
  if (!h.startsWith('#token=')) return '';
  const tok = decodeURIComponent(h.slice('#token='.length));
  history.replaceState(history.state, '', location.pathname + location.search);
  return tok;
}

export class ApiError extends Error {
  constructor(status, msg, reqid) {
    super(msg || `HTTP ${status}`);
    this.status = status;
    this.reqid = reqid || '';
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

async function errorOf(res) {
  let msg = res.statusText, reqid = res.headers.get('X-Request-Id') || '';
  try {
    const env = await res.json();
    msg = env.msg || msg;
    reqid = env.reqid || reqid;
  } catch { /* not JSON */ }
  return new ApiError(res.status, msg, reqid);
}

function headers(extra) {
  const h = new Headers(extra || {});
  const tok = session.token();
  if (tok) h.set('Authorization', 'Bearer ' + tok);
  return h;
}

// request sends a call and returns the Response; non-2xx throw ApiError.
export async function request(path, { method = 'GET', body, headers: extra, signal } = {}) {
  const h = headers(extra);
  if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob) && typeof body !== 'string') {
    h.set('Content-Type', 'application/json');
    body = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers: h, body, signal, cache: 'no-store' });
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401) onUnauthorized(err);
    if (res.status === 403 && method !== 'GET') dispatchEvent(new Event('agentfleet:forbidden'));
    throw err;
  }
  return res;
}

// api calls a JSON route: { payload, total (X-Total-Count or NaN), headers }.
export async function api(path, opts) {
  const res = await request(path, opts);
  const env = await res.json();
  return { payload: env.payload, total: Number(res.headers.get('X-Total-Count') ?? NaN), headers: res.headers };
}

export const get = (path, opts) => api(path, opts).then((r) => r.payload);

// qs builds a query string from the set values of o.
export function qs(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? '?' + s : '';
}

// events follows a Server-Sent Events route with fetch (EventSource cannot
// send the Authorization header) and calls on(type, data) per event until
// the stream ends or signal aborts; onOpen once the server answered (the
// subscription is in place).
export async function events(path, on, signal, onOpen) {
  const res = await request(path, { headers: { Accept: 'text/event-stream' }, signal });
  if (onOpen) onOpen(); // subscribed: what happens from now on arrives as events
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
      let type = 'message', data = '';
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(':')) continue;
        const [k, ...rest] = line.split(':');
        const v = rest.join(':').replace(/^ /, '');
        if (k === 'event') type = v;
        else if (k === 'data') data += (data ? '\n' : '') + v;
      }
      if (!data) continue;
      let parsed = data;
      try { parsed = JSON.parse(data); } catch { /* text */ }
      on(type, parsed);
    }
  }
}

// upload sends a body (a multipart form, or a File sent as it is with
// method PUT) with XMLHttpRequest, the one browser API that reports upload
// progress: onProgress(loaded, total).
export function upload(path, form, onProgress, signal, method = 'POST') {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, path);
    const tok = session.token();
    if (tok) x.setRequestHeader('Authorization', 'Bearer ' + tok);
    x.upload.onprogress = (e) => onProgress && onProgress(e.loaded, e.lengthComputable ? e.total : 0);
    x.onerror = () => reject(new ApiError(0, 'network error during the upload'));
    x.onabort = () => reject(new ApiError(0, 'upload cancelled'));
    x.onload = () => {
      let env = null;
      try { env = JSON.parse(x.responseText); } catch { /* not JSON */ }
      if (x.status >= 200 && x.status < 300) resolve(env ? env.payload : null);
      else {
        if (x.status === 401) onUnauthorized();
        reject(new ApiError(x.status, env?.msg || x.statusText, env?.reqid));
      }
    };
    if (signal) signal.addEventListener('abort', () => x.abort());
    x.send(form);
  });
}

// download fetches a file with the token, reporting progress, and saves it
// under name. The bytes gather in a Blob (browsers keep large ones on disk).
export async function download(path, name, onProgress, signal) {
  const res = await request(path, { signal });
  const total = Number(res.headers.get('Content-Length') || 0);
  const reader = res.body.getReader();
  const parts = [];
  let got = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    got += value.length;
    onProgress && onProgress(got, total);
  }
  const blob = new Blob(parts, { type: 'application/octet-stream' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return got;
}
