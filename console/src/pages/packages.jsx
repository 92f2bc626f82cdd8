// Packages: the server's package repository (GET /api/packages): list,
// download, and for tokens that hold packages:write upload (the file sent
// as the raw body of PUT /api/packages/{name}, with a progress bar) and
// delete.
import { useRef, useState } from 'preact/hooks';
import { api, download, qs, upload } from '../api.js';
import { Link, TransferStatus, can, fmtBytes, fmtTime, usePoll, useMe } from '../util.jsx';

// The kinds an install takes (a raw agent binary is for upgrades).
const INSTALLABLE = ['deb', 'rpm', 'tar', 'tar.gz', 'tar.bz2', 'zip', 'msi', 'exe'];

export function Packages() {
  const me = useMe();
  const write = can(me, 'packages:write');
  const [name, setName] = useState('');
  const [replace, setReplace] = useState(false);
  const [xfer, setXfer] = useState(null); // { what, done, total }
  const [note, setNote] = useState(null);
  const [err, setErr] = useState(null);
  const fileInput = useRef(null);
  const list = usePoll(() => api('/api/packages'), [], 10000);
  if (!can(me, 'packages:read')) return <section><h1>Packages</h1><p>This token may not read the package repository.</p></section>;
  const pl = list.data ? list.data.payload || {} : {};
  const rows = pl.packages || [];
  const path = (n) => '/api/packages/' + encodeURIComponent(n);

  const put = async (ev) => {
    ev.preventDefault();
    const f = fileInput.current.files[0];
    if (!f) return;
    const n = name.trim() || f.name;
    setErr(null);
    setNote(null);
    if (pl.max_size && f.size > pl.max_size) {
      setErr(new Error(`${f.name} is ${fmtBytes(f.size)}: the server takes packages up to ${fmtBytes(pl.max_size)}`));
      return;
    }
    setXfer({ what: 'Uploading ' + n, done: 0, total: f.size });
    try {
      const p = await upload(path(n) + qs({ replace: replace ? 'true' : '' }), f, (done, total) => {
        setXfer({ what: done >= (total || f.size) ? `Storing ${n}…` : 'Uploading ' + n, done, total: total || f.size });
      }, undefined, 'PUT');
      setNote(`Stored ${p.name} (${p.kind}, ${fmtBytes(p.size)}), sha256 ${p.sha256}.`);
      fileInput.current.value = '';
      setName('');
      setReplace(false);
      list.reload();
    } catch (e) { setErr(e); }
    setXfer(null);
  };

  const get = async (p) => {
    setErr(null);
    setNote(null);
    setXfer({ what: 'Downloading ' + p.name, done: 0, total: p.size });
    try {
      const n = await download(path(p.name) + '/download', p.name, (done, total) => setXfer({ what: 'Downloading ' + p.name, done, total: total || p.size }));
      setNote(`Downloaded ${p.name} (${fmtBytes(n)}).`);
    } catch (e) { setErr(e); }
    setXfer(null);
  };

  const del = async (p) => {
    if (!confirm(`Delete package ${p.name}? Installs that name it will fail.`)) return;
    setErr(null);
    setNote(null);
    try {
      await api(path(p.name), { method: 'DELETE' });
      setNote(`Deleted ${p.name}.`);
      list.reload();
    } catch (e) { setErr(e); }
  };

  return (
    <section>
      <h1>Packages</h1>
      <p class="muted">What installs and agent self-updates take from the server: deb, rpm, tar, tar.gz, tar.bz2, zip, msi, exe, and agent binaries.</p>
      {write ? (
        <form class="toolbar" onSubmit={put} aria-label="Upload a package">
          <label>Package <input type="file" name="file" ref={fileInput} onChange={(e) => setName(e.currentTarget.files[0] ? e.currentTarget.files[0].name : '')} /></label>
          <label>Name <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="the file's name" /></label>
          <label class="radio"><input type="checkbox" name="replace" checked={replace} onChange={(e) => setReplace(e.currentTarget.checked)} /> replace</label>
          <button type="submit" disabled={!!xfer}>Upload</button>
          {pl.max_size ? <span class="muted">up to {fmtBytes(pl.max_size)}</span> : null}
        </form>
      ) : null}
      <TransferStatus xfer={xfer} note={note} error={err || list.error} />
      <div class="table-wrap">
        <table class="grid compact" aria-busy={list.loading}>
          <thead><tr><th>Name</th><th>Kind</th><th>Size</th><th>SHA-256</th><th>Uploaded</th><th /></tr></thead>
          <tbody>
            {rows.map((p) => (
              <tr key={p.name}>
                <td>{p.name}</td>
                <td>{p.kind}</td>
                <td class="nowrap">{fmtBytes(p.size)}</td>
                <td><code title={p.sha256}>{p.sha256.slice(0, 16)}…</code></td>
                <td class="nowrap">{fmtTime(p.created)}</td>
                <td class="nowrap">
                  <button type="button" class="link" disabled={!!xfer} onClick={() => get(p)} aria-label={'Download ' + p.name}>Download</button>
                  {can(me, 'exec:run') && INSTALLABLE.includes(p.kind) ? <Link href={'/ui/install' + qs({ uri: p.name })} aria-label={'Install ' + p.name}>Install…</Link> : null}
                  {write ? <button type="button" class="link danger" disabled={!!xfer} onClick={() => del(p)} aria-label={'Delete ' + p.name}>Delete</button> : null}
                </td>
              </tr>
            ))}
            {list.data && rows.length === 0 ? <tr><td colSpan="6" class="muted">No packages yet.</td></tr> : null}
          </tbody>
        </table>
      </div>
    </section>
  );
}
