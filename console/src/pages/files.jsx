// Files: browse a host's directories through its exec-agent
// (GET /api/file/{id}/ls), download files (streamed, with progress) and
// upload them (multipart, with an upload progress bar).
import { useRef, useState } from 'preact/hooks';
import { download, get, qs, upload } from '../api.js';
import { Link, TransferStatus, can, fmtBytes, fmtTime, navigate, usePoll, useMe } from '../util.jsx';

// modeText shows a Go os.FileMode: the text form when the server sends one
// (mode, or a string auth as before), else built from the number (1.5's
// auth).
export function modeText(e) {
  if (e.mode) return e.mode;
  if (typeof e.auth === 'string') return e.auth;
  const m = Number(e.auth) >>> 0;
  if (!m && e.auth !== 0) return '';
  const t = m & (1 << 31) ? 'd' : m & (1 << 27) ? 'L' : m & (1 << 25) ? 'p' : m & (1 << 24) ? 'S' : m & (1 << 21) ? 'c' : m & (1 << 26) ? 'D' : '-';
  let s = t;
  for (let i = 8; i >= 0; i--) s += m & (1 << i) ? 'rwx'[(8 - i) % 3] : '-';
  return s;
}

const join = (dir, name) => (dir.endsWith('/') || dir.endsWith('\\') ? dir + name : dir + (dir.includes('\\') && !dir.includes('/') ? '\\' : '/') + name);

function parent(dir) {
  if (dir === '/' || /^[A-Za-z]:\\?$/.test(dir)) return dir;
  const t = dir.replace(/[/\\]+$/, '');
  const i = Math.max(t.lastIndexOf('/'), t.lastIndexOf('\\'));
  if (i < 0) return dir;
  return i === 0 ? '/' : t.slice(0, i + (t[i] === '\\' && i === 2 ? 1 : 0));
}

export function Files({ id, dir }) {
  const me = useMe();
  const cur = dir || '/';
  const [path, setPath] = useState(cur);
  const [xfer, setXfer] = useState(null); // { what, done, total }
  const [note, setNote] = useState(null);
  const [err, setErr] = useState(null);
  const fileInput = useRef(null);
  const eid = encodeURIComponent(id);
  const list = usePoll(() => get(`/api/file/${eid}/ls` + qs({ dir: cur })), [eid, cur], 0);
  const go = (d) => { setPath(d); navigate(`/ui/hosts/${eid}/files` + qs({ dir: d })); };
  const entries = (list.data || []).slice().sort((a, b) => (b.is_dir - a.is_dir) || a.name.localeCompare(b.name));

  const getFile = async (e) => {
    setErr(null);
    setNote(null);
    const p = join(cur, e.name);
    setXfer({ what: 'Downloading ' + e.name, done: 0, total: e.size });
    try {
      const n = await download(`/api/file/${eid}/download` + qs({ dir: p }), e.name, (done, total) => setXfer({ what: 'Downloading ' + e.name, done, total: total || e.size }));
      setNote(`Downloaded ${e.name} (${fmtBytes(n)}).`);
    } catch (e2) { setErr(e2); }
    setXfer(null);
  };

  const put = async (ev) => {
    ev.preventDefault();
    const f = fileInput.current.files[0];
    if (!f) return;
    setErr(null);
    setNote(null);
    const form = new FormData();
    form.append('dir', cur);
    form.append('name', f.name);
    form.append('timeout', '600');
    form.append('file', f, f.name);
    setXfer({ what: 'Uploading ' + f.name, done: 0, total: f.size });
    try {
      const r = await upload(`/api/file/${eid}/upload`, form, (done, total) => {
        setXfer({ what: done >= (total || f.size) ? `Sending ${f.name} to the host…` : 'Uploading ' + f.name, done, total: total || f.size });
      });
      setNote(`Uploaded ${f.name} (${fmtBytes(f.size)}) to ${r && r.dir ? r.dir : cur}.`);
      fileInput.current.value = '';
      list.reload();
    } catch (e2) { setErr(e2); }
    setXfer(null);
  };

  return (
    <section>
      <h1>Files <span class="muted">{id}</span></h1>
      <div class="toolbar">
        <Link href={'/ui/hosts/' + eid}>← host</Link>
        <form class="inline grow" onSubmit={(e) => { e.preventDefault(); go(path.trim() || '/'); }}>
          <label class="grow">Directory <input name="dir" value={path} onInput={(e) => setPath(e.currentTarget.value)} /></label>
          <button type="submit" class="secondary">Open</button>
          <button type="button" class="secondary" onClick={() => go(parent(cur))} disabled={parent(cur) === cur}>Up</button>
        </form>
      </div>
      {can(me, 'files:write') ? (
        <form class="toolbar" onSubmit={put} aria-label="Upload a file">
          <label>Upload to {cur} <input type="file" name="file" ref={fileInput} /></label>
          <button type="submit" disabled={!!xfer}>Upload</button>
        </form>
      ) : null}
      <TransferStatus xfer={xfer} note={note} error={err || list.error} />
      <div class="table-wrap">
        <table class="grid compact files" aria-busy={list.loading}>
          <thead><tr><th>Name</th><th>Size</th><th>Mode</th><th>Owner</th><th>Modified</th><th /></tr></thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.name}>
                <td>{e.is_dir ? (
                  <a href={`/ui/hosts/${eid}/files` + qs({ dir: join(cur, e.name) })} onClick={(ev) => { ev.preventDefault(); go(join(cur, e.name)); }}>{e.name}/</a>
                ) : e.name}{e.is_link && e.link_dir ? <span class="muted"> → {e.link_dir}</span> : null}</td>
                <td>{e.is_dir ? '' : fmtBytes(e.size)}</td>
                <td><code>{modeText(e)}</code></td>
                <td>{e.user}{e.group ? ':' + e.group : ''}</td>
                <td>{fmtTime(e.modified_at || e.mod_time)}</td>
                <td>{!e.is_dir ? <button type="button" class="link" disabled={!!xfer} onClick={() => getFile(e)} aria-label={'Download ' + e.name}>Download</button> : null}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
